"""The overview every open dashboard page streams, read once per tick for all of them.

AsyncMQ's dashboard keeps an event stream open per page that, every 5 s, counts every
state of every queue (``queue_stats``, then a full ``list_jobs`` of the states it lacks),
reads the workers twice and lists every job of every state to show the 10 newest. On
``DynamoDBBackend`` that is a ``Query`` plus ``BatchGetItem`` of every job kept, per page and
per tick: 96 requests for three queues of 1,000 jobs, 471 at 10,000
(``benchmarks/dashboard_cost.py``).

:class:`Overview` answers the same events from reads whose cost does not grow with the jobs:

* one :meth:`~asyncmq_cloud.core.backend.CloudBackend.summarize_states` per queue gives the
  count of each state and the 10 newest jobs of each from the state indexes (DynamoDB: one
  ``Query`` of index keys per state, never the records; Redis: one script);
* the queue list is read every :data:`QUEUES_EVERY` seconds; the workers and the paused
  flags of every queue (one read) once per tick;
* at most ``queues_per_tick`` queues are re-read per tick, the least recently read first,
  so a tick costs the same with 1,000 or 100,000 jobs and with 3 or 300 queues (a queue's
  figures are then up to ``ceil(queues / queues_per_tick)`` ticks old);
* one refresh per tick serves every open page (a lock and the snapshot's age);
* a queue this dashboard acted on (pause, retry, remove...: any non-GET request under
  ``/queues/{name}``) is re-read at the next snapshot, so the page the action leads to is
  not overwritten by figures from before it.

Cost per tick on ``DynamoDBBackend`` (and the DynamoDB store): ``2 + 6 * queues_per_tick``
requests (the workers, the paused flags, six state queries per queue re-read), plus one
every :data:`QUEUES_EVERY` s for the queue list: 14, and 15 once a minute, at the default
of 2. A state holding more than 1 MB of index keys (~10,000 jobs) adds a page per MB.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from asyncmq.backends.base import WorkerInfo

from asyncmq_cloud.core.records import StateSummary

logger = logging.getLogger("asyncmq_cloud.dashboard")

#: The states the dashboard shows, in the order of AsyncMQ's counts.
SHOWN_STATES = ("waiting", "active", "delayed", "failed", "completed")
#: The stored states read for them: AsyncMQ's ``failed`` count on these backends is
#: ``failed`` plus ``expired`` (``queue_stats``).
READ_STATES = ("waiting", "active", "delayed", "failed", "expired", "completed")
#: Newest jobs shown (AsyncMQ's "latest jobs" panel).
LATEST = 10
#: Seconds between two reads of the queue list (a new queue shows up within this).
QUEUES_EVERY = 60.0
#: Seconds between two refreshes: AsyncMQ's event-stream interval.
TICK_SECONDS = 5.0
#: Queues re-read per tick by default.
QUEUES_PER_TICK = 2

T = TypeVar("T")


class OverviewSource(Protocol):
    """What the overview reads: a ``CloudBackend``."""

    async def list_queues(self) -> list[str]: ...
    async def list_workers(self) -> list[WorkerInfo]: ...
    async def paused_queues(self, queue_names: list[str]) -> set[str]: ...
    async def summarize_states(
        self, queue_name: str, states: tuple[str, ...], newest: int = 0
    ) -> dict[str, StateSummary]: ...


@dataclass
class QueueView:
    """One queue's figures as last read, and when."""

    counts: dict[str, int]
    paused: bool
    newest: list[tuple[float, str, str]]  # (created_at, job id, shown state), newest first
    read_at: float


@dataclass
class Snapshot:
    """Everything the event stream sends, as of ``taken_at``."""

    queues: dict[str, QueueView] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    taken_at: float = 0.0


