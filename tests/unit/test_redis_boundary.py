"""The Redis boundary (asyncmq_cloud/redis.py): one pool for both stores, one error map, one decorator.

No server is needed (pools connect lazily, the error map is a pure function, an unreachable
Redis is a refused port), except for the retry after a failed start, which runs on redis-server.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid

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


@pytest.mark.parametrize("kind", [RedisStateStore, RedisDelayStore])
async def test_a_start_against_an_unreachable_redis_is_a_transient_error(kind: type[RedisStateStore]) -> None:
    """Both stores load scripts at start, and a start runs inside every lazily started backend
    call (``dequeue`` too): redis-py's ConnectionError must arrive as our TransientError."""
    store = kind(URL)  # port 1: the connection is refused
    try:
        with pytest.raises(TransientError) as caught:
            await store.start()
        assert isinstance(caught.value.__cause__, rexc.ConnectionError)
        assert not store.started
    finally:
        await store.close()


@pytest.mark.redis
async def test_a_start_that_fails_after_connecting_closes_its_pool_and_can_be_retried(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncmq_cloud.delays import redis as delay_module

    real = delay_module.register_scripts
    calls = 0

    async def fail_once(client: object, bodies: dict[str, str]) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise rexc.NoPermissionError("NOPERM this user has no permissions to run the 'script|load' command")
        return await real(client, bodies)  # type: ignore[arg-type]

    monkeypatch.setattr(delay_module, "register_scripts", fail_once)
    store = RedisDelayStore(redis_url, prefix=f"retry-{uuid.uuid4().hex[:8]}")
    first = store.clients
    with pytest.raises(AccessDeniedError):
        await store.start()
    assert first.closed, "the pool the failed start opened is closed, not left to the garbage collector"
    await store.start()  # fresh private clients: the retry works
    try:
        assert store.started and store.clients is not first and not store.clients.closed
        assert await store.claim_due("q", 0.0, 10) == []
    finally:
        await store.close()
    assert store.clients.closed
