"""The demo's AsyncMQ tasks: plain ``@task`` functions, as in any AsyncMQ app.

Each task takes a ``label`` and records every attempt (start, end, error) in
:data:`TIMELINE`, so the demo can report attempts and timings from what really
ran, not from what it expected. The flow's tasks read their parents' results
through the backend, the way a real pipeline passes data between steps.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from asyncmq.tasks import task

QUEUE = "demo"


@dataclass
class Attempt:
    started: float
    finished: float | None = None
    error: str | None = None


@dataclass
class Timeline:
    """What the tasks saw, per label (one entry per attempt)."""

    attempts: dict[str, list[Attempt]] = field(default_factory=lambda: defaultdict(list))
    backend: Any = None  # the demo's backend, for reading parents' results

    def start(self, label: str) -> Attempt:
        attempt = Attempt(time.time())
        self.attempts[label].append(attempt)
        return attempt


TIMELINE = Timeline()


async def _result(job_id: str) -> Any:
    return await TIMELINE.backend.get_job_result(QUEUE, job_id)


@task(queue=QUEUE)
async def ingest(label: str, rows: int) -> list[int]:
    attempt = TIMELINE.start(label)
    await asyncio.sleep(0.2)
    attempt.finished = time.time()
    return list(range(1, rows + 1))


@task(queue=QUEUE)
async def transform(label: str, source: str, factor: int) -> int:
    attempt = TIMELINE.start(label)
    rows = await _result(source)
    await asyncio.sleep(1.0)  # long enough that the two transforms visibly overlap
    attempt.finished = time.time()
    return sum(int(row) * factor for row in rows)


@task(queue=QUEUE)
async def aggregate(label: str, parts: list[str]) -> int:
    attempt = TIMELINE.start(label)
    total = 0
    for part in parts:
        total += int(await _result(part))
    attempt.finished = time.time()
    return total


@task(queue=QUEUE)
async def report(label: str, due: float) -> float:
    """The delayed job: returns how late after its due time it started (s)."""
    attempt = TIMELINE.start(label)
    attempt.finished = time.time()
    return attempt.started - due


@task(queue=QUEUE)
async def flaky(label: str) -> None:
    """Always fails: retried with backoff, then dead-lettered."""
    attempt = TIMELINE.start(label)
    attempt.finished = time.time()
    attempt.error = "upstream answered 503"
    raise RuntimeError("upstream answered 503 (this demo job always fails)")


@task(queue=QUEUE)
async def tick(label: str) -> float:
    """The cron repeatable's task."""
    attempt = TIMELINE.start(label)
    attempt.finished = time.time()
    return attempt.started
