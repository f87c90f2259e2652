"""``SQSTransport`` and ``SQSBackend`` on three real SQS implementations (ElasticMQ, moto, LocalStack).

Each test that needs a server is parametrized over ``sqs_endpoint`` (see
``tests/plugins/backend_sqs.py``); every queue gets a random prefix and is deleted
afterwards. Tests without a server (names, URLs, presets) come last.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asyncmq.flow import FlowProducer
from asyncmq.jobs import Job
from asyncmq.queues import Queue
from asyncmq.workers import handle_job

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.backends._urls import parse_store_url
from asyncmq_cloud.backends.sqs import SQSBackend
from asyncmq_cloud.core.protocols import Delivery
from asyncmq_cloud.errors import ConfigurationError, InvalidNameError, ResourceMissingError
from asyncmq_cloud.transports._sqs_messages import ERROR_ATTRIBUTE, fifo_ids
from asyncmq_cloud.transports.sqs import MAX_VISIBILITY_SECONDS, SQSTransport
from tests import tasks
from tests.plugins.backend_sqs import REGION, counted_calls, drop_queues, random_prefix, sqs_backend
from tests.plugins.store_dynamodb import drop_tables

T = "tests.tasks."


@asynccontextmanager
async def transport_on(endpoint: str, **options: Any) -> AsyncIterator[SQSTransport]:
    """A started transport with a random prefix on caller-owned clients; its queues dropped afterwards."""
    prefix = random_prefix()
    clients = AwsClients(endpoint_url=endpoint, region_name=REGION)
    transport = SQSTransport(clients=clients, queue_prefix=prefix, **options)
    try:
        await transport.start()
        yield transport
    finally:
        try:
            await transport.close()
        finally:
            await clients.close()
            await drop_queues(endpoint, prefix)


async def url_of(transport: SQSTransport, name: str) -> str:
    sqs = await transport.clients.sqs()
    return (await sqs.get_queue_url(QueueName=name))["QueueUrl"]


async def receive_n(transport: SQSTransport, queue: str, n: int, timeout: float = 10.0) -> list[Delivery]:
    """Receive until ``n`` deliveries arrived (bounded)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += await transport.receive(queue, n - len(got), 1)
    return got


