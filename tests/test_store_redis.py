"""Redis-specific behaviour of :class:`RedisStateStore`, against a real redis-server.

The generic StateStore contract lives in ``tests/contract/test_store_contract.py``;
these tests cover what only Redis has: round trips per operation, the key layout,
the script cache, lock keys with a real expiry, error translation and the lifecycle.
(Races between two clients of one prefix run in the contract suite, through
``twin_state_store``.)
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis import exceptions as rexc

from asyncmq_cloud.core.protocols import WAITING_CHILDREN, JobRecord
from asyncmq_cloud.errors import ClosedError, InvalidNameError, PayloadTooLargeError, TransientError
from asyncmq_cloud.stores.redis import RedisStateStore
from tests.plugins.store_redis import drop_prefix

pytestmark = pytest.mark.redis

Store = RedisStateStore


def _rec(queue: str, job_id: str, state: str = "waiting", run_at: float | None = None, **payload: Any) -> JobRecord:
    return JobRecord(queue=queue, id=job_id, state=state, payload={"id": job_id, **payload}, run_at=run_at)


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client to look at the keys the store wrote."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


class Commands:
    """Records the commands a store sends (one entry per round trip of a plain call)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        client = store.client
        original: Callable[..., Awaitable[Any]] = client.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            self.names.append(str(args[0]).upper())
            return await original(*args, **options)

        monkeypatch.setattr(client, "execute_command", counted)

    async def during(self, call: Callable[[], Awaitable[Any]]) -> tuple[Any, list[str]]:
        self.names.clear()
        result = await call()
        return result, list(self.names)


async def _keys(raw: aioredis.Redis, prefix: str) -> set[str]:
    return {key async for key in raw.scan_iter(match=f"{prefix}:*")}


# -- round trips ------------------------------------------------------------------


async def test_each_operation_is_one_round_trip(
    redis_state_store: Store, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = redis_state_store
    commands = Commands(store, monkeypatch)
    flow = [_rec(queue, "a"), _rec(queue, "b"), _rec(queue, "c", WAITING_CHILDREN)]
    now = time.time()
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("create (3 jobs + edges)", lambda: store.create(flow, {"c": ["a", "b"]})),
        ("claim", lambda: store.claim(queue, "a", "tok", now)),
        ("heartbeat", lambda: store.heartbeat(queue, "a", now + 1, "tok")),
        ("transition", lambda: store.transition(queue, "a", "completed", expect_owner="tok", payload={"r": 1})),
        ("resolve_dependency", lambda: store.resolve_dependency(queue, "a")),
        ("set_state", lambda: store.set_state(queue, "b", "failed")),
        ("update_payload", lambda: store.update_payload(queue, "b", {"id": "b", "progress": 1})),
        ("list_jobs", lambda: store.list_jobs(queue, "waiting")),
        ("count_jobs", lambda: store.count_jobs(queue)),
        ("list_stalled", lambda: store.list_stalled(now)),
        ("delete", lambda: store.delete(queue, "c")),
        ("acquire_lock", lambda: store.acquire_lock("k", "tok", 5)),
        ("release_lock", lambda: store.release_lock("k", "tok")),
        ("list_workers", lambda: store.list_workers()),
    ]
    for name, step in steps:
        _, sent = await commands.during(step)
        assert sent == ["EVALSHA"], f"{name} sent {sent}"
    claimed, _ = await commands.during(lambda: store.get(queue, "a"))
    assert claimed.state == "completed" and claimed.payload == {"r": 1}
    assert commands.names == ["HGETALL"]


async def test_scripts_survive_a_script_cache_flush(redis_state_store: Store, raw: aioredis.Redis, queue: str) -> None:
    await redis_state_store.create([_rec(queue, "a")])
    await raw.script_flush()  # e.g. a restarted server or a failover to a fresh replica
    claimed = await redis_state_store.claim(queue, "a", "tok", time.time())
    assert claimed is not None and claimed.owner == "tok"


# -- writes that must not happen ----------------------------------------------------


