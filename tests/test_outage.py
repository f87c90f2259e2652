"""A broker and store outage under a running AsyncMQ worker (decision 37).

AsyncMQ 0.10.1's worker loop does not catch errors from ``dequeue`` or
``is_queue_paused``: before the fix, the first outage that outlasted botocore's
retries ended the worker. A private moto server on a fixed port is stopped under
an idle in-process worker and started again on the same port (moto keeps its
state in the process, so the queues and tables are still there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import pytest
from asyncmq.queues import Queue
from asyncmq.runners import run_worker
from moto.server import ThreadedMotoServer

from asyncmq_cloud import SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.errors import TransientError
from asyncmq_cloud.stores.memory import MemoryStateStore
from asyncmq_cloud.transports.memory import MemoryTransport
from tests.plugins.backend_sqs import random_prefix
from tests.tasks import add

pytestmark = pytest.mark.moto


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_completed(backend: SQSBackend, queue: str, ids: list[str], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            states = [await backend.get_job_state(queue, job_id) for job_id in ids]
            if all(state == "completed" for state in states):
                return
            await asyncio.sleep(0.2)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_worker_outlives_a_broker_and_store_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    # On the lifecycle's own logger: AsyncMQ's setup_logging() replaces the root logger's handlers.
    records, lifecycle_logger = _Records(), logging.getLogger("asyncmq_cloud.lifecycle")
    lifecycle_logger.addHandler(records)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    prefix = random_prefix()
    backend = SQSBackend(
        queue_prefix=prefix, store=f"dynamodb://{prefix}jobs", delay_store=f"dynamodb://{prefix}delays",
        endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", create_missing=True, max_attempts=1,
        config=LifecycleConfig(receive_wait=0.3),
    )  # fmt: skip
    await backend.provision(["outage"])
    queue = Queue("outage", backend=backend)
    worker = asyncio.create_task(run_worker("outage", backend, concurrency=2, scan_interval=0.5))
    try:
        first = [await queue.add(add.task_id, args=[n, 1]) for n in range(5)]
        await _wait_completed(backend, "outage", first, 60)
        server.stop()
        began = time.monotonic()
        while time.monotonic() - began < 3:  # the idle worker keeps polling a dead endpoint
            await asyncio.sleep(0.2)
            assert not worker.done(), worker.exception() if worker.done() else None
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        second = [await queue.add(add.task_id, args=[n, 1]) for n in range(5)]
        await _wait_completed(backend, "outage", second, 60)
        assert not worker.done()
        assert any("dequeue from 'outage' failed" in message for message in records.messages), records.messages
        assert any("dequeue from 'outage' works again" in message for message in records.messages)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker
        await backend.close()
        server.stop()
        lifecycle_logger.removeHandler(records)


class _FlakyTransport(MemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def receive(self, queue: str, max_messages: int, wait: float):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise TransientError("broker unreachable (test)")
        return await super().receive(queue, max_messages, wait)


class _FlakyStore(MemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def claim(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise TransientError("store unreachable (test)")
        return await super().claim(*args, **kwargs)

    async def is_paused(self, queue: str) -> bool:
        if self.failures:
            raise TransientError("store unreachable (test)")
        return await super().is_paused(queue)


async def test_dequeue_answers_none_on_an_outage_and_keeps_the_delivery() -> None:
    store, transport = _FlakyStore(), _FlakyTransport()
    backend = CloudBackend(store, transport, MemoryDelayStore(), config=LifecycleConfig(receive_wait=0.05))
    try:
        job_id = await backend.enqueue("q", {"id": "j1", "task": "t", "args": [], "kwargs": {}})
        transport.failures = 1
        assert await backend.dequeue("q") is None  # the receive failed: no exception reaches AsyncMQ
        store.failures = 1
        assert await backend.dequeue("q") is None  # the claim failed: the delivery stays buffered
        assert [delivery.job_id for delivery in backend._leases.buffer["q"]] == [job_id]
        job = await backend.dequeue("q")
        assert job is not None and job["id"] == job_id
        await backend.pause_queue("q")
        backend._pauses.cache.clear()
        store.failures = 1
        assert await backend.is_queue_paused("q") is False  # nothing known yet: not paused
        store.failures = 0
        assert await backend.is_queue_paused("q") is True
        backend._pauses.cache["q"] = (True, 0.0)  # known, but older than pause_cache_ttl
        store.failures = 1
        assert await backend.is_queue_paused("q") is True  # an outage answers with the last known flag
    finally:
        await backend.close()
