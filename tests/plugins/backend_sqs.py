"""SQS fixtures: ``SQSBackend`` variants of the contract suite and SQS helpers.

* ``sqs_elasticmq_backend``: SQS on ElasticMQ, Redis state store + Redis delay store;
* ``sqs_moto_backend``: SQS and DynamoDB (state + delay store) on the same moto server,
  the stores built from ``dynamodb://`` URLs over the backend's one shared ``AwsClients``;
* ``sqs_ministack_backend``: the same on one MiniStack server (a second emulator of both);
* ``sqs_localstack_backend``: SQS on LocalStack (host mode), Redis stores, long polling;
* ``sqs_localstack_provisioned_backend``: the same, but its queues are created beforehand by
  provisioning (what ``asyncmq-cloud provision`` runs) and the backend runs with
  ``create_missing=False``.

Every backend gets a random queue prefix (``t{hex8}-``) and creates its queues on first
use (``create_missing``); afterwards exactly the queues under that prefix, the tables and
the Redis keys it used are deleted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from asyncmq.runners import run_worker

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.backends.sqs import SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from tests.plugins.store_dynamodb import drop_tables
from tests.plugins.store_redis import drop_prefix

REGION = "us-east-1"
#: The SQS implementations the SQS suites run on, with their endpoint fixtures.
SQS_EMULATORS = [
    pytest.param("elasticmq", marks=pytest.mark.elasticmq),
    pytest.param("moto", marks=pytest.mark.moto),
    pytest.param("localstack", marks=pytest.mark.localstack),
    pytest.param("ministack", marks=pytest.mark.ministack),
]


def random_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}-"


async def drop_queues(endpoint: str, prefix: str) -> None:
    """Delete every SQS queue whose name starts with ``prefix`` (never any other)."""
    async with AwsClients(endpoint_url=endpoint, region_name=REGION) as clients:
        sqs = await clients.sqs()
        urls: list[str] = []
        token: dict[str, Any] = {}
        while True:
            reply = await sqs.list_queues(QueueNamePrefix=prefix, MaxResults=1000, **token)
            urls += reply.get("QueueUrls", [])
            if not reply.get("NextToken"):
                break
            token = {"NextToken": reply["NextToken"]}
        for url in urls:
            if url.rsplit("/", 1)[-1].startswith(prefix):
                try:
                    await sqs.delete_queue(QueueUrl=url)
                except Exception:  # already gone
                    pass


@asynccontextmanager
async def sqs_backend(endpoint: str, *, receive_wait: float = 0.5, **kwargs: Any) -> AsyncIterator[SQSBackend]:
    """A started ``SQSBackend`` on ``endpoint`` with a random queue prefix; queues dropped afterwards."""
    prefix = kwargs.pop("queue_prefix", None) or random_prefix()
    backend = SQSBackend(
        queue_prefix=prefix,
        endpoint_url=endpoint,
        region_name=REGION,
        config=LifecycleConfig(receive_wait=receive_wait),
        **kwargs,
    )
    try:
        await backend.start()
        yield backend
    finally:
        try:
            await backend.close()
        finally:
            await drop_queues(endpoint, prefix)


async def run_until_completed(backend: SQSBackend, queue: str, jobs: int, concurrency: int) -> None:
    """AsyncMQ's worker on ``queue`` until ``jobs`` jobs are completed (60 s at most), then stopped.

    Completed, not only run: a job whose task returned is acked only after its completion write."""
    worker = asyncio.create_task(run_worker(queue, backend=backend, concurrency=concurrency))
    try:
        deadline = time.monotonic() + 60
        while (completed := (await backend.get_job_counts(queue, "completed"))["completed"]) < jobs:
            assert time.monotonic() < deadline, f"{completed} of {jobs} completed in 60 s"
            assert not worker.done(), worker
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


@asynccontextmanager
async def redis_stores(redis_url: str) -> AsyncIterator[str]:
    """A ``redis://...?prefix=P`` store URL on a fresh prefix; its keys are deleted afterwards."""
    prefix = f"t-sqs-{uuid.uuid4().hex[:12]}"
    try:
        yield f"{redis_url}?prefix={prefix}"
    finally:
        await drop_prefix(redis_url, prefix)


