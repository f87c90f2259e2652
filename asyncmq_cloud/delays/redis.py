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

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.core.validation import validate_queue_name, validate_run_at
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.redis import (
    DEFAULT_REDIS_URL,
    RedisClients,
    RedisComponent,
    aioredis,
    load_lua,
    redis_errors,
    register_scripts,
    to_str,
)

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from asyncmq_cloud.core.protocols import ResourceSpec

#: ``list`` is also a method name below; keep the builtin for annotations.
_Entries = list[tuple[str, float]]


class RedisDelayStore(RedisComponent):
    """Delayed job ids in a Redis sorted set per queue.

    Args:
        url: Redis URL used when no ``client`` is given.
        prefix: first segment of every key (share it with the state store or not).
        client: an existing ``redis.asyncio.Redis``; the store then never closes it.
        client_kwargs: passed to ``BlockingConnectionPool.from_url`` (see
            :class:`~asyncmq_cloud.redis.RedisClients`).
        clients: shared, caller-owned :class:`~asyncmq_cloud.redis.RedisClients` (not closed by
            ``close()``), e.g. the state store's; then no ``client``/``client_kwargs``.
    """

    def __init__(
        self,
        url: str = DEFAULT_REDIS_URL,
        *,
        prefix: str = "asyncmq-cloud",
        client: aioredis.Redis | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        clients: RedisClients | None = None,
    ) -> None:
        if not prefix:
            raise ConfigurationError("RedisDelayStore prefix must be a non-empty string")
        super().__init__()
        self._use_redis(url, client=client, clients=clients, client_kwargs=client_kwargs)
        self.url = url if clients is None else clients.url
        self.prefix = prefix
        self._claim: AsyncScript | None = None

    async def _open(self, stack: AsyncExitStack) -> None:
        await super()._open(stack)
        scripts = await register_scripts(self._redis_clients.client, {"claim": load_lua("delay_claim_due")})
        self._claim = scripts["claim"]

    async def provision(self) -> None:
        """Nothing to create: keys appear on first write."""
        await self.start()

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing: Redis keys appear on first write."""
        return []

    def _key(self, queue: str) -> str:
        return f"{self.prefix}:delay:{validate_queue_name(queue)}"

    async def _client(self) -> aioredis.Redis:
        await self._ensure_started()
        return self._redis_clients.client

    @redis_errors
    async def schedule(self, queue: str, job_id: str, run_at: float) -> None:
        score = validate_run_at(run_at)
        await (await self._client()).zadd(self._key(queue), {job_id: score})

    @redis_errors
    async def claim_due(self, queue: str, now: float, limit: int) -> _Entries:
        if limit <= 0:
            return []
        await self._client()
        assert self._claim is not None
        raw = await self._claim(keys=[self._key(queue)], args=[repr(validate_run_at(now)), int(limit)])
        return [(to_str(raw[i]), float(to_str(raw[i + 1]))) for i in range(0, len(raw), 2)]

    @redis_errors
    async def cancel(self, queue: str, job_id: str) -> bool:
        return bool(await (await self._client()).zrem(self._key(queue), job_id))

    @redis_errors
    async def list(self, queue: str) -> _Entries:
        raw: Any = await (await self._client()).zrange(self._key(queue), 0, -1, withscores=True)
        return [(to_str(member), float(score)) for member, score in raw]

    @redis_errors
    async def count(self, queue: str) -> int:
        return int(await (await self._client()).zcard(self._key(queue)))
