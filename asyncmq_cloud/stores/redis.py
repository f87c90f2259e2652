"""Redis :class:`~asyncmq_cloud.core.protocols.StateStore` (redis-py asyncio).

Operator's manual
=================

**Target.** One Redis (standalone, or a primary with replicas / Sentinel), version
6.2 or newer. Redis Cluster is *not* supported: the Lua scripts derive key names
from the prefix and the queue name instead of declaring every key, and the
indexes below span queues. Point the store at a database of its own or give it a
``prefix`` of its own; two stores with the same prefix share all their state.

**Key layout** (``P`` is ``prefix``, ``Q`` a queue; queue names never contain
``:`` — :func:`~asyncmq_cloud.core.validation.validate_queue_name` — so every key
splits unambiguously; job ids may contain anything)::

    P:q:Q:job:ID          hash    state, payload (JSON), seq, created_at, updated_at,
                                  and when set: run_at, owner, heartbeat
    P:q:Q:state:STATE     zset    job ids in STATE, scored by creation order (seq)
    P:q:Q:waiting-depth   list    one placeholder per waiting job: its LLEN is what
                                  KEDA's redis scaler reads (deploy/kubernetes/keda)
    P:q:Q:states          set     states outside core.states.ALL_STATES the queue has used
                                  (count_jobs reads these and every known state)
    P:q:Q:unsent          zset    ids made waiting by create/transition with unsent, scored
                                  by the write's time; any state change or delete removes them
    P:q:Q:pending:CHILD   set     parent ids CHILD still waits for
    P:q:Q:children:PARENT set     children that wait for PARENT
    P:q:Q:repeatables     hash    repeatable key -> JSON definition
    P:active              zset    "Q:ID" of every active job, scored by heartbeat
    P:queues              set     queues that have held a job or a repeatable
    P:paused              set     paused queues
    P:seq                 string  creation counter (orders list_jobs)
    P:workers             hash    worker id -> JSON entry
    P:workers:expiry      zset    worker id scored by expiry (heartbeat + ttl)
    P:lock:KEY            string  lock holder token, with a PX expiry

Times are epoch seconds written by the clients (keep worker clocks in sync).

**Atomicity and round trips.** Every conditional or multi-key operation is one
Lua script (``asyncmq_cloud/lua/state_*.lua``, loaded at ``start()``), so each
public method is a single round trip (``EVALSHA``, one plain command or one
``MULTI``/``EXEC``). A script is atomic with respect to other clients; Redis does
not roll a script back if it fails half way, which is why every input is
validated (names, sizes) in Python before the script runs.

**Memory.** A job costs its payload JSON (at most ``max_payload_bytes``, 512 KiB by
default) plus about 200 bytes of fields and index entries. Nothing expires by
itself: finished jobs stay until AsyncMQ's cleanup or ``delete`` removes them;
expired workers are pruned by ``list_workers``; locks are the only keys with a
TTL. ``list_jobs`` and ``list_stalled`` read whole indexes in one script, which
blocks Redis for the duration on very large queues. Set ``maxmemory-policy
noeviction``: an evicted job hash would leave its indexes pointing at nothing.

**Persistence.** The store is the source of truth for job state. Use AOF
(``appendonly yes``, ``appendfsync everysec``: at most about one second of writes
lost on a crash) or accept that an RDB-only server forgets everything since its
last snapshot. A failover to a replica can likewise lose the last writes.

**Errors.** redis-py errors are translated in
:func:`asyncmq_cloud.redis.translate_redis_error`: connection
loss, timeouts, loading and read-only replicas raise
:class:`~asyncmq_cloud.errors.TransientError`; authentication and ACL failures
:class:`~asyncmq_cloud.errors.AccessDeniedError`; anything else
:class:`~asyncmq_cloud.errors.PermanentError`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.core import states
from asyncmq_cloud.core.protocols import JobRecord, StateSummary
from asyncmq_cloud.core.validation import decode_payload, encode_payload, validate_queue_name
from asyncmq_cloud.errors import ConfigurationError, PayloadTooLargeError
from asyncmq_cloud.redis import (
    DEFAULT_REDIS_URL,
    RedisClients,
    aioredis,
    redis_errors,
    register_scripts,
)
from asyncmq_cloud.redis import to_str as _str
from asyncmq_cloud.stores._redis_base import RedisStoreBase, _num
from asyncmq_cloud.stores._redis_scripts import JOB_SCRIPTS, PLAIN_SCRIPTS, load_script
from asyncmq_cloud.stores.memory import DEFAULT_MAX_PAYLOAD_BYTES

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from asyncmq_cloud.core.protocols import ResourceSpec

_translated = redis_errors


def _opt_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _to_record(queue: str, job_id: str, raw: Any) -> JobRecord | None:
    """Build a record from ``HGETALL`` output (a dict, or a flat list from Lua)."""
    if not raw:
        return None
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    fields = {_str(k): _str(v) for k, v in pairs}
    if "state" not in fields:
        return None
    return JobRecord(
        queue=queue,
        id=job_id,
        state=fields["state"],
        payload=decode_payload(fields.get("payload") or "{}"),
        run_at=_opt_float(fields.get("run_at")),
        owner=fields.get("owner"),
        heartbeat=_opt_float(fields.get("heartbeat")),
        updated_at=float(fields.get("updated_at") or 0.0),
        has_children=fields.get("has_children", "1") != "0",
    )


class RedisStateStore(RedisStoreBase):
    """Job records and queue metadata in one Redis; see the module docstring.

    Args:
        url: ``redis://`` / ``rediss://`` URL used when no ``client`` is given.
        prefix: first segment of every key; give each deployment its own.
        client: an existing ``redis.asyncio.Redis``; the store then never closes it.
        max_payload_bytes: largest encoded payload ``create`` accepts.
        client_kwargs: passed to ``BlockingConnectionPool.from_url`` (``max_connections``,
            ``timeout``, ``socket_timeout``, TLS options, ...).
        clients: shared, caller-owned :class:`~asyncmq_cloud.redis.RedisClients` (not closed by
            ``close()``), e.g. the delay store's; then no ``client``/``client_kwargs``.
    """

    _warn_unclosed = True

    def __init__(
        self,
        url: str = DEFAULT_REDIS_URL,
        *,
        prefix: str = "asyncmq-cloud",
        client: aioredis.Redis | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        client_kwargs: Mapping[str, Any] | None = None,
        clients: RedisClients | None = None,
    ) -> None:
        if not prefix:
            raise ConfigurationError("RedisStateStore prefix must be a non-empty string")
        if max_payload_bytes <= 0:
            raise ConfigurationError("RedisStateStore max_payload_bytes must be positive")
        super().__init__()
        self._use_redis(url, client=client, clients=clients, client_kwargs=client_kwargs)
        self.url = url if clients is None else clients.url
        self.prefix = prefix
        self.max_payload_bytes = max_payload_bytes
        self._scripts: dict[str, AsyncScript] = {}

    # -- lifecycle (start: RedisComponent's, errors translated) ---------------------
    async def _open(self, stack: AsyncExitStack) -> None:
        await super()._open(stack)
        bodies = {name: load_script(name) for name in JOB_SCRIPTS + PLAIN_SCRIPTS}
        self._scripts = await register_scripts(self._redis_clients.client, bodies)

    async def provision(self) -> None:
        """Nothing to create: keys appear on first write."""
        return None

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing: Redis keys appear on first write."""
        return []

    def _encode(self, job_id: str, payload: dict[str, Any]) -> bytes:
        body = encode_payload(payload).encode("utf-8")
        if len(body) > self.max_payload_bytes:
            raise PayloadTooLargeError(
                f"job {job_id!r} encodes to {len(body)} bytes; the Redis store accepts {self.max_payload_bytes} "
                "(max_payload_bytes)",
                size=len(body),
                limit=self.max_payload_bytes,
            )
        return body

    # -- job records -----------------------------------------------------------
    @_translated
    async def create(
        self,
        records: Sequence[JobRecord],
        deps: Mapping[str, Collection[str]] | None = None,
        *,
        unsent: bool = False,
        atomic: bool = True,  # one script: always atomic
    ) -> None:
        args: list[str | bytes | int | float] = [self.prefix, _num(time.time()), "1" if unsent else "0", len(records)]
        for record in records:  # validate everything before anything is written
            validate_queue_name(record.queue)
            body = self._encode(record.id, record.payload)
            has_owner = "0" if record.owner is None else "1"
            args += [record.queue, record.id, record.state, body, _num(record.run_at), _num(record.heartbeat)]
            args += [has_owner, record.owner or ""]
        queues = {record.id: record.queue for record in reversed(records)}  # first record of an id wins
        args.append(len(deps or {}))
        for child, parents in (deps or {}).items():
            if child not in queues:
                raise ConfigurationError(f"deps names child {child!r}, which is not one of the records")
            args += [queues[child], child, len(parents), *parents]
        if records or deps:
            await self._run("create", args)

    @_translated
    async def get(self, queue: str, job_id: str) -> JobRecord | None:
        return _to_record(queue, job_id, await self.client.hgetall(self._key(queue, f"job:{job_id}")))

    @_translated
    async def claim(
        self, queue: str, job_id: str, token: str, now: float, *, stale_before: float | None = None
    ) -> JobRecord | None:
        validate_queue_name(queue)
        raw = await self._run("claim", [self.prefix, queue, job_id, token, _num(now), _num(stale_before)])
        return _to_record(queue, job_id, raw)

    @_translated
    async def transition(
        self,
        queue: str,
        job_id: str,
        to_state: str,
        *,
        expect_states: Collection[str] | None = None,
        expect_owner: str | None = None,
        payload: dict[str, Any] | None = None,
        run_at: float | None = None,
        unsent: bool = False,
    ) -> JobRecord | None:
        validate_queue_name(queue)
        try:
            body = b"" if payload is None else self._encode(job_id, payload)
        except PayloadTooLargeError:
            # Like the reference store: a failed condition wins over an oversized payload.
            current = await self.get(queue, job_id)
            if current is None or (expect_states is not None and current.state not in expect_states):
                return None
            if expect_owner is not None and current.owner != expect_owner:
                return None
            raise
        args: list[str | bytes | int | float] = [self.prefix, queue, job_id, to_state, _num(time.time())]
        args += [_num(run_at), "0" if payload is None else "1", body]
        args += ["0" if expect_owner is None else "1", expect_owner or "", "1" if unsent else "0"]
        args += ["0" if expect_states is None else "1", *(expect_states or ())]
        return _to_record(queue, job_id, await self._run("transition", args))

    @_translated
    async def promote(self, queue: str, job_ids: Sequence[str]) -> list[str]:
        validate_queue_name(queue)
        if not job_ids:
            return []
        moved = await self._run("promote", [self.prefix, queue, _num(time.time()), *job_ids])
        return [_str(job_id) for job_id in moved or []]

    @_translated
    async def update_payload(self, queue: str, job_id: str, payload: dict[str, Any]) -> bool:
        key = self._key(queue, f"job:{job_id}")
        try:
            body = self._encode(job_id, payload)
        except PayloadTooLargeError:
            if not await self.client.exists(key):
                return False
            raise
        return bool(await self._run("update_payload", [self.prefix, queue, job_id, body, _num(time.time())]))

    @_translated
    async def set_state(self, queue: str, job_id: str, state: str) -> bool:
        validate_queue_name(queue)
        return bool(await self._run("set_state", [self.prefix, queue, job_id, state, _num(time.time())]))

    @_translated
    async def heartbeat(self, queue: str, job_id: str, now: float, token: str | None = None) -> bool:
        validate_queue_name(queue)
        args = [self.prefix, queue, job_id, _num(now), "0" if token is None else "1", token or ""]
        return bool(await self._run("heartbeat", args))

    @_translated
    async def delete(self, queue: str, job_id: str, expect_state: str | None = None) -> JobRecord | None:
        validate_queue_name(queue)
        return _to_record(queue, job_id, await self._run("delete", [self.prefix, queue, job_id, expect_state or ""]))

    @_translated
    async def list_jobs(self, queue: str, state: str) -> list[JobRecord]:
        validate_queue_name(queue)
        return await self._page(queue, state, 0, 0, newest_first=False)  # limit 0: every record

    @_translated
    async def summarize(self, queue: str, states: Sequence[str], newest: int) -> dict[str, StateSummary]:
        validate_queue_name(queue)
        if not states:
            return {}
        rows = await self._run("summary", [self.prefix, queue, str(max(newest, 0)), *states])
        return {
            state: StateSummary(int(count), [(_str(job_id), float(_str(at))) for job_id, at in latest])
            for state, (count, latest) in zip(states, rows, strict=True)
        }

    @_translated
    async def list_page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        validate_queue_name(queue)
        return await self._page(queue, state, max(offset, 0), limit, newest_first) if limit > 0 else []

    async def _page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        args = [self.prefix, queue, state, str(offset), str(limit), "1" if newest_first else "0"]
        records = (_to_record(queue, _str(job_id), fields) for job_id, fields in await self._run("page", args))
        return [r for r in records if r is not None and r.state == state]

    @_translated
    async def count_jobs(self, queue: str) -> dict[str, int]:
        validate_queue_name(queue)
        flat = await self._run("count", [self.prefix, queue])
        return {_str(state): int(n) for state, n in zip(flat[::2], flat[1::2], strict=True)}

    @_translated
    async def list_unsent(self, queue: str, older_than: float, limit: int) -> list[str]:
        ids = await self.client.zrangebyscore(self._key(queue, "unsent"), "-inf", f"({_num(older_than)}", 0, limit)
        return [_str(job_id) for job_id in ids]

    @_translated
    async def clear_unsent(self, queue: str, job_ids: Sequence[str]) -> None:
        if job_ids:
            await self.client.zrem(self._key(queue, "unsent"), *job_ids)

    @_translated
    async def list_stalled(self, older_than: float) -> list[JobRecord]:
        rows = await self._run("stalled", [self.prefix, _num(older_than)])
        records = (_to_record(_str(queue), _str(job_id), fields) for queue, job_id, fields in rows)
        return [r for r in records if r is not None and r.state == states.CLAIMED]

    @_translated
    async def list_queues(self) -> list[str]:
        return sorted(_str(q) for q in await self.client.sunion([f"{self.prefix}:queues", f"{self.prefix}:paused"]))

    # -- dependencies ----------------------------------------------------------
    @_translated
    async def add_dependencies(self, queue: str, child_id: str, parent_ids: Collection[str]) -> None:
        validate_queue_name(queue)
        if parent_ids:
            await self._run("add_dependencies", [self.prefix, queue, child_id, *parent_ids])

    @_translated
    async def resolve_dependency(self, queue: str, parent_id: str) -> list[str]:
        validate_queue_name(queue)
        return sorted(_str(c) for c in await self._run("resolve_dependency", [self.prefix, queue, parent_id]))

    @_translated
    async def pending_parents(self, queue: str, child_id: str) -> set[str]:
        return {_str(p) for p in await self.client.smembers(self._key(queue, f"pending:{child_id}"))}
