"""``KafkaTransport`` and ``KafkaBackend`` on the real Apache Kafka broker (KRaft, PLAINTEXT and SASL_PLAINTEXT).

Every test gets a random topic prefix (so its topics and consumer groups are its own)
and deletes its topics afterwards. Records are produced and inspected with plain
aiokafka clients next to the transport: committed offsets through the admin client's
``list_consumer_group_offsets``, dead-letter records through a group-less consumer.
Short group timeouts (6 s session, the broker's minimum) and 0.2 s commit intervals
keep each test to a few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from asyncmq.queues import Queue
from asyncmq.workers import handle_job

from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.protocols import Delivery
from asyncmq_cloud.errors import AccessDeniedError, ClosedError, ResourceMissingError, TransientError
from asyncmq_cloud.transports._envelope import encode_envelope
from asyncmq_cloud.transports.kafka import (
    DLQ_TRUNCATED_BYTES,
    ERROR_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    TRUNCATED_HEADER,
    KafkaTransport,
)
from tests.plugins.backend_kafka import drop_topics
from tests.plugins.backend_sqs import random_prefix, redis_stores
from tests.plugins.services import _unavailable

pytestmark = pytest.mark.kafka

T = "tests.tasks."
#: Group liveness and commit cadence of every transport here (6 s is the broker's minimum session).
FAST = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "commit_interval": 0.2}


@asynccontextmanager
async def transport_on(bootstrap: str, *, drop: bool = True, **options: Any) -> AsyncIterator[KafkaTransport]:
    """A started transport with a random (or the given) topic prefix; its topics dropped afterwards."""
    options.setdefault("topic_prefix", random_prefix())
    options = {"create_missing": True, "partitions": 1, **FAST, **options}
    transport = KafkaTransport(bootstrap_servers=bootstrap, **options)
    try:
        await transport.start()
        yield transport
    finally:
        try:
            await transport.close()
        finally:
            if drop:
                await drop_topics(bootstrap, options["topic_prefix"])


@asynccontextmanager
async def admin_on(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def committed(admin: AIOKafkaAdminClient, group: str, topic: str, partitions: int = 1) -> dict[int, int]:
    """The group's committed offset of each partition (-1: nothing committed)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    return {tp.partition: (offsets[tp].offset if tp in offsets else -1) for tp in tps}


async def wait_committed(
    admin: AIOKafkaAdminClient, group: str, topic: str, expected: dict[int, int], timeout: float = 5.0
) -> dict[int, int]:
    """Poll until the committed offsets equal ``expected`` (returns the last seen ones either way)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = await committed(admin, group, topic, len(expected))
        if seen == expected or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.1)


async def receive_n(transport: KafkaTransport, queue: str, n: int, timeout: float = 15.0) -> list[Delivery]:
    """Receive until ``n`` deliveries arrived (bounded)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += await transport.receive(queue, n - len(got), 0.5)
    return got


