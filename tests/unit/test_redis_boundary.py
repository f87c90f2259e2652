"""The Redis boundary (asyncmq_cloud/redis.py): one pool for both stores, one error map, one decorator.

No server is needed: pools connect lazily, and the error map is a pure function.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from redis import exceptions as rexc

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.backends._urls import build_delay_store, build_state_store
from asyncmq_cloud.delays.redis import RedisDelayStore
from asyncmq_cloud.errors import AccessDeniedError, ClosedError, ConfigurationError, PermanentError, TransientError
from asyncmq_cloud.redis import RedisClients, load_lua, redis_errors, translate_redis_error
from asyncmq_cloud.stores.redis import RedisStateStore
from tests.unit.test_extras import _blocked

URL = "redis://127.0.0.1:1/0"  # never connected to


def test_state_and_delay_store_from_one_url_share_one_pool() -> None:
    aws = AwsClients(region_name="us-east-1")  # what a preset passes; unused by Redis stores
    store = build_state_store(f"{URL}?prefix=p", clients=aws)
    assert isinstance(store, RedisStateStore)
    default = build_delay_store(None, store=store, clients=aws)
    same_url = build_delay_store(f"{URL}?prefix=other", store=store, clients=aws)
    other_db = build_delay_store("redis://127.0.0.1:1/5", store=store, clients=aws)
    assert isinstance(default, RedisDelayStore) and isinstance(same_url, RedisDelayStore)
    assert isinstance(other_db, RedisDelayStore)
    assert default.clients is store.clients and same_url.clients is store.clients
    assert same_url.prefix == "other" and default.prefix == "p"
    assert other_db.clients is not store.clients


async def test_borrowed_clients_stay_open_owned_ones_close() -> None:
    shared = RedisClients(URL)
    async with shared:
        delays = RedisDelayStore(clients=shared)
        store = RedisStateStore(clients=shared)
        assert shared.client is not None  # the pool connects lazily: no server needed
        await delays.close()
        await store.close()
        assert shared.started and not shared.closed
        with pytest.raises(ClosedError, match="RedisDelayStore is closed; create a new one"):
            await delays.start()
    assert shared.closed
    with pytest.raises(ClosedError, match="RedisClients is closed"):
        _ = shared.client
    own = RedisDelayStore(URL)
    await own.close()
    assert own.clients.closed
    with pytest.raises(ConfigurationError, match="shared RedisClients"):
        RedisDelayStore(clients=RedisClients(URL), client_kwargs={"max_connections": 2})


def test_errors_map_onto_the_hierarchy() -> None:
    assert isinstance(translate_redis_error(rexc.AuthenticationError("no")), AccessDeniedError)
    assert isinstance(translate_redis_error(rexc.NoPermissionError("acl")), AccessDeniedError)
    for transient in (rexc.ConnectionError("x"), rexc.BusyLoadingError("x"), rexc.ReadOnlyError("x"), TimeoutError()):
        assert isinstance(translate_redis_error(transient), TransientError), transient
    assert isinstance(translate_redis_error(rexc.ResponseError("WRONGTYPE")), PermanentError)
    mine = TransientError("already ours")
    assert translate_redis_error(mine) is mine


async def test_the_decorator_keeps_coroutines_and_chains_the_cause() -> None:
    @redis_errors
    async def refused(n: int) -> int:
        raise rexc.ConnectionError(f"refused {n}")

    assert inspect.iscoroutinefunction(refused)
    call = refused(3)
    assert inspect.iscoroutine(call)
    with pytest.raises(TransientError, match="redis: refused 3") as caught:
        await call
    assert isinstance(caught.value.__cause__, rexc.ConnectionError)
    assert await asyncio.wait_for(redis_errors(_answer)(), 1) == 42


async def _answer() -> int:
    return 42


def test_one_lua_loader_for_both_stores() -> None:
    assert "ZRANGEBYSCORE" in load_lua("delay_claim_due").upper()
    assert load_lua("state_acquire_lock").strip()


def test_the_redis_stores_without_redis_py_name_the_extra() -> None:
    done = _blocked("redis", "import asyncmq_cloud.stores.redis")
    assert done.returncode == 1
    assert "MissingExtraError" in done.stderr
    assert (
        'the Redis state and delay stores needs redis, which is not installed: pip install "asyncmq-cloud[redis]"'
        in done.stderr
    )
    done = _blocked("redis", "from asyncmq_cloud import SQSBackend\nSQSBackend(store='memory://')")
    assert done.returncode == 0, done.stderr  # a backend without Redis stores never imports redis-py
