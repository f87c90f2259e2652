"""The enqueue crash window (issue 17 item 13, decision 6): a producer killed between the
record write and the send leaves a ``waiting`` job no reference points to; the repair pass
re-sends its reference after ``resend_grace`` and the job runs exactly once.

The producer is a real process killed with ``SIGKILL`` right after the store write
(``tests/support/crash_producer.py``); the worker is AsyncMQ's ``run_worker`` on real services:
SQSBackend + Redis store on ElasticMQ, KafkaBackend + Redis store, SQSBackend + DynamoDB store on moto.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asyncmq.runners import run_worker

from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.backends.sqs import SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from tests.plugins.backend_kafka import drop_topics
from tests.plugins.backend_sqs import REGION, drop_queues, random_prefix, redis_stores
from tests.plugins.store_dynamodb import drop_tables
from tests.tasks import CALLS

#: Short clocks so the test sees the repair: a pass every 0.5 s, re-send after 2 s unclaimed.
REPAIR = {"repair_interval": 0.5, "resend_grace": 2.0}


async def _crash_producer(kind: str, kwargs: dict[str, Any], queue: str, job_id: str, key: str) -> None:
    spec = {"kind": kind, "kwargs": kwargs, "queue": queue, "job_id": job_id, "key": key}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.support.crash_producer", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


async def _runs_once_after_repair(kind: str, kwargs: dict[str, Any]) -> None:
    """Kill a producer between its two writes, then run a worker: the job runs once, after the grace."""
    queue, job_id, key = "unsent", uuid.uuid4().hex, f"unsent-{uuid.uuid4().hex}"
    await _crash_producer(kind, kwargs, queue, job_id, key)
    backend: Any = (SQSBackend if kind == "sqs" else KafkaBackend)(
        **kwargs, config=LifecycleConfig(receive_wait=0.3, **REPAIR)
    )
    try:
        assert await backend.get_job_state(queue, job_id) == "waiting"  # written, never sent
        began = time.monotonic()
        worker = asyncio.create_task(run_worker(queue, backend, concurrency=1, scan_interval=0.3))
        try:
            while await backend.get_job_state(queue, job_id) != "completed":
                assert time.monotonic() - began < 90, "the stranded job never ran"
                assert not worker.done(), worker.exception() if worker.done() else None
                await asyncio.sleep(0.2)
            await asyncio.sleep(4 * REPAIR["repair_interval"] + 2)  # later repair passes re-send nothing
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        assert CALLS[key] == 1
        assert await backend.store.list_unsent(queue, time.time() + 60, 10) == []
    finally:
        await backend.close()


@asynccontextmanager
async def _queues_dropped(endpoint: str, prefix: str) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await drop_queues(endpoint, prefix)


@pytest.mark.elasticmq
@pytest.mark.redis
async def test_sqs_redis_job_of_a_killed_producer_runs_once(elasticmq_endpoint: str, redis_url: str) -> None:
    prefix = random_prefix()
    async with redis_stores(redis_url) as store, _queues_dropped(elasticmq_endpoint, prefix):
        kwargs = {"queue_prefix": prefix, "endpoint_url": elasticmq_endpoint, "region_name": REGION, "store": store}
        await _runs_once_after_repair("sqs", {**kwargs, "create_missing": True})


@pytest.mark.moto
async def test_sqs_dynamodb_job_of_a_killed_producer_runs_once(moto_endpoint: str) -> None:
    prefix, suffix = random_prefix(), uuid.uuid4().hex[:12]
    jobs, delays = f"t-jobs-{suffix}", f"t-delays-{suffix}"
    kwargs = {
        "queue_prefix": prefix,
        "endpoint_url": moto_endpoint,
        "region_name": REGION,
        "store": f"dynamodb://{jobs}",
        "delay_store": f"dynamodb://{delays}",
        "create_missing": True,
    }
    try:
        async with _queues_dropped(moto_endpoint, prefix):
            await _runs_once_after_repair("sqs", kwargs)
    finally:
        await drop_tables(moto_endpoint, jobs, delays)


@pytest.mark.kafka
@pytest.mark.redis
async def test_kafka_redis_job_of_a_killed_producer_runs_once(kafka_bootstrap: str, redis_url: str) -> None:
    prefix = random_prefix()
    async with redis_stores(redis_url) as store:
        kwargs = {"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix, "store": store}
        try:
            await _runs_once_after_repair("kafka", {**kwargs, "partitions": 2, "create_missing": True})
        finally:
            await drop_topics(kafka_bootstrap, prefix)