async def read_topic(bootstrap: str, topic: str, n: int, timeout: float = 10.0) -> list[ConsumerRecord]:
    """The first ``n`` records of ``topic``, read by a consumer outside every group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < n and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
    finally:
        await consumer.stop()
    return records


def offsets(deliveries: list[Delivery]) -> list[int]:
    return [d.receipt.offset for d in deliveries]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- poison records ------------------------------------------------------------------------------
async def test_poison_records_go_to_the_dead_letter_topic_with_headers(kafka_bootstrap: str) -> None:
    queue = "poison"
    async with transport_on(kafka_bootstrap) as transport, admin_on(kafka_bootstrap) as admin:
        await transport.provision(queue)
        topic = transport.topic(queue)
        raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await raw.start()
        poison: dict[int, tuple[bytes | None, str]] = {}
        try:

            async def produce(value: bytes | None, reason: str) -> None:
                meta = await raw.send_and_wait(topic, value=value, key=b"raw", partition=0)
                poison[meta.offset] = (value, reason)

            await transport.send(queue, ["good-0"])  # offset 0
            await produce(b"\xff\xfe\x00garbage", "not UTF-8")
            await produce(b"not json at all", "not JSON")
            await transport.send(queue, ["good-1"])  # offset 3
            await produce(encode_envelope("elsewhere", "x").encode(), "for queue 'elsewhere'")
            await produce(None, "no value")
            await produce(json.dumps({"v": 2, "q": queue, "id": "y"}).encode(), "version 2 is not supported")
            await transport.send(queue, ["good-2"])  # offset 7
        finally:
            await raw.stop()
        assert sorted(poison) == [1, 2, 4, 5, 6]

        deliveries = await receive_n(transport, queue, 3)
        assert [d.job_id for d in deliveries] == ["good-0", "good-1", "good-2"]
        assert offsets(deliveries) == [0, 3, 7]
        assert await transport.receive(queue, 10, 0.5) == []  # the poison never reaches a worker

        dead = await read_topic(kafka_bootstrap, transport.config.dlq_topic(queue), len(poison))
        assert transport.config.dlq_topic(queue) == f"{transport.config.topic_prefix}{queue}-dlq"
        assert len(dead) == len(poison) == transport.produced["dlq"]
        for record in dead:
            headers = {name: value.decode() for name, value in record.headers}
            assert headers[SOURCE_TOPIC_HEADER] == topic
            assert headers[SOURCE_PARTITION_HEADER] == "0"
            offset = int(headers[SOURCE_OFFSET_HEADER])
            value, reason = poison.pop(offset)
            assert reason in headers[ERROR_HEADER], (offset, headers[ERROR_HEADER])
            assert (record.value, record.key) == (value, b"raw")  # the original record, unchanged
        assert poison == {}

        group = transport.config.group(queue)
        # The poison offsets are done, but good-0 (offset 0) is not: nothing may be committed yet.
        assert await wait_committed(admin, group, topic, {0: -1}, timeout=0.6) == {0: -1}
        await transport.ack(deliveries)
        assert await wait_committed(admin, group, topic, {0: 8}) == {0: 8}


async def test_a_poison_record_too_large_to_copy_is_dead_lettered_truncated_and_the_commit_moves(
    kafka_bootstrap: str,
) -> None:
    """A 1,048,420-byte record (a default broker accepts it) whose dead-letter copy, with the
    headers, is over the producer's request limit: the non-retriable MessageSizeTooLargeError
    used to be retried forever and the partition's commit never moved again."""
    queue = "poison-big"
    size = 1_048_420
    async with transport_on(kafka_bootstrap) as transport, admin_on(kafka_bootstrap) as admin:
        await transport.provision(queue)
        topic = transport.topic(queue)
        raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2 * 1024 * 1024)
        await raw.start()
        try:
            big = await raw.send_and_wait(topic, value=b"x" * size, key=b"raw", partition=0)
        finally:
            await raw.stop()
        await transport.send(queue, ["after-the-big-one"])
        [delivery] = await receive_n(transport, queue, 1)
        assert delivery.job_id == "after-the-big-one"
        [dead] = await read_topic(kafka_bootstrap, transport.config.dlq_topic(queue), 1)
        headers = {name: value.decode() for name, value in dead.headers}
        assert headers[TRUNCATED_HEADER] == str(size) and headers[SOURCE_OFFSET_HEADER] == str(big.offset)
        assert dead.value == b"x" * DLQ_TRUNCATED_BYTES and "not JSON" in headers[ERROR_HEADER]
        await transport.ack([delivery])
        group = transport.config.group(queue)
        assert await wait_committed(admin, group, topic, {0: big.offset + 2}) == {0: big.offset + 2}