def _shown(summaries: dict[str, StateSummary]) -> tuple[dict[str, int], list[tuple[float, str, str]]]:
    """Counts by shown state (``expired`` counted as ``failed``, as ``queue_stats`` does) and
    the newest jobs of the shown states (AsyncMQ's stream lists no ``expired`` job)."""
    counts = dict.fromkeys(SHOWN_STATES, 0)
    newest: list[tuple[float, str, str]] = []
    for state, summary in summaries.items():
        counts["failed" if state == "expired" else state] += summary.count
        if state in counts:
            newest += [(created, job_id, state) for job_id, created in summary.newest]
    newest.sort(reverse=True)
    return counts, newest[:LATEST]


def _worker_row(worker: WorkerInfo) -> dict[str, Any]:
    return {"id": worker.id, "queue": worker.queue, "concurrency": worker.concurrency, "heartbeat": worker.heartbeat}


class Overview:
    """The shared, budgeted overview behind every page's event stream."""

    def __init__(
        self,
        source: OverviewSource,
        *,
        tick: float = TICK_SECONDS,
        queues_per_tick: int = QUEUES_PER_TICK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queues_per_tick < 1:
            raise ValueError(f"queues_per_tick must be at least 1, not {queues_per_tick}")
        self._source = source
        self.tick = tick
        self.queues_per_tick = queues_per_tick
        self._clock = clock
        self._lock = asyncio.Lock()
        self._snapshot = Snapshot()
        self._names: list[str] = []
        self._names_at: float | None = None
        self._refreshed_at: float | None = None
        self._changed: set[str] = set()

    def mark_changed(self, queue: str) -> None:
        """An action of this dashboard changed ``queue``: the next snapshot re-reads it at once
        (a page opened after the action shows it, not the tick-old figures)."""
        self._changed.add(queue)

    async def snapshot(self) -> Snapshot:
        """The current snapshot, refreshed first when it is a tick old (once for all callers) or
        a queue was marked changed."""
        async with self._lock:
            now = self._clock()
            ticked = self._refreshed_at is None or now - self._refreshed_at >= self.tick
            if ticked or self._changed:
                await self._refresh(now, self.queues_per_tick if ticked else 0)
                if ticked:
                    self._refreshed_at = now
            return self._snapshot

    async def _refresh(self, now: float, budget: int) -> None:
        changed, self._changed = self._changed, set()
        if self._names_at is None or now - self._names_at >= QUEUES_EVERY or changed - set(self._names):
            names = await self._read("the queue list", self._source.list_queues(), None)
            if names is not None:  # a failed read is tried again at the next tick
                self._names, self._names_at = names, now
        old = self._snapshot.queues
        kept = {name: old[name] for name in self._names if name in old}
        others = [name for name in self._names if name not in changed]
        others.sort(key=lambda name: (name in kept, kept[name].read_at if name in kept else 0.0))
        for name in [name for name in self._names if name in changed] + others[:budget]:
            kept[name] = await self._read_queue(name, kept.get(name), now)
        paused = await self._read("the paused flags", self._source.paused_queues(self._names), None)
        if paused is not None:
            kept = {name: replace(view, paused=name in paused) for name, view in kept.items()}
        workers = await self._read("the workers", self._source.list_workers(), None)
        rows = self._snapshot.workers if workers is None else [_worker_row(w) for w in workers]
        self._snapshot = Snapshot(queues={n: kept[n] for n in self._names if n in kept}, workers=rows, taken_at=now)

    async def _read_queue(self, name: str, previous: QueueView | None, now: float) -> QueueView:
        summaries = await self._read(f"queue {name!r}", self._source.summarize_states(name, READ_STATES, LATEST), None)
        if summaries is None:
            return previous or QueueView(dict.fromkeys(SHOWN_STATES, 0), False, [], 0.0)
        counts, newest = _shown(summaries)
        return QueueView(counts, previous.paused if previous else False, newest, now)

    @staticmethod
    async def _read(what: str, call: Awaitable[T], fallback: T) -> T:
        """A read whose failure keeps the last figures (logged, as AsyncMQ's stream swallows it)."""
        try:
            return await call
        except Exception as exc:  # the stream must keep going: AsyncMQ's shows zeros instead
            logger.warning("dashboard overview: reading %s failed (last figures kept): %s", what, exc)
            return fallback