async def raw_counts(transport: SQSTransport, name: str) -> int:
    sqs = await transport.clients.sqs()
    attrs = await sqs.get_queue_attributes(QueueUrl=await url_of(transport, name), AttributeNames=["All"])
    a = attrs["Attributes"]
    return sum(int(a.get(k, "0")) for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"))


# -- batching ----------------------------------------------------------------------------------
async def test_concurrent_sends_and_acks_share_batch_calls(sqs_endpoint: str) -> None:
    async with transport_on(sqs_endpoint) as transport:
        await transport.provision("jobs")
        sqs = await transport.clients.sqs()
        ids = [f"job-{i}" for i in range(25)]
        with counted_calls(sqs) as calls:
            await asyncio.gather(*(transport.send("jobs", [job_id]) for job_id in ids))
        assert calls == {"sqs.SendMessageBatch": 3}
        deliveries = await receive_n(transport, "jobs", 25)
        assert sorted(d.job_id for d in deliveries) == sorted(ids)
        with counted_calls(sqs) as calls:
            await asyncio.gather(*(transport.ack([d]) for d in deliveries))
            await transport.flush()  # acks do not wait for their batch; flush does
        assert calls == {"sqs.DeleteMessageBatch": 3}
        assert await raw_counts(transport, transport.queue_name("jobs")) == 0


async def test_close_flushes_pending_sends_and_acks(sqs_endpoint: str) -> None:
    async with transport_on(sqs_endpoint, linger=1.0) as transport:
        await transport.provision("jobs")
        sends = [asyncio.create_task(transport.send("jobs", [f"j{i}"])) for i in range(3)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in sends)  # held by the 1 s linger
        await transport.close()
        await asyncio.gather(*sends)

    async with transport_on(sqs_endpoint, linger=1.0, ack_linger=1.0) as transport:
        await transport.provision("jobs")
        name = transport.queue_name("jobs")
        await transport.send("jobs", ["a", "b", "c", "d"])  # 4 < 10: sent when the linger ends... or at close
        await transport.close()  # flushes the send
        reader = SQSTransport(clients=transport.clients, queue_prefix=transport.config.queue_prefix, ack_linger=1.0)
        deliveries = await receive_n(reader, "jobs", 4)
        assert sorted(d.job_id for d in deliveries) == ["a", "b", "c", "d"]
        await asyncio.gather(*(reader.ack([d]) for d in deliveries))  # queued, not yet sent
        assert await raw_counts(reader, name) == 4  # still in flight: the 1 s ack linger holds the deletes
        await reader.close()  # returns only after the deletes were made
        assert await raw_counts(reader, name) == 0


async def test_bulk_enqueue_sends_ten_per_batch(sqs_endpoint: str) -> None:
    async with sqs_backend(sqs_endpoint, store="memory://", create_missing=True) as backend:
        queue = "bulk"
        await backend.provision([queue])
        sqs = await backend.clients.sqs()
        jobs = [Job(T + "add", [i, i], {}).to_dict() for i in range(25)]
        with counted_calls(sqs) as calls:
            await backend.bulk_enqueue(queue, jobs)
        assert calls == {"sqs.SendMessageBatch": 3}
        assert await backend.queue_stats(queue) == {"waiting": 25, "delayed": 0, "failed": 0}
        broker = await backend.broker_stats(queue)
        assert broker["visible"] + broker["in_flight"] == 25 == broker["depth"]


# -- poison messages ---------------------------------------------------------------------------
async def test_poison_messages_go_to_the_dlq_and_the_worker_keeps_going(sqs_endpoint: str) -> None:
    async with sqs_backend(sqs_endpoint, store="memory://", create_missing=True) as backend:
        queue = "poison"
        await backend.provision([queue])
        transport = backend.transport
        sqs = await backend.clients.sqs()
        url = await url_of(transport, transport.queue_name(queue))
        await sqs.send_message(QueueUrl=url, MessageBody="not json at all")
        await sqs.send_message(QueueUrl=url, MessageBody='{"v": 1, "q": "elsewhere", "id": "x"}')
        job_id = await Queue(queue, backend=backend).add(T + "add", args=[20, 22])
        deadline = time.monotonic() + 15
        job = None
        while job is None and time.monotonic() < deadline:
            job = await backend.dequeue(queue)
        assert job is not None and job["id"] == job_id
        await handle_job(queue, job, backend)
        assert await backend.get_job_result(queue, job_id) == 42
        await transport.flush()

        dlq = await url_of(transport, transport.spec(queue).dlq_name)
        reasons: list[str] = []
        while len(reasons) < 2 and time.monotonic() < deadline:
            reply = await sqs.receive_message(
                QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            )
            reasons += [m["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"] for m in reply.get("Messages", [])]
        assert len(reasons) == 2
        assert any("not JSON" in r for r in reasons)
        assert any("'elsewhere'" in r for r in reasons)
        assert await raw_counts(transport, transport.queue_name(queue)) == 0


@pytest.mark.moto
async def test_an_id_over_the_key_limit_is_refused_at_enqueue_and_dead_lettered_on_delivery(moto_endpoint: str) -> None:
    """Refused at every add path; a reference that still arrives (another producer, an old
    version) goes to the DLQ with the reason instead of raising out of dequeue (which ended
    AsyncMQ's worker, on every redelivery)."""
    suffix = random_prefix()
    tables = (f"{suffix}jobs", f"{suffix}delays")
    stores = {"store": f"dynamodb://{tables[0]}", "delay_store": f"dynamodb://{tables[1]}"}
    huge = "j" * 3000  # DynamoDB's key limit is 2,048 bytes
    async with sqs_backend(moto_endpoint, create_missing=True, **stores) as backend:
        try:
            await backend.provision(["keys"])
            job = Job(T + "record", ["x"], {}).to_dict()
            for add in (
                backend.enqueue("keys", {**job, "id": huge}),
                backend.bulk_enqueue("keys", [{**job, "id": "ok-1"}, {**job, "id": huge}]),
                backend.enqueue_delayed("keys", {**job, "id": huge}, time.time() + 60),
            ):
                with pytest.raises(InvalidNameError, match="job id of 3000 bytes"):
                    await add
            assert await backend.list_jobs("keys", "waiting") == []  # the bulk add wrote none of its chunk

            await backend.transport.send("keys", [huge])
            deadline = time.monotonic() + 15
            transport, sqs = backend.transport, await backend.clients.sqs()
            dlq = await url_of(transport, transport.spec("keys").dlq_name)
            reasons: list[str] = []
            while not reasons and time.monotonic() < deadline:
                assert await backend.dequeue("keys") is None  # never raises
                await transport.flush()
                reply = await sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MessageAttributeNames=["All"])
                reasons += [m["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"] for m in reply.get("Messages", [])]
            assert len(reasons) == 1 and "unclaimable reference keys/jjj" in reasons[0], reasons
        finally:
            await drop_tables(moto_endpoint, *tables)


