"""Parity with AsyncMQ's own backends: behaviours an app sees through AsyncMQ's public API.

Parametrized (``backend`` fixture, ``PARITY_BACKENDS``) over AsyncMQ's ``InMemoryBackend`` as the
reference and every backend and store of the contract matrix (SQSBackend on ElasticMQ, moto and LocalStack,
DynamoDBBackend on moto and MiniStack, KafkaBackend on the broker, CloudBackend over each
store). Workers are AsyncMQ's own ``process_job`` loop (what ``asyncmq worker start`` runs).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest
from asyncmq import monkay
from asyncmq.backends.memory import InMemoryBackend
from asyncmq.flow import FlowProducer
from asyncmq.jobs import Job
from asyncmq.queues import Queue
from asyncmq.workers import handle_job, process_job

from tests import tasks
from tests.contract.test_backend_contract import state_is
from tests.plugins.backend_kafka import kafka_backend
from tests.plugins.backend_sqs import redis_stores
from tests.plugins.stores import PARITY_BACKENDS

T = "tests.tasks."


@pytest.fixture
def qname() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=PARITY_BACKENDS)
def backend(request: pytest.FixtureRequest) -> Any:
    """The contract matrix minus the provisioned LocalStack variant (``PARITY_BACKENDS``)."""
    return request.getfixturevalue(request.param.replace("-", "_") + "_backend")


def receive_wait(backend: Any) -> float:
    """How long one receive of ``backend`` may stay in flight (0 for the reference)."""
    config = getattr(backend, "config", None)
    return float(getattr(config, "receive_wait", 0.0))


@asynccontextmanager
async def polling_worker(backend: Any, queue: str, concurrency: int = 2) -> AsyncIterator[None]:
    """AsyncMQ's worker loop on ``queue`` for the duration of the block."""
    task = asyncio.create_task(process_job(queue, anyio.CapacityLimiter(concurrency), backend=backend))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(condition: Callable[[], Any], timeout: float = 30.0) -> float:
    """Wait for ``condition()`` (sync or async); the seconds it took."""
    started = time.monotonic()
    while True:
        done = condition()
        if asyncio.iscoroutine(done):
            done = await done
        if done:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def quick_pause_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A paused AsyncMQ worker sleeps ``stalled_check_interval`` (60 s) between flag checks."""
    monkeypatch.setattr(monkay.settings, "stalled_check_interval", 0.2)


# -- 1. pause -------------------------------------------------------------------------------
@pytest.mark.usefixtures("quick_pause_checks")
async def test_a_job_added_after_pause_waits_for_resume_under_a_polling_worker(backend: Any, qname: str) -> None:
    k = uuid.uuid4().hex
    queue = Queue(qname, backend=backend)
    async with polling_worker(backend, qname):
        await asyncio.sleep(0.3 + receive_wait(backend) / 2)  # a receive is in flight
        await queue.pause()
        assert await backend.is_queue_paused(qname)
        job_id = await queue.add(T + "record", args=[k])
        await asyncio.sleep(receive_wait(backend) + 1.5)  # the receive in flight ended long ago
        assert tasks.CALLS[k] == 0, "a paused queue's job ran"
        assert await backend.get_job_state(qname, job_id) == "waiting"
        await queue.resume()
        assert not await backend.is_queue_paused(qname)
        took = await until(lambda: tasks.CALLS[k] == 1)
        await until(lambda: backend.get_job_state(qname, job_id), 10)
    # What a receive got as the pause landed went back for immediate redelivery: no visibility timeout.
    assert took < 10.0
    assert await until(state_is(backend, qname, job_id, "completed"), 10) >= 0
    assert tasks.CALLS[k] == 1


@pytest.mark.usefixtures("quick_pause_checks")
async def test_a_pause_written_by_another_process_stops_claims_within_pause_cache_ttl(backend: Any, qname: str) -> None:
    k = uuid.uuid4().hex
    queue = Queue(qname, backend=backend)
    store = getattr(backend, "store", None)  # the reference has no store (and no flag cache)
    async with polling_worker(backend, qname):
        await asyncio.sleep(0.3)
        if store is None:
            await backend.pause_queue(qname)
        else:
            await store.set_paused(qname, True)  # as another process does: this one's cache does not know
        ttl = float(getattr(getattr(backend, "config", None), "pause_cache_ttl", 0.0))
        await asyncio.sleep(ttl + 0.2)
        job_id = await queue.add(T + "record", args=[k])
        await asyncio.sleep(receive_wait(backend) + ttl + 1.0)
        assert tasks.CALLS[k] == 0, "a queue paused elsewhere was served"
        if store is None:
            await backend.resume_queue(qname)
        else:
            await store.set_paused(qname, False)
        await until(lambda: tasks.CALLS[k] == 1)
        await until(state_is(backend, qname, job_id, "completed"), 10)


# -- 4. states and stats --------------------------------------------------------------------
async def test_queue_stats_has_asyncmqs_keys_and_counts(backend: Any, qname: str) -> None:
    """AsyncMQ's test_queue_stats: two waiting, one delayed, one dead-lettered."""
    queue = Queue(qname, backend=backend)
    first, second, dead = [await queue.add(T + "record", args=[uuid.uuid4().hex]) for _ in range(3)]
    await queue.add(T + "record", args=[uuid.uuid4().hex], delay=60)
    job = await backend.get_job(qname, dead)
    await backend.move_to_dlq(qname, {**job, "status": "failed"})
    assert await backend.queue_stats(qname) == {"waiting": 2, "delayed": 1, "failed": 1}
    assert await backend.get_job_state(qname, first) == await backend.get_job_state(qname, second) == "waiting"


