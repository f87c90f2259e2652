"""The administrative half of ``CloudBackend``: job data, listing, counting,
pause/resume, repeatables, the worker registry, locks and events.

Split from ``lifecycle.py`` only to keep each module small; it relies on the
attributes ``CloudBackend.__init__`` sets (``store``, ``transport``,
``delay_store``, ``config`` and the caches).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio
from asyncmq.backends.base import DelayedInfo, RepeatableInfo, WorkerInfo
from asyncmq.core.enums import State
from asyncmq.core.event import event_emitter
from asyncmq.core.inspection import normalize_job_type, sanitize_job_types
from asyncmq.core.repeatables import normalize_repeatable_job_def, repeatable_identity
from asyncmq.schedulers import compute_next_run

from asyncmq_cloud.core.protocols import WAITING_CHILDREN, RepeatableRecord, WorkerRecord
from asyncmq_cloud.core.validation import validate_queue_name
from asyncmq_cloud.errors import TransientError

if TYPE_CHECKING:
    from asyncmq_cloud.config import LifecycleConfig
    from asyncmq_cloud.core.protocols import DelayStore, StateStore, Transport

logger = logging.getLogger("asyncmq_cloud.admin")

#: AsyncMQ inspection buckets that are not persisted states.
_VIRTUAL_TYPES = frozenset({"paused", "prioritized"})
#: How long a repeatables read of ``get_due_repeatables`` may answer the next ``list_repeatables``.
REPEATABLES_REUSE_SECONDS = 1.0


class StoreLock:
    """A lock held in the state store, in the shape AsyncMQ's lock helpers expect."""

    def __init__(self, store: StateStore, key: str, ttl: float) -> None:
        self._store = store
        self.key = key
        self.ttl = ttl
        self.token = uuid.uuid4().hex

    async def try_acquire(self) -> bool:
        return await self._store.acquire_lock(self.key, self.token, self.ttl)

    async def acquire(self, timeout: float | None = None) -> bool:
        """Wait (polling, bounded by ``timeout`` when given) until the lock is ours."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while not await self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)
        return True

    async def release(self) -> bool:
        return await self._store.release_lock(self.key, self.token)

    async def __aenter__(self) -> StoreLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class AdminMixin:
    """Job data, inspection, flags, repeatables, workers, locks (see module docstring)."""

    store: StateStore
    transport: Transport
    delay_store: DelayStore
    config: LifecycleConfig
    _paused_cache: dict[str, tuple[bool, float]]
    _workers: dict[str, tuple[str, int]]
    _repeatables_read: dict[str, tuple[list[RepeatableRecord], float]]

    async def _ready(self) -> None:  # pragma: no cover - provided by CloudBackend
        raise NotImplementedError

    # -- job data ------------------------------------------------------------------------
    async def update_job_state(self, queue_name: str, job_id: str, state: str) -> None:
        await self._ready()
        await self.store.set_state(queue_name, job_id, state)

    async def get_job_state(self, queue_name: str, job_id: str) -> str | None:
        await self._ready()
        record = await self.store.get(queue_name, job_id)
        return None if record is None else str(record.job()["status"])

    async def save_job_result(self, queue_name: str, job_id: str, result: Any) -> None:
        await self._patch_payload(queue_name, job_id, {"result": result})

    async def get_job_result(self, queue_name: str, job_id: str) -> Any | None:
        await self._ready()
        record = await self.store.get(queue_name, job_id)
        return None if record is None else record.payload.get("result")

    async def save_job_progress(self, queue_name: str, job_id: str, progress: float) -> None:
        await self._patch_payload(queue_name, job_id, {"progress": progress})

    async def _patch_payload(self, queue: str, job_id: str, fields: dict[str, Any]) -> None:
        await self._ready()
        record = await self.store.get(queue, job_id)
        if record is not None:
            await self.store.update_payload(queue, job_id, {**record.payload, **fields, "updated_at": time.time()})

    async def save_job_payload(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._ready()
        job_id = str(payload["id"])
        record = await self.store.get(queue_name, job_id)
        if record is None:
            return
        await self.store.update_payload(queue_name, job_id, dict(payload))
        status = payload.get("status")
        if isinstance(status, str) and status != record.job()["status"]:
            await self.store.set_state(queue_name, job_id, status)

    async def get_job(self, queue_name: str, job_id: str) -> dict[str, Any] | None:
        await self._ready()
        record = await self.store.get(queue_name, job_id)
        return None if record is None else record.job()

    # -- listing and counting -----------------------------------------------------------
    async def list_jobs(self, queue: str, state: str) -> list[dict[str, Any]]:
        await self._ready()
        wanted = normalize_job_type(state)
        if wanted in _VIRTUAL_TYPES:
            return []
        stored_state = WAITING_CHILDREN if wanted == "waiting-children" else wanted
        return [record.job() for record in await self.store.list_jobs(queue, stored_state)]

    async def get_job_counts(self, queue_name: str, *types: str) -> dict[str, int]:
        """Counts per inspection bucket from ONE store count call."""
        await self._ready()
        counts = await self.store.count_jobs(queue_name)
        out: dict[str, int] = {}
        for job_type in sanitize_job_types(types or None):
            stored = WAITING_CHILDREN if job_type == "waiting-children" else job_type
            out[job_type] = 0 if job_type in _VIRTUAL_TYPES else counts.get(stored, 0)
        return out

    async def list_delayed(self, queue_name: str) -> list[DelayedInfo]:
        await self._ready()
        records = await self.store.list_jobs(queue_name, State.DELAYED)
        infos = [DelayedInfo(job_id=r.id, run_at=float(r.run_at or 0.0), payload=r.job()) for r in records]
        return sorted(infos, key=lambda info: info.run_at)

    async def queue_stats(self, queue_name: str) -> dict[str, int]:
        await self._ready()
        counts = await self.store.count_jobs(queue_name)
        stats = {state: counts.get(state, 0) for state in ("waiting", "active", "delayed", "completed", "failed")}
        stats["waiting"] += counts.get(WAITING_CHILDREN, 0)
        stats["expired"] = counts.get(State.EXPIRED, 0)
        # A transport with ``stats`` (SQS) reports its approximate counts in one call.
        broker_stats = getattr(self.transport, "stats", None)
        if broker_stats is None:
            stats["broker_depth"] = await self.transport.depth(queue_name)
            return stats
        broker: dict[str, int] = await broker_stats(queue_name)
        stats.update({f"broker_{name}": count for name, count in broker.items()})
        stats["broker_depth"] = sum(broker.values())
        return stats

    async def list_queues(self) -> list[str]:
        await self._ready()
        return await self.store.list_queues()

    async def purge(self, queue_name: str, state: str, older_than: float | None = None) -> None:
        await self._purge_jobs_by_state(queue_name, state, older_than)  # type: ignore[attr-defined]

    # -- pause / resume -----------------------------------------------------------------
    async def pause_queue(self, queue_name: str) -> None:
        await self._ready()
        validate_queue_name(queue_name)
        await self.store.set_paused(queue_name, True)
        self._paused_cache[queue_name] = (True, time.monotonic())

    async def resume_queue(self, queue_name: str) -> None:
        await self._ready()
        await self.store.set_paused(queue_name, False)
        self._paused_cache[queue_name] = (False, time.monotonic())

    async def is_queue_paused(self, queue_name: str) -> bool:
        cached = self._paused_cache.get(queue_name)
        if cached is not None and time.monotonic() - cached[1] < self.config.pause_cache_ttl:
            return cached[0]
        await self._ready()
        try:
            paused = await self.store.is_paused(queue_name)
        except TransientError:
            # AsyncMQ's worker loop asks on every pass and does not catch errors: answer with the
            # last known flag (decision 37); the claim that follows meets the outage as dequeue.
            return cached[0] if cached is not None else False
        self._paused_cache[queue_name] = (paused, time.monotonic())
        return paused

    # -- repeatables ------------------------------------------------------------------------
    # AsyncMQ's scheduler calls get_due_repeatables and then, right away,
    # list_repeatables on every pass. The second call reuses the first one's read
    # (once, if younger than REPEATABLES_REUSE_SECONDS and no repeatable of the
    # queue changed through this backend in between): one store read per pass.
    async def upsert_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> float:
        await self._ready()
        clean = normalize_repeatable_job_def(job_def)
        next_run = float(compute_next_run(clean))
        self._repeatables_read.pop(queue_name, None)
        await self.store.put_repeatable(queue_name, RepeatableRecord(repeatable_identity(clean), clean, next_run))
        return next_run

    async def list_repeatables(self, queue_name: str) -> list[RepeatableInfo]:
        await self._ready()
        reused = self._repeatables_read.pop(queue_name, None)
        if reused is not None and time.monotonic() - reused[1] <= REPEATABLES_REUSE_SECONDS:
            records = reused[0]
        else:
            records = await self.store.list_repeatables(queue_name)
        return [RepeatableInfo(job_def=dict(r.job_def), next_run=r.next_run, paused=r.paused) for r in records]

    async def get_due_repeatables(self, queue_name: str) -> list[RepeatableInfo]:
        await self._ready()
        records = await self.store.list_repeatables(queue_name)
        self._repeatables_read[queue_name] = (records, time.monotonic())
        now = time.time()
        return [
            RepeatableInfo(job_def=dict(r.job_def), next_run=r.next_run, paused=r.paused)
            for r in records
            if not r.paused and r.next_run <= now
        ]

    async def advance_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> float:
        await self._ready()
        self._repeatables_read.pop(queue_name, None)
        clean = normalize_repeatable_job_def(job_def)
        next_run = float(compute_next_run(clean))
        # Conditional: a pause or remove that landed since get_due_repeatables stays (never written back).
        await self.store.advance_repeatable(queue_name, repeatable_identity(clean), next_run)
        return next_run

    async def _find_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> RepeatableRecord | None:
        """The stored repeatable ``job_def`` names: by its identity, else by the fields it gives.

        AsyncMQ's dashboard posts only the fields it shows (``task_id``, ``cron``/``every``,
        ``queue``), not ``args``/``kwargs``/``retries``, so their identity never matches the stored
        one: a definition that agrees on every posted field (and names a task) is taken instead,
        if exactly one does; KeyError if several do.
        """
        record = await self.store.get_repeatable(queue_name, repeatable_identity(job_def))
        wanted = normalize_repeatable_job_def(job_def)
        if record is not None or "task_id" not in wanted:
            return record
        matches = [
            r
            for r in await self.store.list_repeatables(queue_name)
            if all(r.job_def.get(name) == value for name, value in wanted.items())
        ]
        if len(matches) > 1:
            raise KeyError(f"{len(matches)} repeatables of {queue_name} match {wanted}: give the full definition")
        return matches[0] if matches else None

    async def remove_repeatable(self, queue_name: str, job_def: dict[str, Any] | str) -> None:
        await self._ready()
        self._repeatables_read.pop(queue_name, None)
        if isinstance(job_def, str):
            key = job_def
        else:
            record = await self._find_repeatable(queue_name, job_def)
            key = record.key if record is not None else repeatable_identity(job_def)
        await self.store.delete_repeatable(queue_name, key)

    async def pause_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> None:
        await self._ready()
        self._repeatables_read.pop(queue_name, None)
        record = await self._find_repeatable(queue_name, job_def)
        if record is not None:
            record.paused = True
            await self.store.put_repeatable(queue_name, record)

    async def resume_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> float:
        await self._ready()
        self._repeatables_read.pop(queue_name, None)
        record = await self._find_repeatable(queue_name, job_def)
        if record is None:
            raise KeyError(f"Repeatable job not found: {job_def}")
        record.paused = False
        record.next_run = float(compute_next_run(normalize_repeatable_job_def(record.job_def)))
        await self.store.put_repeatable(queue_name, record)
        return record.next_run

    # -- workers ------------------------------------------------------------------------------
    def _worker_ttl(self) -> float:
        from asyncmq import monkay

        return self.config.worker_ttl or float(monkay.settings.heartbeat_ttl)

    async def register_worker(self, worker_id: str, queue: str, concurrency: int, timestamp: float) -> None:
        await self._ready()
        self._workers[worker_id] = (queue, concurrency)
        await self.store.register_worker(WorkerRecord(worker_id, queue, concurrency, timestamp), self._worker_ttl())

    async def deregister_worker(self, worker_id: str) -> None:
        """Shielded and bounded: AsyncMQ calls this from an already-cancelled scope."""
        self._workers.pop(worker_id, None)
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.deregister_timeout):
            await self._ready()
            await self.store.deregister_worker(worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        await self._ready()
        cutoff = time.time() - self._worker_ttl()
        return [
            WorkerInfo(id=w.id, queue=w.queue, concurrency=w.concurrency, heartbeat=w.heartbeat)
            for w in await self.store.list_workers()
            if w.heartbeat >= cutoff
        ]

    # -- locks, events, health -------------------------------------------------------------
    async def create_lock(self, key: str, ttl: int) -> StoreLock:
        await self._ready()
        return StoreLock(self.store, key, float(ttl))

    async def emit_event(self, event: str, data: dict[str, Any]) -> None:
        """Events go to AsyncMQ's in-process emitter (as its own backends do)."""
        await event_emitter.emit(event, data)

    async def health_check(self) -> None:
        await self._ready()
        await self.store.is_paused("__health__")