# -- visibility ------------------------------------------------------------------------------
async def test_extend_keeps_a_message_invisible_and_release_returns_it(sqs_endpoint: str) -> None:
    async with transport_on(sqs_endpoint, visibility_timeout=2) as transport:
        await transport.provision("vis")
        await transport.send("vis", ["kept", "lapsed"])
        deliveries = {d.job_id: d for d in await receive_n(transport, "vis", 2)}
        assert set(deliveries) == {"kept", "lapsed"}
        await transport.extend(deliveries["kept"], 8)
        await asyncio.sleep(3.5)  # past the original 2 s timeout
        again = await transport.receive("vis", 10, 1)  # one poll: "lapsed" would lapse again after 2 s
        assert [(d.job_id, d.receive_count) for d in again] == [("lapsed", 2)]
        await transport.release(deliveries["kept"], 0)
        back = await receive_n(transport, "vis", 1)
        assert [(d.job_id, d.receive_count) for d in back] == [("kept", 2)]
        await transport.ack([*again, *back])


async def test_extend_is_lazy_and_respects_the_12_hour_cap(sqs_endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    async with transport_on(sqs_endpoint, visibility_timeout=60) as transport:
        await transport.provision("cap")
        await transport.send("cap", ["long"])
        [delivery] = await receive_n(transport, "cap", 1)
        sqs = await transport.clients.sqs()
        seen: list[int] = []

        def record(params: dict[str, Any], **_: Any) -> None:
            seen.append(params["VisibilityTimeout"])

        sqs.meta.events.register("before-parameter-build.sqs.ChangeMessageVisibility", record)
        try:
            await transport.extend(delivery, 60)  # 60 s left of 60 requested: no call
            assert seen == []
            delivery.received_at = time.monotonic() - MAX_VISIBILITY_SECONDS + 30
            delivery.lease_until = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="asyncmq_cloud.transports.sqs"):
                await transport.extend(delivery, 60)
                delivery.lease_until = time.monotonic()
                await transport.extend(delivery, 60)
        finally:
            sqs.meta.events.unregister("before-parameter-build.sqs.ChangeMessageVisibility", record)
        assert seen and all(0 < s <= 25 for s in seen)
        assert len([r for r in caplog.records if "12 h" in r.getMessage() or "43200" in r.getMessage()]) == 1
        await transport.ack([delivery])


