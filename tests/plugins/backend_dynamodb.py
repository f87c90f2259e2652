"""DynamoDB fixtures: ``DynamoDBBackend`` in the contract suite, on a real moto server and on MiniStack.

``dynamodb_moto_backend`` (and ``dynamodb_ministack_backend``) builds the backend from keywords
only (as an app's settings would), on fresh random tables created through ``create_missing``;
afterwards both tables are deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from asyncmq_cloud.backends.dynamodb import DynamoDBBackend
from asyncmq_cloud.config import LifecycleConfig
from tests.plugins.store_dynamodb import drop_tables

REGION = "us-east-1"


@asynccontextmanager
async def dynamodb_backend(endpoint: str, **kwargs: Any) -> AsyncIterator[DynamoDBBackend]:
    """A started ``DynamoDBBackend`` on fresh tables of ``endpoint``; the tables are dropped afterwards."""
    suffix = uuid.uuid4().hex[:12]
    jobs, delays = f"t-ddb-jobs-{suffix}", f"t-ddb-delays-{suffix}"
    kwargs.setdefault("config", LifecycleConfig(receive_wait=0.2))
    backend = DynamoDBBackend(
        table=jobs,
        delay_store=f"dynamodb://{delays}",
        endpoint_url=endpoint,
        region_name=REGION,
        create_missing=True,
        **kwargs,
    )
    try:
        await backend.start()
        yield backend
    finally:
        try:
            await backend.close()
        finally:
            await drop_tables(endpoint, jobs, delays)


@pytest.fixture
async def dynamodb_moto_backend(moto_endpoint: str) -> AsyncIterator[DynamoDBBackend]:
    async with dynamodb_backend(moto_endpoint) as backend:
        yield backend


@pytest.fixture
async def dynamodb_ministack_backend(ministack_endpoint: str) -> AsyncIterator[DynamoDBBackend]:
    async with dynamodb_backend(ministack_endpoint) as backend:
        yield backend