# -- per-job acks over cumulative offsets ---------------------------------------------------------
async def test_out_of_order_acks_commit_the_contiguous_prefix_and_replay_the_rest(kafka_bootstrap: str) -> None:
    queue = "acks"
    prefix = random_prefix()
    ids = [f"j{i}" for i in range(5)]
    try:
        async with admin_on(kafka_bootstrap) as admin:
            async with transport_on(kafka_bootstrap, topic_prefix=prefix, drop=False) as first:
                topic, group = first.topic(queue), first.config.group(queue)
                await first.send(queue, ids)
                got = await receive_n(first, queue, 5)
                assert [d.job_id for d in got] == ids and offsets(got) == [0, 1, 2, 3, 4]

                await first.ack([got[1], got[2], got[4]])  # jobs 2, 3 and 5 finish first
                await asyncio.sleep(3 * FAST["commit_interval"])
                assert await committed(admin, group, topic) == {0: -1}  # offset 0 still runs
                await first.ack([got[0]])
                assert await wait_committed(admin, group, topic, {0: 3}) == {0: 3}  # 0,1,2 done; 3 open
                await asyncio.sleep(3 * FAST["commit_interval"])
                assert await committed(admin, group, topic) == {0: 3}  # and not past it
                await first.ack([got[3]])
                assert await wait_committed(admin, group, topic, {0: 5}) == {0: 5}

                await first.send(queue, ["k5", "k6", "k7"])
                more = await receive_n(first, queue, 3)
                assert [d.job_id for d in more] == ["k5", "k6", "k7"]
                await first.ack([more[1]])  # k6 done, k5 and k7 never finish here
            # close() committed what it could: offset 5 (k5) is the head of the open window.
            assert await committed(admin, group, topic) == {0: 5}

            async with transport_on(kafka_bootstrap, topic_prefix=prefix, drop=False) as second:
                replay = await receive_n(second, queue, 3)
                # Everything from the committed offset on is read again, the acked k6 too (cumulative
                # commits); nothing before it is.
                assert [d.job_id for d in replay] == ["k5", "k6", "k7"]
                assert offsets(replay) == [5, 6, 7]
                assert await second.receive(queue, 10, 0.5) == []
                await second.ack(replay)
            assert await committed(admin, group, topic) == {0: 8}  # close() commits without waiting a tick
    finally:
        await drop_topics(kafka_bootstrap, prefix)


# -- missing topics and provisioning -----------------------------------------------------------
async def test_missing_topic_is_a_typed_error_and_provision_creates_both_topics(kafka_bootstrap: str) -> None:
    queue = "missing"
    async with (
        transport_on(kafka_bootstrap, create_missing=False, partitions=3) as transport,
        admin_on(kafka_bootstrap) as admin,
    ):
        topic, dlq = transport.topic(queue), transport.config.dlq_topic(queue)
        with pytest.raises(ResourceMissingError) as sent:
            await transport.send(queue, ["a"])
        with pytest.raises(ResourceMissingError) as received:
            await transport.receive(queue, 1, 0.1)
        for error in (sent.value, received.value):
            assert repr(topic) in str(error)
            assert f"asyncmq-cloud provision --queue {queue}" in str(error)
            assert "create_missing=True" in str(error)
        assert topic not in await admin.list_topics()  # no broker auto-creation behind our back

        await transport.provision(queue)
        await transport.provision(queue)  # idempotent
        # A created topic reaches the broker's metadata shortly after CreateTopics answers (a
        # loaded broker answered UNKNOWN_TOPIC_OR_PARTITION once): read until both are known.
        deadline = time.monotonic() + 15
        while True:
            described = {t["topic"]: t for t in await admin.describe_topics([topic, dlq])}
            if all(described[name]["error_code"] == 0 for name in (topic, dlq)) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        for name in (topic, dlq):
            assert described[name]["error_code"] == 0
            assert sorted(p["partition"] for p in described[name]["partitions"]) == [0, 1, 2]
        await transport.send(queue, ["a"])
        assert [d.job_id for d in await receive_n(transport, queue, 1)] == ["a"]


# -- failed sends ----------------------------------------------------------------------------------
async def test_send_to_an_unreachable_broker_raises_transient_error_in_bounded_time() -> None:
    address = f"127.0.0.1:{free_port()}"
    transport = KafkaTransport(bootstrap_servers=address, request_timeout_ms=1000, topic_prefix=random_prefix())
    try:
        started = time.monotonic()
        async with asyncio.timeout(15):
            with pytest.raises(TransientError) as info:
                await transport.send("q", ["a"])
        assert time.monotonic() - started < 10
        assert address in str(info.value)
        assert info.value.retriable
        assert info.value.__cause__ is not None  # the aiokafka error stays attached
    finally:
        await transport.close()


async def test_a_failed_start_leaves_no_unclosed_kafka_client() -> None:
    """aiokafka warns (ResourceWarning) about a producer that was never stopped; a failed start must stop it."""
    transport = KafkaTransport(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TransientError):
            await transport.start()
        await transport.close()
        gc.collect()
    unclosed = [str(w.message) for w in caught if "Unclosed AIOKafka" in str(w.message)]
    assert unclosed == []