# -- FIFO ----------------------------------------------------------------------------------------
async def test_fifo_round_trip_in_order_and_retried_job_is_not_deduplicated(sqs_endpoint: str) -> None:
    async with transport_on(sqs_endpoint, fifo=True) as transport:
        assert transport.capabilities.max_native_delay == 0
        await transport.provision("ordered")
        name = transport.queue_name("ordered")
        assert name.endswith(".fifo") and transport.spec("ordered").dlq_name.endswith("-dlq.fifo")
        await transport.send("ordered", ["a", "b", "c"])
        order: list[str] = []
        while len(order) < 3:
            batch = await receive_n(transport, "ordered", 1)
            assert batch, f"FIFO queue stalled after {order}"
            order += [d.job_id for d in batch]
            await transport.ack(batch)
        assert order == ["a", "b", "c"]
        # A retried job is sent again with the same id well within the 5-minute window.
        for _ in range(2):
            await transport.send("ordered", ["a"])
            again = await receive_n(transport, "ordered", 1)
            assert [d.job_id for d in again] == ["a"]
            await transport.ack(again)
        # Control: the emulator does deduplicate a repeated MessageDeduplicationId.
        sqs = await transport.clients.sqs()
        url = await url_of(transport, name)
        for _ in range(2):
            body = '{"v":1,"q":"ordered","id":"dup"}'
            await sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId="same")
        first = await receive_n(transport, "ordered", 1)
        await transport.ack(first)
        assert await transport.receive("ordered", 10, 1) == []
        with pytest.raises(ConfigurationError, match="FIFO"):
            await transport.send("ordered", ["late"], delay=5)


def test_fifo_group_choices() -> None:
    assert fifo_ids("q", "job-1", None)["MessageGroupId"] == "q"
    assert fifo_ids("q", "job-1", "job")["MessageGroupId"] == "job-1"
    assert fifo_ids("q", "job-1", "tenant-7")["MessageGroupId"] == "tenant-7"
    first, second = fifo_ids("q", "job-1", None), fifo_ids("q", "job-1", None)
    assert first["MessageDeduplicationId"] != second["MessageDeduplicationId"]
    assert len(fifo_ids("q", "x" * 300, "job")["MessageDeduplicationId"]) <= 128


# -- delays -------------------------------------------------------------------------------------
async def test_native_delay_on_standard_queues(sqs_endpoint: str) -> None:
    async with transport_on(sqs_endpoint) as transport:
        assert transport.capabilities.max_native_delay == 900
        await transport.provision("later")
        sqs = await transport.clients.sqs()
        delays: list[int] = []

        def record(params: dict[str, Any], **_: Any) -> None:
            delays.extend(e.get("DelaySeconds", 0) for e in params.get("Entries", [params]))

        for action in ("SendMessage", "SendMessageBatch"):  # a lone send is a SendMessage (decision 75)
            sqs.meta.events.register(f"before-parameter-build.sqs.{action}", record)
        try:
            sent = time.monotonic()
            await transport.send("later", ["soon"], delay=1.2)
        finally:
            for action in ("SendMessage", "SendMessageBatch"):
                sqs.meta.events.unregister(f"before-parameter-build.sqs.{action}", record)
        assert delays == [2]  # rounded up: never delivered before its due time
        assert await transport.receive("later", 10, 0) == []
        got = await receive_n(transport, "later", 1)
        assert [d.job_id for d in got] == ["soon"] and time.monotonic() - sent >= 1.2
        await transport.ack(got)
        with pytest.raises(ConfigurationError, match="900"):
            await transport.send("later", ["x"], delay=901)


async def test_backend_uses_native_delay_up_to_900_s_and_the_delay_store_beyond(sqs_endpoint: str) -> None:
    async with sqs_backend(sqs_endpoint, store="memory://", create_missing=True) as backend:
        queue = "delays"
        q = Queue(queue, backend=backend)
        await q.add(T + "record", args=["near"], delay=600)
        assert await backend.delay_store.count(queue) == 0
        far = await q.add(T + "record", args=["far"], delay=1200)
        assert [job_id for job_id, _ in await backend.delay_store.list(queue)] == [far]
        assert (await backend.queue_stats(queue))["delayed"] == 2
        assert (await backend.broker_stats(queue))["delayed"] == 1
        assert len(await backend.list_delayed(queue)) == 2
        assert await backend.remove_delayed(queue, far)
        assert await backend.delay_store.count(queue) == 0


# -- errors and names ---------------------------------------------------------------------------
async def test_missing_queue_names_it_and_says_how_to_create_it(sqs_endpoint: str) -> None:
    async with transport_on(sqs_endpoint) as transport:
        with pytest.raises(ResourceMissingError, match=re.escape(transport.queue_name("absent"))) as info:
            await transport.send("absent", ["x"])
        # A call that works: provision() without queue names creates no queue.
        assert "`await backend.provision(['absent'])`" in str(info.value)
        assert "`asyncmq-cloud provision --queue absent`" in str(info.value)
        with pytest.raises(ResourceMissingError):
            await transport.receive("absent", 1, 0)
        await transport.provision("absent")
        await transport.provision("absent")  # idempotent
        await transport.send("absent", ["x"])


