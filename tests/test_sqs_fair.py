"""SQS fair queues: every reference carries its job's group as ``MessageGroupId``.

On each SQS emulator of the test bed (all keep and return the group on standard queues;
none reorders by it, so the fairness itself is SQS's on AWS and not tested here):

* the adds a producer makes (one job, a bulk, a native delay, a job without a tenant):
  read back from the queue with a plain SQS client, group by group;
* the sends the core makes without the job's record at hand (a dependency release, a
  retry's hand-over, ``retry_job``): their ``SendMessage``/``SendMessageBatch`` entries
  recorded on the backend's own client while an AsyncMQ worker runs the jobs;
* a FIFO queue: the group is the ordering group.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asyncmq.jobs import Job
from asyncmq.queues import Queue
from asyncmq.runners import run_worker

from asyncmq_cloud import SQSBackend
from asyncmq_cloud.transports._envelope import decode_envelope
from tests.plugins.backend_sqs import sqs_backend
from tests.tasks import add, echo, fail_always, flaky

QUEUE = "fair"


async def _groups_on_the_queue(backend: SQSBackend, count: int, timeout: float = 15) -> dict[str, str | None]:
    """Job id -> ``MessageGroupId`` of the next ``count`` messages, read with a plain client."""
    sqs = await backend.clients.sqs()
    url = (await sqs.get_queue_url(QueueName=backend.transport.queue_name(QUEUE)))["QueueUrl"]
    found: dict[str, str | None] = {}
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        reply = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageSystemAttributeNames=["MessageGroupId"]
        )
        for message in reply.get("Messages", []):
            job_id = decode_envelope(message["Body"], QUEUE)
            found[job_id] = message.get("Attributes", {}).get("MessageGroupId")
            await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


@contextmanager
def sent_groups(client: Any) -> Iterator[dict[str, list[str | None]]]:
    """Job id -> the group of each reference sent through ``client`` inside the block."""
    sent: dict[str, list[str | None]] = {}

    def record(params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("Entries") or [params]:
            job_id = decode_envelope(entry["MessageBody"], QUEUE)
            sent.setdefault(job_id, []).append(entry.get("MessageGroupId"))

    events = ("before-parameter-build.sqs.SendMessage", "before-parameter-build.sqs.SendMessageBatch")
    for event in events:
        client.meta.events.register(event, record)
    try:
        yield sent
    finally:
        for event in events:
            client.meta.events.unregister(event, record)


async def test_adds_carry_each_jobs_group(sqs_endpoint: str) -> None:
    async with sqs_backend(sqs_endpoint, store="memory://", create_missing=True, fair_key="kwargs.tenant") as backend:
        await backend.provision([QUEUE])
        queue = Queue(QUEUE, backend=backend)
        one = await queue.add(add.task_id, kwargs={"tenant": "acme"})
        spaced = await queue.add(add.task_id, kwargs={"tenant": "Acme Corp"})
        nobody = await queue.add(add.task_id, args=[1, 2])
        delayed = await queue.add(add.task_id, kwargs={"tenant": "delta"}, delay=1.0)
        bulk = [Job(add.task_id, [], {"tenant": f"t{i % 2}"}) for i in range(4)]
        await backend.bulk_enqueue(QUEUE, [job.to_dict() for job in bulk])
        groups = await _groups_on_the_queue(backend, 8)
    assert groups.pop(one) == "acme"
    assert groups.pop(nobody) is None
    assert groups.pop(delayed) == "delta"  # a native delay keeps the group
    hashed = groups.pop(spaced)
    assert hashed is not None and hashed.startswith("h-") and len(hashed) == 42
    assert groups == {job.id: f"t{i % 2}" for i, job in enumerate(bulk)}


async def test_sends_without_the_record_at_hand_read_the_group_from_the_store(elasticmq_endpoint: str) -> None:
    tenant = lambda job: (job.get("kwargs") or {}).get("key")  # noqa: E731  # a function works as well as a path
    async with sqs_backend(elasticmq_endpoint, store="memory://", create_missing=True, fair_key=tenant) as backend:
        await backend.provision([QUEUE])
        queue = Queue(QUEUE, backend=backend)
        parent = Job(echo.task_id, [], {"key": "p", "value": 1})
        child = Job(echo.task_id, [], {"key": "c", "value": 2}, depends_on=[parent.id])
        key = f"fair-{uuid.uuid4().hex}"
        with sent_groups(await backend.clients.sqs()) as sent:
            await backend.atomic_add_flow(QUEUE, [parent.to_dict(), child.to_dict()], [(parent.id, child.id)])
            retried = await queue.add(flaky.task_id, kwargs={"key": key, "fail_times": 1}, retries=2, backoff=0.1)
            failed = await queue.add(fail_always.task_id, kwargs={"key": key + "-f"})
            plain = await queue.add(add.task_id, args=[1, 1])
            worker = asyncio.create_task(run_worker(QUEUE, backend, concurrency=2, scan_interval=0.2))
            try:
                await _wait(
                    backend, {child.id: "completed", retried: "completed", failed: "failed", plain: "completed"}
                )
                assert await backend.retry_job(QUEUE, failed)
                await _wait(backend, {failed: "failed"}, after=sent, job=failed, sends=2)
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
    assert sent[parent.id] == ["p"]
    assert sent[child.id] == ["c"], "a dependency release sends the child with its group"
    assert sent[retried] == [key, key], "the retry's hand-over keeps the group"
    assert sent[failed] == [key + "-f", key + "-f"], "retry_job (no payload at hand) reads it from the store"
    assert sent[plain] == [None], "a job without a tenant has no group"


async def test_on_a_fifo_queue_the_group_orders_per_tenant(elasticmq_endpoint: str) -> None:
    async with sqs_backend(
        elasticmq_endpoint, store="memory://", create_missing=True, fifo=True, fair_key="kwargs.tenant"
    ) as backend:
        await backend.provision([QUEUE])
        queue = Queue(QUEUE, backend=backend)
        a = await queue.add(add.task_id, kwargs={"tenant": "a"})
        b = await queue.add(add.task_id, kwargs={"tenant": "b"})
        plain = await queue.add(add.task_id, args=[1, 1])
        groups = await _groups_on_the_queue(backend, 3)
    assert groups == {a: "a", b: "b", plain: QUEUE}, "without a tenant: fifo_group (the queue name)"


async def _wait(
    backend: SQSBackend,
    states: dict[str, str],
    timeout: float = 30,
    after: dict[str, list[str | None]] | None = None,
    job: str = "",
    sends: int = 0,
) -> None:
    """Until each job is in its state (and, with ``after``, ``job`` was sent ``sends`` times)."""
    deadline = time.monotonic() + timeout
    while True:
        now = {job_id: await backend.get_job_state(QUEUE, job_id) for job_id in states}
        if now == states and (after is None or len(after.get(job, [])) >= sends):
            return
        assert time.monotonic() < deadline, (now, after)
        await asyncio.sleep(0.1)
