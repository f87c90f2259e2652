"""Store and backend fixtures shared by the contract suites.

``state_store`` is parametrized over every StateStore: the reference memory
store, the Redis store (real redis-server) and the DynamoDB store (real moto
server, and MiniStack as a second emulator); ``twin_state_store`` is a second client of the same data (another worker
process: own connections, same prefix/table; for memory the same object);
``delay_store`` likewise over every DelayStore. ``backend`` is
parametrized over AsyncMQ's own ``InMemoryBackend`` (the reference behaviour)
and ``CloudBackend`` over each store (with the delay store of the same
service), with the memory transport both with and without native delays.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asyncmq.backends.memory import InMemoryBackend

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.stores.memory import MemoryStateStore
from asyncmq_cloud.transports.memory import MemoryTransport

STORES = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("dynamodb", marks=pytest.mark.moto),
    pytest.param("ministack", marks=pytest.mark.ministack),  # the DynamoDB store on a second emulator
]


@pytest.fixture
async def memory_state_store() -> AsyncIterator[MemoryStateStore]:
    async with MemoryStateStore() as store:
        yield store


@pytest.fixture
def memory_twin_state_store(memory_state_store: MemoryStateStore) -> MemoryStateStore:
    """The memory store lives in one process: its "second client" is itself."""
    return memory_state_store


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which StateStore ``state_store`` and ``twin_state_store`` are: memory, redis, dynamodb (moto) or ministack."""
    return str(request.param)


@pytest.fixture
def state_store(request: pytest.FixtureRequest, store_kind: str) -> Any:
    return request.getfixturevalue(f"{store_kind}_state_store")


@pytest.fixture
def twin_state_store(request: pytest.FixtureRequest, store_kind: str, state_store: Any) -> Any:
    """A second client of ``state_store``'s data (separate connections where the store has any)."""
    return request.getfixturevalue(f"{store_kind}_twin_state_store")


BACKENDS = [
    "asyncmq-memory",
    "cloud-memory",
    "cloud-memory-native-delay",
    pytest.param("cloud-redis", marks=pytest.mark.redis),
    pytest.param("cloud-dynamodb", marks=pytest.mark.moto),
    # SQSBackend on four SQS implementations (fixtures in tests/plugins/backend_sqs.py)
    pytest.param("sqs-elasticmq", marks=[pytest.mark.elasticmq, pytest.mark.redis]),
    pytest.param("sqs-moto", marks=pytest.mark.moto),
    pytest.param("sqs-ministack", marks=pytest.mark.ministack),
    pytest.param("sqs-localstack", marks=[pytest.mark.localstack, pytest.mark.redis]),
    pytest.param("sqs-localstack-provisioned", marks=[pytest.mark.localstack, pytest.mark.redis]),
    # DynamoDBBackend: the table is the queue (fixture in tests/plugins/backend_dynamodb.py)
    pytest.param("dynamodb-moto", marks=pytest.mark.moto),
    pytest.param("dynamodb-ministack", marks=pytest.mark.ministack),
    # KafkaBackend on the real broker (fixtures in tests/plugins/backend_kafka.py)
    pytest.param("kafka-redis", marks=[pytest.mark.kafka, pytest.mark.redis]),
    pytest.param("kafka-dynamodb", marks=[pytest.mark.kafka, pytest.mark.moto]),
]


async def _cloud(store: Any, native_delay: float, delay_store: Any = None) -> AsyncIterator[CloudBackend]:
    # Not closed here: the store fixtures own the stores (and clean them up).
    transport = MemoryTransport(max_native_delay=native_delay)
    # receive_wait 0.5: the contract tests play the worker loop in one task (promote, then dequeue)
    cloud = CloudBackend(store, transport, delay_store or MemoryDelayStore(), config=LifecycleConfig(receive_wait=0.5))
    await cloud.start()
    yield cloud


@pytest.fixture
async def asyncmq_memory_backend() -> AsyncIterator[InMemoryBackend]:
    yield InMemoryBackend()


@pytest.fixture
async def cloud_memory_backend(memory_state_store: Any) -> AsyncIterator[CloudBackend]:
    async for cloud in _cloud(memory_state_store, 0.0):
        yield cloud


@pytest.fixture
async def cloud_memory_native_delay_backend(memory_state_store: Any) -> AsyncIterator[CloudBackend]:
    async for cloud in _cloud(memory_state_store, 900.0):
        yield cloud


@pytest.fixture
async def cloud_redis_backend(redis_state_store: Any, redis_delay_store: Any) -> AsyncIterator[CloudBackend]:
    async for cloud in _cloud(redis_state_store, 0.0, redis_delay_store):
        yield cloud


@pytest.fixture
async def cloud_dynamodb_backend(dynamodb_state_store: Any, dynamodb_delay_store: Any) -> AsyncIterator[CloudBackend]:
    async for cloud in _cloud(dynamodb_state_store, 0.0, dynamodb_delay_store):
        yield cloud


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param.replace("-", "_") + "_backend")


#: The parity suite's matrix: every backend and store, minus the provisioned LocalStack variant,
#: whose only difference (queues made by ``asyncmq-cloud provision``) the contract suite covers.
PARITY_BACKENDS = [b for b in BACKENDS if getattr(b, "values", (b,))[0] != "sqs-localstack-provisioned"]


# -- delay stores -------------------------------------------------------------------
DELAY_STORES = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("dynamodb", marks=pytest.mark.moto),
    pytest.param("ministack", marks=pytest.mark.ministack),  # the DynamoDB store on a second emulator
]


@pytest.fixture
async def memory_delay_store() -> AsyncIterator[MemoryDelayStore]:
    store = MemoryDelayStore()
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def redis_delay_store(redis_url: str) -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    from asyncmq_cloud.delays.redis import RedisDelayStore

    prefix = f"t-delay-{uuid.uuid4().hex[:12]}"
    store = RedisDelayStore(redis_url, prefix=prefix)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        client = aioredis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@asynccontextmanager
async def provisioned_delay_store(endpoint: str) -> AsyncIterator[Any]:
    """A started DynamoDB delay store on its own provisioned table of ``endpoint``; deleted afterwards."""
    from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore
    from tests.plugins.store_dynamodb import drop_table, moto_clients

    clients = moto_clients(endpoint)
    store = DynamoDBDelayStore(f"test-delays-{uuid.uuid4().hex[:12]}", clients=clients)
    try:
        await store.start()
        await store.provision()
        yield store
    finally:
        try:
            await drop_table(clients, store.table_name)
        finally:
            await store.close()
            await clients.close()


@pytest.fixture
async def dynamodb_delay_store(dynamodb_endpoint: str) -> AsyncIterator[Any]:
    """A started delay store on its own provisioned table; the table is deleted and the store closed afterwards."""
    async with provisioned_delay_store(dynamodb_endpoint) as store:
        yield store


@pytest.fixture
async def ministack_delay_store(ministack_endpoint: str) -> AsyncIterator[Any]:
    """``dynamodb_delay_store`` on MiniStack (the second DynamoDB emulator)."""
    async with provisioned_delay_store(ministack_endpoint) as store:
        yield store


@pytest.fixture(params=DELAY_STORES)
def delay_store(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_delay_store")
