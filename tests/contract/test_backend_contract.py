"""The backend contract: AsyncMQ behaviours through AsyncMQ's own public API.

One suite, parametrized (``backend`` fixture) over AsyncMQ's ``InMemoryBackend``
as the reference and ``CloudBackend`` over every state store. Jobs are run by
AsyncMQ's own ``handle_job`` (what ``asyncmq worker start`` runs per job); the
``drive`` helper plays the worker loop deterministically.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asyncmq.backends.memory import InMemoryBackend
from asyncmq.flow import FlowProducer
from asyncmq.jobs import Job
from asyncmq.queues import Queue
from asyncmq.schedulers import _process_backend_repeatables
from asyncmq.workers import handle_job

from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import ConfigurationError
from tests import tasks

T = "tests.tasks."


@pytest.fixture
def qname() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def key() -> str:
    return uuid.uuid4().hex


def is_reference(backend: Any) -> bool:
    return isinstance(backend, InMemoryBackend)


async def drive(backend: Any, queue: str, until: Callable[[], Any], timeout: float = 30.0) -> None:
    """Play the worker loop (promote, dequeue, handle_job) until ``until()`` is true."""
    deadline = time.monotonic() + timeout
    while True:
        done = until()
        if asyncio.iscoroutine(done):
            done = await done
        if done:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await backend.promote_due_delayed(queue)
        job = await backend.dequeue(queue)
        if job is None:
            await asyncio.sleep(0.02)
            continue
        await handle_job(queue, job, backend)


def state_is(backend: Any, queue: str, job_id: str, state: str) -> Callable[[], Any]:
    async def check() -> bool:
        return await backend.get_job_state(queue, job_id) == state

    return check


async def test_enqueue_process_complete(backend: Any, qname: str) -> None:
    queue = Queue(qname, backend=backend)
    job_id = await queue.add(T + "add", args=[2, 3])
    assert await backend.get_job_state(qname, job_id) == "waiting"
    await drive(backend, qname, state_is(backend, qname, job_id, "completed"))
    assert await backend.get_job_result(qname, job_id) == 5
    completed = await backend.list_jobs(qname, "completed")
    assert [j["id"] for j in completed] == [job_id]
    assert completed[0]["status"] == "completed"


async def test_retries_with_backoff_then_success(backend: Any, qname: str) -> None:
    k = key()
    job_id = await Queue(qname, backend=backend).add(T + "flaky", args=[k, 2], retries=3, backoff=0.1)
    await drive(backend, qname, state_is(backend, qname, job_id, "completed"))
    assert tasks.CALLS[k] == 3
    job = await backend.get_job(qname, job_id)
    assert job is not None and job["retries"] == 2


async def test_exhausted_retries_go_to_dlq_and_retry_job_requeues(backend: Any, qname: str) -> None:
    k = key()
    job_id = await Queue(qname, backend=backend).add(T + "fail_always", args=[k], retries=1, backoff=0.05)
    await drive(backend, qname, state_is(backend, qname, job_id, "failed"))
    assert tasks.CALLS[k] == 2
    failed = await backend.list_jobs(qname, "failed")
    assert [j["id"] for j in failed] == [job_id]
    assert "always fails" in (failed[0].get("last_error") or "")
    assert await backend.retry_job(qname, job_id)
    assert await backend.get_job_state(qname, job_id) == "waiting"
    assert not await backend.retry_job(qname, job_id)
    await drive(backend, qname, lambda: tasks.CALLS[k] == 3)


async def test_a_result_too_large_for_the_store_fails_the_job_once_and_the_worker_goes_on(
    backend: Any, qname: str
) -> None:
    k = key()
    queue = Queue(qname, backend=backend)
    big_id = await queue.add(T + "big", args=[k, 2_000_000], retries=2)  # over every store's item limit
    next_id = await queue.add(T + "record", args=[k + "-next"])

    async def both_ended() -> bool:
        states = [await backend.get_job_state(qname, job_id) for job_id in (big_id, next_id)]
        return states[1] == "completed" and states[0] in ("completed", "failed")

    await drive(backend, qname, both_ended)  # handle_job raising would end the worker (and this test)
    assert tasks.CALLS[k] == 1, "the task ran once: no retry, no takeover"
    job = await backend.get_job(qname, big_id)
    assert job is not None
    if is_reference(backend):  # AsyncMQ's memory backend has no size limit
        assert job["status"] == "completed"
        return
    assert job["status"] == "failed" and job.get("result") is None
    assert re.search(r"with its result is 200\d{4} bytes; the store's limit is \d+ bytes", job.get("last_error") or "")
    assert [j["id"] for j in await backend.list_jobs(qname, "failed")] == [big_id]


async def test_delayed_job_waits_then_runs(backend: Any, qname: str) -> None:
    k = key()
    queue = Queue(qname, backend=backend)
    before = time.time()
    job_id = await queue.add(T + "record", args=[k], delay=0.6)
    after = time.time()
    assert await backend.get_job_state(qname, job_id) == "delayed"
    delayed = await backend.list_delayed(qname)
    assert [d.job_id for d in delayed] == [job_id]
    assert before + 0.6 - 0.01 <= delayed[0].run_at <= after + 0.6 + 0.01  # due 0.6 s after the add
    await backend.promote_due_delayed(qname)
    early = await backend.dequeue(qname)  # may long-poll past run_at on some transports
    if early is not None:
        assert time.time() >= delayed[0].run_at
        await handle_job(qname, early, backend)
    await drive(backend, qname, state_is(backend, qname, job_id, "completed"))
    job = await backend.get_job(qname, job_id)
    assert job is not None and job["completed_at"] >= delayed[0].run_at
    assert tasks.CALLS[k] == 1


async def test_remove_delayed_is_never_run(backend: Any, qname: str) -> None:
    k = key()
    queue = Queue(qname, backend=backend)
    job_id = await queue.add(T + "record", args=[k], delay=0.2)
    assert [d.job_id for d in await queue.list_delayed()] == [job_id]
    assert await queue.remove_delayed(job_id)
    assert await queue.list_delayed() == []
    await asyncio.sleep(0.3)
    await backend.promote_due_delayed(qname)
    assert await backend.dequeue(qname) is None
    assert tasks.CALLS[k] == 0


async def test_cancel_waiting_and_delayed(backend: Any, qname: str) -> None:
    k1, k2 = key(), key()
    queue = Queue(qname, backend=backend)
    waiting = await queue.add(T + "record", args=[k1])
    delayed = await queue.add(T + "record", args=[k2], delay=0.2)
    assert await backend.cancel_job(qname, waiting)
    assert await backend.cancel_job(qname, delayed)
    assert await backend.is_job_cancelled(qname, waiting)
    await asyncio.sleep(0.3)
    for _ in range(3):
        await backend.promote_due_delayed(qname)
        job = await backend.dequeue(qname)
        if job is not None:
            await handle_job(qname, job, backend)
    assert tasks.CALLS[k1] == 0 and tasks.CALLS[k2] == 0


async def test_remove_job(backend: Any, qname: str) -> None:
    k = key()
    job_id = await Queue(qname, backend=backend).add(T + "record", args=[k])
    assert await backend.remove_job(qname, job_id)
    assert await backend.get_job_state(qname, job_id) is None
    assert not await backend.remove_job(qname, job_id)
    assert await backend.dequeue(qname) is None
    assert tasks.CALLS[k] == 0


async def test_flow_fan_out_fan_in(backend: Any, qname: str) -> None:
    ks = {name: key() for name in "abcd"}
    a = Job(T + "record", [ks["a"]], {})
    b = Job(T + "record", [ks["b"]], {}, depends_on=[a.id])
    c = Job(T + "record", [ks["c"]], {}, depends_on=[a.id])
    d = Job(T + "record", [ks["d"]], {}, depends_on=[b.id, c.id])
    ids = await FlowProducer(backend).add_flow(qname, [a, b, c, d])
    assert sorted(ids) == sorted([a.id, b.id, c.id, d.id])
    assert d.id in [j["id"] for j in await backend.list_jobs(qname, "waiting-children")]
    await drive(backend, qname, state_is(backend, qname, d.id, "completed"))
    order = [x for x in tasks.ORDER if x in ks.values()]
    assert order[0] == ks["a"] and order[-1] == ks["d"] and len(order) == 4
    assert all(tasks.CALLS[v] == 1 for v in ks.values())


async def test_repeatable_every(backend: Any, qname: str) -> None:
    next_run = await Queue(qname, backend=backend).upsert_repeatable(T + "record", every=0.2, args=[key()])
    assert next_run == pytest.approx(time.time() + 0.2, abs=0.5)
    listed = await backend.list_repeatables(qname)
    assert len(listed) == 1 and not listed[0].paused
    await asyncio.sleep(0.3)
    await _process_backend_repeatables(qname, backend)
    assert len(await backend.list_jobs(qname, "waiting")) == 1
    await backend.pause_repeatable(qname, listed[0].job_def)
    assert (await backend.list_repeatables(qname))[0].paused
    assert await backend.get_due_repeatables(qname) == []
    assert await backend.resume_repeatable(qname, listed[0].job_def) > time.time()
    await backend.remove_repeatable(qname, listed[0].job_def)
    assert await backend.list_repeatables(qname) == []


async def test_pause_resume(backend: Any, qname: str) -> None:
    queue = Queue(qname, backend=backend)
    await queue.pause()
    assert await backend.is_queue_paused(qname)
    await queue.resume()
    assert not await backend.is_queue_paused(qname)


async def test_stalled_job_is_recovered_and_runs_again(backend: Any, qname: str) -> None:
    k = key()
    job_id = await Queue(qname, backend=backend).add(T + "record", args=[k])
    job = await backend.dequeue(qname)
    assert job is not None and job["id"] == job_id
    await backend.save_heartbeat(qname, job_id, time.time() - 120)
    # Another process sees the stale heartbeat (the claiming worker "died").
    other = backend if is_reference(backend) else CloudBackend(backend.store, backend.transport, backend.delay_store)
    stalled = await other.fetch_stalled_jobs(time.time() - 60)
    assert [s["job_data"]["id"] for s in stalled if s["queue_name"] == qname] == [job_id]
    for entry in stalled:
        await other.reenqueue_stalled(entry["queue_name"], entry["job_data"])
    assert await backend.get_job_state(qname, job_id) == "waiting"
    await drive(other, qname, state_is(other, qname, job_id, "completed"))
    assert tasks.CALLS[k] == 1
    if not is_reference(backend):
        # The presumed-dead worker finishing late cannot overwrite the new outcome.
        await backend.fail_active_job(qname, {**job, "status": "failed"})
        assert await backend.get_job_state(qname, job_id) == "completed"


async def test_expired_job(backend: Any, qname: str) -> None:
    job = Job(T + "record", [key()], {}, ttl=1, created_at=time.time() - 10)
    await backend.enqueue(qname, job.to_dict())
    await drive(backend, qname, state_is(backend, qname, job.id, "expired"))


async def test_worker_registry(backend: Any, qname: str) -> None:
    worker_id = key()
    await backend.register_worker(worker_id, qname, 4, time.time())
    assert [(w.queue, w.concurrency) for w in await backend.list_workers() if w.id == worker_id] == [(qname, 4)]
    await backend.deregister_worker(worker_id)
    assert worker_id not in [w.id for w in await backend.list_workers()]


async def test_listing_counting_and_stats(backend: Any, qname: str) -> None:
    queue = Queue(qname, backend=backend)
    ids = await queue.add_bulk([{"task_id": T + "add", "args": [i, i]} for i in range(3)])
    await queue.add(T + "record", args=[key()], delay=30)
    assert len(ids) == 3
    counts = await backend.get_job_counts(qname, "waiting", "delayed", "completed")
    assert counts["waiting"] == 3 and counts["delayed"] == 1 and counts["completed"] == 0
    assert await backend.count(qname) == 4
    stats = await backend.queue_stats(qname)
    assert stats["waiting"] == 3 and stats["delayed"] == 1
    assert qname in await backend.list_queues()
    assert len(await backend.get_jobs(qname, ["waiting"])) == 3


async def test_progress_and_payload_edits(backend: Any, qname: str) -> None:
    job_id = await Queue(qname, backend=backend).add(T + "record", args=[key()])
    await backend.save_job_progress(qname, job_id, 0.5)
    job = await backend.get_job(qname, job_id)
    assert job is not None and job["progress"] == 0.5
    await backend.save_job_payload(qname, {**job, "note": "edited"})
    assert (await backend.get_job(qname, job_id))["note"] == "edited"


async def test_clean_drain_obliterate(backend: Any, qname: str) -> None:
    queue = Queue(qname, backend=backend)
    done = await queue.add(T + "add", args=[1, 1])
    await drive(backend, qname, state_is(backend, qname, done, "completed"))
    waiting = [await queue.add(T + "record", args=[key()]) for _ in range(2)]
    assert sorted(await backend.clean_jobs(qname, state="completed", grace=0)) == [done]
    assert sorted(await backend.drain_queue(qname)) == sorted(waiting)
    await queue.add(T + "record", args=[key()], delay=30)
    removed = await backend.obliterate_queue(qname)
    assert len(removed) == 1
    assert await backend.get_job_counts(qname, "waiting", "delayed", "completed") == {
        "waiting": 0,
        "paused": 0,
        "delayed": 0,
        "completed": 0,
    }


async def test_locks_are_exclusive(backend: Any) -> None:
    name = f"lock-{key()}"
    first = await backend.create_lock(name, 10)
    second = await backend.create_lock(name, 10)
    if is_reference(backend):
        # AsyncMQ's reference hands out one shared anyio.Lock per key (no owner tokens).
        assert first is second
        return
    assert await first.try_acquire()
    assert not await second.try_acquire()
    await first.release()
    assert await second.try_acquire()


async def test_concurrent_workers_run_each_job_once(backend: Any, qname: str) -> None:
    queue = Queue(qname, backend=backend)
    keys = [key() for _ in range(30)]
    for k in keys:
        await queue.add(T + "record", args=[k])

    async def all_done() -> bool:
        return (await backend.get_job_counts(qname, "completed"))["completed"] == len(keys)

    await asyncio.gather(*(drive(backend, qname, all_done) for _ in range(4)))
    assert [tasks.CALLS[k] for k in keys] == [1] * len(keys)


async def test_past_run_at_runs_now_and_non_finite_is_refused(backend: Any, qname: str) -> None:
    k = key()
    past = Job(T + "record", [k], {})
    await backend.enqueue_delayed(qname, past.to_dict(), time.time() - 60)
    await drive(backend, qname, state_is(backend, qname, past.id, "completed"))
    if is_reference(backend):
        return  # AsyncMQ's InMemoryBackend accepts NaN/inf and never runs the job
    bad = Job(T + "record", [key()], {})
    for run_at in (math.nan, math.inf):
        with pytest.raises(ConfigurationError, match="finite"):
            await backend.enqueue_delayed(qname, bad.to_dict(), run_at)
    assert await backend.get_job(qname, bad.id) is None


async def test_dependency_on_an_existing_parent(backend: Any, qname: str) -> None:
    """AsyncMQ's non-atomic flow path: add_dependencies, then enqueue the child."""
    kp, kc = key(), key()
    parent = await Queue(qname, backend=backend).add(T + "record", args=[kp])
    child = Job(T + "record", [kc], {}, depends_on=[parent])
    await backend.add_dependencies(qname, child.to_dict())
    await backend.enqueue(qname, child.to_dict())
    await drive(backend, qname, state_is(backend, qname, child.id, "completed"))
    order = [x for x in tasks.ORDER if x in (kp, kc)]
    assert order == [kp, kc]


