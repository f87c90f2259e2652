"""The dashboard overview's budget and sharing rules, on a counting fake backend (no service)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asyncmq.backends.base import WorkerInfo

from asyncmq_cloud.commands._dashboard_stream import events
from asyncmq_cloud.commands._overview import LATEST, READ_STATES, Overview
from asyncmq_cloud.core.records import StateSummary


class FakeSource:
    """Queues with fixed summaries; records every read."""

    def __init__(self, queues: list[str]) -> None:
        self.queues = queues
        self.reads: list[str] = []
        self.fail: set[str] = set()
        self.paused: set[str] = set()

    async def list_queues(self) -> list[str]:
        self.reads.append("queues")
        return list(self.queues)

    async def list_workers(self) -> list[WorkerInfo]:
        self.reads.append("workers")
        return [WorkerInfo(id="w1", queue=self.queues[0], concurrency=2, heartbeat=5.0)]

    async def paused_queues(self, queue_names: list[str]) -> set[str]:
        self.reads.append("paused")
        return set(queue_names) & self.paused

    async def summarize_states(self, queue_name: str, states: tuple[str, ...], newest: int = 0) -> dict[str, Any]:
        self.reads.append(f"summary:{queue_name}")
        if queue_name in self.fail:
            raise ConnectionError("store unreachable")
        n = int(queue_name[1:])
        return {
            state: StateSummary(n + i, [(f"{queue_name}-{state}-{k}", 1000.0 * n + 10 * i - k) for k in range(newest)])
            for i, state in enumerate(states)
        }


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def summaries_read(source: FakeSource) -> list[str]:
    return [r.split(":", 1)[1] for r in source.reads if r.startswith("summary:")]


async def test_each_tick_reads_at_most_queues_per_tick_queues_least_recent_first() -> None:
    source, clock = FakeSource([f"q{n}" for n in range(1, 6)]), Clock()
    overview = Overview(source, queues_per_tick=2, clock=clock)
    await overview.snapshot()
    assert summaries_read(source) == ["q1", "q2"] and source.reads.count("queues") == 1
    for _ in range(2):
        clock.now += overview.tick
        await overview.snapshot()
    assert summaries_read(source) == ["q1", "q2", "q3", "q4", "q5", "q1"]
    assert source.reads.count("workers") == 3 and source.reads.count("queues") == 1  # the list: every 60 s
    snap = await overview.snapshot()  # within the tick: no read at all
    # per tick: two queues, the paused flags, the workers; the queue list once
    assert len(source.reads) == 1 + 3 * (2 + 2) and sorted(snap.queues) == ["q1", "q2", "q3", "q4", "q5"]


async def test_one_refresh_per_tick_serves_every_open_page() -> None:
    source = FakeSource(["q1", "q2"])
    overview = Overview(source, queues_per_tick=2, clock=Clock())
    snaps = await asyncio.gather(*(overview.snapshot() for _ in range(20)))
    assert all(s is snaps[0] for s in snaps)
    assert summaries_read(source) == ["q1", "q2"] and source.reads.count("workers") == 1


async def test_a_failed_read_keeps_the_last_figures() -> None:
    source, clock = FakeSource(["q1"]), Clock()
    overview = Overview(source, queues_per_tick=1, clock=clock)
    first = (await overview.snapshot()).queues["q1"]
    source.fail.add("q1")
    source.paused.add("q1")
    clock.now += overview.tick
    second = (await overview.snapshot()).queues["q1"]
    assert second.counts == first.counts and second.read_at == first.read_at and second.paused


async def test_events_have_asyncmqs_names_shapes_and_expired_counts_as_failed() -> None:
    source = FakeSource(["q1", "q2"])
    source.paused.add("q2")
    snap = await Overview(source, clock=Clock()).snapshot()
    sent = [block.split("\n") for block in events(snap)]
    names = [lines[0].removeprefix("event: ") for lines in sent]
    assert names == ["overview", "jobdist", "metrics", "queues", "workers", "latest_jobs", "latest_queues"]
    data = {name: json.loads(lines[1].removeprefix("data: ")) for name, lines in zip(names, sent, strict=True)}
    by_state = {state: i for i, state in enumerate(READ_STATES)}
    q1 = next(row for row in data["queues"] if row["name"] == "q1")
    assert q1 == {
        "name": "q1",
        "paused": False,
        "waiting": 1 + by_state["waiting"],
        "active": 1 + by_state["active"],
        "delayed": 1 + by_state["delayed"],
        "failed": 2 + by_state["failed"] + by_state["expired"],
        "completed": 1 + by_state["completed"],
    }
    assert [row["paused"] for row in data["queues"]] == [False, True]
    assert data["overview"] == {"total_queues": 2, "total_jobs": sum(data["jobdist"].values()), "total_workers": 1}
    assert data["workers"] == [{"id": "w1", "queue": "q1", "concurrency": 2, "heartbeat": 5.0}]
    latest = data["latest_jobs"]
    assert len(latest) == LATEST and all(job["queue"] == "q2" and job["state"] != "expired" for job in latest)
    assert [q["name"] for q in data["latest_queues"]] == ["q2", "q1"]


def test_queues_per_tick_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="queues_per_tick"):
        Overview(FakeSource(["q1"]), queues_per_tick=0)


async def test_a_queue_the_dashboard_acted_on_is_read_again_at_once() -> None:
    from asyncmq_cloud.commands._dashboard_stream import ActionWatch

    source = FakeSource(["q1", "q2", "q3", "q4"])
    overview = Overview(source, queues_per_tick=1, clock=Clock())
    await overview.snapshot()
    assert summaries_read(source) == ["q1"]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    watch = ActionWatch(app, overview)
    for method, path in (("GET", "/admin/queues/q3"), ("POST", "/admin/queues/q3/jobs/j1/retry")):
        await watch({"type": "http", "method": method, "path": path}, None, None)
    source.paused.add("q3")
    snap = await overview.snapshot()  # within the same tick: only the queue acted on
    assert summaries_read(source) == ["q1", "q3"] and snap.queues["q3"].paused
    assert await overview.snapshot() is snap  # nothing changed since: no read
    await watch({"type": "http", "method": "POST", "path": "/admin/queues/q9/pause"}, None, None)
    source.queues.append("q9")  # a queue the list did not have yet: the list is read again
    snap = await overview.snapshot()
    assert summaries_read(source)[-1] == "q9" and "q9" in snap.queues and source.reads.count("queues") == 2


async def test_a_failed_queue_list_is_read_again_at_the_next_tick() -> None:
    class Flaky(FakeSource):
        async def list_queues(self) -> list[str]:
            self.reads.append("queues")
            if self.reads.count("queues") == 1:
                raise ConnectionError("store unreachable")
            return list(self.queues)

    source, clock = Flaky(["q1"]), Clock()
    overview = Overview(source, clock=clock)
    assert (await overview.snapshot()).queues == {}
    clock.now += overview.tick
    assert list((await overview.snapshot()).queues) == ["q1"] and source.reads.count("queues") == 2
