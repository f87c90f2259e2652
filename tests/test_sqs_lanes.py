"""SQS priority lanes (``priority_lanes``): routing, order, starvation bound, provisioning, stats.

On every SQS implementation of the test bed (ElasticMQ, moto, LocalStack), with AsyncMQ's own
worker loop (``process_job``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import anyio
import pytest
from asyncmq.queues import Queue
from asyncmq.workers import process_job

from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.transports._sqs_config import SQSTransportConfig
from asyncmq_cloud.transports._sqs_lanes import LOWER_LANE_EVERY, by_lane, lane_of, receive_order
from tests import tasks
from tests.plugins.backend_sqs import counted_calls, sqs_backend

T = "tests.tasks."


def test_lanes_split_asyncmqs_priorities_and_the_default_keeps_the_queue() -> None:
    bounds = SQSTransportConfig(priority_lanes=3).bounds()
    assert bounds == (2, 5)
    assert [lane_of(bounds, p) for p in (0, 1, 2, 3, 5, 6, 7, 10, None, "x")] == [0, 0, 0, 1, 1, 2, 2, 2, 1, 1]
    assert [SQSTransportConfig(priority_lanes=n).bounds() for n in (1, 2, 4, 5)] == [(), (4,), (1, 4, 6), (1, 3, 5, 7)]
    assert by_lane(bounds, ["a", "b", "c"], [1, 5, 9]) == {0: ["a"], 1: ["b"], 2: ["c"]}
    assert by_lane(bounds, ["a", "b"], None) == {None: ["a", "b"]}
    assert SQSTransportConfig(priority_lanes=2, lane_bounds=(3,)).bounds() == (3,)
    for bad in ({"priority_lanes": 2, "lane_bounds": (3, 4)}, {"priority_lanes": 3, "lane_bounds": (5, 2)}):
        with pytest.raises(ConfigurationError):
            SQSTransportConfig.build(**bad)
    with pytest.raises(ConfigurationError, match="FIFO"):
        SQSTransportConfig.build(priority_lanes=2, fifo=True)


def test_every_lane_gets_a_bounded_share_of_receives() -> None:
    firsts = [receive_order(3, turn)[0] for turn in range(10 * LOWER_LANE_EVERY)]
    assert firsts.count(0) == 8 * LOWER_LANE_EVERY
    assert firsts.count(1) == firsts.count(2) == LOWER_LANE_EVERY


async def _start_order(backend: Any, queue: str, keys: set[str], concurrency: int) -> list[str]:
    """Run AsyncMQ's worker loop until every job of ``keys`` started; their start order."""
    worker = asyncio.create_task(process_job(queue, anyio.CapacityLimiter(concurrency), backend=backend))
    try:
        deadline = time.monotonic() + 120
        while sum(tasks.CALLS[k] for k in keys) < len(keys):
            assert time.monotonic() < deadline, "the jobs did not all run"
            await asyncio.sleep(0.1)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    return [k for k in tasks.ORDER if k in keys]


@pytest.mark.parametrize(
    "emulator",
    # moto's SQS is CPU-bound here (about 28 s for this test); its lanes are provisioned and counted below.
    [pytest.param("elasticmq", marks=pytest.mark.elasticmq), pytest.param("localstack", marks=pytest.mark.localstack)],
)
async def test_urgent_jobs_overtake_a_backlog_and_the_backlog_still_runs(
    emulator: str, request: pytest.FixtureRequest
) -> None:
    """Acceptance: 300 low then 30 high jobs queued before a worker starts: every high one
    starts before the 60th low one (three lanes, AsyncMQ's worker loop, concurrency 10)."""
    sqs_endpoint = str(request.getfixturevalue(f"{emulator}_endpoint"))
    async with sqs_backend(sqs_endpoint, store="memory://", create_missing=True, priority_lanes=3) as backend:
        queue = f"lanes-{uuid.uuid4().hex[:6]}"
        q = Queue(queue, backend=backend)
        low = [f"low-{uuid.uuid4().hex}" for _ in range(300)]
        high = [f"high-{uuid.uuid4().hex}" for _ in range(30)]
        await q.add_bulk([{"task_id": T + "record", "args": [k], "priority": 9} for k in low])
        await q.add_bulk([{"task_id": T + "record", "args": [k], "priority": 1} for k in high])
        broker = await backend.broker_stats(queue)
        assert broker["visible"] == 330, broker
        sqs = await backend.clients.sqs()
        with counted_calls(sqs) as calls:
            order = await _start_order(backend, queue, set(low) | set(high), concurrency=10)
        last_high = max(order.index(k) for k in high)
        lows_before = sum(1 for k in order[:last_high] if k.startswith("low-"))
        assert lows_before < 60, f"{lows_before} low jobs started before the last high one"
        assert sorted(order) == sorted(low + high), "every job ran once"
        # AsyncMQ's bare worker loop receives one message per dequeue (no registered capacity): one
        # receive per job with one lane. Lanes found empty are not polled again for a moment.
        assert 0 < calls["sqs.ReceiveMessage"] < 1.5 * 330, calls


async def test_lanes_are_provisioned_with_the_dlq_and_counted_together(sqs_endpoint: str) -> None:
    async with sqs_backend(sqs_endpoint, store="memory://", priority_lanes=3) as backend:
        queue = f"prov-{uuid.uuid4().hex[:6]}"
        spec = backend.transport.spec(queue)
        assert [n.removeprefix(backend.transport.config.queue_prefix) for n in (spec.name, *spec.lanes)] == [
            queue,
            f"{queue}-p0",
            f"{queue}-p2",
        ]
        await backend.provision([queue])
        sqs = await backend.clients.sqs()
        for name in (spec.name, *spec.lanes):
            url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
            attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]))["Attributes"]
            assert spec.dlq_name in attributes["RedrivePolicy"], name
        q = Queue(queue, backend=backend)
        for priority in (1, 5, 9, 9):
            await q.add(T + "record", args=[uuid.uuid4().hex], priority=priority)
        assert (await backend.broker_stats(queue))["visible"] == 4
        assert await backend.queue_stats(queue) == {"waiting": 4, "delayed": 0, "failed": 0}
