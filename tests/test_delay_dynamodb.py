"""DynamoDB-specific behaviour of :class:`DynamoDBDelayStore`, against a real moto server.

The generic DelayStore contract lives in ``tests/contract/test_delay_contract.py``;
these tests cover what only this store has: exactly-once claims between separate
store instances (own clients, as separate scanner processes have), the conditional
delete that respects re-scheduling, calls per operation, the TTL attribute (set,
never relied on: moto never deletes expired items), the per-queue cursor and the
lookback window, and the repair pass that covers entries older than the lookback.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays import _dynamodb_claim as module
from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore
from asyncmq_cloud.errors import (
    ClosedError,
    ConfigurationError,
    InvalidNameError,
    ResourceMissingError,
    TransientError,
)
from asyncmq_cloud.resources import RESOURCES, TTL_ATTRIBUTE, delay_table
from asyncmq_cloud.transports.memory import MemoryTransport
from tests.plugins.store_dynamodb import moto_clients, recorded_calls

Store = DynamoDBDelayStore
moto = pytest.mark.moto


@pytest.fixture
def queue() -> str:
    return f"dd-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(dynamodb_delay_store: Store) -> Store:
    return dynamodb_delay_store


@pytest.fixture
async def other(dynamodb_delay_store: Store, dynamodb_endpoint: str) -> AsyncIterator[Store]:
    """A second store on the same table with its own clients (another scanner process)."""
    async with Store(dynamodb_delay_store.table_name, clients=moto_clients(dynamodb_endpoint)) as second:
        try:
            yield second
        finally:
            await second.clients.close()


async def _raw_item(store: Store, queue: str, job_id: str) -> dict[str, Any] | None:
    client = await store.clients.dynamodb()
    key = store._key(queue, job_id)
    response = await client.get_item(TableName=store.table_name, Key=key, ConsistentRead=True)
    return dict(response["Item"]) if "Item" in response else None


async def _schedule_many(store: Store, queue: str, ids: list[str], run_at: float) -> None:
    limit = asyncio.Semaphore(32)

    async def one(job_id: str) -> None:
        async with limit:
            await store.schedule(queue, job_id, run_at)

    await asyncio.gather(*(one(job_id) for job_id in ids))


# -- configuration (no server) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bucket_seconds": 0}, "bucket_seconds"),
        ({"bucket_seconds": math.nan}, "bucket_seconds"),
        ({"shards": 0}, "shards"),
        ({"shards": 257}, "shards"),
        ({"lookback_seconds": -1}, "lookback_seconds"),
        ({"bucket_seconds": 1, "lookback_seconds": 86400}, "widen the buckets"),
        ({"orphan_ttl_seconds": 60}, "orphan_ttl_seconds"),
        ({"table_name": "no spaces"}, "letters, digits"),
    ],
)
def test_invalid_configuration_names_the_field(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Store(**kwargs)


def test_the_delay_table_is_a_described_resource() -> None:
    spec = delay_table("my-delays")
    assert spec.ttl_attribute == TTL_ATTRIBUTE == "expires_at"
    (index,) = spec.indexes
    assert (index.name, index.hash_key.name, index.projection) == ("due", "due_pk", "KEYS_ONLY")
    assert index.range_key is not None and (index.range_key.name, index.range_key.type) == ("run_at", "N")
    assert "asyncmq-delays" in {r.name for r in RESOURCES}
    with pytest.raises(InvalidNameError):
        delay_table("x")


async def test_lifecycle_is_idempotent_and_closes_only_its_own_clients() -> None:
    endpoint = "http://127.0.0.1:9"  # never called: start/close open no connection
    shared = moto_clients(endpoint)
    async with shared:
        store = Store("some-delays", clients=shared)
        await store.start()
        await store.start()
        await store.close()
        await store.close()
        assert not shared.closed
        with pytest.raises(ClosedError):
            await store.start()
        with pytest.raises(ClosedError):
            await store.schedule("q", "x", time.time())
    own = Store("some-delays", endpoint_url=endpoint, region_name="us-east-1")
    async with own:
        assert own.clients.started
    assert own.clients.closed


# -- layout, TTL, calls per operation ----------------------------------------------------------
@moto
async def test_item_carries_bucket_and_ttl_attribute(store: Store, queue: str) -> None:
    run_at = time.time() + 3600.123456
    await store.schedule(queue, "job", run_at)
    item = await _raw_item(store, queue, "job")
    assert item is not None
    assert float(item["run_at"]["N"]) == run_at  # exact round trip
    assert item["due_pk"]["S"] == f"{queue}#{math.floor(run_at / 60)}"
    # TTL only cleans up orphans, a week after the entry was due; it is never the timer.
    assert int(item[TTL_ATTRIBUTE]["N"]) == math.ceil(run_at + 7 * 86400)
    # An entry already past due is filed under the current bucket, where scanners look.
    await store.schedule(queue, "late", 1_000.0)
    late = await _raw_item(store, queue, "late")
    assert late is not None and late["due_pk"]["S"] == f"{queue}#{math.floor(time.time() / 60)}"
    assert [job_id for job_id, _ in await store.claim_due(queue, time.time(), 10)] == ["late"]


@moto
async def test_table_ttl_is_enabled_on_expires_at_and_provision_is_idempotent(store: Store) -> None:
    await store.provision()
    client = await store.clients.dynamodb()
    ttl = await client.describe_time_to_live(TableName=store.table_name)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    table = (await client.describe_table(TableName=store.table_name))["Table"]
    (index,) = table.get("GlobalSecondaryIndexes", [])
    assert index.get("IndexName") == "due" and index.get("Projection") == {"ProjectionType": "KEYS_ONLY"}


@moto
async def test_missing_table_names_the_fix(dynamodb_endpoint: str, queue: str) -> None:
    async with (
        moto_clients(dynamodb_endpoint) as clients,
        Store(f"missing-{uuid.uuid4().hex[:8]}", clients=clients) as s,
    ):
        with pytest.raises(ResourceMissingError, match="provision"):
            await s.schedule(queue, "x", time.time())


@moto
async def test_calls_per_operation(store: Store, queue: str) -> None:
    client = await store.clients.dynamodb()
    now = time.time()
    with recorded_calls(client) as calls:
        await store.schedule(queue, "a", now - 1)
        await store.schedule(queue, "a", now - 2)  # re-scheduling replaces the time
    assert [op for op, _ in calls] == ["PutItem", "PutItem"]
    with recorded_calls(client) as calls:
        assert await store.list(queue) == [("a", now - 2)]
        assert await store.count(queue) == 1
    assert [op for op, _ in calls] == ["Query"] * (2 * store.shards)
    assert all(params["ConsistentRead"] for _, params in calls)
    await store.claim_due(queue, now - 10, 10)  # the first claim sweeps the lookback window
    with recorded_calls(client) as calls:
        assert await store.claim_due(queue, now, 10) == [("a", now - 2)]
    ops = Counter(op for op, _ in calls)
    assert ops["DeleteItem"] == 1 and 1 <= ops["Query"] <= 2 and set(ops) == {"Query", "DeleteItem"}
    delete = next(params for op, params in calls if op == "DeleteItem")
    assert delete["ReturnValues"] == "ALL_OLD" and "run_at = :seen" in delete["ConditionExpression"]
    await store.schedule(queue, "b", now + 60)
    with recorded_calls(client) as calls:
        assert await store.cancel(queue, "b")
        assert not await store.cancel(queue, "b")
    assert [op for op, _ in calls] == ["DeleteItem", "DeleteItem"]
    assert await store.count(queue) == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, "soon"])
@moto
async def test_bad_input_writes_nothing(store: Store, queue: str, bad: Any) -> None:
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls:
        with pytest.raises(ConfigurationError):
            await store.schedule(queue, "x", bad)
        with pytest.raises(InvalidNameError):
            await store.schedule("bad#queue", "x", time.time())
        with pytest.raises(InvalidNameError):
            await store.schedule(queue, "", time.time())
        with pytest.raises(InvalidNameError):
            await store.schedule(queue, "x" * 1025, time.time())
        with pytest.raises(ConfigurationError):
            await store.claim_due(queue, math.nan, 10)
    assert calls == []
    assert await store.count(queue) == 0


# -- exactly once ------------------------------------------------------------------------------
@moto
@pytest.mark.slow
async def test_separate_scanners_claim_each_id_exactly_once(
    dynamodb_delay_store: Store, dynamodb_endpoint: str, queue: str
) -> None:
    ids = [f"j{i}" for i in range(1000)]
    await _schedule_many(dynamodb_delay_store, queue, ids, time.time() - 1)
    scanners = [Store(dynamodb_delay_store.table_name, clients=moto_clients(dynamodb_endpoint)) for _ in range(4)]

    async def claimer(scanner: Store) -> list[str]:
        got: list[str] = []
        while batch := await scanner.claim_due(queue, time.time(), 50):
            got.extend(job_id for job_id, _ in batch)
        return got

    try:
        results = await asyncio.gather(*(claimer(s) for s in scanners))
    finally:
        for scanner in scanners:
            await scanner.close()
            await scanner.clients.close()
    counts = Counter(job_id for got in results for job_id in got)
    assert set(counts) == set(ids), f"lost: {sorted(set(ids) - set(counts))[:10]}"
    assert [job_id for job_id, n in counts.items() if n > 1] == []
    assert await dynamodb_delay_store.count(queue) == 0
    print(f"\nclaimed per scanner: {[len(got) for got in results]}")


@moto
async def test_rescheduling_between_query_and_delete_is_respected(
    store: Store, other: Store, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    for job_id in ("keep1", "moved", "earlier", "gone", "keep2"):
        await store.schedule(queue, job_id, now - 5)
    take = store._take

    async def racing_take(candidates: Any) -> Any:
        # Another scanner's process acts after our query, before our deletes.
        await other.schedule(queue, "moved", now + 3600)  # no longer due
        await other.schedule(queue, "earlier", now - 3)  # still due, at another time
        await other.cancel(queue, "gone")
        monkeypatch.setattr(store, "_take", take)
        return await take(candidates)

    monkeypatch.setattr(store, "_take", racing_take)
    claimed = dict(await store.claim_due(queue, now, 10))
    # The stale candidates lost their condition; the next round found "earlier" at its new time.
    assert claimed == {"keep1": now - 5, "keep2": now - 5, "earlier": now - 3}
    assert await store.list(queue) == [("moved", now + 3600)]


@moto
async def test_a_failed_delete_keeps_its_entry_and_the_won_ones_are_returned(
    store: Store, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    for offset, job_id in enumerate(("a", "b", "c")):
        await store.schedule(queue, job_id, now - 3 + offset)
    client = await store.clients.dynamodb()
    original = client.delete_item
    failing: set[str] = {"b"}

    async def flaky(**kwargs: Any) -> Any:
        if kwargs["Key"]["sk"]["S"] in failing:
            response = {"Error": {"Code": "InternalServerError", "Message": "boom"}}
            raise ClientError({**response, "ResponseMetadata": {"HTTPStatusCode": 500}}, "DeleteItem")  # type: ignore[arg-type]
        return await original(**kwargs)

    monkeypatch.setattr(client, "delete_item", flaky)
    assert [job_id for job_id, _ in await store.claim_due(queue, now, 10)] == ["a", "c"]
    with pytest.raises(TransientError, match="InternalServerError"):
        await store.claim_due(queue, now, 10)  # nothing won: the error is raised
    failing.clear()
    assert [job_id for job_id, _ in await store.claim_due(queue, now, 10)] == ["b"]


# -- cursor and lookback -----------------------------------------------------------------------
@moto
async def test_cursor_skips_empty_past_buckets_and_never_looks_back_further_than_lookback(
    store: Store, queue: str
) -> None:
    client = await store.clients.dynamodb()
    now = time.time()
    window = int(store.lookback_seconds / store.bucket_seconds) + 1
    with recorded_calls(client) as first:
        assert await store.claim_due(queue, now, 10) == []
    assert [op for op, _ in first] == ["Query"] * window
    with recorded_calls(client) as second:
        assert await store.claim_due(queue, now, 10) == []
    assert 1 <= len(second) <= 2  # the current bucket, and the previous one while it settles
    # A scanner idle for two hours still reads at most the lookback window, never more.
    later = now + 7200
    with recorded_calls(client) as idle:
        await store.claim_due(queue, later, 10)
    assert len(idle) == window
    buckets = {p["ExpressionAttributeValues"][":due"]["S"] for _, p in idle}
    assert min(int(b.rsplit("#", 1)[1]) for b in buckets) == store.bucket(later - store.lookback_seconds)


@moto
async def test_cursor_stops_at_a_past_bucket_until_it_is_drained(
    dynamodb_delay_store: Store, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "CURSOR_SETTLE_SECONDS", 0.0)
    table, clients = dynamodb_delay_store.table_name, dynamodb_delay_store.clients
    async with Store(table, clients=clients, bucket_seconds=1, lookback_seconds=5) as s:
        filed = s.bucket(time.time()) + 1  # the next one-second bucket, still in the future
        for offset, job_id in enumerate(("a", "b", "c")):
            await s.schedule(queue, job_id, filed + 0.2 + offset * 0.001)
        await asyncio.sleep(max(0.0, (filed + 1) * s.bucket_seconds - time.time()) + 0.1)  # its bucket is now past
        assert [job_id for job_id, _ in await s.claim_due(queue, time.time(), 2)] == ["a", "b"]
        assert s._cursors[queue] <= filed  # not past a bucket that still holds "c"
        assert [job_id for job_id, _ in await s.claim_due(queue, time.time(), 2)] == ["c"]
        assert await s.claim_due(queue, time.time(), 2) == []
        assert s._cursors[queue] > filed  # drained and past: skipped from now on


@moto
async def test_entries_older_than_lookback_are_left_to_the_repair_pass(
    dynamodb_state_store: Any, dynamodb_delay_store: Store, queue: str
) -> None:
    delays = Store(
        dynamodb_delay_store.table_name, clients=dynamodb_delay_store.clients, bucket_seconds=1, lookback_seconds=1
    )
    config = LifecycleConfig(repair_interval=0.5, repair_grace=0)
    backend = CloudBackend(dynamodb_state_store, MemoryTransport(), delays, config=config)
    await backend.start()
    try:
        await backend.enqueue_delayed(queue, {"id": "old", "task_id": "t", "args": [], "kwargs": {}}, time.time() + 0.2)
        await asyncio.sleep(2.5)  # every scanner that starts now finds the entry outside its lookback
        assert await backend.promote_due_delayed(queue) == []  # not claimed; starts the repair clock
        assert await delays.count(queue) == 1
        await asyncio.sleep(0.6)
        assert [job["id"] for job in await backend.promote_due_delayed(queue)] == ["old"]  # repaired
        job = await backend.dequeue(queue)
        assert job is not None and job["id"] == "old"
        # The orphan entry stays until TTL removes it (moto never does); its job is gone from "delayed".
        assert [job_id for job_id, _ in await delays.list(queue)] == ["old"]
        assert (await dynamodb_state_store.count_jobs(queue)).get("delayed", 0) == 0
    finally:
        await backend.close()
