"""Read-ahead on real SQS servers (ElasticMQ, moto, LocalStack, MiniStack): AsyncMQ's worker drains short jobs
with the next receive started while the buffer runs low; every job runs once, nothing is held
beyond the worker's concurrency, and nothing is left on the queue."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from asyncmq.queues import Queue

from tests import tasks
from tests.plugins.backend_sqs import redis_stores, run_until_completed, sqs_backend

T = "tests.tasks."
JOBS, CONCURRENCY = 60, 10


@pytest.mark.redis
async def test_a_worker_drains_short_jobs_with_read_ahead_and_runs_each_once(sqs_endpoint: str, redis_url: str) -> None:
    async with (
        redis_stores(redis_url) as store,
        sqs_backend(sqs_endpoint, store=store, create_missing=True, receive_wait=1) as backend,
    ):
        queue, run = "readahead", uuid.uuid4().hex[:8]
        keys = [f"ra-{run}-{i}" for i in range(JOBS)]
        await Queue(queue, backend=backend).add_bulk([{"task_id": T + "record", "args": [key]} for key in keys])
        leases, transport = backend._leases, backend.transport
        asked: list[int] = []
        held_max, started = 0, 0
        receive, start = transport.receive, leases.ahead.start

        async def spied_receive(name: str, max_messages: int, wait: float) -> Any:
            nonlocal held_max
            asked.append(max_messages)
            running = sum(1 for q, _ in leases.held if q == name)
            held_max = max(held_max, running + len(leases.buffer.get(name, ())) + max_messages)
            return await receive(name, max_messages, wait)

        def spied_start(name: str, held: int) -> bool:
            nonlocal started
            began = start(name, held=held)
            started += began
            return began

        transport.receive = spied_receive  # type: ignore[method-assign]
        leases.ahead.start = spied_start  # type: ignore[method-assign]
        await run_until_completed(backend, queue, JOBS, CONCURRENCY)
        await backend.transport.flush()
        assert all(tasks.CALLS[key] == 1 for key in keys), "every job ran exactly once"
        assert started >= 1, f"no read-ahead started; receives asked {asked}"
        # the first receive is made before the worker counts as running anything; after it, a receive
        # (read-ahead or not) never asks for more than the concurrency leaves free
        assert held_max <= CONCURRENCY + 1, f"held up to {held_max} with concurrency {CONCURRENCY}: {asked}"
        assert max(asked) <= CONCURRENCY
        assert await backend.transport.depth(queue) == 0, "nothing left on the queue"