async def test_a_stale_heartbeat_is_stalled_for_a_job_dequeued_here_or_elsewhere(backend: Any, qname: str) -> None:
    """AsyncMQ's test_reenqueue_stalled_releases_dequeued_active_job."""
    job_id = await Queue(qname, backend=backend).add(T + "record", args=[uuid.uuid4().hex])
    job = await _dequeue(backend, qname)
    assert job["id"] == job_id
    await backend.update_job_state(qname, job_id, "active")
    old = time.time() - 10
    await backend.save_heartbeat(qname, job_id, old)
    stalled = [e for e in await backend.fetch_stalled_jobs(old + 1) if e["job_data"]["id"] == job_id]
    if not isinstance(backend, InMemoryBackend):
        # Kept divergence (decisions 10 and 59): a job this process runs is not offered to its own
        # stalled check; another process's check sees it.
        assert stalled == []
        backend._leases.pop(qname, job_id)  # as if this process had died: another one asks
        stalled = [e for e in await backend.fetch_stalled_jobs(old + 1) if e["job_data"]["id"] == job_id]
    assert [e["queue_name"] for e in stalled] == [qname]
    await backend.reenqueue_stalled(qname, stalled[0]["job_data"])
    assert await backend.get_job_state(qname, job_id) == "waiting"
    again = await _dequeue(backend, qname)
    assert again["id"] == job_id


