"""What an idle worker's periodic loops cost, and what answering them in process must not break.

AsyncMQ's worker runs its repeatable scheduler (a store lock and two reads) and its delayed
scanner (``promote_due_delayed``) every ``scan_interval`` on every worker. The backend
answers the scheduler of a queue without repeatables in process for
``repeatables_refresh``, reads the delay store at most every ``delay_scan_interval``
(sooner for jobs delayed through it), and a drain ends a long poll at once. The memory
components here count the store calls; ``benchmarks/idle_cost.py`` measures the rates on
the real services and ``tests/test_idle_calls.py`` the long poll on ElasticMQ.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncmq.schedulers import _process_backend_repeatables_with_lock

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.core.records import Delivery
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.stores.memory import MemoryStateStore
from asyncmq_cloud.transports.memory import MemoryTransport

QUEUE = "idle"


class CountingStore(MemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def list_repeatables(self, queue: str) -> Any:
        self.calls["list_repeatables"] += 1
        return await super().list_repeatables(queue)

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        self.calls["acquire_lock"] += 1
        return await super().acquire_lock(key, token, ttl)

    async def release_lock(self, key: str, token: str) -> bool:
        self.calls["release_lock"] += 1
        return await super().release_lock(key, token)


class CountingDelays(MemoryDelayStore):
    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim_due(self, queue: str, now: float, limit: int) -> list[tuple[str, float]]:
        self.claims += 1
        return await super().claim_due(queue, now, limit)


async def _backend(store: CountingStore, delays: CountingDelays, **config: Any) -> CloudBackend:
    backend = CloudBackend(store, MemoryTransport(), delays, config=LifecycleConfig(receive_wait=0.2, **config))
    await backend.start()
    return backend


@pytest.fixture
async def parts() -> AsyncIterator[tuple[CountingStore, CountingDelays]]:
    yield CountingStore(), CountingDelays()


def _every_minute(task_id: str = "tests.tasks.noop") -> dict[str, Any]:
    return {"task_id": task_id, "every": 60, "queue": QUEUE}


async def _pass(backend: CloudBackend) -> float | None:
    """One pass of AsyncMQ's repeatable scheduler over the backend's repeatables (lock included)."""
    return await _process_backend_repeatables_with_lock(QUEUE, backend, lock_ttl=5)


async def test_a_queue_without_repeatables_costs_one_read_per_refresh(
    parts: tuple[CountingStore, CountingDelays],
) -> None:
    store, delays = parts
    backend = await _backend(store, delays, repeatables_refresh=30.0)
    try:
        for _ in range(10):
            assert await _pass(backend) is None
        assert store.calls == Counter({"list_repeatables": 1}), "ten passes: one read, no lock"
        await backend.upsert_repeatable(QUEUE, _every_minute())  # a change here ends it at once
        store.calls.clear()
        for _ in range(3):
            assert await _pass(backend) is not None  # the next run time of the repeatable
        assert store.calls["acquire_lock"] == 3 and store.calls["release_lock"] == 3
        # One read per pass under the lock, plus the one read that found the queue has some again.
        assert store.calls["list_repeatables"] == 4
    finally:
        await backend.close()


async def test_refresh_zero_reads_and_locks_on_every_pass(parts: tuple[CountingStore, CountingDelays]) -> None:
    store, delays = parts
    backend = await _backend(store, delays, repeatables_refresh=0.0)
    try:
        for _ in range(3):
            await _pass(backend)
        assert store.calls["acquire_lock"] == 3 and store.calls["release_lock"] == 3
    finally:
        await backend.close()


async def test_a_repeatable_added_elsewhere_is_seen_within_the_refresh_and_fires_once(
    parts: tuple[CountingStore, CountingDelays],
) -> None:
    store, delays = parts
    worker = await _backend(store, delays, repeatables_refresh=0.3)
    producer = await _backend(store, delays, repeatables_refresh=0.3)  # "another process": the same store
    try:
        await _pass(worker)  # the queue has none: the worker answers in process from now on
        await producer.upsert_repeatable(QUEUE, {**_every_minute(), "every": 0.1})
        await asyncio.sleep(0.15)  # due now
        began, fired = time.monotonic(), []
        while time.monotonic() - began < 2.0 and sum(fired) == 0:
            before = (await worker.get_job_counts(QUEUE, "waiting"))["waiting"]
            await _pass(worker)
            fired.append((await worker.get_job_counts(QUEUE, "waiting"))["waiting"] - before)
            await asyncio.sleep(0.05)
        assert fired[0] == 0, "a pass answered in process fires nothing"
        assert sum(fired) == 1, "the repeatable added elsewhere fired once, after the refresh"
        assert time.monotonic() - began <= 1.0
        assert store.calls["acquire_lock"] >= 1, "the pass that fired it held the store lock"
    finally:
        await producer.close()
        await worker.close()


async def test_the_delay_store_is_read_at_most_every_delay_scan_interval(
    parts: tuple[CountingStore, CountingDelays],
) -> None:
    store, delays = parts
    worker = await _backend(store, delays, delay_scan_interval=0.5)
    producer = await _backend(store, delays, delay_scan_interval=0.5)
    try:
        for _ in range(10):
            await worker.promote_due_delayed(QUEUE)
        assert delays.claims == 1
        # Delayed through another backend: handed over by the next read, within the interval.
        await producer.enqueue_delayed(QUEUE, {"id": "elsewhere", "task": "t"}, time.time())
        assert await worker.promote_due_delayed(QUEUE) == []
        began = time.monotonic()
        while not await worker.promote_due_delayed(QUEUE):
            assert time.monotonic() - began < 1.0, "not handed over within delay_scan_interval"
            await asyncio.sleep(0.02)
        assert (await worker.get_job_state(QUEUE, "elsewhere")) == "waiting"
        # The scanner command reads on every call.
        claims = delays.claims
        await worker.promote_due_now(QUEUE)
        await worker.promote_due_now(QUEUE)
        assert delays.claims == claims + 2
    finally:
        await producer.close()
        await worker.close()


async def test_jobs_delayed_here_are_handed_over_on_time_despite_the_interval(
    parts: tuple[CountingStore, CountingDelays],
) -> None:
    store, delays = parts
    backend = await _backend(store, delays, delay_scan_interval=30.0)
    try:
        await backend.promote_due_delayed(QUEUE)  # a read now: the next one would be in 30 s
        now = time.time()
        for job_id, delay in (("a", 0.2), ("b", 0.4)):
            await backend.enqueue_delayed(QUEUE, {"id": job_id, "task": "t"}, now + delay)
        handed: dict[str, float] = {}
        while len(handed) < 2 and time.time() - now < 2.0:
            for job in await backend.promote_due_delayed(QUEUE):
                handed[job["id"]] = time.time() - now
            await asyncio.sleep(0.02)
        assert sorted(handed) == ["a", "b"]
        assert 0.2 <= handed["a"] < 0.4 and 0.4 <= handed["b"] < 0.6, handed
    finally:
        await backend.close()


class Silent(MemoryTransport):
    """A broker that answers a receive only when its wait is over (an SQS long poll on an empty queue)."""

    async def receive(self, queue: str, max_messages: int, wait: float) -> list[Delivery]:
        await asyncio.sleep(wait)
        return []


async def test_a_drain_ends_a_long_poll_at_once() -> None:
    backend = CloudBackend(MemoryStateStore(), Silent(), MemoryDelayStore(), config=LifecycleConfig(receive_wait=20))
    await backend.start()
    try:
        dequeue = asyncio.create_task(backend.dequeue(QUEUE))
        await asyncio.sleep(0.2)
        assert not dequeue.done(), "the long poll is waiting"
        began = time.monotonic()
        await backend.drain()
        assert await asyncio.wait_for(dequeue, timeout=2.0) is None
        assert time.monotonic() - began < 1.0
    finally:
        await backend.close()


async def test_cancelling_the_caller_still_cancels_the_long_poll() -> None:
    backend = CloudBackend(MemoryStateStore(), Silent(), MemoryDelayStore(), config=LifecycleConfig(receive_wait=20))
    await backend.start()
    try:
        dequeue = asyncio.create_task(backend.dequeue(QUEUE))
        await asyncio.sleep(0.1)
        dequeue.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dequeue
    finally:
        await backend.close()


def test_the_scan_interval_is_the_configured_one_on_every_broker() -> None:
    def interval(native: float, **config: Any) -> float:
        transport = MemoryTransport(max_native_delay=native)
        backend = CloudBackend(MemoryStateStore(), transport, MemoryDelayStore(), config=LifecycleConfig(**config))
        return backend._handover.scan_interval

    assert interval(900.0) == interval(0.0) == 5.0, "SQS, Kafka and DynamoDBBackend alike (decision 72)"
    assert interval(0.0, delay_scan_interval=0.5) == 0.5
