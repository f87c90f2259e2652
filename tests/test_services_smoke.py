"""Smoke tests of the real services: one real operation each, over a real socket.

They prove the test bed (``scripts/services.py`` + ``tests/plugins/services.py``) before any
backend test relies on it. Every resource gets a random name and is removed in ``finally``; every
client is closed (``ResourceWarning`` is an error here); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aioboto3
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REGION = "us-east-1"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _receive(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    """Long-poll until ``expected`` messages arrived (at most five polls of 2 s)."""
    messages: list[dict[str, Any]] = []
    for _ in range(5):
        reply = await sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2, AttributeNames=["All"]
        )
        messages += reply.get("Messages", [])
        if len(messages) >= expected:
            break
    return messages


async def _sqs_round_trip(sqs: Any, *, fifo: bool = False) -> None:
    """Create a queue, send two messages, receive them (in order for FIFO), delete them."""
    name = _name("smoke") + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    queue_url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
    try:
        bodies = [uuid.uuid4().hex, uuid.uuid4().hex]
        for index, body in enumerate(bodies):
            extra = {"MessageGroupId": "group", "MessageDeduplicationId": f"dedup-{index}"} if fifo else {}
            await sqs.send_message(QueueUrl=queue_url, MessageBody=body, **extra)
        messages = await _receive(sqs, queue_url, len(bodies))
        received = [message["Body"] for message in messages]
        assert received == bodies if fifo else sorted(received) == sorted(bodies)
        if fifo:
            assert {message["Attributes"]["MessageGroupId"] for message in messages} == {"group"}
        for message in messages:
            await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    finally:
        await sqs.delete_queue(QueueUrl=queue_url)


@pytest.mark.redis
async def test_redis_set_get(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    key = _name("smoke")
    try:
        assert await client.set(key, b"value", ex=60)
        assert await client.get(key) == b"value"
    finally:
        await client.delete(key)
        await client.aclose()


@pytest.mark.moto
async def test_moto_dynamodb_and_sqs(moto_endpoint: str) -> None:
    session = aioboto3.Session(region_name=REGION)
    async with session.client("dynamodb", endpoint_url=moto_endpoint) as dynamodb:
        table = _name("smoke")
        await dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        try:
            await dynamodb.put_item(TableName=table, Item={"pk": {"S": "job-1"}, "attempts": {"N": "2"}})
            item = await dynamodb.get_item(TableName=table, Key={"pk": {"S": "job-1"}}, ConsistentRead=True)
            assert item["Item"] == {"pk": {"S": "job-1"}, "attempts": {"N": "2"}}
        finally:
            await dynamodb.delete_table(TableName=table)
    async with session.client("sqs", endpoint_url=moto_endpoint) as sqs:
        await _sqs_round_trip(sqs)


@pytest.mark.localstack
async def test_localstack_sqs(localstack_endpoint: str) -> None:
    session = aioboto3.Session(region_name=REGION)
    async with session.client("sqs", endpoint_url=localstack_endpoint) as sqs:
        await _sqs_round_trip(sqs)


@pytest.mark.elasticmq
async def test_elasticmq_sqs_standard_and_fifo(elasticmq_endpoint: str) -> None:
    session = aioboto3.Session(region_name=REGION)
    async with session.client("sqs", endpoint_url=elasticmq_endpoint) as sqs:
        await _sqs_round_trip(sqs)
        await _sqs_round_trip(sqs, fifo=True)


async def _topic_visible(admin: AIOKafkaAdminClient, topic: str, timeout: float = 15.0) -> bool:
    """CreateTopics returns once the controller committed the topic; the broker's metadata cache
    can lag behind (seen on a loaded 2-core machine), so poll ``list_topics`` for a bounded time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while topic not in await admin.list_topics():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


@pytest.mark.kafka
async def test_kafka_admin_produce_consume(kafka_bootstrap: str) -> None:
    topic, value = _name("smoke"), uuid.uuid4().bytes
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        assert await _topic_visible(admin, topic)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, value, key=b"job-1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=_name("group"),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
            await consumer.commit()
        finally:
            await consumer.stop()
        assert (record.key, record.value, record.offset) == (b"job-1", value, sent.offset)
    finally:
        await admin.delete_topics([topic])
        await admin.close()