async def _dequeue(backend: Any, queue: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = await backend.dequeue(queue)
        if job is not None:
            return dict(job)
        assert time.monotonic() < deadline, "nothing to dequeue"
        await asyncio.sleep(0.05)


# -- 2. custom JSON -------------------------------------------------------------------------
def _uuid_encoder(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _uuid_decoder(data: dict[str, Any]) -> dict[str, Any]:
    """AsyncMQ's test decoder: a string under a key ending in ``_id`` that parses as a UUID becomes one."""
    for name, value in data.items():
        if name.endswith("_id") and isinstance(value, str):
            try:
                data[name] = uuid.UUID(value)
            except ValueError:
                pass
    return data


@pytest.fixture
def uuid_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """AsyncMQ's custom-JSON settings (tests/test_custom_json_encoding.py), for this test only."""
    monkeypatch.setattr(monkay.settings, "json_dumps", partial(json.dumps, default=_uuid_encoder))
    monkeypatch.setattr(monkay.settings, "json_loads", partial(json.loads, object_hook=_uuid_decoder))


@pytest.mark.usefixtures("uuid_json")
async def test_the_configured_json_round_trips_uuids_through_enqueue_dequeue_and_result(
    backend: Any, qname: str
) -> None:
    user, session, k = uuid.uuid4(), uuid.uuid4(), uuid.uuid4().hex
    job_id = await Queue(qname, backend=backend).add(
        T + "echo", args=[k, {"user_id": user, "meta": {"session_id": session}}]
    )
    job = await _dequeue(backend, qname)
    assert job["id"] == job_id
    value = job["args"][1]
    assert value["user_id"] == user and isinstance(value["user_id"], uuid.UUID)
    assert isinstance(value["meta"]["session_id"], uuid.UUID)
    await handle_job(qname, job, backend)
    assert tasks.CALLS[k] == 1
    result = await backend.get_job_result(qname, job_id)
    assert result == {"user_id": user, "meta": {"session_id": session}}
    assert isinstance(result["user_id"], uuid.UUID)


@pytest.mark.usefixtures("uuid_json")
async def test_a_value_no_encoder_accepts_is_a_type_error_at_enqueue_and_nothing_is_written(
    backend: Any, qname: str
) -> None:
    queue = Queue(qname, backend=backend)
    bad = {"handle": object()}
    with pytest.raises(TypeError):
        await queue.add(T + "echo", args=["k", bad])
    with pytest.raises(TypeError):
        await queue.add(T + "echo", args=["k", bad], delay=30)
    with pytest.raises(TypeError):
        await queue.add_bulk([{"task_id": T + "echo", "args": ["k", bad]}])
    if isinstance(backend, InMemoryBackend):
        return  # the reference stores dicts as given: only AsyncMQ's Queue checks encode (decision 59)
    jobs = [Job(T + "echo", ["k", {"ok": 1}], {}).to_dict(), Job(T + "echo", ["k", bad], {}).to_dict()]
    with pytest.raises(TypeError):
        await backend.enqueue(qname, jobs[1])
    with pytest.raises(TypeError):
        await backend.enqueue_delayed(qname, jobs[1], time.time() + 30)
    with pytest.raises(TypeError):
        await backend.bulk_enqueue(qname, jobs)
    with pytest.raises(TypeError):
        await FlowProducer(backend=backend).add_flow(
            qname, [Job(T + "echo", ["k", 1], {}), Job(T + "echo", ["k", bad], {})]
        )
    assert await backend.queue_stats(qname) == {"waiting": 0, "delayed": 0, "failed": 0}
    assert qname not in await backend.list_queues()
    assert await backend.get_job(qname, jobs[0]["id"]) is None


async def test_a_result_no_encoder_accepts_fails_the_job_with_the_reason(backend: Any, qname: str) -> None:
    k = uuid.uuid4().hex
    job_id = await Queue(qname, backend=backend).add(T + "unencodable", args=[k], retries=2)
    job = await _dequeue(backend, qname)
    await handle_job(qname, job, backend)  # raising would end AsyncMQ's worker
    assert tasks.CALLS[k] == 1
    if isinstance(backend, InMemoryBackend):
        return  # the reference keeps the object as it is (it never encodes): decision 59
    assert await backend.get_job_state(qname, job_id) == "failed"
    stored = await backend.get_job(qname, job_id)
    assert "cannot be stored" in stored["last_error"] and "not JSON serializable" in stored["last_error"]


# -- 3. delays ------------------------------------------------------------------------------
async def _play(backend: Any, queue: str, done: Callable[[], bool], seconds: float) -> bool:
    """Play AsyncMQ's delayed scanner and a worker of concurrency 1 (promote, dequeue, run)
    until ``done()`` or for ``seconds``; whether ``done()`` held."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        await backend.promote_due_delayed(queue)
        job = await backend.dequeue(queue)
        if job is None:
            await asyncio.sleep(0.05)
        else:
            await handle_job(queue, job, backend)
    return True


async def _run_worker_passes(backend: Any, queue: str, seconds: float) -> None:
    await _play(backend, queue, lambda: False, seconds)


async def test_a_delayed_add_with_a_past_run_at_is_a_due_delayed_job(backend: Any, qname: str) -> None:
    """AsyncMQ's test_delayed_enqueue_past_time and test_promote_due_delayed_moves_redis_job_to_waiting."""
    k = uuid.uuid4().hex
    job = Job(T + "record", [k], {}).to_dict()
    await backend.enqueue_delayed(qname, job, time.time() - 5)
    assert await backend.get_job_state(qname, job["id"]) == "delayed"
    promoted = await backend.promote_due_delayed(qname)
    assert [j["id"] for j in promoted] == [job["id"]]
    assert await backend.get_job_state(qname, job["id"]) == "waiting"
    assert (await _dequeue(backend, qname))["id"] == job["id"]


async def test_every_delayed_job_is_listed_due_removable_and_cancellable(backend: Any, qname: str) -> None:
    """Short delays (those SQS holds natively) included: list, due, remove, cancel, then nothing runs."""
    queue = Queue(qname, backend=backend)
    keys = [uuid.uuid4().hex for _ in range(3)]
    due, removed, cancelled = [await queue.add(T + "record", args=[k], delay=1.5) for k in keys]
    far = await queue.add(T + "record", args=[uuid.uuid4().hex], delay=600)
    listed = await backend.list_delayed(qname)
    assert {info.job_id for info in listed} == {due, removed, cancelled, far}
    assert [info.run_at for info in listed] == sorted(info.run_at for info in listed)
    assert await backend.remove_delayed(qname, removed)
    assert not await backend.remove_delayed(qname, removed)
    assert await backend.cancel_job(qname, cancelled)
    assert await backend.is_job_cancelled(qname, cancelled)
    assert {info.job_id for info in await backend.list_delayed(qname)} == {due, far}
    await asyncio.sleep(1.5)
    await _run_worker_passes(backend, qname, receive_wait(backend) + 2.0)
    assert [tasks.CALLS[k] for k in keys] == [1, 0, 0], "the due job ran once; the removed and cancelled never"
    assert await backend.get_job_state(qname, due) == "completed"
    assert await backend.get_job_state(qname, far) == "delayed"


async def test_get_due_delayed_returns_past_and_natively_held_due_jobs(backend: Any, qname: str) -> None:
    """AsyncMQ's test_delayed_enqueue_past_time and test_multiple_delayed_jobs (on the reference a
    destructive read; here a view the next promotion hands over: decision 59)."""
    queue = Queue(qname, backend=backend)
    past = Job(T + "record", [uuid.uuid4().hex], {}).to_dict()
    await backend.enqueue_delayed(qname, past, time.time() - 5)
    near = await queue.add(T + "record", args=[uuid.uuid4().hex], delay=1.0)
    far = await queue.add(T + "record", args=[uuid.uuid4().hex], delay=600)
    first = [j["id"] for j in await backend.get_due_delayed(qname)]
    assert past["id"] in first and far not in first  # (near too, if the adds took over 1 s)
    await asyncio.sleep(1.5)
    due = {j["id"] for j in await backend.get_due_delayed(qname)}
    assert near in due and far not in due


# -- 6. order (on the backends that keep it; Kafka with a one-partition queue) ------------------
ORDERED = [
    "asyncmq-memory",
    "cloud-memory",
    pytest.param("dynamodb-ministack", marks=pytest.mark.ministack),
    pytest.param("kafka-one-partition", marks=[pytest.mark.kafka, pytest.mark.redis]),
]


@pytest.fixture
async def kafka_one_partition_backend(kafka_bootstrap: str, redis_url: str, qname: str) -> AsyncIterator[Any]:
    """KafkaBackend whose topic for ``qname`` has one partition (``queue_partitions``); others keep 2."""
    async with (
        redis_stores(redis_url) as store,
        kafka_backend(kafka_bootstrap, store=store, queue_partitions={qname: 1}) as backend,
    ):
        yield backend


@pytest.fixture(params=ORDERED)
def ordered_backend(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param.replace("-", "_") + "_backend")


async def _run_in_order(backend: Any, queue: str, keys: list[str]) -> list[str]:
    """Run the queue's jobs one at a time (a worker with concurrency 1); the order they started in."""
    assert await _play(backend, queue, lambda: sum(tasks.CALLS[k] for k in keys) >= len(keys), 60), "not all ran"
    return [k for k in tasks.ORDER if k in keys]


async def test_jobs_of_equal_priority_start_in_the_order_they_were_added(ordered_backend: Any, qname: str) -> None:
    """AsyncMQ's test_same_priority_jobs_preserve_fifo_order, over single adds and a bulk add."""
    keys = [f"{uuid.uuid4().hex}-{i}" for i in range(12)]
    queue = Queue(qname, backend=ordered_backend)
    for k in keys[:6]:
        await queue.add(T + "record", args=[k])
    await queue.add_bulk([{"task_id": T + "record", "args": [k]} for k in keys[6:]])
    assert await _run_in_order(ordered_backend, qname, keys) == keys


async def test_a_flow_runs_its_roots_in_order_then_the_released_child(ordered_backend: Any, qname: str) -> None:
    """AsyncMQ's FlowProducer: roots first, in input order; a child once its parent completed."""
    ka, kb, kc = (uuid.uuid4().hex for _ in range(3))
    a = Job(T + "record", [ka], {})
    b = Job(T + "record", [kb], {}, depends_on=[a.id])
    c = Job(T + "record", [kc], {})
    ids = await FlowProducer(backend=ordered_backend).add_flow(qname, [a, b, c])
    assert set(ids) == {a.id, b.id, c.id}
    assert await _run_in_order(ordered_backend, qname, [ka, kb, kc]) == [ka, kc, kb]


# -- the rest of AsyncMQ's public backend behaviour (tests/test_queue_getters.py and friends) ------
async def test_counts_by_type_as_asyncmqs_queue_getters_report_them(backend: Any, qname: str) -> None:
    """AsyncMQ's test_queue_getters_report_counts_and_dependency_state."""
    queue = Queue(qname, backend=backend)
    waiting = Job(T + "record", [uuid.uuid4().hex], {})
    delayed = Job(T + "record", [uuid.uuid4().hex], {})
    done = Job(T + "record", [uuid.uuid4().hex], {})
    parent = Job(T + "record", [uuid.uuid4().hex], {})
    child = Job(T + "record", [uuid.uuid4().hex], {}, depends_on=[parent.id])
    await backend.enqueue(qname, waiting.to_dict())
    await backend.enqueue_delayed(qname, delayed.to_dict(), time.time() + 60)
    await backend.enqueue(qname, done.to_dict())
    await backend.update_job_state(qname, done.id, "completed")
    await backend.save_job_result(qname, done.id, "done")
    dead = Job(T + "record", [uuid.uuid4().hex], {})
    await backend.enqueue(qname, dead.to_dict())
    await backend.move_to_dlq(qname, {**dead.to_dict(), "status": "failed"})
    await backend.enqueue(qname, child.to_dict())
    await backend.add_dependencies(qname, child.to_dict())
    counts = await queue.get_job_counts()
    expected = {"waiting": 1, "delayed": 1, "completed": 1, "failed": 1, "waiting-children": 1}
    assert {k: counts[k] for k in expected} == expected
    assert counts["paused"] == counts["prioritized"] == counts["active"] == 0
    assert await queue.get_job_count_by_types("waiting", "delayed", "waiting-children") == 3
    assert await queue.count() == 3
    assert await queue.get_job_state(child.id) == "waiting-children"
    assert await queue.get_job_result(done.id) == "done"
    stored = await backend.get_job(qname, child.id)
    assert stored is not None and stored["depends_on"] == [parent.id]


async def test_retry_of_a_failed_job_clears_its_outcome(backend: Any, qname: str) -> None:
    """AsyncMQ's test_retry_job: back to waiting, without result, last_error or traceback."""
    k = uuid.uuid4().hex
    job_id = await Queue(qname, backend=backend).add(T + "fail_always", args=[k], retries=0)
    await handle_job(qname, await _dequeue(backend, qname), backend)
    failed = await backend.get_job(qname, job_id)
    assert failed is not None and failed["status"] == "failed" and failed.get("last_error")
    assert await backend.retry_job(qname, job_id)
    again = await _dequeue(backend, qname)
    assert again["id"] == job_id
    assert not {"result", "last_error", "error_traceback"} & {k for k, v in again.items() if v is not None}


async def test_drain_removes_waiting_jobs_and_keeps_the_others(backend: Any, qname: str) -> None:
    """AsyncMQ's test_queue_drain_and_obliterate_follow_admin_semantics (drain part)."""
    queue = Queue(qname, backend=backend)
    waiting = await queue.add(T + "record", args=[uuid.uuid4().hex])
    delayed = await queue.add(T + "record", args=[uuid.uuid4().hex], delay=60)
    drained = await queue.drain()
    assert waiting in drained and delayed not in drained
    assert await backend.get_job(qname, waiting) is None
    assert await backend.get_job(qname, delayed) is not None
    assert delayed in await queue.drain(include_delayed=True)
    assert await backend.get_job(qname, delayed) is None
    assert await backend.get_job_state(qname, "no-such-job") is None
    assert await backend.list_jobs(qname, "waiting") == [] and await backend.list_jobs(qname, "Waiting") == []
