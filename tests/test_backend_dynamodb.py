"""DynamoDBBackend-specific behaviour on a real moto server: the table as the queue.

The generic AsyncMQ behaviours run in the backend contract suite (``dynamodb-moto``);
these cover the ready index (claims remove, retries restore, priorities order),
leases through the ``active`` index, atomic flows, retention TTL, idle polling
and configuration errors.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncmq.flow import FlowProducer
from asyncmq.jobs import Job
from asyncmq.queues import Queue
from asyncmq.workers import handle_job

from asyncmq_cloud import DynamoDBBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.errors import ConfigurationError, PermanentError
from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore
from asyncmq_cloud.transports.dynamodb import DynamoDBTransport
from tests.plugins.backend_dynamodb import dynamodb_backend
from tests.plugins.store_dynamodb import recorded_calls

T = "tests.tasks."
pytestmark = pytest.mark.moto


@pytest.fixture
def qname() -> str:
    return f"d-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def backend(moto_endpoint: str) -> AsyncIterator[DynamoDBBackend]:
    async with dynamodb_backend(moto_endpoint) as b:
        yield b


async def _ready(backend: DynamoDBBackend, queue: str) -> list[str]:
    return await backend.store.ready_keys(queue, 0, 100)


# -- configuration (no server) ------------------------------------------------------------------
def test_invalid_settings_say_which_rule() -> None:
    with pytest.raises(ConfigurationError, match="shards"):
        DynamoDBBackend(shards=0, region_name="us-east-1")
    with pytest.raises(ConfigurationError, match="ready_shards"):
        DynamoDBTransport(DynamoDBStateStore(region_name="us-east-1"))
    with pytest.raises(ConfigurationError, match="idle_poll"):
        DynamoDBBackend(idle_poll=2.0, idle_poll_max=1.0, region_name="us-east-1")


# -- the ready index -------------------------------------------------------------------------------
async def test_claim_removes_from_the_ready_index_and_a_retry_restores(backend: DynamoDBBackend, qname: str) -> None:
    queue = Queue(qname, backend=backend)
    job_id = await queue.add(T + "flaky", args=[f"k-{uuid.uuid4().hex}", 1], retries=1, backoff=0)
    assert await _ready(backend, qname) == [job_id]
    client = await backend.clients.dynamodb()
    assert not await backend.is_queue_paused(qname)  # as AsyncMQ's worker asks before each dequeue
    with recorded_calls(client) as calls:
        job = await backend.dequeue(qname)
    assert job is not None and job["id"] == job_id
    assert [op for op, _ in calls] == ["Query", "UpdateItem"], "one index read, one claim returning the payload"
    assert await _ready(backend, qname) == [], "a claimed job is no longer offered"
    await handle_job(qname, job, backend)  # fails once; retried without delay -> waiting again
    assert await backend.get_job_state(qname, job_id) == "waiting"
    assert await _ready(backend, qname) == [job_id]
    job = await backend.dequeue(qname)
    assert job is not None
    await handle_job(qname, job, backend)
    assert await backend.get_job_state(qname, job_id) == "completed"
    assert await _ready(backend, qname) == []


async def test_priorities_then_ready_time(backend: DynamoDBBackend, qname: str) -> None:
    queue = Queue(qname, backend=backend)
    low = [await queue.add(T + "add", args=[i, 0], priority=9) for i in range(3)]
    default = await queue.add(T + "add", args=[10, 0])
    high = await queue.add(T + "add", args=[20, 0], priority=1)
    assert await _ready(backend, qname) == [high, default, *low]
    order = []
    for _ in range(5):
        job = await backend.dequeue(qname)
        assert job is not None
        order.append(job["id"])
        await handle_job(qname, job, backend)
    assert order == [high, default, *low]


async def test_receives_spread_while_claims_collide(backend: DynamoDBBackend, qname: str) -> None:
    """Decision 73: a lone worker is always offered the head; after a claim lost to a rival,
    receives offer a random sample of a wider window instead of forcing the head on everyone."""
    queue = Queue(qname, backend=backend)
    ids = [await queue.add(T + "add", args=[i, 0]) for i in range(20)]
    transport, store = backend.transport, backend.transport.store
    for _ in range(5):
        offered = await transport.receive(qname, 2, 0.0)
        assert offered[0].job_id == ids[0], "no contention: the head is in every receive"
    store.note_claim(qname, ids[0], won=True)
    store.note_claim(qname, ids[0], won=False)
    assert qname not in store.claim_lost_at, "a lost claim of a job claimed here is no rival's"
    store.note_claim(qname, "claimed-by-a-rival", won=False)
    offers = [[d.job_id for d in await transport.receive(qname, 2, 0.0)] for _ in range(12)]
    assert all(len(offer) == 2 and set(offer) <= set(ids) for offer in offers)
    assert any(ids[0] not in offer for offer in offers), "under contention the head is not forced"
    assert len({job_id for offer in offers for job_id in offer}) > 4, "the sample spreads over the window"


async def test_idle_receive_polls_at_most_once_per_idle_poll_max(backend: DynamoDBBackend, qname: str) -> None:
    assert backend.transport.idle_poll_max == 4.0, "the default (decision 72); this test polls at 1 s to be quick"
    backend.transport.idle_poll_max = 1.0
    client = await backend.clients.dynamodb()
    for _ in range(2):  # the back-off ramps up: 0.05 s doubling to idle_poll_max (1 s)
        assert await backend.transport.receive(qname, 4, 1.0) == []
    with recorded_calls(client) as calls:
        for _ in range(4):
            assert await backend.transport.receive(qname, 4, 1.0) == []
    queries = [op for op, _ in calls if op == "Query"]
    assert 3 <= len(queries) <= 5, f"{len(queries)} Queries in 4 s of idle polling"
    # A job that arrives is still picked up by the next poll.
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 1])
    found = await backend.transport.receive(qname, 4, 2.0)
    assert [d.job_id for d in found] == [job_id]


async def test_a_dead_workers_job_is_found_through_the_active_index(moto_endpoint: str, qname: str) -> None:
    config = LifecycleConfig(receive_wait=0.2, lease_timeout=0.5)
    async with dynamodb_backend(moto_endpoint, config=config, lease_check_interval=0.2) as backend:
        job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
        first = await backend.dequeue(qname)
        assert first is not None and first["id"] == job_id
        backend._leases.held.clear()  # the worker that claimed it is gone (no heartbeat, no finish)
        deadline = time.monotonic() + 10
        again = None
        while again is None:
            assert time.monotonic() < deadline, "the stale job was never offered again"
            await asyncio.sleep(0.3)
            again = await backend.dequeue(qname)
        assert again["id"] == job_id
        await handle_job(qname, again, backend)
        assert await backend.get_job_result(qname, job_id) == 3


# -- flows, retention ----------------------------------------------------------------------------
def _fan_out_in(size: int) -> list[Job]:
    root = Job(T + "add", [1, 1], {})
    middle = [Job(T + "add", [i, 0], {}, depends_on=[root.id]) for i in range(size - 2)]
    last = Job(T + "add", [0, 0], {}, depends_on=[j.id for j in middle])
    return [root, *middle, last]


async def test_fifty_job_flow_is_atomic(backend: DynamoDBBackend, qname: str) -> None:
    client = await backend.clients.dynamodb()
    jobs = _fan_out_in(50)

    def fail_last_action(params: Any, **_: Any) -> None:
        params["TransactItems"][-1]["Update"]["ConditionExpression"] = "attribute_exists(no_such_attribute)"

    client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", fail_last_action)
    try:
        with pytest.raises(PermanentError):
            await FlowProducer(backend).add_flow(qname, jobs)
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", fail_last_action)
    assert await backend.store.count_jobs(qname) == {}, "a failed transaction leaves nothing behind"
    assert await _ready(backend, qname) == []

    with recorded_calls(client) as calls:
        await FlowProducer(backend).add_flow(qname, jobs)
    assert [op for op, _ in calls if op == "TransactWriteItems"] == ["TransactWriteItems"]
    assert await _ready(backend, qname) == [jobs[0].id], "only the root is ready"
    counts = await backend.store.count_jobs(qname)
    assert counts == {"waiting": 1, "waiting-children": 49}


async def test_finished_jobs_carry_the_retention_ttl(moto_endpoint: str, qname: str) -> None:
    async with dynamodb_backend(moto_endpoint, retention=3600) as backend:
        job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 1])
        job = await backend.dequeue(qname)
        assert job is not None
        await handle_job(qname, job, backend)
        client = await backend.clients.dynamodb()
        item = await client.get_item(
            TableName=backend.store.table_name, Key={"pk": {"S": f"Q#{qname}#J#{job_id}"}, "sk": {"S": "JOB"}}
        )
        expires = float(item["Item"]["expires_at"]["N"])
        assert time.time() + 3500 < expires < time.time() + 3700
        assert "rdy_pk" not in item["Item"] and "act_pk" not in item["Item"]