async def test_inspect_jobs_pages_as_asyncmqs_listing_does(backend: Any, qname: str) -> None:
    """The dashboard's job lists: the backend's paged ``inspect_jobs`` (bounded reads on the
    cloud backends) returns the pages AsyncMQ's listing-based default returns."""
    from asyncmq.backends.base import BaseBackend

    queue = Queue(qname, backend=backend)
    added = [await queue.add(T + "add", args=[i, 1]) for i in range(7)]  # one by one: creation order
    for sort in ("newest", "oldest"):
        for page in (1, 2, 3, 5):
            mine = await backend.inspect_jobs(qname, "waiting", page=page, size=3, sort=sort)
            ref = await BaseBackend.inspect_jobs(backend, qname, "waiting", page=page, size=3, sort=sort)
            assert [j["id"] for j in mine.jobs] == [j["id"] for j in ref.jobs], (sort, page)
            assert (mine.total, mine.page, mine.size, mine.total_pages) == (7, ref.page, 3, 3)
    newest = await backend.inspect_jobs(qname, "waiting", size=2)
    assert [j["id"] for j in newest.jobs] == added[::-1][:2] and newest.jobs[0]["status"] == "waiting"
    found = await backend.inspect_jobs(qname, "waiting", job_id=added[3])
    assert [j["id"] for j in found.jobs] == [added[3]] and found.total == 1
    assert (await backend.inspect_jobs(qname, "failed")).total == 0
