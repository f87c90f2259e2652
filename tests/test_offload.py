"""The S3 claim check on real services: a 2 MB payload and a 1 MB result round-trip through an
AsyncMQ worker, and their S3 objects go with ``remove_job`` and with ``clean``.

Three set-ups, each a real S3 on a socket:

* ``SQSBackend`` + DynamoDB store, moto's SQS, DynamoDB and S3;
* ``DynamoDBBackend``, moto's DynamoDB and S3;
* ``SQSBackend`` + Redis store, LocalStack's SQS and S3.

And on moto: a crash between the body write and the record write leaves only an object under
the prefix the lifecycle rule expires; a payload above the hard limit writes nothing; a body
gone before the claim fails the job instead of running it without arguments; ``clean`` and
the state reads fetch no body.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncmq
import pytest
from asyncmq.queues import Queue
from asyncmq.runners import run_worker

from asyncmq_cloud import DynamoDBBackend, SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.core.records import new_job_record
from asyncmq_cloud.errors import PayloadTooLargeError
from asyncmq_cloud.resources.s3 import LIFECYCLE_RULE_ID
from asyncmq_cloud.stores._forwarding import ForwardingStore
from asyncmq_cloud.stores.offload import MARKER, OffloadingStore, S3Offload
from tests.plugins.backend_dynamodb import dynamodb_backend
from tests.plugins.backend_sqs import counted_calls, drop_queues, random_prefix, redis_stores, sqs_backend
from tests.plugins.store_dynamodb import drop_tables
from tests.support.tcp_proxy import proxied
from tests.tasks import CALLS, big

QUEUE = "offload"
PAYLOAD = 2 * 1024 * 1024
RESULT = 1024 * 1024
SETUPS = ["sqs+dynamodb@moto", "dynamodb@moto", "sqs+redis@localstack"]


@pytest.fixture(autouse=True)
def large_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """AsyncMQ refuses payloads above its own ``max_job_payload_bytes`` (1 MiB) before any backend
    sees them: an application that offloads raises it, as the docs say."""
    monkeypatch.setattr(asyncmq.monkay.settings, "max_job_payload_bytes", 32 * 1024 * 1024)


def _offload() -> S3Offload:
    return S3Offload(bucket=f"t-offload-{uuid.uuid4().hex[:12]}", prefix="jobs/")


@asynccontextmanager
async def _backend(setup: str, request: pytest.FixtureRequest, offload: S3Offload) -> AsyncIterator[CloudBackend]:
    if setup == "dynamodb@moto":
        async with dynamodb_backend(request.getfixturevalue("moto_endpoint"), offload=offload) as backend:
            yield backend
        return
    if setup == "sqs+redis@localstack":
        async with redis_stores(request.getfixturevalue("redis_url")) as store:
            endpoint = request.getfixturevalue("localstack_endpoint")
            async with sqs_backend(endpoint, store=store, create_missing=True, offload=offload) as backend:
                yield backend
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    suffix = uuid.uuid4().hex[:12]
    jobs, delays = f"t-jobs-{suffix}", f"t-delays-{suffix}"
    try:
        async with sqs_backend(
            endpoint, store=f"dynamodb://{jobs}", delay_store=f"dynamodb://{delays}", create_missing=True,
            offload=offload,
        ) as backend:  # fmt: skip
            yield backend
    finally:
        await drop_tables(endpoint, jobs, delays)


@asynccontextmanager
async def offloading(setup: str, request: pytest.FixtureRequest) -> AsyncIterator[CloudBackend]:
    """A started backend of ``setup`` with the claim check on a fresh bucket; the bucket emptied and dropped after."""
    offload = _offload()
    async with _backend(setup, request, offload) as backend:
        await backend.provision([QUEUE])
        try:
            yield backend
        finally:
            await _drop_bucket(backend, offload.bucket)


async def _s3(backend: CloudBackend) -> Any:
    return await _store(backend).bodies.clients.client("s3")


def _store(backend: CloudBackend) -> OffloadingStore:
    store = backend.store
    assert isinstance(store, OffloadingStore)
    return store


async def _keys(backend: CloudBackend, prefix: str = "") -> list[str]:
    store = _store(backend)
    reply = await (await _s3(backend)).list_objects_v2(Bucket=store.offload.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in reply.get("Contents", ()))


async def _drop_bucket(backend: CloudBackend, bucket: str) -> None:
    with contextlib.suppress(Exception):
        s3 = await _s3(backend)
        for key in await _keys(backend):
            await s3.delete_object(Bucket=bucket, Key=key)
        await s3.delete_bucket(Bucket=bucket)


async def _wait_states(backend: CloudBackend, wanted: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = {job_id: await backend.get_job_state(QUEUE, job_id) for job_id in wanted}
        if now == wanted:
            return
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.2)


@asynccontextmanager
async def worker(backend: CloudBackend) -> AsyncIterator[None]:
    task = asyncio.create_task(run_worker(QUEUE, backend, concurrency=2, scan_interval=0.2))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@pytest.mark.parametrize("setup", SETUPS)
async def test_a_2mb_payload_and_a_1mb_result_round_trip_and_go_with_the_job(
    setup: str, request: pytest.FixtureRequest
) -> None:
    async with offloading(setup, request) as backend:
        store = _store(backend)
        queue = Queue(QUEUE, backend=backend)
        keys = [f"{uuid.uuid4().hex}-" + "p" * PAYLOAD for _ in range(3)]
        ids = [await queue.add(big.task_id, kwargs={"key": key, "size": RESULT}) for key in keys]

        raw = await store.inner.get(QUEUE, ids[0])
        assert raw is not None and set(raw.payload[MARKER]) == {"args"}, "the arguments live in S3"
        assert "kwargs" not in raw.payload and len(str(raw.payload)) < 4096, "the record keeps metadata only"
        first = store.bodies.job_prefix(QUEUE, ids[0])
        assert len(await _keys(backend, first)) == 1

        async with worker(backend):
            await _wait_states(backend, dict.fromkeys(ids, "completed"))

        for job_id, key in zip(ids, keys, strict=True):
            assert await backend.get_job_result(QUEUE, job_id) == "x" * RESULT
            job = await backend.get_job(QUEUE, job_id)
            assert job is not None and job["kwargs"] == {"key": key, "size": RESULT} and MARKER not in job
        raw = await store.inner.get(QUEUE, ids[0])
        assert raw is not None and set(raw.payload[MARKER]) == {"args", "result"} and "result" not in raw.payload
        listed = {job["id"]: job for job in await backend.list_jobs(QUEUE, "completed")}
        assert listed[ids[1]]["result"] == "x" * RESULT and listed[ids[1]]["kwargs"]["key"] == keys[1]
        assert len(await _keys(backend, first)) == 2, "one body for the arguments, one for the result"

        assert await backend.remove_job(QUEUE, ids[0])
        assert await _keys(backend, first) == [], "remove_job deletes the job's bodies"
        assert await store.inner.get(QUEUE, ids[0]) is None

        with counted_calls(await _s3(backend)) as calls:
            await queue.clean("completed")
        assert await backend.list_jobs(QUEUE, "completed") == []
        assert await _keys(backend) == [], "clean deletes the bodies of every job it removes"
        assert calls["s3.GetObject"] == 0, "clean reads no body"


async def test_clean_jobs_and_the_state_reads_fetch_no_body(moto_endpoint: str, request: pytest.FixtureRequest) -> None:
    async with offloading("dynamodb@moto", request) as backend:
        queue = Queue(QUEUE, backend=backend)
        job_id = await queue.add(big.task_id, kwargs={"key": "p" * PAYLOAD, "size": 10})
        with counted_calls(await _s3(backend)) as calls:
            assert await backend.get_job_state(QUEUE, job_id) == "waiting"
            assert not await backend.is_job_cancelled(QUEUE, job_id)
        assert calls["s3.GetObject"] == 0, calls
        await backend.update_job_state(QUEUE, job_id, "completed")
        with counted_calls(await _s3(backend)) as calls:
            assert await backend.clean_jobs(QUEUE, state="completed") == [job_id]
        assert calls["s3.GetObject"] == 0 and calls["s3.DeleteObjects"] == 1, calls
        assert await _keys(backend) == []


async def test_a_crash_between_the_body_and_the_record_leaves_only_an_object_the_lifecycle_rule_expires(
    moto_endpoint: str, request: pytest.FixtureRequest
) -> None:
    class Crashing(ForwardingStore):
        async def create(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the process died before the record was written")

    async with offloading("dynamodb@moto", request) as backend:
        store = _store(backend)
        crashing = OffloadingStore(Crashing(store.inner), store.offload, clients=store.bodies.clients)
        await crashing.start()
        record = new_job_record(QUEUE, {"id": "orphan", "task": big.task_id, "kwargs": {"key": "p" * PAYLOAD}}, [])
        with pytest.raises(RuntimeError):
            await crashing.create([record])
        assert await store.inner.get(QUEUE, "orphan") is None, "no record"
        orphans = await _keys(backend)
        assert len(orphans) == 1 and orphans[0].startswith(store.offload.prefix), orphans
        rules = (await (await _s3(backend)).get_bucket_lifecycle_configuration(Bucket=store.offload.bucket))["Rules"]
        rule = next(rule for rule in rules if rule["ID"] == LIFECYCLE_RULE_ID)
        assert rule["Status"] == "Enabled" and rule["Expiration"]["Days"] == store.offload.expire_days
        prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix"))
        assert prefix == store.offload.prefix, "the rule covers every body and nothing else"


async def test_a_payload_above_the_hard_limit_writes_nothing(moto_endpoint: str) -> None:
    offload = S3Offload(bucket=f"t-offload-{uuid.uuid4().hex[:12]}", threshold=1024, max_payload_bytes=100_000)
    async with dynamodb_backend(moto_endpoint, offload=offload) as backend:
        await backend.provision([QUEUE])
        try:
            queue = Queue(QUEUE, backend=backend)
            with pytest.raises(PayloadTooLargeError) as raised:
                await queue.add(big.task_id, kwargs={"key": "p" * 200_000, "size": 1})
            assert raised.value.limit == 100_000 and raised.value.size > 200_000
            assert await _keys(backend) == [] and await backend.list_jobs(QUEUE, "waiting") == []
        finally:
            await _drop_bucket(backend, offload.bucket)


async def test_a_body_gone_before_the_claim_fails_the_job_instead_of_running_it(
    moto_endpoint: str, request: pytest.FixtureRequest
) -> None:
    async with offloading("sqs+dynamodb@moto", request) as backend:
        store = _store(backend)
        queue = Queue(QUEUE, backend=backend)
        key = f"gone-{uuid.uuid4().hex}-" + "p" * PAYLOAD
        job_id = await queue.add(big.task_id, kwargs={"key": key, "size": 1})
        s3 = await _s3(backend)
        for key in await _keys(backend):
            await s3.delete_object(Bucket=store.offload.bucket, Key=key)
        async with worker(backend):
            await _wait_states(backend, {job_id: "failed"})
        job = await backend.get_job(QUEUE, job_id)
        assert job is not None and "gone from S3" in str(job.get("last_error")), job
        assert CALLS[key] == 0 and job.get("result") is None, "the task never ran"


def test_the_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="below"):
        DynamoDBBackend(offload=S3Offload(bucket="b-1", threshold=500_000))
    with pytest.raises(ValueError, match="s3://"):
        SQSBackend(store="memory://", offload="https://bucket/prefix")
    backend = SQSBackend(store="memory://", delay_store="memory://", offload="s3://my-bucket/a/b")
    assert isinstance(backend.store, OffloadingStore) and backend.store.offload.prefix == "a/b/"
    assert not isinstance(SQSBackend(store="memory://").store, OffloadingStore), "off unless asked for"


async def test_s3_away_at_the_claim_gives_the_job_back_and_it_runs_when_s3_returns(
    moto_endpoint: str, elasticmq_endpoint: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 behind a proxy that is cut after the add: the claim cannot read the arguments, so the
    job goes back to ``waiting`` at once (not held until its 600 s lease runs out), and runs
    as soon as S3 answers again."""
    target = urlsplit(moto_endpoint)
    offload, prefix = _offload(), random_prefix()
    with proxied(str(target.hostname), int(target.port or 80)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", elasticmq_endpoint)
        async with redis_stores(redis_url) as store:
            backend = SQSBackend(
                queue_prefix=prefix, store=store, create_missing=True, region_name="us-east-1", offload=offload,
                config=LifecycleConfig(receive_wait=0.5, lease_timeout=600), max_attempts=2,
            )  # fmt: skip
            try:
                await backend.provision([QUEUE])
                key = f"outage-{uuid.uuid4().hex}-" + "p" * 300_000
                job_id = await Queue(QUEUE, backend=backend).add(big.task_id, kwargs={"key": key, "size": 5})
                proxy.cut()
                async with worker(backend):
                    await asyncio.sleep(3)  # claims fail meanwhile
                    assert CALLS[key] == 0, "the task cannot have run without its arguments"
                    proxy.restore()
                    await _wait_states(backend, {job_id: "completed"}, timeout=60)
                assert CALLS[key] == 1
            finally:
                with contextlib.suppress(Exception):
                    proxy.restore()
                    await _drop_bucket(backend, offload.bucket)
                await backend.close()
                await drop_queues(elasticmq_endpoint, prefix)
