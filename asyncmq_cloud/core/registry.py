"""What a backend knows about queue flags and workers: the paused-flag cache and the worker registry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from asyncmq import monkay
from asyncmq.backends.base import WorkerInfo

from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.records import WorkerRecord
from asyncmq_cloud.errors import TransientError

#: ``(queue, fresh_only) -> paused``: the backend's paused-flag check (``fresh_only``: no store read).
PausedCheck = Callable[[str, bool], Awaitable[bool]]


async def never_paused(queue: str, fresh_only: bool) -> bool:
    """A :data:`PausedCheck` for callers without a backend: never paused."""
    return False


class PauseFlags:
    """Paused flags of queues, each read reused for ``pause_cache_ttl``.

    AsyncMQ's worker asks ``is_queue_paused`` on every loop iteration: at most one
    store read per second and queue. A pause or resume through this backend is
    seen at once, another process's within ``pause_cache_ttl``.

    Args:
        parts: the backend's components (store and config are read at call time).
    """

    def __init__(self, parts: Components) -> None:
        self._parts = parts
        #: Queue -> (paused, ``time.monotonic()`` of the read or write).
        self.cache: dict[str, tuple[bool, float]] = {}

    async def set(self, queue: str, paused: bool) -> None:
        await self._parts.store.set_paused(queue, paused)
        self.cache[queue] = (paused, time.monotonic())

    def fresh(self, queue: str) -> bool | None:
        """The cached flag if younger than ``pause_cache_ttl``, else ``None``."""
        cached = self.cache.get(queue)
        if cached is not None and time.monotonic() - cached[1] < self._parts.config.pause_cache_ttl:
            return cached[0]
        return None

    async def check(self, queue: str, fresh_only: bool) -> bool:
        """Whether ``queue`` is paused: the cached flag, else (unless ``fresh_only``) one store read."""
        cached = self.fresh(queue)
        if cached is not None or fresh_only:
            return cached is True
        return await self.read(queue)

    async def read(self, queue: str) -> bool:
        """Read the flag from the store; during a store outage, the last known flag (else ``False``).

        AsyncMQ's worker loop asks on every pass and does not catch errors: answer
        with the last known flag (decision 37); the claim that follows meets the
        outage as ``dequeue``.
        """
        cached = self.cache.get(queue)
        try:
            paused = await self._parts.store.is_paused(queue)
        except TransientError:
            return cached[0] if cached is not None else False
        self.cache[queue] = (paused, time.monotonic())
        return paused


class WorkerRegistry:
    """The workers registered through this backend, and the registry in the store.

    The backend's own workers (queue and concurrency) bound how many references
    one receive takes (:meth:`capacity`). Entries in the store expire ``ttl()``
    seconds after their heartbeat.

    Args:
        parts: the backend's components (store and config are read at call time).
    """

    def __init__(self, parts: Components) -> None:
        self._parts = parts
        self._here: dict[str, tuple[str, int]] = {}
        self._heartbeat_ttl: float | None = None
        #: Registry writes still in flight, by worker (they outlive a cancelled caller).
        self._writes: dict[str, asyncio.Future[None]] = {}
        #: Workers deregistered through this backend: a late heartbeat does not bring them back.
        self._gone: set[str] = set()

    def ttl(self) -> float:
        """``LifecycleConfig.worker_ttl``, or (when 0) AsyncMQ's ``heartbeat_ttl``, read once.

        Read at first use, not when the backend is built: a backend is usually
        built inside the AsyncMQ settings class, before those settings can be read.
        """
        configured = self._parts.config.worker_ttl
        if configured:
            return configured
        if self._heartbeat_ttl is None:
            self._heartbeat_ttl = float(monkay.settings.heartbeat_ttl)
        return self._heartbeat_ttl

    def capacity(self, queue: str) -> int:
        """Total concurrency of this backend's workers on ``queue`` (0 = none registered)."""
        return sum(concurrency for q, concurrency in self._here.values() if q == queue)

    async def register(self, worker_id: str, queue: str, concurrency: int, timestamp: float) -> None:
        """Write the worker's entry; the write finishes even if the caller is cancelled.

        AsyncMQ cancels its heartbeat loop and then deregisters: a heartbeat write cancelled
        on the client can still land on the server after the delete, and the stopped worker
        would be listed until its entry expired. The write is therefore never abandoned, and
        :meth:`deregister` waits for it before deleting.
        """
        if worker_id in self._gone:
            return
        self._here[worker_id] = (queue, concurrency)
        record = WorkerRecord(worker_id, queue, concurrency, timestamp)
        write = asyncio.ensure_future(self._parts.store.register_worker(record, self.ttl()))
        self._writes[worker_id] = write
        write.add_done_callback(lambda done: self._settled(worker_id, done))
        await asyncio.shield(write)

    def _settled(self, worker_id: str, write: asyncio.Future[None]) -> None:
        if self._writes.get(worker_id) is write:
            del self._writes[worker_id]
        if not write.cancelled():
            write.exception()  # retrieved here: a caller cancelled meanwhile never sees it

    async def deregister(self, worker_id: str) -> None:
        """Delete the worker's entry once any registry write of it in flight has landed."""
        self.forget(worker_id)
        self._gone.add(worker_id)
        write = self._writes.get(worker_id)
        if write is not None and write.get_loop() is asyncio.get_running_loop():  # not of a finished loop
            await asyncio.wait({write})
        await self._parts.store.deregister_worker(worker_id)

    def ids(self) -> list[str]:
        """The workers registered through this backend (and not deregistered)."""
        return list(self._here)

    def forget(self, worker_id: str) -> None:
        """Drop a worker of this backend from the capacity count (before its store entry goes)."""
        self._here.pop(worker_id, None)

    async def live(self) -> list[WorkerInfo]:
        """Registered workers whose heartbeat is younger than ``ttl()``."""
        cutoff = time.time() - self.ttl()
        return [
            WorkerInfo(id=w.id, queue=w.queue, concurrency=w.concurrency, heartbeat=w.heartbeat)
            for w in await self._parts.store.list_workers()
            if w.heartbeat >= cutoff
        ]
