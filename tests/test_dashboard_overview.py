"""The dashboard's event stream and job pages on real services: same figures, bounded cost.

On ``DynamoDBBackend`` (moto and MiniStack servers): the stream served by
``build_dashboard_app`` sends the same events as AsyncMQ's own stream on the same data; a
tick costs at most ``3 + 6 * queues_per_tick`` requests whatever the number of jobs
(AsyncMQ's own stream lists every job); paged ``inspect_jobs`` returns the pages AsyncMQ's
listing-based default returns.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncmq import monkay
from asyncmq.backends.base import BaseBackend

from asyncmq_cloud import observe
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.core.records import JobRecord
from tests.plugins.backend_dynamodb import dynamodb_backend

#: Jobs seeded per state of each queue (the oldest first).
MIX = {"waiting": 12, "completed": 9, "failed": 4, "expired": 1, "delayed": 3, "active": 2}


class CallCounter:
    """Counts every service call the backend makes (the observe hook on every SDK client)."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def __getattr__(self, name: str) -> Any:  # the job events: not counted here
        return lambda *args, **kwargs: None

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        self.calls[(service, operation)] += 1

    def total(self) -> int:
        return sum(self.calls.values())


async def seed(backend: CloudBackend, queue: str, mix: dict[str, int]) -> dict[str, list[str]]:
    """Jobs of ``queue`` written straight to the store in the states of ``mix`` (ids by state)."""
    now, made, records = time.time(), {}, []
    for state, n in mix.items():
        made[state] = [f"{state[:3]}-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
        for job_id in made[state]:
            created = now + len(records) * 1e-5  # in the order written, as jobs added one by one
            payload = {"id": job_id, "task_id": "tests.tasks.noop", "args": [], "kwargs": {}, "created_at": created}
            run_at = now + 3600 if state == "delayed" else None
            records.append(JobRecord(queue=queue, id=job_id, state=state, payload=payload, run_at=run_at))
    for first in range(0, len(records), 25):
        await backend.store.create(records[first : first + 25])
    return made


async def read_events(app: Any, path: str, ticks: int = 1) -> list[tuple[str, Any]]:
    """The first ``ticks`` ticks (7 events each) of an event stream, through the ASGI app."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"dash.test")], "client": ("127.0.0.1", 1),
        "server": ("dash.test", 80),
    }  # fmt: skip
    buffer, events, done = "", [], asyncio.Event()
    disconnect = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal buffer
        buffer += message.get("body", b"").decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.startswith(":"):  # a comment
                continue
            name, data = (line.split(": ", 1)[1] for line in block.splitlines())
            events.append((name, json.loads(data)))
        if len(events) >= 7 * ticks:
            done.set()

    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        disconnect.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return events[: 7 * ticks]


def comparable(events: list[tuple[str, Any]]) -> dict[str, Any]:
    """The events by name; the job times AsyncMQ takes from other fields dropped."""
    out = dict(events)
    out["latest_jobs"] = [{k: v for k, v in job.items() if k != "time"} for job in out["latest_jobs"]]
    out["latest_queues"] = [q["name"] for q in out["latest_queues"]]
    return out


@pytest.fixture(
    params=[pytest.param("moto", marks=pytest.mark.moto), pytest.param("ministack", marks=pytest.mark.ministack)]
)
async def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CloudBackend]:
    """``DynamoDBBackend`` on moto and on MiniStack (which cuts query pages at 1 MB of index
    entries, as DynamoDB does), set as AsyncMQ's settings backend for the dashboard."""
    endpoint = request.getfixturevalue(f"{request.param}_endpoint")
    async with dynamodb_backend(endpoint) as made:
        monkeypatch.setattr(monkay.settings, "backend", made)
        yield made


@pytest.fixture
async def ministack_backend(ministack_endpoint: str) -> AsyncIterator[CloudBackend]:
    """``DynamoDBBackend`` on MiniStack only: pages as DynamoDB does, and takes writes fast."""
    async with dynamodb_backend(ministack_endpoint) as made:
        yield made


async def test_stream_sends_asyncmqs_events_from_bounded_reads(backend: CloudBackend) -> None:
    from asyncmq.contrib.dashboard.admin import AsyncMQAdmin

    from asyncmq_cloud.commands.dashboard import build_dashboard_app

    queues = sorted(f"ov-{uuid.uuid4().hex[:6]}-{n}" for n in range(3))
    for n, queue in enumerate(queues):
        await seed(backend, queue, {state: count + n for state, count in MIX.items()})
    await backend.pause_queue(queues[1])
    worker = f"w-{uuid.uuid4().hex[:6]}"
    # A heartbeat ahead of time: the worker stays listed however slow a loaded machine makes the reads.
    await backend.register_worker(worker, queues[0], 3, time.time() + 600)
    theirs_app = AsyncMQAdmin(enable_login=False).get_asgi_app()
    ours_app = build_dashboard_app(enable_login=False, queues_per_tick=3)

    counter = CallCounter()
    observe.subscribe(counter)
    try:
        theirs = comparable(await read_events(theirs_app, "/events"))
        their_calls, counter.calls = counter.total(), Counter()
        ours = comparable(await read_events(ours_app, "/admin/events"))
        our_calls = counter.total()
    finally:
        observe.unsubscribe(counter)
        await backend.deregister_worker(worker)

    assert [row["name"] for row in ours["queues"]] == queues
    for row in ours["queues"]:
        n = queues.index(row["name"])
        assert row["paused"] is (n == 1)
        assert row["waiting"] == MIX["waiting"] + n and row["completed"] == MIX["completed"] + n
        assert row["failed"] == MIX["failed"] + MIX["expired"] + 2 * n, row  # expired shown as failed
    for name in theirs:  # every event, field for field (job times aside)
        assert ours[name] == theirs[name], name
    # one tick: the queue list, the paused flags, the workers, six state queries per queue
    assert our_calls <= 3 + 6 * 3, counter.calls
    assert their_calls > our_calls, (their_calls, our_calls)
    print(f"one event-stream tick, 3 queues: AsyncMQ's stream {their_calls} calls, ours {our_calls}")


@pytest.mark.ministack
async def test_a_tick_costs_the_same_with_ten_times_the_jobs(ministack_backend: CloudBackend) -> None:
    backend = ministack_backend
    from asyncmq_cloud.commands._overview import Overview

    queues = [f"ov10-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    costs = []
    for added in (1, 9):  # MIX, then nine times more: ten times the jobs
        for queue in queues:
            await seed(backend, queue, {state: count * added for state, count in MIX.items()})
        overview = Overview(backend, queues_per_tick=2)
        counter = CallCounter()
        observe.subscribe(counter)
        try:
            for _ in range(3):  # three ticks: every queue read twice, the queue list once
                overview._refreshed_at = None
                snap = await overview.snapshot()
        finally:
            observe.unsubscribe(counter)
        scale = 1 if added == 1 else 10
        assert all(snap.queues[q].counts["waiting"] == MIX["waiting"] * scale for q in queues), snap.queues
        costs.append(counter.total())
    # three ticks: the queue list once; each tick the paused flags, the workers, two queues of six reads
    assert max(costs) <= 1 + 3 * (2 + 6 * 2), costs


async def test_inspect_jobs_pages_match_asyncmqs_listing(backend: CloudBackend) -> None:
    queue = f"insp-{uuid.uuid4().hex[:6]}"
    await seed(backend, queue, {"waiting": 23, "failed": 5})
    for state, sort in (("waiting", "newest"), ("waiting", "oldest"), ("failed", "newest"), ("completed", "newest")):
        for page in (1, 2, 3, 9):
            mine = await backend.inspect_jobs(queue, state, page=page, size=10, sort=sort)
            theirs = await BaseBackend.inspect_jobs(backend, queue, state, page=page, size=10, sort=sort)
            assert [j["id"] for j in mine.jobs] == [j["id"] for j in theirs.jobs], (state, sort, page)
            assert (mine.total, mine.page, mine.total_pages) == (theirs.total, theirs.page, theirs.total_pages)
    filtered = await backend.inspect_jobs(queue, "waiting", task="noop", size=5)
    assert filtered.total == 23 and len(filtered.jobs) == 5