@pytest.fixture
async def sqs_elasticmq_backend(elasticmq_endpoint: str, redis_url: str) -> AsyncIterator[SQSBackend]:
    async with (
        redis_stores(redis_url) as store,
        sqs_backend(elasticmq_endpoint, store=store, create_missing=True) as backend,
    ):
        yield backend


@pytest.fixture
async def sqs_localstack_backend(localstack_endpoint: str, redis_url: str) -> AsyncIterator[SQSBackend]:
    async with (
        redis_stores(redis_url) as store,
        sqs_backend(localstack_endpoint, store=store, create_missing=True, receive_wait=1.0) as backend,
    ):
        yield backend


@pytest.fixture
async def sqs_localstack_provisioned_backend(
    localstack_endpoint: str, redis_url: str, qname: str
) -> AsyncIterator[SQSBackend]:
    """LocalStack queues created beforehand by provisioning; the backend then runs with
    ``create_missing=False``: it creates nothing itself.

    Provisioning runs in this process, through what ``asyncmq-cloud provision --queue Q``
    runs (``CloudBackend.provision`` of a backend built like the e2e app's): a CLI process
    per test cost seconds of CPU each. The command itself is tested on LocalStack with that
    app's settings in ``tests/test_cli.py``.
    """
    async with redis_stores(redis_url) as store:
        prefix = random_prefix()
        provisioner = SQSBackend(
            queue_prefix=prefix, store=store, delay_store=store, endpoint_url=localstack_endpoint, region_name=REGION
        )
        try:
            await provisioner.provision([qname])
        finally:
            await provisioner.close()
        try:
            async with sqs_backend(
                localstack_endpoint, store=store, queue_prefix=prefix, create_missing=False, receive_wait=1.0
            ) as backend:
                yield backend
        finally:
            await drop_queues(localstack_endpoint, prefix)


@asynccontextmanager
async def sqs_dynamodb_backend(endpoint: str) -> AsyncIterator[SQSBackend]:
    """SQS and the DynamoDB state and delay stores on one emulator; the tables dropped afterwards."""
    suffix = uuid.uuid4().hex[:12]
    jobs, delays = f"t-jobs-{suffix}", f"t-delays-{suffix}"
    try:
        async with sqs_backend(
            endpoint, store=f"dynamodb://{jobs}", delay_store=f"dynamodb://{delays}", create_missing=True
        ) as backend:
            yield backend
    finally:
        await drop_tables(endpoint, jobs, delays)


@pytest.fixture
async def sqs_moto_backend(moto_endpoint: str) -> AsyncIterator[SQSBackend]:
    async with sqs_dynamodb_backend(moto_endpoint) as backend:
        yield backend


@pytest.fixture
async def sqs_ministack_backend(ministack_endpoint: str) -> AsyncIterator[SQSBackend]:
    async with sqs_dynamodb_backend(ministack_endpoint) as backend:
        yield backend


@pytest.fixture(params=SQS_EMULATORS)
def sqs_endpoint(request: pytest.FixtureRequest) -> str:
    """The endpoint of each SQS implementation in turn."""
    return str(request.getfixturevalue(f"{request.param}_endpoint"))


@contextmanager
def counted_calls(*clients: Any) -> Iterator[Counter[str]]:
    """API calls made through ``clients`` inside the block, as ``{"sqs.SendMessageBatch": n, ...}``.

    Hooks aiobotocore's event system: ``before-parameter-build`` fires once per API call
    (botocore's retries of that call are not counted: they are one billed request each, but
    not one decision of the code under test).
    """
    calls: Counter[str] = Counter()
    hooks = []
    for client in clients:
        prefix = client.meta.service_model.service_name

        def record(model: Any, _prefix: str = prefix, **_: Any) -> None:
            calls[f"{_prefix}.{model.name}"] += 1

        client.meta.events.register(f"before-parameter-build.{prefix}", record)
        hooks.append((client, f"before-parameter-build.{prefix}", record))
    try:
        yield calls
    finally:
        for client, event, record in hooks:
            client.meta.events.unregister(event, record)