# -- rebalance inside one process ------------------------------------------------------------------
async def test_rebalance_waits_for_running_jobs_and_loses_no_reference(kafka_bootstrap: str) -> None:
    """A second member joins while the first runs jobs of every partition: the first's revocation waits for
    them, commits them, and the group then splits the partitions; every reference arrives exactly once."""
    queue = "rebalance"
    prefix = random_prefix()
    ids = [f"r{i:02d}" for i in range(40)]
    options: dict[str, Any] = {"topic_prefix": prefix, "drop": False, "partitions": 4, "revoke_timeout": 10.0}
    try:
        async with transport_on(kafka_bootstrap, **options) as first, admin_on(kafka_bootstrap) as admin:
            topic, group = first.topic(queue), first.config.group(queue)
            await first.provision(queue)
            await first.send(queue, ids)
            running = await receive_n(first, queue, 12)
            assert len(running) == 12
            member = first._consumers[queue]
            assert {tp.partition for tp in member._trackers} == {0, 1, 2, 3}

            revoke_started, revoke_done = asyncio.Event(), asyncio.Event()
            listener = member.on_partitions_revoked
            marks: dict[str, float] = {}

            async def watched(revoked: Any) -> None:
                revoke_started.set()
                marks["revoke_start"] = time.monotonic()
                await listener(revoked)
                marks["revoke_end"] = time.monotonic()
                revoke_done.set()

            member.on_partitions_revoked = watched  # type: ignore[method-assign]

            async with transport_on(kafka_bootstrap, **options) as second:
                joining = asyncio.create_task(second.receive(queue, 40, 15))
                async with asyncio.timeout(15):
                    await revoke_started.wait()
                await asyncio.sleep(1.0)  # the jobs run on: the revocation must wait for them
                assert not revoke_done.is_set()
                marks["acked"] = time.monotonic()
                await first.ack(running)
                async with asyncio.timeout(10):
                    await revoke_done.wait()
                assert marks["revoke_end"] >= marks["acked"] > marks["revoke_start"]

                deliveries = list(running)
                first_batch = await joining
                await second.ack(first_batch)
                deliveries += first_batch
                deadline = time.monotonic() + 20
                quiet_until = None
                while time.monotonic() < deadline:
                    batch_a = await first.receive(queue, 40, 0.3)
                    batch_b = await second.receive(queue, 40, 0.3)
                    await first.ack(batch_a)
                    await second.ack(batch_b)
                    deliveries += batch_a + batch_b
                    if len({d.job_id for d in deliveries}) < len(ids):
                        continue
                    quiet_until = quiet_until or time.monotonic() + 1.0  # a little longer: any duplicate?
                    if time.monotonic() > quiet_until:
                        break
                received = Counter(d.job_id for d in deliveries)

                mine = {tp.partition for tp in member._trackers}
                theirs = {tp.partition for tp in second._consumers[queue]._trackers}
                assert len(mine) == len(theirs) == 2 and mine | theirs == {0, 1, 2, 3}

                assert set(received) == set(ids)  # none lost
                assert [job for job, n in received.items() if n > 1] == []  # and none twice
                by_partition: dict[int, list[int]] = {}
                for d in deliveries:
                    by_partition.setdefault(d.receipt.tp.partition, []).append(d.receipt.offset)
                assert all(sorted(o) == list(range(len(o))) for o in by_partition.values())
                ends = {p: len(by_partition.get(p, [])) for p in range(4)}
                assert await wait_committed(admin, group, topic, ends) == ends
                assert await first.depth(queue) == 0

        async with transport_on(kafka_bootstrap, **options) as third:
            assert await third.receive(queue, 40, 3) == []  # everything acked was committed
    finally:
        await drop_topics(kafka_bootstrap, prefix)


