"""An idle SQS worker long-polls (one receive per 20 s), a job ends the poll at once, a drain too.

On ElasticMQ with the Redis store, at the default ``receive_wait`` (20 s); the calls are
counted through the backend's observation hook. The rates of every backend are measured
by ``benchmarks/idle_cost.py``; the in-process answers of the scheduler and the delayed
scanner are tested in ``tests/unit/test_idle_calls.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from asyncmq_cloud import observe
from asyncmq_cloud.config import LifecycleConfig
from tests.plugins.backend_sqs import redis_stores, sqs_backend

QUEUE = "idle"


class Receives(observe.BaseObserver):
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        self.calls[f"{service}.{operation}"] += 1


async def test_an_idle_worker_long_polls_and_a_job_or_a_drain_ends_the_poll(
    elasticmq_endpoint: str, redis_url: str
) -> None:
    assert LifecycleConfig().receive_wait == 20.0
    counter = Receives()
    async with (
        redis_stores(redis_url) as store,
        sqs_backend(elasticmq_endpoint, store=store, create_missing=True, receive_wait=20.0) as backend,
    ):
        await backend.provision([QUEUE])
        observe.subscribe(counter)
        try:
            dequeue = asyncio.create_task(backend.dequeue(QUEUE))
            await asyncio.sleep(3.0)
            assert not dequeue.done(), "an empty queue: the poll is still waiting"
            assert counter.calls["sqs.ReceiveMessage"] <= 1, counter.calls
            began = time.monotonic()
            await backend.enqueue(QUEUE, {"id": "arrives", "task": "tests.tasks.noop"})
            job = await asyncio.wait_for(dequeue, timeout=5.0)
            assert job is not None and job["id"] == "arrives"
            assert time.monotonic() - began < 2.0, "the long poll returned with the message"
            await backend.ack(QUEUE, "arrives")

            dequeue = asyncio.create_task(backend.dequeue(QUEUE))
            await asyncio.sleep(1.0)
            began = time.monotonic()
            await backend.drain()
            assert await asyncio.wait_for(dequeue, timeout=5.0) is None
            assert time.monotonic() - began < 2.0, "the drain ended the long poll"
        finally:
            observe.unsubscribe(counter)