@pytest.mark.moto
async def test_a_name_sqs_refuses_writes_nothing_on_any_add_path(moto_endpoint: str) -> None:
    """Delayed adds, bulk adds and flows check the broker's name rules before any store write
    (a delayed add used to return an id and leave a job every promotion pass failed on), and a
    refused add leaves no queue behind for ``list_queues`` and the dashboard."""
    suffix = random_prefix()
    tables = (f"{suffix}jobs", f"{suffix}delays")
    async with sqs_backend(
        moto_endpoint, store=f"dynamodb://{tables[0]}", delay_store=f"dynamodb://{tables[1]}", create_missing=True
    ) as backend:
        try:
            await backend.provision()
            client = await backend.clients.dynamodb()
            before = [(await client.scan(TableName=t, Select="COUNT"))["Count"] for t in tables]
            for name in ("a" * 90, "x.y"):  # over SQS's 80 characters; a dot (not allowed in SQS names)
                queue = Queue(name, backend=backend)
                with pytest.raises(InvalidNameError):
                    await queue.add(T + "record", args=["now"])
                with pytest.raises(InvalidNameError):
                    await queue.add(T + "record", args=["later"], delay=2)
                with pytest.raises(InvalidNameError):
                    await backend.enqueue_delayed(name, Job(T + "record", ["at"], {}).to_dict(), time.time() + 60)
                with pytest.raises(InvalidNameError):
                    await backend.bulk_enqueue(name, [Job(T + "record", ["bulk"], {}).to_dict()])
                with pytest.raises(InvalidNameError):
                    await FlowProducer(backend).add_flow(name, [Job(T + "record", ["flow"], {})])
            assert await backend.list_queues() == []
            assert [(await client.scan(TableName=t, Select="COUNT"))["Count"] for t in tables] == before
        finally:
            await drop_tables(moto_endpoint, *tables)


@pytest.mark.moto
async def test_a_refused_delayed_add_leaves_no_job_behind(moto_endpoint: str) -> None:
    """A delay the delay store cannot take (its table is missing) or no store can hold (1e300 s)
    raises, and the job record written first is gone: a retrying caller gets one job, not two."""
    suffix = random_prefix()
    tables = (f"{suffix}jobs", f"{suffix}no-such-delays")
    async with sqs_backend(
        moto_endpoint, store=f"dynamodb://{tables[0]}", delay_store=f"dynamodb://{tables[1]}"
    ) as backend:
        try:
            await backend.store.provision()  # the jobs table and the queue, not the delay table
            await backend.transport.provision("late")
            queue = Queue("late", backend=backend)
            with pytest.raises(ResourceMissingError, match=tables[1]):
                await queue.add(T + "record", args=["x"], delay=1000)  # past SQS's 900 s: the delay store
            with pytest.raises(ConfigurationError, match="too long a delay"):
                await queue.add(T + "record", args=["y"], delay=1e300)
            for state in ("delayed", "waiting", "active"):
                assert await backend.list_jobs("late", state) == []
            client = await backend.clients.dynamodb()
            items = (await client.scan(TableName=tables[0]))["Items"]
            assert not [i for i in items if "payload" in i or "state" in i], items
        finally:
            await drop_tables(moto_endpoint, *tables)


