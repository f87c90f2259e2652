"""With ``create_missing=False`` the backends call nothing outside the runtime IAM policy.

Each backend runs a workload that reaches every kind of call a running app makes:
plain, delayed, retried, failed and bulk adds, a flow, cancel, remove, retry, pause
and resume, listings, counts and broker depth, the worker's scans, and (SQS) a poison
message that goes to the dead-letter queue. The AWS endpoint is the embedded moto server
(a real server on a socket) with a recording middleware in front of its app: every
request's operation and the table, index or queue it names is turned into the IAM actions
and ARNs it needs (``TransactWriteItems`` per item) and checked against the runtime document
``asyncmq-cloud provision --print-iam`` prints for the same backend. Kafka requests are
recorded through the backend's own observation hook: none may create or delete anything.
The tables, queues and topics come from a second backend with ``create_missing=True``
(its calls are not recorded); the provisioning document must cover those.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import html
import io
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
from asyncmq.flow import FlowProducer
from asyncmq.jobs import Job
from asyncmq.queues import Queue
from asyncmq.runners import run_worker

from asyncmq_cloud import DynamoDBBackend, KafkaBackend, SQSBackend, observe
from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.commands.demo._moto import threaded_moto
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.resources import KafkaTopicSpec
from asyncmq_cloud.resources.iam import KAFKA_REQUEST_ACTIONS, Scope, call_actions, policies
from asyncmq_cloud.stores.offload import S3Offload
from tests.tasks import add, echo, fail_always, flaky

QUEUE = "iam"
BODIES = "bodies/"
SCOPE = Scope(region="us-east-1", account="123456789012")  # moto's account
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
MSK_CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/asyncmq/00000000-1111-2222-3333-444444444444-1"


class Recorder:
    """WSGI middleware: (service, operation, parameters) of every request while ``on``."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.on, self.calls, self.lock = app, False, [], threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if self.on and "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
            with self.lock:
                self.calls.append(("s3", *_s3_call(environ, body)))
        elif self.on:
            service = "dynamodb" if target.startswith("DynamoDB") else "sqs" if target.startswith("AmazonSQS") else "?"
            params = json.loads(body or b"{}") if service != "?" else {"raw": target or environ.get("PATH_INFO")}
            with self.lock:
                self.calls.append((service, target.rpartition(".")[2], params))
        environ = dict(environ, **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        return self.app(environ, start_response)


#: S3 bucket sub-resources (``?lifecycle``) -> the operation, by HTTP method.
_BUCKET_OPERATIONS = {
    ("PUT", ""): "CreateBucket",
    ("PUT", "publicAccessBlock"): "PutPublicAccessBlock",
    ("PUT", "encryption"): "PutBucketEncryption",
    ("PUT", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("GET", "lifecycle"): "GetBucketLifecycleConfiguration",
    ("GET", "list-type"): "ListObjectsV2",
    ("POST", "delete"): "DeleteObjects",
}
_OBJECT_OPERATIONS = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}


def _s3_call(environ: dict[str, Any], body: bytes) -> tuple[str, dict[str, Any]]:
    """(operation, {"resources": ARNs, "prefix": ...}) of one path-style S3 request."""
    method, query = environ["REQUEST_METHOD"], parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
    if key:
        return _OBJECT_OPERATIONS[method], {"resources": [f"arn:aws:s3:::{bucket}/{key}"]}
    operation = next((op for (m, sub), op in _BUCKET_OPERATIONS.items() if m == method and sub in query), None)
    operation = operation or _BUCKET_OPERATIONS[(method, "")]
    if operation == "DeleteObjects":  # authorised as s3:DeleteObject on each key
        keys = re.findall(rb"<Key>([^<]*)</Key>", body)
        return operation, {"resources": [f"arn:aws:s3:::{bucket}/{html.unescape(k.decode())}" for k in keys]}
    return operation, {"resources": [f"arn:aws:s3:::{bucket}"], "prefix": query.get("prefix", [""])[0]}


def _tables(params: dict[str, Any]) -> list[str]:
    """The table (or ``table/index/NAME``) resources one DynamoDB request names."""
    names = [params["TableName"]] if "TableName" in params else []
    names += list(params.get("RequestItems", {}))
    names += [body["TableName"] for item in params.get("TransactItems", []) for body in item.values()]
    if "IndexName" in params:
        names = [f"{params['TableName']}/index/{params['IndexName']}"]
    return [SCOPE.arn("dynamodb", f"table/{name}") for name in names]


def _queues(params: dict[str, Any]) -> list[str]:
    name = params.get("QueueName") or str(params.get("QueueUrl", "")).rstrip("/").rpartition("/")[2]
    return [SCOPE.arn("sqs", name)]


def needed(calls: list[tuple[str, str, dict[str, Any]]]) -> set[tuple[str, str]]:
    """Every (IAM action, ARN) the recorded calls needed."""
    pairs = set()
    for service, operation, params in calls:
        assert service != "?", f"a request outside SQS, DynamoDB and S3: {params}"
        if service == "s3":
            resources = params["resources"]
        else:
            resources = _tables(params) if service == "dynamodb" else _queues(params)
        assert resources, f"{service}:{operation} named no resource: {params}"
        pairs |= {(a, r) for a in call_actions(service, operation, params) for r in resources}
    return pairs


def refused(pairs: set[tuple[str, str]], document: dict[str, Any]) -> list[tuple[str, str]]:
    """The pairs no statement of ``document`` allows (IAM's ``*`` matching)."""
    statements = document["Statement"]
    return sorted(
        (action, arn)
        for action, arn in pairs
        if not any(
            action in s["Action"] and any(fnmatch.fnmatchcase(arn, r) for r in s["Resource"]) for s in statements
        )
    )


class KafkaCalls(observe.BaseObserver):
    def __init__(self) -> None:
        self.operations: set[str] = set()

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        if service == "kafka":
            self.operations.add(operation)


def build(kind: str, prefix: str, clients: AwsClients, bootstrap: str | None, create: bool) -> CloudBackend:
    """The backend of ``kind``, with the S3 claim check on (a 4 KiB threshold) so its calls are recorded too."""
    jobs, delays = f"dynamodb://{prefix}jobs", f"dynamodb://{prefix}delays"
    config = LifecycleConfig(receive_wait=0.3)
    offload = S3Offload(bucket=f"{prefix}bodies", prefix=BODIES, threshold=4096)
    if kind == "sqs":
        return SQSBackend(
            queue_prefix=prefix, store=jobs, delay_store=delays, clients=clients, create_missing=create,
            priority_lanes=2, config=config, offload=offload,
        )  # fmt: skip
    if kind == "dynamodb":
        return DynamoDBBackend(
            table=f"{prefix}jobs", delay_store=delays, clients=clients, create_missing=create, config=config,
            offload=offload,
        )  # fmt: skip
    assert bootstrap is not None
    return KafkaBackend(
        bootstrap_servers=bootstrap, topic_prefix=prefix, store=jobs, delay_store=delays, clients=clients,
        create_missing=create, partitions=2, config=config, offload=offload,
    )  # fmt: skip


@asynccontextmanager
async def recorded(kind: str, bootstrap: str | None) -> AsyncIterator[tuple[CloudBackend, Recorder, list[Any]]]:
    """A provisioned runtime backend on a recording embedded moto; the specs provisioning made."""
    recorders: list[Recorder] = []

    def wrap(app: Callable[..., Iterable[bytes]]) -> Recorder:
        recorders.append(Recorder(app))
        return recorders[-1]

    prefix = f"iam-{uuid.uuid4().hex[:6]}-"
    with threaded_moto(wrap=wrap) as url:
        clients = AwsClients(endpoint_url=url, region_name="us-east-1", client_kwargs=CREDENTIALS)
        admin = build(kind, prefix, clients, bootstrap, create=True)
        backend = build(kind, prefix, clients, bootstrap, create=False)
        try:
            await admin.provision([QUEUE])
            specs = admin.resources([QUEUE])
            recorders[0].on = True
            yield backend, recorders[0], specs
        finally:
            recorders[0].on = False
            for each in (backend, admin):
                with contextlib.suppress(Exception):
                    await each.close()
            await clients.close()


async def _settled(backend: CloudBackend, ids: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {name: await backend.get_job_state(QUEUE, job_id) for name, job_id in ids.items()}
        if all(state in ("completed", "failed") for state in states.values()):
            return
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.2)


async def workload(backend: CloudBackend, poison: Callable[[], Any] | None) -> None:
    """Every kind of call a running app makes, through AsyncMQ's own API and worker."""
    queue = Queue(QUEUE, backend=backend)
    worker = asyncio.create_task(run_worker(QUEUE, backend, concurrency=2, scan_interval=0.3))
    try:
        ids = {
            "plain": await queue.add(add.task_id, args=[1, 2]),
            "urgent": await queue.add(add.task_id, args=[1, 2], priority=1),
            "delayed": await queue.add(add.task_id, args=[2, 3], delay=1.0),
            "retried": await queue.add(flaky.task_id, args=[f"iam-{uuid.uuid4().hex}", 1], retries=2, backoff=0.2),
            "failed": await queue.add(fail_always.task_id, args=["iam"]),
        }
        bulk = [Job(add.task_id, [i, i], {}) for i in range(3)]  # Queue.add_bulk adds one by one
        await backend.bulk_enqueue(QUEUE, [job.to_dict() for job in bulk])
        ids |= {f"bulk{i}": job.id for i, job in enumerate(bulk)}
        parent = Job(add.task_id, [1, 1], {})
        child = Job(add.task_id, [2, 2], {}, depends_on=[parent.id])
        await FlowProducer(backend).add_flow(QUEUE, [parent, child])
        ids |= {"parent": parent.id, "child": child.id}
        ids["large"] = await queue.add(echo.task_id, kwargs={"key": f"iam-{uuid.uuid4().hex}", "value": "v" * 20_000})
        doomed = [await queue.add(add.task_id, args=[0, 0], delay=600) for _ in range(2)]
        doomed.append(await queue.add(echo.task_id, kwargs={"key": "iam", "value": "v" * 20_000}, delay=600))
        assert await backend.cancel_job(QUEUE, doomed[0])
        assert await backend.remove_job(QUEUE, doomed[1])
        assert await backend.remove_job(QUEUE, doomed[2]), "removes a job whose arguments are in S3"
        if poison is not None:
            await poison()
        await _settled(backend, ids)
        assert await backend.get_job_result(QUEUE, ids["large"]) == "v" * 20_000, "a result in S3, read back"
        await backend.pause_queue(QUEUE)
        assert await backend.is_queue_paused(QUEUE)
        await backend.resume_queue(QUEUE)
        assert await backend.retry_job(QUEUE, ids["failed"])
        await _settled(backend, {"failed": ids["failed"]})
        for state in ("completed", "failed", "waiting", "delayed", "active"):
            await backend.list_jobs(QUEUE, state)
        assert (await backend.get_job_counts(QUEUE, "completed"))["completed"] >= 8
        await backend.queue_stats(QUEUE)
        await backend.broker_stats(QUEUE)
        assert QUEUE in await backend.list_queues()
        await asyncio.sleep(1.0)  # one more round of the worker's scans
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker


def _check(kind: str, recorder: Recorder, specs: list[Any]) -> set[str]:
    documents = policies(specs, SCOPE)
    calls = list(recorder.calls)
    assert calls, "nothing was recorded: the middleware is not in front of the endpoint"
    pairs = needed(calls)
    assert refused(pairs, documents["runtime"]) == [], f"{kind}: calls outside the runtime policy"
    listed = [params["prefix"] for service, operation, params in calls if operation == "ListObjectsV2"]
    assert listed and all(prefix.startswith(BODIES) for prefix in listed), f"s3:prefix condition: {listed}"
    return {action for action, _ in pairs}


@pytest.mark.parametrize("kind", ["sqs", "dynamodb"])
async def test_runtime_calls_stay_inside_the_runtime_policy(kind: str) -> None:
    async with recorded(kind, None) as (backend, recorder, specs):

        async def poison() -> None:
            sqs = await backend.clients.sqs()  # type: ignore[attr-defined]
            url = (await sqs.get_queue_url(QueueName=backend.transport.queue_name(QUEUE)))["QueueUrl"]  # type: ignore[attr-defined]
            recorder.on = False  # the test's own send, not the backend's
            try:
                await sqs.send_message(QueueUrl=url, MessageBody="not a job reference")
            finally:
                recorder.on = True

        await workload(backend, poison if kind == "sqs" else None)
        used = _check(kind, recorder, specs)
    expected = {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"}
    expected |= {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"}
    if kind == "sqs":
        expected |= {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    assert expected <= used, f"the workload did not reach {sorted(expected - used)}"


@pytest.mark.kafka
async def test_kafka_runtime_calls_stay_inside_the_runtime_policy(kafka_bootstrap: str) -> None:
    kafka = KafkaCalls()
    async with recorded("kafka", kafka_bootstrap) as (backend, recorder, specs):
        observe.subscribe(kafka)
        try:
            await workload(backend, None)
        finally:
            observe.unsubscribe(kafka)
        used = _check("kafka", recorder, specs)
    assert {"dynamodb:Query", "dynamodb:UpdateItem", "s3:PutObject", "s3:GetObject", "s3:DeleteObject"} <= used
    assert {"Produce", "Fetch", "OffsetCommit"} <= kafka.operations, kafka.operations
    assert "CreateTopics" not in kafka.operations
    # Each Kafka request's MSK actions, on the queue's topic and group, against the runtime
    # document for an MSK cluster (the backend connects without IAM here; the actions are the same).
    scope = Scope(region="us-east-1", account="123456789012", msk_cluster_arn=MSK_CLUSTER)
    topic = next(s for s in specs if isinstance(s, KafkaTopicSpec))
    resource = {"Group": scope.kafka("group", topic.group), "Data": scope.kafka("topic", topic.name)}
    resource["Topic"] = resource["Data"]
    pairs = set()
    for operation in kafka.operations:
        assert operation in KAFKA_REQUEST_ACTIONS, f"no MSK action known for Kafka request {operation}"
        for action in KAFKA_REQUEST_ACTIONS[operation]:
            pairs.add((action, next(arn for suffix, arn in resource.items() if action.endswith(suffix))))
    documents = policies(specs, scope)
    assert refused(pairs, documents["runtime"]) == []


@pytest.mark.parametrize("kind", ["sqs", "dynamodb"])
async def test_provisioning_calls_stay_inside_the_provisioning_policy(kind: str) -> None:
    recorders: list[Recorder] = []

    def wrap(app: Callable[..., Iterable[bytes]]) -> Recorder:
        recorders.append(Recorder(app))
        recorders[-1].on = True
        return recorders[-1]

    prefix = f"iam-{uuid.uuid4().hex[:6]}-"
    with threaded_moto(wrap=wrap) as url:
        clients = AwsClients(endpoint_url=url, region_name="us-east-1", client_kwargs=CREDENTIALS)
        admin = build(kind, prefix, clients, None, create=True)
        try:
            await admin.provision([QUEUE])
            specs = admin.resources([QUEUE])
        finally:
            await admin.close()
            await clients.close()
    documents = policies(specs, SCOPE)
    pairs = needed(recorders[0].calls)
    both = {"Statement": documents["runtime"]["Statement"] + documents["provisioning"]["Statement"]}
    assert refused(pairs, both) == []
    creates = {action for action, _ in pairs if ":Create" in action}
    wanted = {"dynamodb:CreateTable", "s3:CreateBucket"} | ({"sqs:CreateQueue"} if kind == "sqs" else set())
    assert creates == wanted
    assert creates <= {action for action, _ in refused(pairs, documents["runtime"])}, (
        "the runtime policy creates nothing"
    )
