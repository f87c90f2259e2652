"""Repeatable (cron / every) job definitions, over the state store.

AsyncMQ's scheduler calls ``get_due_repeatables`` and then, right away,
``list_repeatables`` on every pass. The second call reuses the first one's read
(once, if younger than :data:`REPEATABLES_REUSE_SECONDS` and no repeatable of the
queue changed through this backend in between): one store read per pass.

Most queues have no repeatable, and the scheduler still takes its store lock and
reads every ``scan_interval`` on every worker. A read that found none makes the
queue *idle* for ``LifecycleConfig.repeatables_refresh`` seconds (a change through
this backend ends it at once): the scheduler's lock (:class:`SchedulerLock`) is
then taken in process and its pass answers ``[]`` without a store call. Nothing can
fire twice: a pass answered here fires nothing.
"""

from __future__ import annotations

import time
from typing import Any

from asyncmq.backends.base import RepeatableInfo
from asyncmq.core.repeatables import normalize_repeatable_job_def, repeatable_identity
from asyncmq.schedulers import compute_next_run

from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.records import RepeatableRecord

#: How long a repeatables read of ``get_due_repeatables`` may answer the next ``list_repeatables``.
REPEATABLES_REUSE_SECONDS = 1.0


def _info(record: RepeatableRecord) -> RepeatableInfo:
    return RepeatableInfo(job_def=dict(record.job_def), next_run=record.next_run, paused=record.paused)


class Repeatables:
    """AsyncMQ's repeatable hooks (the backend's methods of the same names delegate here).

    Args:
        parts: the backend's components (the store is read at call time).
    """

    def __init__(self, parts: Components) -> None:
        self._parts = parts
        self._read: dict[str, tuple[list[RepeatableRecord], float]] = {}
        #: Queue -> when (monotonic) a read found no repeatable on it (dropped by any change here).
        self._none_since: dict[str, float] = {}
        #: Queues whose last read found repeatables: their passes take the store lock without a read first.
        self._some: set[str] = set()
        #: Queues whose current scheduler pass took its lock in process (:meth:`local_pass`).
        self._local: set[str] = set()

    def _changed(self, queue: str) -> None:
        self._read.pop(queue, None)
        self._none_since.pop(queue, None)

    def _seen(self, queue: str, records: list[RepeatableRecord]) -> None:
        if records:
            self._none_since.pop(queue, None)
            self._some.add(queue)
        else:
            self._none_since.setdefault(queue, time.monotonic())
            self._some.discard(queue)

    async def local_pass(self, queue: str) -> bool:
        """Whether the scheduler's pass on ``queue`` can be answered here; if so it begins.

        True while a read younger than ``repeatables_refresh`` found no repeatable on
        ``queue`` and nothing changed through this backend since, or when a read made now
        finds none (one call instead of the lock, the read and the release); the pass's
        ``get_due_repeatables`` then answers ``[]`` without a read. A queue whose last read
        (every pass reads it under the lock) found repeatables is not read first: False.
        """
        refresh = self._parts.config.repeatables_refresh
        if queue in self._some:
            return False
        since = self._none_since.get(queue)
        if since is None or time.monotonic() - since >= refresh:
            self._none_since.pop(queue, None)
            if refresh <= 0:
                return False
            records = await self._parts.store.list_repeatables(queue)
            self._seen(queue, records)
            if records:
                return False
        self._local.add(queue)
        return True

    def end_local_pass(self, queue: str) -> None:
        self._local.discard(queue)

    async def upsert(self, queue: str, job_def: dict[str, Any]) -> float:
        clean = normalize_repeatable_job_def(job_def)
        next_run = float(compute_next_run(clean))
        self._changed(queue)
        await self._parts.store.put_repeatable(queue, RepeatableRecord(repeatable_identity(clean), clean, next_run))
        return next_run

    async def listed(self, queue: str) -> list[RepeatableInfo]:
        reused = self._read.pop(queue, None)
        if reused is not None and time.monotonic() - reused[1] <= REPEATABLES_REUSE_SECONDS:
            records = reused[0]
        else:
            records = await self._parts.store.list_repeatables(queue)
            self._seen(queue, records)
        return [_info(r) for r in records]

    async def due(self, queue: str) -> list[RepeatableInfo]:
        if queue in self._local:  # the pass's lock was taken here: the queue has none (see local_pass)
            self._local.discard(queue)
            self._read[queue] = ([], time.monotonic())
            return []
        records = await self._parts.store.list_repeatables(queue)
        self._seen(queue, records)
        self._read[queue] = (records, time.monotonic())
        now = time.time()
        return [_info(r) for r in records if not r.paused and r.next_run <= now]

    async def advance(self, queue: str, job_def: dict[str, Any]) -> float:
        self._changed(queue)
        clean = normalize_repeatable_job_def(job_def)
        next_run = float(compute_next_run(clean))
        # Conditional: a pause or remove that landed since get_due_repeatables stays (never written back).
        await self._parts.store.advance_repeatable(queue, repeatable_identity(clean), next_run)
        return next_run

    async def find(self, queue: str, job_def: dict[str, Any]) -> RepeatableRecord | None:
        """The stored repeatable ``job_def`` names: by its identity, else by the fields it gives.

        AsyncMQ's dashboard posts only the fields it shows (``task_id``, ``cron``/``every``,
        ``queue``), not ``args``/``kwargs``/``retries``, so their identity never matches the stored
        one: a definition that agrees on every posted field (and names a task) is taken instead,
        if exactly one does; KeyError if several do.
        """
        store = self._parts.store
        record = await store.get_repeatable(queue, repeatable_identity(job_def))
        wanted = normalize_repeatable_job_def(job_def)
        if record is not None or "task_id" not in wanted:
            return record
        matches = [
            r
            for r in await store.list_repeatables(queue)
            if all(r.job_def.get(name) == value for name, value in wanted.items())
        ]
        if len(matches) > 1:
            raise KeyError(f"{len(matches)} repeatables of {queue} match {wanted}: give the full definition")
        return matches[0] if matches else None

    async def remove(self, queue: str, job_def: dict[str, Any] | str) -> None:
        self._changed(queue)
        if isinstance(job_def, str):
            key = job_def
        else:
            record = await self.find(queue, job_def)
            key = record.key if record is not None else repeatable_identity(job_def)
        await self._parts.store.delete_repeatable(queue, key)

    async def pause(self, queue: str, job_def: dict[str, Any]) -> None:
        self._changed(queue)
        record = await self.find(queue, job_def)
        if record is not None:
            record.paused = True
            await self._parts.store.put_repeatable(queue, record)

    async def resume(self, queue: str, job_def: dict[str, Any]) -> float:
        self._changed(queue)
        record = await self.find(queue, job_def)
        if record is None:
            raise KeyError(f"Repeatable job not found: {job_def}")
        record.paused = False
        record.next_run = float(compute_next_run(normalize_repeatable_job_def(record.job_def)))
        await self._parts.store.put_repeatable(queue, record)
        return record.next_run
