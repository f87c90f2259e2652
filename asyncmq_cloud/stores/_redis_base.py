"""Shared plumbing and the metadata side of :class:`~asyncmq_cloud.stores.redis.RedisStateStore`.

Client access, script calls and key names, then queue flags, repeatables, workers and
locks (plain commands, ``MULTI``/``EXEC`` or one script each); the key layout is in the
module docstring of :mod:`asyncmq_cloud.stores.redis`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.core.protocols import RepeatableRecord, WorkerRecord
from asyncmq_cloud.core.validation import validate_queue_name
from asyncmq_cloud.errors import ClosedError, TransientError
from asyncmq_cloud.redis import RedisComponent, aioredis, redis_errors, rexc
from asyncmq_cloud.redis import to_str as _str

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

_translated = redis_errors


def _num(value: float | None) -> str:
    """A float as a Redis/Lua argument: ``repr`` round-trips exactly; ``''`` is None."""
    return "" if value is None else repr(float(value))


class RedisStoreBase(RedisComponent):
    """Client access, script calls, key names and the store's metadata methods."""

    prefix: str
    _scripts: dict[str, AsyncScript]

    @property
    def client(self) -> aioredis.Redis:
        """The redis client in use (raises :class:`ClosedError` outside start()..close())."""
        if not self.started:
            state = "closed" if self._closed else "not started; await start() or use 'async with'"
            raise ClosedError(f"RedisStateStore is {state}")
        return self._redis_clients.client

    async def _run(self, name: str, args: Sequence[str | bytes | int | float], keys: Sequence[str] = ()) -> Any:
        client = self.client
        return await self._scripts[name](keys=list(keys), args=list(args), client=client)

    def _key(self, queue: str, suffix: str) -> str:
        return f"{self.prefix}:q:{validate_queue_name(queue)}:{suffix}"

    # -- queue flags -------------------------------------------------------------
    @_translated
    async def set_paused(self, queue: str, paused: bool) -> None:
        validate_queue_name(queue)
        if paused:
            await self.client.sadd(f"{self.prefix}:paused", queue)
        else:
            await self.client.srem(f"{self.prefix}:paused", queue)

    @_translated
    async def is_paused(self, queue: str) -> bool:
        validate_queue_name(queue)
        return bool(await self.client.sismember(f"{self.prefix}:paused", queue))

    @_translated
    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        if not queues:
            return set()
        return set(queues) & {_str(q) for q in await self.client.smembers(f"{self.prefix}:paused")}

    # -- repeatables -------------------------------------------------------------
    @_translated
    async def put_repeatable(self, queue: str, record: RepeatableRecord) -> None:
        entry = json.dumps(
            {"job_def": record.job_def, "next_run": record.next_run, "paused": record.paused}, default=str
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(queue, "repeatables"), record.key, entry)
            pipe.sadd(f"{self.prefix}:queues", queue)
            await pipe.execute()

    @_translated
    async def get_repeatable(self, queue: str, key: str) -> RepeatableRecord | None:
        entry = await self.client.hget(self._key(queue, "repeatables"), key)
        return None if entry is None else _repeatable(key, entry)

    @_translated
    async def list_repeatables(self, queue: str) -> list[RepeatableRecord]:
        entries = await self.client.hgetall(self._key(queue, "repeatables"))
        return sorted((_repeatable(_str(k), v) for k, v in entries.items()), key=lambda r: r.next_run)

    @_translated
    async def delete_repeatable(self, queue: str, key: str) -> bool:
        return bool(await self.client.hdel(self._key(queue, "repeatables"), key))

    @_translated
    async def advance_repeatable(self, queue: str, key: str, next_run: float) -> bool:
        table = self._key(queue, "repeatables")
        async with self.client.pipeline(transaction=True) as pipe:
            for _ in range(20):  # WATCH/MULTI: a concurrent pause or remove wins, then we re-read
                try:
                    await pipe.watch(table)
                    entry = await pipe.hget(table, key)
                    if entry is None or json.loads(entry)["paused"]:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return False
                    data = json.loads(entry) | {"next_run": next_run}
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(table, key, json.dumps(data, default=str))
                    await pipe.execute()
                    return True
                except rexc.WatchError:
                    continue
        raise TransientError(f"repeatable {key!r} of queue {queue!r} kept changing while being advanced")

    # -- workers -------------------------------------------------------------------
    @_translated
    async def register_worker(self, record: WorkerRecord, ttl: float) -> None:
        entry = json.dumps(
            {"id": record.id, "queue": record.queue, "concurrency": record.concurrency, "heartbeat": record.heartbeat}
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(f"{self.prefix}:workers", record.id, entry)
            pipe.zadd(f"{self.prefix}:workers:expiry", {record.id: record.heartbeat + ttl})
            await pipe.execute()

    @_translated
    async def deregister_worker(self, worker_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(f"{self.prefix}:workers", worker_id)
            pipe.zrem(f"{self.prefix}:workers:expiry", worker_id)
            await pipe.execute()

    @_translated
    async def list_workers(self) -> list[WorkerRecord]:
        entries = await self._run("workers", [self.prefix, _num(time.time())])
        return [WorkerRecord(**json.loads(entry)) for entry in entries]

    # -- locks -----------------------------------------------------------------------
    @_translated
    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        ttl_ms = max(1, round(ttl * 1000))
        return bool(await self._run("acquire_lock", [token, ttl_ms], keys=[f"{self.prefix}:lock:{key}"]))

    @_translated
    async def release_lock(self, key: str, token: str) -> bool:
        return bool(await self._run("release_lock", [token], keys=[f"{self.prefix}:lock:{key}"]))


def _repeatable(key: str, entry: str | bytes) -> RepeatableRecord:
    data = json.loads(entry)
    return RepeatableRecord(key=key, job_def=data["job_def"], next_run=float(data["next_run"]), paused=data["paused"])
