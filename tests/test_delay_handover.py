"""Delayed-job hand-over across real scanner processes (redis-server).

Scanner processes run ``asyncmq-cloud scanner run`` with the settings in
``tests/support/scanner_settings.py``: Redis state store, Redis delay store and
a Redis-list transport whose send log shows every reference handed over.
Timing is reported (lateness p50/p99), never asserted: the throughput and
lateness targets live in ``benchmarks/delay_handover.py``.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.redis import RedisDelayStore
from asyncmq_cloud.stores.redis import RedisStateStore
from tests.support.handover import Scanners, percentile, wait_for_sent
from tests.support.redis_transport import RedisListTransport, sent_log

pytestmark = [pytest.mark.redis, pytest.mark.slow]
SETTINGS = "tests.support.scanner_settings.Settings"


@pytest.fixture
def prefix() -> str:
    return f"ho-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def producer(redis_url: str, prefix: str) -> AsyncIterator[CloudBackend]:
    backend = CloudBackend(
        RedisStateStore(redis_url, prefix=prefix),
        RedisListTransport(redis_url, prefix),
        RedisDelayStore(redis_url, prefix=prefix),
        config=LifecycleConfig(repair_grace=3600, repair_interval=3600),
    )
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()
        client = aioredis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
        finally:
            await client.aclose()


@pytest.fixture
def scanners(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Scanners]:
    group = Scanners(SETTINGS, {"REDIS_URL": redis_url, "HANDOVER_PREFIX": prefix}, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


async def test_four_scanner_processes_hand_over_each_job_once(
    producer: CloudBackend, scanners: Scanners, redis_url: str, prefix: str
) -> None:
    queue = "handover"
    for _ in range(4):
        scanners.start(queue)
    rng = random.Random(7)
    run_at: dict[str, float] = {}
    for i in range(2000):
        job_id = f"j{i}"
        run_at[job_id] = time.time() + rng.uniform(0, 2)
        await producer.enqueue_delayed(queue, {"id": job_id, "task_id": "t", "args": [], "kwargs": {}}, run_at[job_id])
    client = producer.transport.client  # type: ignore[attr-defined]
    log = await wait_for_sent(client, prefix, queue, set(run_at), timeout=60)
    assert scanners.stop_all() == [0, 0, 0, 0], scanners.logs()
    counts = Counter(entry["id"] for entry in log)
    assert set(counts) == set(run_at), f"lost: {sorted(set(run_at) - set(counts))[:10]}"
    assert [job_id for job_id, n in counts.items() if n > 1] == []
    assert await producer.delay_store.count(queue) == 0
    # A job whose run_at passed while it was being enqueued went straight to waiting.
    assert (await producer.store.count_jobs(queue)).get("delayed", 0) == 0
    lateness = [entry["t"] - run_at[entry["id"]] for entry in log]
    assert min(lateness) >= -0.05, "a job was handed over before it was due"
    p50, p99 = percentile(lateness, 0.5), percentile(lateness, 0.99)
    print(f"\nlateness over {len(lateness)} jobs: p50={p50:.3f}s p99={p99:.3f}s")
    assert "scanner stopped" in scanners.logs()


async def test_scanner_killed_mid_promotion_loses_nothing(
    producer: CloudBackend, scanners: Scanners, redis_url: str, prefix: str
) -> None:
    queue = "killed"
    ids = [f"k{i}" for i in range(3000)]
    due = time.time() + 4
    for job_id in ids:
        await producer.enqueue_delayed(queue, {"id": job_id, "task_id": "t", "args": [], "kwargs": {}}, due)
    client = producer.transport.client  # type: ignore[attr-defined]
    victim = scanners.start(queue, interval=0.05)
    deadline = time.monotonic() + 30
    while len(await sent_log(client, prefix, queue)) == 0:
        assert time.monotonic() < deadline and victim.poll() is None, scanners.logs()
        await asyncio.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    handed_at_kill = len({e["id"] for e in await sent_log(client, prefix, queue)})
    # A survivor finishes the hand-over and repairs the stranded batch. Its repair grace is long
    # enough that its own backlog (due, not yet promoted on a loaded machine) is not re-sent too.
    scanners.start(queue, grace=8.0, interval=0.1)
    log = await wait_for_sent(client, prefix, queue, set(ids), timeout=60)
    # The killed batch was sent but never moved to waiting: the survivor's repair pass (every 8 s)
    # moves it, sending its references once more. Nothing may be left behind.
    deadline = time.monotonic() + 60
    while (await producer.store.count_jobs(queue)).get("delayed", 0):
        assert time.monotonic() < deadline, "delayed jobs left behind"
        await asyncio.sleep(0.25)
    log = await sent_log(client, prefix, queue)
    counts = Counter(entry["id"] for entry in log)
    assert set(counts) == set(ids), f"lost: {len(set(ids) - set(counts))} (handed over before kill: {handed_at_kill})"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= 200, "at most the killed scanner's in-flight batch may be sent twice"
    # Duplicate references are harmless: each job is claimed exactly once.
    claimed = Counter()
    while (job := await producer.dequeue(queue)) is not None:
        claimed[job["id"]] += 1
        await producer.complete_active_job(queue, job, None)
    assert claimed == Counter({job_id: 1 for job_id in ids})
    print(f"\nkilled after {handed_at_kill} handed over; duplicate references: {duplicates}")
