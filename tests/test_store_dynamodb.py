"""DynamoDB-specific behaviour of :class:`DynamoDBStateStore`, against a real moto server.

The generic StateStore contract lives in ``tests/contract/test_store_contract.py``;
these tests cover what only DynamoDB has: calls per operation (counted on
aiobotocore's event system), atomic flow transactions, item-size limits, the
indexes (never a Scan) and the TTL attribute. Races of concurrent conditional
updates through two clients run in the contract suite (``twin_state_store``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from asyncmq_cloud.core.protocols import WAITING_CHILDREN, JobRecord
from asyncmq_cloud.errors import (
    ClosedError,
    ConfigurationError,
    FlowTooLargeError,
    InvalidNameError,
    PayloadTooLargeError,
    PermanentError,
    ResourceMissingError,
)
from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores.dynamodb import DEFAULT_MAX_PAYLOAD_BYTES, DynamoDBStateStore
from tests.plugins.store_dynamodb import drop_table, moto_clients, random_table_name, recorded_calls

Store = DynamoDBStateStore
moto = pytest.mark.moto


def _rec(queue: str, job_id: str, state: str = "waiting", **payload: Any) -> JobRecord:
    return JobRecord(queue=queue, id=job_id, state=state, payload={"id": job_id, **payload})


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


async def _raw_item(store: Store, key: dict[str, Any]) -> dict[str, Any] | None:
    client = await store.clients.dynamodb()
    response = await client.get_item(TableName=store.table_name, Key=key, ConsistentRead=True)
    return dict(response["Item"]) if "Item" in response else None


# -- configuration (no server) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "rule"),
    [("ab", "3 to 255"), ("x" * 256, "3 to 255"), ("bad name", "letters, digits"), ("jobs#1", "letters, digits")],
)
def test_invalid_table_name_says_which_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidNameError, match=rule):
        Store(name)


def test_default_limit_is_below_the_item_limit() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES < codec.DYNAMODB_MAX_ITEM_BYTES
    with pytest.raises(ValueError, match="max_payload_bytes"):
        Store(max_payload_bytes=codec.DYNAMODB_MAX_ITEM_BYTES + 1)


# -- conditional updates ------------------------------------------------------------------------
@moto
async def test_claim_and_complete_are_one_call_each(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    await store.create([_rec(queue, "a", task="t", args=[1, 2])])
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls:
        claimed = await store.claim(queue, "a", "tok", time.time())
    assert [op for op, _ in calls] == ["UpdateItem"]
    assert calls[0][1]["ReturnValues"] == "ALL_NEW"
    assert claimed is not None and claimed.payload["args"] == [1, 2] and claimed.job()["status"] == "active"

    with recorded_calls(client) as calls:
        done = await store.transition(
            queue, "a", "completed", expect_states={"active"}, expect_owner="tok", payload={"id": "a", "result": 3}
        )
    assert [op for op, _ in calls] == ["UpdateItem"]
    assert done is not None and done.state == "completed" and done.owner is None and done.payload["result"] == 3
    # A second completion (a redelivery) loses the condition: None, not an error.
    assert await store.transition(queue, "a", "completed", expect_states={"active"}, expect_owner="tok") is None


@moto
async def test_concurrent_first_writes_to_a_queue_register_it_once(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls:
        await asyncio.gather(*(store.create([_rec(queue, f"j{i}")]) for i in range(50)))
    registry = [params for op, params in calls if op == "UpdateItem" and "ADD queues" in params["UpdateExpression"]]
    assert len(registry) == 1, f"{len(registry)} registry writes for one new queue"
    assert queue in await store.list_queues()
    with recorded_calls(client) as calls:
        await store.create([_rec(queue, "later")])
    assert [op for op, _ in calls] == ["UpdateItem"]  # the job only: the queue is known now


@moto
async def test_promote_moves_each_delayed_job_once(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    now = time.time()
    delayed = [JobRecord(queue, f"d{i}", "delayed", {"id": f"d{i}"}, run_at=now - 1) for i in range(10)]
    await store.create([*delayed, _rec(queue, "w"), _rec(queue, "c", "completed")])
    ids = [r.id for r in delayed] + ["w", "c", "missing"]
    moved = await asyncio.gather(*(store.promote(queue, ids) for _ in range(4)))
    assert sorted(job_id for batch in moved for job_id in batch) == sorted(r.id for r in delayed)
    record = await store.get(queue, "d3")
    assert record is not None and record.state == "waiting" and record.run_at is None
    assert await store.count_jobs(queue) == {"waiting": 11, "completed": 1}


@moto
async def test_a_bulk_add_is_put_in_batches_of_25(dynamodb_state_store: Store, queue: str) -> None:
    """Independent jobs (``atomic=False``, as ``bulk_enqueue`` writes them): BatchWriteItem (half a
    transaction's write units), in order. A flow of unlinked jobs (the default) stays one transaction."""
    store = dynamodb_state_store
    await store.create([_rec(queue, "first")])  # the queue is registered: only the jobs are written below
    records = [_rec(queue, f"b{i:02d}", task="t", args=[i]) for i in range(30)]
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls:
        await store.create(records, unsent=True, atomic=False)
    assert [op for op, _ in calls] == ["BatchWriteItem", "BatchWriteItem"]
    assert [len(params["RequestItems"][store.table_name]) for _, params in calls] == [25, 5]
    assert [r.id for r in await store.list_jobs(queue, "waiting")] == ["first", *(r.id for r in records)]
    record = await store.get(queue, "b07")
    assert record is not None and record.state == "waiting" and record.payload["args"] == [7]
    unsent = await store.list_unsent(queue, time.time() + 1, 100)
    assert sorted(unsent) == sorted(r.id for r in records), "each job put is marked unsent, as an upsert marks it"
    claimed = await store.claim(queue, "b07", "tok", time.time())
    assert claimed is not None and "b07" not in await store.list_unsent(queue, time.time() + 1, 100)
    with recorded_calls(client) as calls:
        await store.create([_rec(queue, "f1"), _rec(queue, "f2")])  # atomic: a flow with no links
    assert [op for op, _ in calls] == ["TransactWriteItems"]


# -- flows ----------------------------------------------------------------------------------------
def _chain(queue: str, size: int) -> tuple[list[JobRecord], dict[str, list[str]]]:
    records = [_rec(queue, f"s{i}", "waiting" if i == 0 else WAITING_CHILDREN) for i in range(size)]
    return records, {f"s{i}": [f"s{i - 1}"] for i in range(1, size)}


@moto
async def test_fifty_job_flow_is_one_transaction(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    records, deps = _chain(queue, 50)
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls:
        await store.create(records, deps)
    writes = [(op, params) for op, params in calls if op != "UpdateItem" or "queues" not in str(params)]
    assert [op for op, _ in writes] == ["TransactWriteItems"]
    assert len(writes[0][1]["TransactItems"]) == 100  # 50 jobs + 50 dependency items
    assert [r.id for r in await store.list_jobs(queue, WAITING_CHILDREN)] == [f"s{i}" for i in range(1, 50)]
    assert await store.pending_parents(queue, "s7") == {"s6"}
    assert await store.resolve_dependency(queue, "s6") == ["s7"]


@moto
async def test_flow_is_all_or_nothing(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    records, deps = _chain(queue, 50)
    client = await store.clients.dynamodb()

    def fail_last_action(params: Any, **_: Any) -> None:
        # A condition that cannot hold on the 100th action: DynamoDB must cancel all 100.
        params["TransactItems"][-1]["Update"]["ConditionExpression"] = "attribute_exists(no_such_attribute)"

    client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", fail_last_action)
    try:
        with pytest.raises(PermanentError, match="ConditionalCheckFailed"):
            await store.create(records, deps)
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", fail_last_action)
    for record in records:
        assert await store.get(queue, record.id) is None
        assert await store.pending_parents(queue, record.id) == set()
    assert await store.count_jobs(queue) == {}


@moto
async def test_flow_over_one_transaction_is_refused_before_writing(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    records, deps = _chain(queue, 51)  # 51 jobs + 51 dependency items = 102 actions
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls, pytest.raises(FlowTooLargeError, match="100"):
        await store.create(records, deps)
    assert not [op for op, _ in calls if op == "TransactWriteItems"]
    assert await store.count_jobs(queue) == {}


@moto
async def test_resolved_dependency_items_are_deleted(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    parents = [f"p{i}" for i in range(5)]
    children = [f"c{i}" for i in range(12)]
    records = [_rec(queue, p) for p in parents] + [_rec(queue, c, WAITING_CHILDREN) for c in children]
    await store.create(records, {c: parents for c in children})
    # Every parent resolved 5 times concurrently: 25 callers racing on 60 edges.
    calls = [store.resolve_dependency(queue, p) for p in parents for _ in range(5)]
    await asyncio.gather(*calls)  # exactly-once: tests/contract (test_concurrent_resolve_returns_each_child_once)
    for job_id in [*parents, *children]:  # resolved dependency items are cleaned up
        assert await _raw_item(store, codec.deps_key(queue, job_id)) is None


# -- sizes ----------------------------------------------------------------------------------------
@moto
async def test_item_size_is_checked_before_any_call_and_leaves_room(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    big = _rec(queue, "big", blob="x" * (codec.DYNAMODB_MAX_ITEM_BYTES + 10))
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls, pytest.raises(PayloadTooLargeError):
        await store.create([_rec(queue, "small"), big])
    assert calls == []  # measured in Python: not even the queue registry is written
    # A payload just under the limit really fits in a DynamoDB item, with every attribute later writes add.
    fits = _rec(queue, "fits", blob="")
    overhead = codec.item_size(codec.job_item(fits, created=time.time(), now=time.time(), expires=None))
    fits.payload["blob"] = "x" * (store.max_payload_bytes - overhead - 16)
    await store.create([fits])
    assert await store.claim(queue, "fits", "t" * 64, time.time()) is not None
    assert await store.heartbeat(queue, "fits", time.time(), "t" * 64)


# -- indexes --------------------------------------------------------------------------------------
@moto
async def test_list_stalled_queries_the_active_index(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    await store.create([_rec(queue, f"a{i}") for i in range(8)] + [_rec(queue, "idle")])
    now = time.time()
    for i in range(8):
        assert await store.claim(queue, f"a{i}", f"t{i}", now - 100)
    for i in range(4):  # half of them keep beating
        assert await store.heartbeat(queue, f"a{i}", now, f"t{i}")
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls:
        stalled = await store.list_stalled(now - 50)
    assert sorted(r.id for r in stalled) == [f"a{i}" for i in range(4, 8)]
    ops = {op for op, _ in calls}
    assert "Scan" not in ops and ops <= {"Query", "BatchGetItem"}
    assert {p.get("IndexName") for op, p in calls if op == "Query"} == {codec.ACTIVE_INDEX}
    # Completed jobs leave the sparse index.
    await store.transition(queue, "a5", "completed", expect_owner="t5")
    assert sorted(r.id for r in await store.list_stalled(now - 50)) == ["a4", "a6", "a7"]


@moto
async def test_list_and_count_use_the_state_index(dynamodb_state_store: Store, queue: str) -> None:
    store = dynamodb_state_store
    await store.create([_rec(queue, f"w{i}") for i in range(5)])
    await store.create([_rec(queue, "w0", note="overwritten")])  # keeps its place in the list
    await store.claim(queue, "w1", "t", time.time())
    client = await store.clients.dynamodb()
    with recorded_calls(client) as calls:
        waiting = await store.list_jobs(queue, "waiting")
        counts = await store.count_jobs(queue)
    assert [r.id for r in waiting] == ["w0", "w2", "w3", "w4"] and waiting[0].payload["note"] == "overwritten"
    assert counts == {"waiting": 4, "active": 1}
    assert "Scan" not in {op for op, _ in calls}
    assert all(p.get("IndexName") == codec.BY_STATE_INDEX for op, p in calls if op == "Query")


# -- TTL, lifecycle ----------------------------------------------------------------------
@moto
async def test_terminal_jobs_get_the_ttl_attribute(dynamodb_state_store: Store, queue: str) -> None:
    store = Store(dynamodb_state_store.table_name, clients=dynamodb_state_store.clients, completed_ttl=3600)
    async with store:
        await store.create([_rec(queue, "a")])
        assert await store.claim(queue, "a", "t", time.time())
        item = await _raw_item(store, codec.job_key(queue, "a"))
        assert item is not None and codec.TTL_ATTRIBUTE not in item
        await store.transition(queue, "a", "failed", expect_owner="t")
        item = await _raw_item(store, codec.job_key(queue, "a"))
        assert item is not None and 3500 < int(item[codec.TTL_ATTRIBUTE]["N"]) - time.time() <= 3601
        await store.transition(queue, "a", "waiting")  # retried: no longer eligible for deletion
        item = await _raw_item(store, codec.job_key(queue, "a"))
        assert item is not None and codec.TTL_ATTRIBUTE not in item


@moto
async def test_missing_table_names_the_fix_and_provision_is_idempotent(dynamodb_endpoint: str, queue: str) -> None:
    async with moto_clients(dynamodb_endpoint) as clients:
        store = Store(random_table_name(), clients=clients)
        try:
            async with store:
                with pytest.raises(ResourceMissingError, match="provision"):
                    await store.get(queue, "x")
                await store.provision()
                await store.provision()
                assert await store.get(queue, "x") is None
                ttl = await (await clients.dynamodb()).describe_time_to_live(TableName=store.table_name)
                assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
        finally:
            await drop_table(clients, store.table_name)
    with pytest.raises(ClosedError):
        await store.get(queue, "x")


@moto
async def test_provision_refuses_a_table_with_another_layout(dynamodb_endpoint: str) -> None:
    async with moto_clients(dynamodb_endpoint) as clients:
        name = random_table_name()
        client = await clients.dynamodb()
        await client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        try:
            async with Store(name, clients=clients) as store:
                with pytest.raises(ConfigurationError, match="key schema"):
                    await store.provision()
        finally:
            await drop_table(clients, name)
