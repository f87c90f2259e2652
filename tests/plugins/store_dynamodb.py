"""DynamoDB fixtures (``dynamodb_endpoint``, ``dynamodb_state_store`` and its twin) and helpers.

``dynamodb_state_store`` is a started store on its own provisioned table (random
name, so tests may run in parallel against one server); the fixture deletes
exactly that table afterwards and closes every client.

The moto server started by the test bed serializes DynamoDB requests
(``scripts/moto_atomic.py``): plain ``moto_server`` lets two concurrent
conditional writes on one item both succeed, which real DynamoDB never does.
A moto named by ``AWS_ENDPOINT_URL`` must be started the same way for the race
tests to be meaningful.

``ASYNCMQ_DYNAMODB_ENDPOINT=http://127.0.0.1:P`` runs the DynamoDB tests against
an emulator that is already running instead (e.g. MiniStack).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore


@contextlib.contextmanager
def recorded_calls(client: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every DynamoDB API call made through ``client`` inside the block: (operation, params)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: Any, **_: Any) -> None:
        calls.append((model.name, params))

    # Fires once per API call, with the call's own parameters (not the serialized request).
    client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", record)


def random_table_name() -> str:
    return f"test-jobs-{uuid.uuid4().hex[:12]}"


def moto_clients(endpoint: str) -> AwsClients:
    """Clients for the emulator; a larger pool so concurrency tests really race."""
    return AwsClients(endpoint_url=endpoint, region_name="us-east-1", aio_config=AioConfig(max_pool_connections=64))


async def drop_table(clients: AwsClients, table_name: str) -> None:
    """Delete ``table_name`` if it exists (never any other table)."""
    client = await clients.dynamodb()
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        await client.delete_table(TableName=table_name)


async def drop_tables(endpoint: str, *table_names: str) -> None:
    """Delete each of ``table_names`` that exists on ``endpoint``, through clients of its own."""
    cleanup = moto_clients(endpoint)
    try:
        for table_name in table_names:
            await drop_table(cleanup, table_name)
    finally:
        await cleanup.close()


@pytest.fixture(scope="session")
def dynamodb_endpoint(request: pytest.FixtureRequest) -> str:
    """The DynamoDB emulator: ``ASYNCMQ_DYNAMODB_ENDPOINT`` if set, else the moto server."""
    existing = os.environ.get("ASYNCMQ_DYNAMODB_ENDPOINT", "").strip()
    if existing:
        return existing
    return str(request.getfixturevalue("moto_endpoint"))


@contextlib.asynccontextmanager
async def provisioned_store(endpoint: str) -> AsyncIterator[DynamoDBStateStore]:
    """A started store on its own provisioned table of ``endpoint``; the table is deleted afterwards."""
    clients = moto_clients(endpoint)
    store = DynamoDBStateStore(random_table_name(), clients=clients)
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


@contextlib.asynccontextmanager
async def twin_store(endpoint: str, store: DynamoDBStateStore) -> AsyncIterator[DynamoDBStateStore]:
    """A second store (own clients and connection pool) on ``store``'s table: another worker process."""
    clients = moto_clients(endpoint)
    try:
        async with DynamoDBStateStore(store.table_name, clients=clients) as twin:
            yield twin
    finally:
        await clients.close()


@pytest.fixture
async def dynamodb_state_store(dynamodb_endpoint: str) -> AsyncIterator[DynamoDBStateStore]:
    """A started store on its own provisioned table; the table is deleted and the store closed afterwards."""
    async with provisioned_store(dynamodb_endpoint) as store:
        yield store


@pytest.fixture
async def dynamodb_twin_state_store(
    dynamodb_endpoint: str, dynamodb_state_store: DynamoDBStateStore
) -> AsyncIterator[DynamoDBStateStore]:
    """A second store (own clients and connection pool) on the same table: another worker process."""
    async with twin_store(dynamodb_endpoint, dynamodb_state_store) as store:
        yield store


@pytest.fixture
async def ministack_state_store(ministack_endpoint: str) -> AsyncIterator[DynamoDBStateStore]:
    """``dynamodb_state_store`` on MiniStack (the second DynamoDB emulator)."""
    async with provisioned_store(ministack_endpoint) as store:
        yield store


@pytest.fixture
async def ministack_twin_state_store(
    ministack_endpoint: str, ministack_state_store: DynamoDBStateStore
) -> AsyncIterator[DynamoDBStateStore]:
    """``dynamodb_twin_state_store`` on MiniStack."""
    async with twin_store(ministack_endpoint, ministack_state_store) as store:
        yield store
