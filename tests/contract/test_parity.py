"""Parity with AsyncMQ's own backends: behaviours an app sees through AsyncMQ's public API.

Parametrized (``backend`` fixture) over AsyncMQ's ``InMemoryBackend`` as the reference and
every backend × store of the contract matrix (SQSBackend on ElasticMQ, moto and LocalStack,
DynamoDBBackend on moto and MiniStack, KafkaBackend on the broker, CloudBackend over each
store). Workers are AsyncMQ's own ``process_job`` loop (what ``asyncmq worker start`` runs).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from asyncmq import monkay
from asyncmq.queues import Queue
from asyncmq.workers import process_job

from tests import tasks

T = "tests.tasks."


@pytest.fixture
def qname() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def receive_wait(backend: Any) -> float:
    """How long one receive of ``backend`` may stay in flight (0 for the reference)."""
    config = getattr(backend, "config", None)
    return float(getattr(config, "receive_wait", 0.0))


@asynccontextmanager
async def polling_worker(backend: Any, queue: str, concurrency: int = 2) -> AsyncIterator[None]:
    """AsyncMQ's worker loop on ``queue`` for the duration of the block."""
    task = asyncio.create_task(process_job(queue, anyio.CapacityLimiter(concurrency), backend=backend))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(condition: Callable[[], Any], timeout: float = 30.0) -> float:
    """Wait for ``condition()`` (sync or async); the seconds it took."""
    started = time.monotonic()
    while True:
        done = condition()
        if asyncio.iscoroutine(done):
            done = await done
        if done:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def quick_pause_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A paused AsyncMQ worker sleeps ``stalled_check_interval`` (60 s) between flag checks."""
    monkeypatch.setattr(monkay.settings, "stalled_check_interval", 0.2)


# -- 1. pause -------------------------------------------------------------------------------
@pytest.mark.usefixtures("quick_pause_checks")
async def test_a_job_added_after_pause_waits_for_resume_under_a_polling_worker(backend: Any, qname: str) -> None:
    k = uuid.uuid4().hex
    queue = Queue(qname, backend=backend)
    async with polling_worker(backend, qname):
        await asyncio.sleep(0.3 + receive_wait(backend) / 2)  # a receive is in flight
        await queue.pause()
        assert await backend.is_queue_paused(qname)
        job_id = await queue.add(T + "record", args=[k])
        await asyncio.sleep(receive_wait(backend) + 1.5)  # the receive in flight ended long ago
        assert tasks.CALLS[k] == 0, "a paused queue's job ran"
        assert await backend.get_job_state(qname, job_id) == "waiting"
        await queue.resume()
        assert not await backend.is_queue_paused(qname)
        took = await until(lambda: tasks.CALLS[k] == 1)
        await until(lambda: backend.get_job_state(qname, job_id), 10)
    # What a receive got as the pause landed went back for immediate redelivery: no visibility timeout.
    assert took < 10.0
    assert await until(_state_is(backend, qname, job_id, "completed"), 10) >= 0
    assert tasks.CALLS[k] == 1


def _state_is(backend: Any, queue: str, job_id: str, state: str) -> Callable[[], Any]:
    async def check() -> bool:
        return await backend.get_job_state(queue, job_id) == state

    return check