async def test_jobs_outlasting_the_revoke_wait_are_read_again_and_late_acks_are_ignored(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``revoke_timeout`` shorter than the jobs, the revocation commits nothing of them: the group reads
    every one of them again (exactly one duplicate each), and acks arriving after the revocation move nothing."""
    queue = "slowjobs"
    prefix = random_prefix()
    ids = [f"s{i}" for i in range(8)]
    options: dict[str, Any] = {"topic_prefix": prefix, "drop": False, "partitions": 2, "revoke_timeout": 1.0}
    try:
        async with transport_on(kafka_bootstrap, **options) as first, admin_on(kafka_bootstrap) as admin:
            topic, group = first.topic(queue), first.config.group(queue)
            await first.provision(queue)
            await first.send(queue, ids)
            running = await receive_n(first, queue, len(ids))
            assert sorted(d.job_id for d in running) == ids
            member = first._consumers[queue]
            epochs = {tp: tracker.epoch for tp, tracker in member._trackers.items()}

            async with transport_on(kafka_bootstrap, **options) as second:
                with caplog.at_level(logging.WARNING, logger="asyncmq_cloud.transports.kafka"):
                    again = await receive_n(second, queue, 1, timeout=15)  # joins; first's revoke gives up after 1 s
                assert any("still running after 1s" in r.getMessage() for r in caplog.records)
                assert all(member._trackers[tp].epoch != epochs[tp] for tp in member._trackers)  # new assignment
                await first.ack(running)  # the jobs end now: too late, their receipts are of the old assignment
                await asyncio.sleep(3 * FAST["commit_interval"])
                assert await committed(admin, group, topic, 2) == {0: -1, 1: -1}

                deadline = time.monotonic() + 10
                while len(again) < len(ids) and time.monotonic() < deadline:
                    again += await first.receive(queue, 8, 0.3) + await second.receive(queue, 8, 0.3)
                assert sorted(d.job_id for d in again) == ids  # each read once more, none lost, none thrice
                assert await first.receive(queue, 8, 0.3) + await second.receive(queue, 8, 0.3) == []
                await first.ack([d for d in again if d.receipt.tp in member._trackers])
                await second.ack([d for d in again if d.receipt.tp in second._consumers[queue]._trackers])
                ends = {p: sum(1 for d in running if d.receipt.tp.partition == p) for p in (0, 1)}
                assert await wait_committed(admin, group, topic, ends) == ends
    finally:
        await drop_topics(kafka_bootstrap, prefix)


# -- in-flight bound --------------------------------------------------------------------------------
async def test_max_in_flight_per_partition_bounds_fetched_unfinished_records(kafka_bootstrap: str) -> None:
    queue = "bounded"
    async with transport_on(kafka_bootstrap, max_in_flight_per_partition=5) as transport:
        await transport.send(queue, [f"b{i:02d}" for i in range(20)])
        got = await receive_n(transport, queue, 20, timeout=2)
        member = transport._consumers[queue]
        held = {tp.partition: tracker.in_flight for tp, tracker in member._trackers.items()}
        assert len(got) == 5, f"received {len(got)} of 20 with max_in_flight_per_partition=5 (in flight: {held})"
        assert held == {0: 5}
        await asyncio.sleep(1.0)  # the fetch loop keeps polling: still paused
        assert await transport.receive(queue, 20, 0.5) == []

        await transport.ack(got)
        after = await receive_n(transport, queue, 5)
        assert [d.job_id for d in after] == [f"b{i:02d}" for i in range(5, 10)]


# -- release ---------------------------------------------------------------------------------------
async def test_release_with_delay_redelivers_after_the_delay_and_keeps_the_offset_open(kafka_bootstrap: str) -> None:
    queue = "release"
    async with transport_on(kafka_bootstrap) as transport, admin_on(kafka_bootstrap) as admin:
        topic, group = transport.topic(queue), transport.config.group(queue)
        await transport.send(queue, ["a", "b"])
        a, b = await receive_n(transport, queue, 2)
        assert (a.job_id, b.job_id) == ("a", "b")
        await transport.ack([b])
        released = time.monotonic()
        await transport.release(a, 1.5)

        assert await transport.receive(queue, 5, 0.8) == []  # not before the delay
        assert await committed(admin, group, topic) == {0: -1}  # a (offset 0) is open: b cannot be committed
        again = await transport.receive(queue, 5, 3)
        waited = time.monotonic() - released
        assert [d.job_id for d in again] == ["a"] and again[0].receipt.offset == 0
        assert 1.4 <= waited < 2.5

        await transport.release(again[0])  # no delay: straight back
        now = await transport.receive(queue, 5, 1)
        assert [d.job_id for d in now] == ["a"]
        await transport.ack(now)
        assert await wait_committed(admin, group, topic, {0: 2}) == {0: 2}


# -- depth / purge -----------------------------------------------------------------------------------
async def test_depth_is_the_group_lag_and_purge_empties_the_topic(kafka_bootstrap: str) -> None:
    queue = "depth"
    async with transport_on(kafka_bootstrap) as transport, admin_on(kafka_bootstrap) as admin:
        topic, group = transport.topic(queue), transport.config.group(queue)
        await transport.send(queue, [f"d{i}" for i in range(10)])
        assert await transport.depth(queue) == 10  # no commit yet: everything from the start
        got = await receive_n(transport, queue, 10)
        assert await transport.depth(queue) == 10  # received is not committed
        await transport.ack(got[:4])
        assert await wait_committed(admin, group, topic, {0: 4}) == {0: 4}
        assert await transport.depth(queue) == 6

        await transport.purge(queue)
        assert await transport.depth(queue) == 0  # the committed offset is behind the new log start
        prefix = transport.config.topic_prefix
        async with transport_on(
            kafka_bootstrap, topic_prefix=prefix, group_prefix=f"{prefix}other-", drop=False
        ) as fresh:
            assert await fresh.receive(queue, 10, 2) == []  # a new group finds nothing
            assert await fresh.depth(queue) == 0


# -- security: SASL_PLAINTEXT on the session broker -------------------------------------------------
def sasl_address(kafka_env: dict[str, str]) -> str:
    address = kafka_env.get("KAFKA_SASL_BOOTSTRAP_SERVERS", "")
    if not address:
        _unavailable("kafka SASL listener", LookupError("kafka_env has no KAFKA_SASL_BOOTSTRAP_SERVERS"))
    return address


@asynccontextmanager
async def sasl_backend(kafka_env: dict[str, str], store: str, **options: Any) -> AsyncIterator[KafkaBackend]:
    prefix = random_prefix()
    backend = KafkaBackend(
        bootstrap_servers=sasl_address(kafka_env),
        topic_prefix=prefix,
        store=store,
        partitions=1,
        create_missing=True,
        config=LifecycleConfig(receive_wait=0.3),
        security_protocol="SASL_PLAINTEXT",
        request_timeout_ms=5000,
        **FAST,
        **options,
    )
    try:
        yield backend
    finally:
        try:
            await backend.close()
        finally:
            await drop_topics(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], prefix)


@pytest.mark.redis
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_backend_runs_a_job_end_to_end(kafka_env: dict[str, str], redis_url: str, mechanism: str) -> None:
    queue = "secure"
    credentials = {
        "sasl_username": kafka_env.get("KAFKA_SASL_USERNAME"),
        "sasl_password": kafka_env.get("KAFKA_SASL_PASSWORD"),
    }
    async with (
        redis_stores(redis_url) as store,
        sasl_backend(kafka_env, store, sasl_mechanism=mechanism, **credentials) as backend,
    ):
        await backend.start()
        job_id = await Queue(queue, backend=backend).add(T + "add", args=[20, 22])
        deadline = time.monotonic() + 15
        job = None
        while job is None and time.monotonic() < deadline:
            job = await backend.dequeue(queue)
        assert job is not None and job["id"] == job_id
        await handle_job(queue, job, backend)
        assert await backend.get_job_state(queue, job_id) == "completed"
        assert await backend.get_job_result(queue, job_id) == 42
        assert backend.transport.produced["jobs"] == 1


@pytest.mark.redis
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_sasl_wrong_password_is_access_denied(kafka_env: dict[str, str], redis_url: str, mechanism: str) -> None:
    username = kafka_env.get("KAFKA_SASL_USERNAME", "asyncmq")
    async with (
        redis_stores(redis_url) as store,
        sasl_backend(
            kafka_env, store, sasl_mechanism=mechanism, sasl_username=username, sasl_password="wrong"
        ) as backend,
    ):
        async with asyncio.timeout(15):
            with pytest.raises(AccessDeniedError, match="SASL credentials") as info:
                await backend.start()
                await Queue("secure", backend=backend).add(T + "add", args=[1, 2])
        assert not info.value.retriable  # a wrong password must not be retried as a broker outage
        await backend.close()
        with pytest.raises(ClosedError, match="is closed"):  # the store the half-done start opened is closed too
            backend.store.client  # noqa: B018
