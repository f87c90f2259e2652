"""Kafka fixtures: ``KafkaBackend`` in the contract suite, on the real Apache Kafka broker (KRaft).

* ``kafka_redis_backend``: Kafka + Redis state store + Redis delay store;
* ``kafka_dynamodb_backend``: Kafka + DynamoDB state and delay stores on a moto server.

Every backend gets a random topic prefix (``t{hex8}-``), so its topics and consumer groups
are its own; it creates its topics on first use (``create_missing``, 2 partitions) and
afterwards exactly the topics under that prefix, the tables and the Redis keys it used are
deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.config import LifecycleConfig
from tests.plugins.backend_sqs import random_prefix, redis_stores
from tests.plugins.store_dynamodb import drop_tables

REGION = "us-east-1"


async def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (never any other)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


@asynccontextmanager
async def kafka_backend(bootstrap: str, *, receive_wait: float = 0.3, **kwargs: Any) -> AsyncIterator[KafkaBackend]:
    """A started ``KafkaBackend`` on ``bootstrap`` with a random topic prefix; topics dropped afterwards."""
    prefix = kwargs.pop("topic_prefix", None) or random_prefix()
    kwargs.setdefault("config", LifecycleConfig(receive_wait=receive_wait))
    kwargs.setdefault("partitions", 2)
    kwargs.setdefault("create_missing", True)
    backend = KafkaBackend(bootstrap_servers=bootstrap, topic_prefix=prefix, **kwargs)
    try:
        await backend.start()
        yield backend
    finally:
        try:
            await backend.close()
        finally:
            await drop_topics(bootstrap, prefix)


@pytest.fixture
async def kafka_redis_backend(kafka_bootstrap: str, redis_url: str) -> AsyncIterator[KafkaBackend]:
    async with redis_stores(redis_url) as store, kafka_backend(kafka_bootstrap, store=store) as backend:
        yield backend


@pytest.fixture
async def kafka_dynamodb_backend(kafka_bootstrap: str, moto_endpoint: str) -> AsyncIterator[KafkaBackend]:
    suffix = uuid.uuid4().hex[:12]
    jobs, delays = f"t-kjobs-{suffix}", f"t-kdelays-{suffix}"
    try:
        async with kafka_backend(
            kafka_bootstrap,
            store=f"dynamodb://{jobs}",
            delay_store=f"dynamodb://{delays}",
            endpoint_url=moto_endpoint,
            region_name=REGION,
        ) as backend:
            yield backend
    finally:
        await drop_tables(moto_endpoint, jobs, delays)