async def test_oversized_create_sends_no_command(
    redis_state_store: Store, raw: aioredis.Redis, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = redis_state_store
    commands = Commands(store, monkeypatch)
    limit = store.max_payload_bytes
    flow = [_rec(queue, "ok"), _rec(queue, "big", blob="é" * (limit // 2 + 1)), _rec(queue, "child")]
    with pytest.raises(PayloadTooLargeError):
        await store.create(flow, {"child": ["ok", "big"]})
    assert commands.names == []  # refused in Python, before the script
    assert await _keys(raw, store.prefix) == set()


async def test_queue_names_with_separators_are_refused(redis_state_store: Store, raw: aioredis.Redis) -> None:
    for bad in ["", "a:b", "a#b", "a b"]:
        with pytest.raises(InvalidNameError):
            await redis_state_store.create([_rec(bad, "x")])
        with pytest.raises(InvalidNameError):
            await redis_state_store.claim(bad, "x", "tok", time.time())
    assert await _keys(raw, redis_state_store.prefix) == set()


# -- layout, indexes ---------------------------------------------------------------


async def test_key_layout(redis_state_store: Store, raw: aioredis.Redis, queue: str) -> None:
    store, p = redis_state_store, redis_state_store.prefix
    await store.create([_rec(queue, "p"), _rec(queue, "c:1", WAITING_CHILDREN)], {"c:1": ["p"]})
    await store.claim(queue, "p", "tok", 100.0)
    await store.set_paused(queue, True)
    assert await _keys(raw, p) == {
        f"{p}:q:{queue}:job:p",
        f"{p}:q:{queue}:job:c:1",
        f"{p}:q:{queue}:state:active",
        f"{p}:q:{queue}:state:{WAITING_CHILDREN}",
        f"{p}:q:{queue}:pending:c:1",
        f"{p}:q:{queue}:children:p",
        f"{p}:active",
        f"{p}:queues",
        f"{p}:paused",
        f"{p}:seq",
    }
    job = await raw.hgetall(f"{p}:q:{queue}:job:p")
    assert set(job) == {"state", "payload", "seq", "created_at", "updated_at", "owner", "heartbeat"}
    assert job["state"] == "active" and job["owner"] == "tok"
    active = await raw.zrange(f"{p}:active", 0, -1, withscores=True)
    assert [tuple(entry) for entry in active] == [(f"{queue}:p", 100.0)]
    # Known states are not recorded in the states set (count_jobs reads them all); others are.
    assert not await raw.exists(f"{p}:q:{queue}:states")
    assert await store.set_state(queue, "c:1", "archived")
    assert await raw.smembers(f"{p}:q:{queue}:states") == {"archived"}
    assert await store.count_jobs(queue) == {"active": 1, "archived": 1}


async def test_stalled_listing_follows_heartbeats(redis_state_store: Store, queue: str) -> None:
    store, other = redis_state_store, f"{queue}-b"
    await store.create([_rec(queue, f"j{i}") for i in range(3)])
    await store.create([_rec(other, "j0")])
    for i in range(3):
        await store.claim(queue, f"j{i}", f"t{i}", 100.0 + i)
    await store.claim(other, "j0", "u0", 50.0)

    stalled = await store.list_stalled(102.0)
    assert [(r.queue, r.id, r.owner, r.heartbeat) for r in stalled] == [
        (other, "j0", "u0", 50.0),
        (queue, "j0", "t0", 100.0),
        (queue, "j1", "t1", 101.0),
    ]
    assert await store.heartbeat(queue, "j0", 500.0, "t0")
    assert await store.transition(other, "j0", "completed", expect_owner="u0") is not None
    await store.delete(queue, "j1")
    assert [r.id for r in await store.list_stalled(102.0)] == []
    assert [(r.queue, r.id) for r in await store.list_stalled(1000.0)] == [(queue, "j2"), (queue, "j0")]


async def test_delete_removes_dependency_edges(redis_state_store: Store, raw: aioredis.Redis, queue: str) -> None:
    store, p = redis_state_store, redis_state_store.prefix
    await store.create([_rec(queue, "a"), _rec(queue, "b"), _rec(queue, "c", WAITING_CHILDREN)], {"c": ["a", "b"]})
    await store.delete(queue, "c")  # the child: its pending set and the parents' edges go
    assert not await raw.exists(f"{p}:q:{queue}:pending:c", f"{p}:q:{queue}:children:a")
    assert await store.resolve_dependency(queue, "b") == []
    assert await store.count_jobs(queue) == {"waiting": 2}


async def test_expired_workers_are_pruned(redis_state_store: Store, raw: aioredis.Redis) -> None:
    from asyncmq_cloud.core.protocols import WorkerRecord

    store, p = redis_state_store, redis_state_store.prefix
    await store.register_worker(WorkerRecord("old", "q", 1, time.time() - 60), 30)
    await store.register_worker(WorkerRecord("new", "q", 2, time.time()), 30)
    assert [w.id for w in await store.list_workers()] == ["new"]
    assert await raw.hkeys(f"{p}:workers") == ["new"]


# -- locks -------------------------------------------------------------------------


async def test_lock_is_a_key_with_a_px_expiry(redis_state_store: Store, raw: aioredis.Redis) -> None:
    assert await redis_state_store.acquire_lock("l", "a", 0.3)
    assert 0 < await raw.pttl(f"{redis_state_store.prefix}:lock:l") <= 300
    assert await raw.get(f"{redis_state_store.prefix}:lock:l") == "a"
    await asyncio.sleep(0.45)
    assert not await raw.exists(f"{redis_state_store.prefix}:lock:l")  # Redis expired it, not the store


# -- lifecycle and errors -------------------------------------------------------------


async def test_lifecycle(redis_url: str, raw: aioredis.Redis) -> None:
    store = RedisStateStore(redis_url, prefix=f"test-{uuid.uuid4().hex}")
    with pytest.raises(ClosedError, match="not started"):
        await store.get("q", "x")
    await store.start()
    await store.start()
    await store.provision()
    await store.close()
    await store.close()
    with pytest.raises(ClosedError):
        await store.start()
    with pytest.raises(ClosedError, match="closed"):
        await store.get("q", "x")

    async with RedisStateStore(client=raw, prefix=f"test-{uuid.uuid4().hex}") as borrowed:
        await borrowed.set_paused("q", True)
        assert await borrowed.is_paused("q")
        await drop_prefix(redis_url, borrowed.prefix)
    assert await raw.ping()  # a client passed in is not closed by the store


async def test_unreachable_server_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisStateStore(f"redis://127.0.0.1:{port}/0", client_kwargs={"timeout": 2})
    with pytest.raises(TransientError) as info:
        await store.start()
    assert isinstance(info.value.__cause__, rexc.ConnectionError)
    assert info.value.retriable
    await store.close()


@pytest.mark.redis
async def test_waiting_depth_list_mirrors_the_waiting_set(
    redis_state_store: Store, raw: aioredis.Redis, queue: str
) -> None:
    """KEDA's redis scaler reads LLEN of ``P:q:Q:waiting-depth``: it must equal the waiting count
    through every kind of state change (create, claim, transition, promote, set_state, delete)."""
    store = redis_state_store
    depth_key = f"{store.prefix}:q:{queue}:waiting-depth"
    rng = random.Random(7)
    ids = [f"j{i}" for i in range(40)]
    await store.create([_rec(queue, j) for j in ids[:30]])
    await store.create([_rec(queue, j, "delayed", run_at=time.time() - 1) for j in ids[30:]])
    for step in range(200):
        job_id = rng.choice(ids)
        action = rng.randrange(6)
        if action == 0:
            await store.claim(queue, job_id, f"t{step}", time.time())
        elif action == 1:
            await store.transition(queue, job_id, rng.choice(["completed", "waiting", "failed"]))
        elif action == 2:
            await store.promote(queue, [job_id])
        elif action == 3:
            await store.set_state(queue, job_id, rng.choice(["waiting", "active", "delayed"]))
        elif action == 4:
            await store.delete(queue, job_id)
        else:
            await store.create([_rec(queue, job_id, rng.choice(["waiting", "delayed"]), run_at=time.time() + 60)])
        waiting = (await store.count_jobs(queue)).get("waiting", 0)
        assert await raw.llen(depth_key) == waiting, f"step {step}: action {action} on {job_id}"
    assert await raw.llen(depth_key) > 0, "the sequence ended with no waiting job: it proved little"


async def test_a_job_costs_24_commands_on_the_server(redis_state_store: Store, redis_url: str, queue: str) -> None:
    """What Redis executes for one job's add (unsent, as SQSBackend writes it), claim and completion:
    every command, the scripts' own included, seen by ``MONITOR`` (issue 19: <= 25 per job)."""
    store, marker = redis_state_store, f"{redis_state_store.prefix}-end"
    seen: list[tuple[str, str]] = []
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with client.monitor() as monitor:

            async def listen() -> None:
                while True:
                    line = await monitor.next_command()
                    if store.prefix in line["command"]:
                        name = line["command"].split(" ", 1)[0].upper()
                        if marker in line["command"]:
                            return
                        seen.append((name, line["client_type"]))

            listener = asyncio.create_task(listen())
            await store.create([_rec(queue, "j")], unsent=True)
            await store.claim(queue, "j", "tok", time.time())
            done = await store.transition(
                queue, "j", "completed", expect_states={"active"}, expect_owner="tok", payload={"result": 3}
            )
            await client.echo(marker)
            await asyncio.wait_for(listener, 10)
    finally:
        await client.aclose()
    assert done is not None and done.state == "completed" and done.payload == {"result": 3} and done.owner is None
    assert [name for name, _ in seen] == [
        *("EVALSHA", "HMGET", "INCR", "HSET", "LPUSH", "ZADD", "ZADD", "SADD"),  # add: record, waiting, unsent, queue
        *("EVALSHA", "HMGET", "HSET", "RPOP", "ZREM", "ZREM", "ZADD", "ZADD"),  # claim: unsent and waiting -> active
        *("EVALSHA", "HMGET", "HDEL", "HSET", "ZREM", "ZADD", "ZREM", "EXISTS"),  # completion, any child waiting?
    ], seen
