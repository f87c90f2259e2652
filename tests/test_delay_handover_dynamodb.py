"""Delayed-job hand-over across real scanner processes, DynamoDB stores on the emulator.

Like ``tests/test_delay_handover.py``, with the DynamoDB state store and the
DynamoDB delay store (``tests/support/scanner_settings_dynamodb.py``) on the moto
server, and the Redis-list transport whose send log shows every reference handed
over. Fewer jobs than the Redis test: moto applies DynamoDB requests one at a
time, a few milliseconds each. Lateness is reported, never asserted.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore
from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore
from tests.plugins.store_dynamodb import drop_table, moto_clients
from tests.support.handover import Scanners, percentile, wait_for_sent
from tests.support.redis_transport import RedisListTransport

pytestmark = [pytest.mark.redis, pytest.mark.moto, pytest.mark.slow]
SETTINGS = "tests.support.scanner_settings_dynamodb.Settings"


@pytest.fixture
def names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "HANDOVER_PREFIX": f"ho-{tag}",
        "HANDOVER_JOBS_TABLE": f"ho-jobs-{tag}",
        "HANDOVER_DELAY_TABLE": f"ho-delays-{tag}",
    }


@pytest.fixture
async def producer(redis_url: str, dynamodb_endpoint: str, names: dict[str, str]) -> AsyncIterator[CloudBackend]:
    clients = moto_clients(dynamodb_endpoint)
    prefix = names["HANDOVER_PREFIX"]
    backend = CloudBackend(
        DynamoDBStateStore(names["HANDOVER_JOBS_TABLE"], clients=clients),
        RedisListTransport(redis_url, prefix),
        DynamoDBDelayStore(names["HANDOVER_DELAY_TABLE"], clients=clients),
        config=LifecycleConfig(repair_grace=3600, repair_interval=3600),
    )
    try:
        await backend.provision()
        yield backend
    finally:
        await backend.close()
        try:
            for table in (names["HANDOVER_JOBS_TABLE"], names["HANDOVER_DELAY_TABLE"]):
                await drop_table(clients, table)
        finally:
            await clients.close()
        client = aioredis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture
def scanners(redis_url: str, dynamodb_endpoint: str, names: dict[str, str], tmp_path: Path) -> Iterator[Scanners]:
    env = {**names, "REDIS_URL": redis_url, "HANDOVER_DYNAMODB_ENDPOINT": dynamodb_endpoint}
    group = Scanners(SETTINGS, env, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


async def test_four_dynamodb_scanner_processes_hand_over_each_job_once(
    producer: CloudBackend, scanners: Scanners, names: dict[str, str]
) -> None:
    queue, jobs = "handover", 500
    for _ in range(4):
        scanners.start(queue)
    rng = random.Random(7)
    # Due after the enqueue phase (moto takes ~30 ms per delayed enqueue: the state store's
    # UpdateItem dominates), so the scanners, not the enqueue, hand every job over.
    start_at = time.time() + 2 + jobs * 0.04
    run_at = {f"j{i}": start_at + rng.uniform(0, 2) for i in range(jobs)}
    limit = asyncio.Semaphore(16)

    async def enqueue(job_id: str) -> None:
        async with limit:
            body = {"id": job_id, "task_id": "t", "args": [], "kwargs": {}}
            await producer.enqueue_delayed(queue, body, run_at[job_id])

    await asyncio.gather(*(enqueue(job_id) for job_id in run_at))
    overran = max(0.0, time.time() - start_at)
    client = producer.transport.client  # type: ignore[attr-defined]
    log = await wait_for_sent(client, names["HANDOVER_PREFIX"], queue, set(run_at), timeout=120)
    assert scanners.stop_all() == [0, 0, 0, 0], scanners.logs()
    counts = Counter(entry["id"] for entry in log)
    assert set(counts) == set(run_at), f"lost: {sorted(set(run_at) - set(counts))[:10]}"
    assert [job_id for job_id, n in counts.items() if n > 1] == []
    assert await producer.delay_store.count(queue) == 0
    assert (await producer.store.count_jobs(queue)).get("delayed", 0) == 0
    lateness = [entry["t"] - run_at[entry["id"]] for entry in log]
    assert min(lateness) >= -0.05, "a job was handed over before it was due"
    p50, p99 = percentile(lateness, 0.5), percentile(lateness, 0.99)
    print(f"\nlateness over {len(lateness)} jobs: p50={p50:.3f}s p99={p99:.3f}s (enqueue overran by {overran:.1f}s)")
    assert "scanner stopped" in scanners.logs()