@pytest.mark.elasticmq
async def test_references_to_unknown_jobs_are_counted_and_logged_at_a_bounded_rate(
    elasticmq_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncmq_cloud.lifecycle")
    async with sqs_backend(elasticmq_endpoint, store="memory://", create_missing=True) as backend:
        await backend.provision(["ghosts"])
        await backend.transport.send("ghosts", ["no-such-1", "no-such-2", "no-such-3"])
        deadline = time.monotonic() + 20
        while backend.unknown_references < 3:
            assert time.monotonic() < deadline, f"only {backend.unknown_references} counted"
            assert await backend.dequeue("ghosts") is None
        assert await backend.dequeue("ghosts") is None  # acked: none comes back
        assert backend.unknown_references == 3
    lines = [r.getMessage() for r in caplog.records if "do not exist" in r.getMessage()]
    assert len(lines) == 1, lines  # one line a minute, however many
    assert lines[0].startswith("dropped 1 reference(s)") and "ghosts/no-such-" in lines[0]


async def test_the_missing_queue_message_names_a_provision_call_that_works(sqs_endpoint: str) -> None:
    async with sqs_backend(sqs_endpoint, store="memory://") as backend:
        queue = Queue("emails", backend=backend)
        await backend.provision()  # tables and keys only: no queue name, no queue
        with pytest.raises(ResourceMissingError) as info:
            await queue.add(T + "record", args=["x"])
        assert "`await backend.provision(['emails'])`" in str(info.value)
        await backend.provision(["emails"])  # what the message says
        job_id = await queue.add(T + "record", args=["x"])
        assert await backend.get_job_state("emails", job_id) == "waiting"


async def test_provision_sets_redrive_policy_and_updates_attributes(sqs_endpoint: str) -> None:
    async with transport_on(sqs_endpoint, max_receive_count=3, visibility_timeout=45) as transport:
        await transport.provision("prov")
        sqs = await transport.clients.sqs()
        url = await url_of(transport, transport.queue_name("prov"))
        attrs = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
        assert attrs["VisibilityTimeout"] == "45"
        assert '"maxReceiveCount"' in attrs["RedrivePolicy"] and "3" in attrs["RedrivePolicy"]
        assert transport.spec("prov").dlq_name in attrs["RedrivePolicy"]
        changed = SQSTransport(
            clients=transport.clients, queue_prefix=transport.config.queue_prefix, visibility_timeout=50
        )
        await changed.provision("prov")  # exists with other attributes: updated, not an error
        attrs = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"]))["Attributes"]
        assert attrs["VisibilityTimeout"] == "50"
        await changed.close()


def test_invalid_names_say_which_rule() -> None:
    transport = SQSTransport(queue_prefix="app-", region_name=REGION)
    assert transport.queue_name("emails") == "app-emails"
    with pytest.raises(InvalidNameError, match=re.escape("'.'")):
        transport.queue_name("emails.high")
    with pytest.raises(InvalidNameError, match="80"):
        transport.queue_name("x" * 73)  # 4 + 73 + len("-dlq") = 81
    assert transport.queue_name("x" * 72)
    fifo = SQSTransport(queue_prefix="app-", fifo=True, region_name=REGION)
    assert fifo.queue_name("emails") == "app-emails.fifo"
    with pytest.raises(InvalidNameError, match="80"):
        fifo.queue_name("x" * 68)
    with pytest.raises(ConfigurationError, match="queue_prefix"):
        SQSTransport(queue_prefix="bad.prefix", region_name=REGION)
    with pytest.raises(ConfigurationError, match="visibility_timeout"):
        SQSTransport(visibility_timeout=50_000, region_name=REGION)
    with pytest.raises(ConfigurationError, match="kms_data_key_reuse_seconds"):
        SQSTransport(kms_key_id="alias/x", kms_data_key_reuse_seconds=10, region_name=REGION)


# -- the preset -------------------------------------------------------------------------------
def test_preset_defaults_share_one_aws_clients() -> None:
    from asyncmq_cloud import SQSBackend as Lazy
    from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore
    from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore

    assert Lazy is SQSBackend
    backend = SQSBackend(region_name=REGION)
    assert isinstance(backend.store, DynamoDBStateStore) and backend.store.table_name == "asyncmq-jobs"
    assert isinstance(backend.delay_store, DynamoDBDelayStore) and backend.delay_store.table_name == "asyncmq-delays"
    assert backend.store.clients is backend.delay_store.clients is backend.transport.clients is backend.clients
    assert backend.transport.capabilities.max_native_delay == 900
    fifo = SQSBackend(fifo=True, fifo_group="job", kms_key_id="alias/jobs", region_name=REGION)
    assert fifo.transport.capabilities.max_native_delay == 0 and fifo.transport.config.fifo_group == "job"
    assert fifo.transport.spec("q").dlq_attributes()["KmsMasterKeyId"] == "alias/jobs"


def test_preset_redis_and_memory_urls() -> None:
    from asyncmq_cloud.delays.memory import MemoryDelayStore
    from asyncmq_cloud.delays.redis import RedisDelayStore
    from asyncmq_cloud.stores.redis import RedisStateStore

    backend = SQSBackend(store="redis://127.0.0.1:6379/2?prefix=myapp", region_name=REGION)
    assert isinstance(backend.store, RedisStateStore) and backend.store.prefix == "myapp"
    assert backend.store.url == "redis://127.0.0.1:6379/2"
    assert isinstance(backend.delay_store, RedisDelayStore) and backend.delay_store.prefix == "myapp"
    memory = SQSBackend(store="memory://", region_name=REGION)
    assert isinstance(memory.delay_store, MemoryDelayStore)
    assert parse_store_url("rediss://h:6380/0?ssl_cert_reqs=none").target == "rediss://h:6380/0?ssl_cert_reqs=none"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("postgres://db/x", "unsupported scheme"),
        ("asyncmq-jobs", "not a store URL"),
        ("dynamodb://", "dynamodb://TABLE"),
        ("dynamodb://table/extra", "dynamodb://TABLE"),
        ("dynamodb://ab", "3 to 255"),
        ("redis:///0", "needs a host"),
        ("redis://h:1/0?prefix=", "prefix"),
        ("memory://x", "memory://"),
    ],
)
def test_invalid_store_urls_name_the_rule(url: str, rule: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(rule)):
        SQSBackend(store=url, region_name=REGION)


