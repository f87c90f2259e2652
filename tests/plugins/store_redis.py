"""The ``redis_state_store`` fixture: a started :class:`RedisStateStore` on a fresh prefix (and its twin).

Needs the ``redis_url`` fixture of ``tests/plugins/services.py`` (a real redis-server).
Each test gets a random prefix, so tests may run in parallel against one server; the
fixture deletes exactly its own keys afterwards (``SCAN`` by prefix, never ``FLUSHALL``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from asyncmq_cloud.stores.redis import RedisStateStore


async def drop_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under ``prefix:`` with a client of its own; return how many."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
        return len(keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_state_store(redis_url: str) -> AsyncIterator[RedisStateStore]:
    """A started store with a random prefix; its keys are deleted and it is closed afterwards."""
    store = RedisStateStore(redis_url, prefix=f"test-{uuid.uuid4().hex}")
    await store.start()
    try:
        yield store
    finally:
        try:
            await drop_prefix(redis_url, store.prefix)
        finally:
            await store.close()


@pytest.fixture
async def redis_twin_state_store(redis_url: str, redis_state_store: RedisStateStore) -> AsyncIterator[RedisStateStore]:
    """A second store (own client and pool) on the same prefix: another worker process."""
    async with RedisStateStore(redis_url, prefix=redis_state_store.prefix) as store:
        yield store
