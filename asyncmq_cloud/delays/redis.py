"""Redis :class:`~asyncmq_cloud.core.protocols.DelayStore`: a sorted set per queue.

Operator's manual
=================

**Layout.** ``{prefix}:delay:{queue}`` is a sorted set of job ids scored by
``run_at`` (epoch seconds, float). ``schedule`` is one ``ZADD`` (re-scheduling
replaces the score), ``cancel`` one ``ZREM``, ``list`` one ``ZRANGE``,
``count`` one ``ZCARD``.

**Exactly once.** ``claim_due`` is one Lua script
(``asyncmq_cloud/lua/delay_claim_due.lua``) that reads up to ``limit`` ids with
``score <= now`` and removes them in the same atomic step, so any number of
scanners (every AsyncMQ worker calls ``promote_due_delayed``, plus optional
``asyncmq-cloud scanner run`` processes) hand each id to exactly one caller. A
scanner that dies after the claim but before the state store write is covered
by the lifecycle's repair pass (``docs/decisions.md``, entry 7).

**Cost.** One round trip per call; ``claim_due`` is O(log N + limit).
Memory: about 100 bytes per delayed id. Clocks: ``now`` is the caller's clock,
so keep scanner clocks in sync (NTP); a scanner whose clock runs ahead
promotes early by that much.

**Target.** A single Redis (or primary); each key is per queue, so the store
would also work on Redis Cluster, but it is tested on a single server only.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from importlib import resources
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.commands.core import AsyncScript

from asyncmq_cloud.core.validation import validate_queue_name, validate_run_at
from asyncmq_cloud.errors import ClosedError, ConfigurationError
from asyncmq_cloud.stores.redis import _str, _translate

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec

_P = ParamSpec("_P")
_R = TypeVar("_R")
#: ``list`` is also a method name below; keep the builtin for annotations.
_Entries = list[tuple[str, float]]


def _translated(method: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """The one boundary where redis-py errors become :mod:`asyncmq_cloud.errors`."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except (rexc.RedisError, ConnectionError, TimeoutError) as exc:
            raise _translate(exc) from exc

    return wrapper


class RedisDelayStore:
    """Delayed job ids in a Redis sorted set per queue.

    Args:
        url: Redis URL used when no ``client`` is given.
        prefix: first segment of every key (share it with the state store or not).
        client: an existing ``redis.asyncio.Redis``; the store then never closes it.
        client_kwargs: passed to ``redis.asyncio.from_url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "asyncmq-cloud",
        client: aioredis.Redis | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not prefix:
            raise ConfigurationError("RedisDelayStore prefix must be a non-empty string")
        self.url = url
        self.prefix = prefix
        self._given_client = client
        self._client_kwargs = dict(client_kwargs or {})
        self._redis: aioredis.Redis | None = None
        self._claim: AsyncScript | None = None
        self._stack = AsyncExitStack()
        self._closed = False

    async def start(self) -> None:
        if self._closed:
            raise ClosedError("RedisDelayStore is closed; create a new one")
        if self._redis is not None:
            return
        if self._given_client is not None:
            client = self._given_client
        else:
            client = aioredis.from_url(self.url, **self._client_kwargs)
            self._stack.push_async_callback(client.aclose)
        body = (resources.files("asyncmq_cloud") / "lua" / "delay_claim_due.lua").read_text("utf-8")
        self._claim = client.register_script(body)
        self._redis = client

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._redis = None
        await self._stack.aclose()

    async def __aenter__(self) -> RedisDelayStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def provision(self) -> None:
        """Nothing to create: keys appear on first write."""
        await self.start()

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing: Redis keys appear on first write."""
        return []

    @property
    def client_kwargs(self) -> dict[str, Any]:
        """The options given to ``redis.asyncio.from_url`` (a copy)."""
        return dict(self._client_kwargs)

    def _key(self, queue: str) -> str:
        return f"{self.prefix}:delay:{validate_queue_name(queue)}"

    async def _client(self) -> aioredis.Redis:
        if self._redis is None:
            await self.start()
        assert self._redis is not None
        return self._redis

    @_translated
    async def schedule(self, queue: str, job_id: str, run_at: float) -> None:
        score = validate_run_at(run_at)
        await (await self._client()).zadd(self._key(queue), {job_id: score})

    @_translated
    async def claim_due(self, queue: str, now: float, limit: int) -> _Entries:
        if limit <= 0:
            return []
        await self._client()
        assert self._claim is not None
        raw = await self._claim(keys=[self._key(queue)], args=[repr(validate_run_at(now)), int(limit)])
        return [(_str(raw[i]), float(_str(raw[i + 1]))) for i in range(0, len(raw), 2)]

    @_translated
    async def cancel(self, queue: str, job_id: str) -> bool:
        return bool(await (await self._client()).zrem(self._key(queue), job_id))

    @_translated
    async def list(self, queue: str) -> _Entries:
        raw: Any = await (await self._client()).zrange(self._key(queue), 0, -1, withscores=True)
        return [(_str(member), float(score)) for member, score in raw]

    @_translated
    async def count(self, queue: str) -> int:
        return int(await (await self._client()).zcard(self._key(queue)))
