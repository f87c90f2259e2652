"""``asyncmq-cloud dlq ... --source broker`` on ``KafkaBackend``: the queue's dead-letter topic.

A topic is a log: records are not taken out of it. The redrive keeps its place in its
own consumer group, ``{group}-redrive``: ``list`` shows the records after that place (the
ones not redriven yet), ``show PARTITION:OFFSET`` one record, ``redrive`` produces each
record's value (the job reference) back to the queue's topic and then commits the group's
offsets, batch by batch, up to the topic's end when it started (records dead-lettered
meanwhile wait for the next run). Stopped at any point and run again, it resumes from
the committed offsets: at-least-once, a batch produced but not yet committed is produced
again, and the duplicate reference is dropped by the claim. ``purge`` is refused: the
topic's retention (``retention.ms``) trims it.
"""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from asyncmq_cloud.commands.dlq._run import Run
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.transports._kafka_errors import kafka_errors, start_client
from asyncmq_cloud.transports.kafka import KafkaTransport

REDRIVE_GROUP_SUFFIX = "-redrive"
BATCH = 100


def redrive_group(transport: KafkaTransport, queue: str) -> str:
    return transport.config.group(queue) + REDRIVE_GROUP_SUFFIX


async def _consumer(transport: KafkaTransport, group: str | None) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        **transport._common, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await start_client(consumer, transport._common, f"Kafka cluster {transport.config.bootstrap_servers}")
    return consumer


async def _assign_pending(
    consumer: AIOKafkaConsumer, transport: KafkaTransport, queue: str
) -> dict[TopicPartition, int]:
    """Assign every partition of the DLQ topic at the redrive group's place; the end offsets now."""
    topic = transport.config.dlq_topic(queue)
    admin = await transport._admin_client()
    with kafka_errors(f"Kafka dead-letter topic {topic!r}", "Metadata"):
        described = await admin.describe_topics([topic])
    found = [p["partition"] for t in described if not t.get("error_code") for p in t.get("partitions") or []]
    partitions = [TopicPartition(topic, p) for p in sorted(found)]
    if not partitions:
        raise LookupError(f"dead-letter topic {topic!r} of queue {queue!r} does not exist")
    consumer.assign(partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    committed = await _committed(transport, queue, partitions)
    for tp in partitions:
        if tp in committed:
            consumer.seek(tp, committed[tp])
        else:
            await consumer.seek_to_beginning(tp)
    return ends


async def _committed(
    transport: KafkaTransport, queue: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    admin = await transport._admin_client()
    offsets = await admin.list_consumer_group_offsets(redrive_group(transport, queue), partitions=partitions)
    return {tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}


def describe(record: ConsumerRecord) -> str:
    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
    job = (record.key or b"").decode("utf-8", "replace") or "-"
    reason = headers.get("asyncmq-error", "")
    return f"{record.partition}:{record.offset}  job={job}  {reason[:120]}"


async def _pending(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], limit: int | None, run: Run):  # type: ignore[no-untyped-def]
    """Batches of the records before ``ends``, at most ``limit`` in all."""
    seen = 0
    while not run.stopped and (limit is None or seen < limit):
        left = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
        if not left:
            return
        batches = await consumer.getmany(*left, timeout_ms=1000, max_records=BATCH)
        records = [r for tp, rs in batches.items() for r in rs if r.offset < ends[tp]]
        if limit is not None:
            records = records[: limit - seen]
        seen += len(records)
        if records:
            yield records


async def list_records(transport: KafkaTransport, queue: str, limit: int | None, run: Run) -> None:
    consumer = await _consumer(transport, None)
    try:
        ends = await _assign_pending(consumer, transport, queue)
        async for records in _pending(consumer, ends, limit, run):
            for record in records:
                print(describe(record), flush=True)
                run.done("listed")
    finally:
        await consumer.stop()


async def show_record(transport: KafkaTransport, queue: str, where: str) -> dict[str, Any]:
    partition, _, offset = where.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise ConfigurationError(f"a Kafka dead letter is named PARTITION:OFFSET (like 0:42), not {where[:40]!r}")
    consumer = await _consumer(transport, None)
    try:
        tp = TopicPartition(transport.config.dlq_topic(queue), int(partition))
        consumer.assign([tp])
        consumer.seek(tp, int(offset))
        batch = await consumer.getmany(tp, timeout_ms=2000, max_records=1)
        record = next((r for r in batch.get(tp, []) if r.offset == int(offset)), None)
    finally:
        await consumer.stop()
    if record is None:
        raise LookupError(f"no record at {where} of the dead-letter topic of {queue!r}")
    shown = {
        "partition": record.partition, "offset": record.offset, "timestamp": record.timestamp,
        "key": (record.key or b"").decode("utf-8", "replace"),
        "value": (record.value or b"").decode("utf-8", "replace"),
        "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers or ()},
    }  # fmt: skip
    print(json.dumps(shown, indent=2, sort_keys=True), flush=True)
    return shown


async def redrive(transport: KafkaTransport, queue: str, limit: int | None, run: Run, dry_run: bool) -> None:
    """Produce the pending dead letters back to the queue's topic, committing after each batch."""
    consumer = await _consumer(transport, redrive_group(transport, queue))
    try:
        ends = await _assign_pending(consumer, transport, queue)
        run.total = 0
        for tp, end in ends.items():
            run.total += max(0, end - await consumer.position(tp))
        if limit is not None:
            run.total = min(run.total, limit)
        producer = await transport._ready()
        topic = transport.topic(queue)
        async for records in _pending(consumer, ends, limit, run):
            if dry_run:
                run.done("would be redriven", len(records))
                continue
            await run.pace(len(records))
            with kafka_errors(f"Kafka topic {topic!r} of AsyncMQ queue {queue!r}", "Produce"):
                sent = [await producer.send(topic, value=r.value, key=r.key) for r in records]
                for future in sent:
                    await future
            last: dict[TopicPartition, int] = {}
            for record in records:
                last[TopicPartition(record.topic, record.partition)] = record.offset + 1
            with kafka_errors(f"Kafka group {redrive_group(transport, queue)!r}", "OffsetCommit"):
                await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in last.items()})
            run.done("redriven", len(records))
    finally:
        await consumer.stop()


def purge() -> None:
    raise ConfigurationError(
        "a Kafka dead-letter topic is not purged record by record: its retention (retention.ms) trims it; "
        "`dlq redrive` keeps its place in the topic, so nothing is redriven twice"
    )