# -- API calls per job -------------------------------------------------------------------------
async def _work(backend: SQSBackend, queue: str, total: int, concurrency: int) -> None:
    """Dequeue up to ``concurrency`` jobs, run them concurrently, until ``total`` completed.

    Registers as a worker first, as AsyncMQ's ``run_worker`` does: a receive takes
    no more than the registered concurrency minus the jobs running.
    """
    await backend.register_worker("cost-worker", queue, concurrency, time.time())
    done = 0
    deadline = time.monotonic() + 60
    while done < total:
        assert time.monotonic() < deadline, f"only {done} of {total} jobs ran"
        jobs = []
        for _ in range(min(concurrency, total - done)):
            job = await backend.dequeue(queue)
            if job is None:
                break
            jobs.append(job)
        await asyncio.gather(*(handle_job(queue, job, backend) for job in jobs))
        done += len(jobs)
    await backend.deregister_worker("cost-worker")


@pytest.mark.moto
@pytest.mark.parametrize("producer", ["bulk", "concurrent", "sequential"])
async def test_api_calls_per_job(moto_endpoint: str, producer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQS + DynamoDB calls per completed job on moto (deterministic counts; printed for the report)."""
    from asyncmq import monkay

    from asyncmq_cloud.config import LifecycleConfig

    # AsyncMQ's settings are read once per process: an earlier test may have loaded an app's
    # settings with its stalled check on (heartbeats within a third of its threshold).
    monkeypatch.setattr(monkay.settings, "enable_stalled_check", False)

    suffix = random_prefix()
    tables = (f"{suffix}jobs", f"{suffix}delays")
    n = 30
    queue = "cost"
    async with sqs_backend(
        moto_endpoint, store=f"dynamodb://{tables[0]}", delay_store=f"dynamodb://{tables[1]}", create_missing=True
    ) as backend:
        try:
            # The pause flag is read once per pause_cache_ttl, and the cancel flag again only when
            # a task starts more than cancel_cache_ttl after its claim: long TTLs keep the count
            # to the job's own path however slowly the machine runs.
            backend.config = LifecycleConfig(receive_wait=1, prefetch=10, pause_cache_ttl=60, cancel_cache_ttl=60)
            await backend.provision([queue])
            clients = (await backend.clients.sqs(), await backend.clients.dynamodb())
            jobs = [{"task_id": T + "record", "args": [f"{producer}-{i}-{suffix}"]} for i in range(n)]
            with counted_calls(*clients) as calls:
                q = Queue(queue, backend=backend)
                if producer == "bulk":
                    await backend.bulk_enqueue(queue, [Job(j["task_id"], j["args"], {}).to_dict() for j in jobs])
                elif producer == "concurrent":
                    await asyncio.gather(*(q.add(j["task_id"], args=j["args"]) for j in jobs))
                else:
                    for j in jobs:
                        await q.add(j["task_id"], args=j["args"])
                await _work(backend, queue, n, concurrency=10)
                await backend.transport.flush()
        finally:
            await drop_tables(moto_endpoint, *tables)
    assert all(tasks.CALLS[f"{producer}-{i}-{suffix}"] == 1 for i in range(n))
    sqs = sum(v for k, v in calls.items() if k.startswith("sqs."))
    ddb = sum(v for k, v in calls.items() if k.startswith("dynamodb."))
    print(
        f"\n{producer}: SQS/job={sqs / n:.2f} DynamoDB/job={ddb / n:.2f} total/job={(sqs + ddb) / n:.2f} {dict(calls)}"
    )
    # Deterministic parts only: deletes depend on how job ends spread over the ack linger.
    assert calls["sqs.ReceiveMessage"] <= n / 10 + 1  # prefetch 10
    assert calls["sqs.DeleteMessageBatch"] <= n / 2
    if producer == "bulk":
        assert calls["sqs.SendMessageBatch"] == 4  # 25 + 5 (bulk_enqueue writes 25 records per store call)
    # The job's own path: create, claim, complete (bulk creates in one transaction per 25),
    # plus the registry entry of the queue's first write.
    assert calls["dynamodb.UpdateItem"] <= (2 if producer == "bulk" else 3) * n + 1
    if producer == "bulk":  # the targets for bulk/concurrent producers
        assert sqs / n <= 0.5 and (sqs + ddb) / n <= 3.5
    if producer == "sequential":
        assert (sqs + ddb) / n <= 4.5


@pytest.mark.elasticmq
@pytest.mark.redis
async def test_a_long_job_keeps_its_message_without_asyncmq_heartbeats(elasticmq_endpoint: str, redis_url: str) -> None:
    """AsyncMQ heartbeats only with its stalled check on: the backend's lease keeper must keep
    the message invisible past the visibility timeout, so no other worker ever receives it."""
    from asyncmq_cloud.config import LifecycleConfig
    from tests.plugins.backend_sqs import redis_stores

    async with (
        redis_stores(redis_url) as store,
        # 4 s, not less: the keeper renews at half of what is left, and 5 test processes on 2 cores
        # have starved it for over a second (a 2 s visibility flaked once under that load)
        sqs_backend(elasticmq_endpoint, store=store, create_missing=True, visibility_timeout=4) as worker,
    ):
        worker.config = LifecycleConfig(receive_wait=0.2, lease_timeout=30)
        rival = SQSBackend(
            queue_prefix=worker.transport.config.queue_prefix,
            store=store,
            endpoint_url=elasticmq_endpoint,
            region_name=REGION,
            config=LifecycleConfig(receive_wait=0.2, lease_timeout=30),
        )
        try:
            job_id = await Queue("long", backend=worker).add(T + "add", args=[2, 3])
            job = await worker.dequeue("long")
            assert job is not None
            rival_receives = 0
            deadline = time.monotonic() + 12  # three visibility timeouts, no AsyncMQ heartbeat
            while time.monotonic() < deadline:
                got = await rival.transport.receive("long", 1, 0)
                rival_receives += len(got)
                await asyncio.sleep(0.2)
            assert rival_receives == 0, "the message reappeared while its job was running"
            await handle_job("long", job, worker)
            await worker.transport.flush()
            assert await worker.get_job_result("long", job_id) == 5
            full_name = worker.transport.config.queue_prefix + "long"
            assert await raw_counts(worker.transport, full_name) == 0, "acked with its original receipt"
        finally:
            await rival.close()
