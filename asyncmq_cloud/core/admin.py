"""Job data, listing and counting, and store locks: the administrative reads and writes.

:class:`JobAdmin` answers AsyncMQ's job-data and inspection hooks (the backend's
methods of the same names delegate to it); :class:`StoreLock` is the lock object
``create_lock`` returns.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from asyncmq.backends.base import DelayedInfo
from asyncmq.core.enums import State
from asyncmq.core.inspection import JobInspectionPage, inspect_job_page, normalize_job_type, sanitize_job_types

from asyncmq_cloud.core.bodies import metadata_only
from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.records import WAITING_CHILDREN, StateSummary

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import StateStore

#: AsyncMQ inspection buckets that are not persisted states.
_VIRTUAL_TYPES = frozenset({"paused", "prioritized"})


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


#: The key of AsyncMQ's repeatable-scheduler lock of a queue (``asyncmq.schedulers``).
SCHEDULER_LOCK = ("asyncmq:", ":repeatable-scheduler")


def scheduler_queue(key: str) -> str | None:
    """The queue whose repeatable-scheduler lock ``key`` is, else None."""
    head, tail = SCHEDULER_LOCK
    if key.startswith(head) and key.endswith(tail) and len(key) > len(head) + len(tail):
        return key[len(head) : -len(tail)]
    return None


class LocalPasses(Protocol):
    """What :class:`SchedulerLock` asks (``core.repeatables.Repeatables``)."""

    async def local_pass(self, queue: str) -> bool: ...
    def end_local_pass(self, queue: str) -> None: ...


class SchedulerLock(StoreLock):
    """AsyncMQ's repeatable-scheduler lock of ``queue``: taken in process, without a store
    call, while the queue is known to have no repeatable (``Repeatables.local_pass``);
    the store lock otherwise."""

    def __init__(self, store: StateStore, key: str, ttl: float, queue: str, passes: LocalPasses) -> None:
        super().__init__(store, key, ttl)
        self._queue, self._passes, self._local = queue, passes, False

    async def try_acquire(self) -> bool:
        if await self._passes.local_pass(self._queue):
            self._local = True
            return True
        return await super().try_acquire()

    async def release(self) -> bool:
        if self._local:
            self._local = False
            self._passes.end_local_pass(self._queue)
            return True
        return await super().release()


class JobAdmin:
    """Job data, listing, counting and queue statistics over the state store and transport.

    Args:
        parts: the backend's components (store and transport are read at call time).
    """

    def __init__(self, parts: Components) -> None:
        self._parts = parts

    # -- job data ------------------------------------------------------------------------
    async def get(self, queue: str, job_id: str) -> dict[str, Any] | None:
        record = await self._parts.store.get(queue, job_id)
        return None if record is None else record.job()

    async def state(self, queue: str, job_id: str) -> str | None:
        with metadata_only():
            record = await self._parts.store.get(queue, job_id)
        return None if record is None else str(record.job()["status"])

    async def result(self, queue: str, job_id: str) -> Any | None:
        record = await self._parts.store.get(queue, job_id)
        return None if record is None else record.payload.get("result")

    async def patch(self, queue: str, job_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the payload of an existing job (nothing if it is gone)."""
        store = self._parts.store
        with metadata_only():  # an offloaded part not in ``fields`` is carried over by its pointer
            record = await store.get(queue, job_id)
        if record is not None:
            await store.update_payload(queue, job_id, {**record.payload, **fields, "updated_at": time.time()})

    async def save_payload(self, queue: str, payload: dict[str, Any]) -> None:
        """Replace the payload of an existing job; a changed ``status`` sets the state too."""
        store = self._parts.store
        job_id = str(payload["id"])
        with metadata_only():
            record = await store.get(queue, job_id)
        if record is None:
            return
        await store.update_payload(queue, job_id, dict(payload))
        status = payload.get("status")
        if isinstance(status, str) and status != record.job()["status"]:
            await store.set_state(queue, job_id, status)

    # -- listing and counting -----------------------------------------------------------
    async def list_jobs(self, queue: str, state: str) -> list[dict[str, Any]]:
        wanted = normalize_job_type(state)
        if wanted in _VIRTUAL_TYPES:
            return []
        stored_state = WAITING_CHILDREN if wanted == "waiting-children" else wanted
        return [record.job() for record in await self._parts.store.list_jobs(queue, stored_state)]

    async def inspect(
        self, queue: str, state: str, page: int, size: int, filters: dict[str, str], sort: str
    ) -> JobInspectionPage:
        """AsyncMQ's inspection page, bounded when no filter is set: the state's count and the
        records of the page only, in creation order ("newest" = most recently added). With a
        filter (``q``, ``task``, ``job_id``) every job of the state is read, as AsyncMQ does."""
        wanted = normalize_job_type(state)
        if any(value.strip() for value in filters.values()) or wanted in _VIRTUAL_TYPES:
            return inspect_job_page(await self.list_jobs(queue, state), page=page, size=size, sort=sort, **filters)
        stored = WAITING_CHILDREN if wanted == "waiting-children" else wanted
        size = max(1, size)
        total = (await self._parts.store.summarize(queue, [stored], 0))[stored].count
        pages = max(1, math.ceil(total / size))
        page = min(max(1, page), pages)
        newest_first = sort != "oldest"
        records = await self._parts.store.list_page(queue, stored, (page - 1) * size, size, newest_first)
        return JobInspectionPage(jobs=[r.job() for r in records], total=total, page=page, size=size, total_pages=pages)

    async def summarize(self, queue: str, states: Sequence[str], newest: int) -> dict[str, StateSummary]:
        return await self._parts.store.summarize(queue, list(states), newest)

    async def counts(self, queue: str, types: tuple[str, ...]) -> dict[str, int]:
        """Counts per inspection bucket from ONE store count call."""
        counts = await self._parts.store.count_jobs(queue)
        out: dict[str, int] = {}
        for job_type in sanitize_job_types(types or None):
            stored = WAITING_CHILDREN if job_type == "waiting-children" else job_type
            out[job_type] = 0 if job_type in _VIRTUAL_TYPES else counts.get(stored, 0)
        return out

    async def list_delayed(self, queue: str) -> list[DelayedInfo]:
        records = await self._parts.store.list_jobs(queue, State.DELAYED)
        infos = [DelayedInfo(job_id=r.id, run_at=float(r.run_at or 0.0), payload=r.job()) for r in records]
        return sorted(infos, key=lambda info: info.run_at)

    async def due_delayed(self, queue: str, now: float) -> list[dict[str, Any]]:
        """Jobs still ``delayed`` whose ``run_at`` is at or before ``now``, soonest first."""
        return [info.payload for info in await self.list_delayed(queue) if info.run_at <= now]

    async def queue_stats(self, queue: str) -> dict[str, int]:
        """AsyncMQ's keys exactly: ``waiting`` (claimable: not held by unfinished parents),
        ``delayed``, ``failed`` (the dead-letter set: ``failed`` and ``expired``); one store count."""
        counts = await self._parts.store.count_jobs(queue)
        return {
            "waiting": counts.get(State.WAITING, 0),
            "delayed": counts.get(State.DELAYED, 0),
            "failed": counts.get(State.FAILED, 0) + counts.get(State.EXPIRED, 0),
        }

    async def broker_stats(self, queue: str) -> dict[str, int]:
        """The broker's own figures: ``depth`` (references it holds), plus its breakdown where it
        has one (SQS: ``visible``, ``in_flight``, ``delayed``; Kafka: ``partition-N``, each
        partition's lag; ``capabilities.has_stats``)."""
        transport = self._parts.transport
        if not transport.capabilities.has_stats:
            return {"depth": await transport.depth(queue)}
        broker = dict(await transport.stats(queue))
        return {**broker, "depth": sum(broker.values())}
