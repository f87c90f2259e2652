"""The StateStore contract: one suite, run against every store.

The memory store is the reference; the Redis and DynamoDB stores run the same
tests against real servers (redis-server, moto server) through the
``state_store`` fixture. Races run through two clients of the same data
(``state_store`` and ``twin_state_store``: two worker processes). The state
machine itself is checked case by case against ``asyncmq_cloud/core/states.py``
(the tables at the end).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from asyncmq_cloud.core import states
from asyncmq_cloud.core.protocols import WAITING_CHILDREN, JobRecord, RepeatableRecord, WorkerRecord
from asyncmq_cloud.errors import InvalidNameError, PayloadTooLargeError


def _rec(queue: str, job_id: str, state: str = "waiting", run_at: float | None = None, **payload: Any) -> JobRecord:
    body = {"id": job_id, "task_id": "tests.tasks.noop", "args": [], "kwargs": {}, **payload}
    return JobRecord(queue=queue, id=job_id, state=state, payload=body, run_at=run_at)


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


async def test_create_get_roundtrip(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a", data={"nested": [1, 2.5, "x"]})])
    record = await state_store.get(queue, "a")
    assert record is not None
    assert record.state == "waiting"
    assert record.payload["data"] == {"nested": [1, 2.5, "x"]}
    assert record.job()["status"] == "waiting"
    assert await state_store.get(queue, "missing") is None


async def test_claim_is_exclusive_and_returns_payload(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a", marker=7)])
    now = time.time()
    first = await state_store.claim(queue, "a", "t1", now)
    second = await state_store.claim(queue, "a", "t2", now)
    assert first is not None and first.payload["marker"] == 7
    assert first.state == "active" and first.owner == "t1" and first.job()["status"] == "active"
    assert second is None


async def test_claim_accepts_due_delayed_only(state_store: Any, queue: str) -> None:
    now = time.time()
    await state_store.create([_rec(queue, "later", "delayed", now + 60), _rec(queue, "due", "delayed", now - 1)])
    assert await state_store.claim(queue, "later", "t", now) is None
    claimed = await state_store.claim(queue, "due", "t", now)
    assert claimed is not None and claimed.state == "active" and claimed.run_at is None
    later = await state_store.claim(queue, "later", "t", now + 61)  # the claimer's clock decides
    assert later is not None and later.run_at is None and later.heartbeat == now + 61


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled", "active", WAITING_CHILDREN])
async def test_claim_refuses_other_states(state_store: Any, queue: str, state: str) -> None:
    await state_store.create([_rec(queue, "a", state)])
    assert await state_store.claim(queue, "a", "t", time.time()) is None


async def test_concurrent_claim_races_have_one_winner(state_store: Any, twin_state_store: Any, queue: str) -> None:
    """Waiting and due delayed jobs with 4 claimants each and one job with 100, racing through
    two clients of the same data: every job is claimed exactly once, with its payload."""
    now = time.time()
    waiting = [_rec(queue, f"w{i}", marker=i) for i in range(30)]
    due = [_rec(queue, f"d{i}", "delayed", now - 1, marker=i) for i in range(10)]
    await state_store.create(waiting + due)
    await state_store.create([_rec(queue, "h0", marker=0)])
    clients = [state_store, twin_state_store]
    attempts = [(clients[n % 2], r.id, f"{r.id}-t{n}") for r in waiting + due for n in range(4)]
    attempts += [(clients[n % 2], "h0", f"h0-t{n}") for n in range(100)]
    random.shuffle(attempts)
    results = await asyncio.gather(*(store.claim(queue, job_id, token, now) for store, job_id, token in attempts))
    winners: dict[str, list[tuple[str, JobRecord]]] = {}
    for (_, job_id, token), record in zip(attempts, results, strict=True):
        if record is not None:
            winners.setdefault(job_id, []).append((token, record))
    assert sorted(winners) == sorted([r.id for r in waiting + due] + ["h0"])
    assert all(len(won) == 1 for won in winners.values()), "a job was claimed twice"
    for job_id, [(token, record)] in winners.items():
        assert record.state == "active" and record.owner == token and record.job()["status"] == "active"
        assert record.run_at is None and record.heartbeat == now
        assert record.payload["marker"] == int(job_id[1:])  # the payload comes back with the claim
        stored = await twin_state_store.get(queue, job_id)
        assert stored is not None and stored.state == "active" and stored.owner == token
    assert await state_store.count_jobs(queue) == {"active": 41}


async def test_transition_conditions(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a")])
    await state_store.claim(queue, "a", "owner-1", time.time())
    assert await state_store.transition(queue, "a", "completed", expect_states={"active"}, expect_owner="x") is None
    assert await state_store.transition(queue, "a", "completed", expect_states={"waiting"}) is None
    done = await state_store.transition(
        queue, "a", "completed", expect_states={"active"}, expect_owner="owner-1", payload={"id": "a", "result": 3}
    )
    assert done is not None and done.state == "completed" and done.owner is None
    assert (await state_store.get(queue, "a")).payload["result"] == 3
    assert await state_store.transition(queue, "missing", "completed") is None


async def test_transition_sets_and_clears_run_at(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a")])
    at = time.time() + 30
    delayed = await state_store.transition(queue, "a", "delayed", run_at=at)
    assert delayed is not None and delayed.run_at == pytest.approx(at)
    waiting = await state_store.transition(queue, "a", "waiting", expect_states={"delayed"})
    assert waiting is not None and waiting.run_at is None


async def test_update_payload_set_state_delete(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a")])
    assert await state_store.update_payload(queue, "a", {"id": "a", "progress": 0.5})
    assert await state_store.set_state(queue, "a", "failed")
    record = await state_store.get(queue, "a")
    assert record.state == "failed" and record.payload["progress"] == 0.5
    assert not await state_store.update_payload(queue, "missing", {"id": "missing"})
    removed = await state_store.delete(queue, "a")
    assert removed is not None and removed.id == "a"
    assert await state_store.get(queue, "a") is None
    assert await state_store.delete(queue, "a") is None


async def test_delete_with_an_expected_state_leaves_other_states_alone(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "f"), _rec(queue, "w"), _rec(queue, "kid", WAITING_CHILDREN)], {"kid": ["w"]})
    assert await state_store.set_state(queue, "f", "failed")
    assert await state_store.delete(queue, "w", "failed") is None, "a waiting job is not removed as failed"
    assert (await state_store.get(queue, "w")).state == "waiting"
    assert await state_store.delete(queue, "missing", "failed") is None
    removed = await state_store.delete(queue, "f", "failed")
    assert removed is not None and removed.state == "failed"
    assert await state_store.get(queue, "f") is None
    assert (await state_store.count_jobs(queue)).get("failed", 0) == 0
    removed = await state_store.delete(queue, "kid", WAITING_CHILDREN)  # its edges go with it
    assert removed is not None and await state_store.get(queue, "kid") is None


async def test_heartbeat_requires_active_and_owner(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a")])
    assert not await state_store.heartbeat(queue, "a", time.time())
    await state_store.claim(queue, "a", "tok", time.time())
    assert not await state_store.heartbeat(queue, "a", time.time(), "other")
    assert await state_store.heartbeat(queue, "a", time.time() + 5, "tok")
    assert (await state_store.get(queue, "a")).heartbeat == pytest.approx(time.time() + 5, abs=2)


async def test_list_and_count_by_state(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, f"w{i}") for i in range(3)])
    await state_store.create([_rec(queue, "d", "delayed", time.time() + 60)])
    await state_store.claim(queue, "w0", "t", time.time())
    waiting = await state_store.list_jobs(queue, "waiting")
    assert [r.id for r in waiting] == ["w1", "w2"]
    counts = await state_store.count_jobs(queue)
    assert counts.get("waiting") == 2 and counts.get("active") == 1 and counts.get("delayed") == 1
    assert queue in await state_store.list_queues()


async def test_summarize_and_list_page_read_the_state_index_in_creation_order(state_store: Any, queue: str) -> None:
    for i in range(5):  # one by one: five distinct creation times
        await state_store.create([_rec(queue, f"j{i}")])
    await state_store.create([_rec(queue, "d", "delayed", time.time() + 60)])
    await state_store.claim(queue, "j0", "t", time.time())
    summary = await state_store.summarize(queue, ["waiting", "active", "delayed", "failed"], 2)
    assert summary["waiting"].count == 4 and [job_id for job_id, _ in summary["waiting"].newest] == ["j4", "j3"]
    assert summary["active"].count == 1 and [job_id for job_id, _ in summary["active"].newest] == ["j0"]
    assert summary["failed"].count == 0 and summary["failed"].newest == []
    assert abs(summary["delayed"].newest[0][1] - time.time()) < 60  # a creation time, in epoch seconds
    assert [s.count for s in (await state_store.summarize(queue, ["waiting"], 0)).values()] == [4]
    assert (await state_store.summarize(queue, ["waiting"], 0))["waiting"].newest == []
    assert [r.id for r in await state_store.list_page(queue, "waiting", 1, 2, True)] == ["j3", "j2"]
    assert [r.id for r in await state_store.list_page(queue, "waiting", 0, 3, False)] == ["j1", "j2", "j3"]
    page = await state_store.list_page(queue, "waiting", 3, 5, False)
    assert [(r.id, r.state, r.payload["task_id"]) for r in page] == [("j4", "waiting", "tests.tasks.noop")]
    assert await state_store.list_page(queue, "waiting", 4, 2, True) == []
    assert await state_store.list_page(queue, "waiting", 0, 0, True) == []
    other = f"{queue}-x"
    await state_store.set_paused(queue, True)
    assert await state_store.paused_queues([queue, other]) == {queue}
    await state_store.set_paused(queue, False)
    assert await state_store.paused_queues([queue, other]) == set() == await state_store.paused_queues([])


async def test_list_stalled_uses_heartbeat(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "old"), _rec(queue, "fresh")])
    now = time.time()
    await state_store.claim(queue, "old", "t1", now - 100)
    await state_store.claim(queue, "fresh", "t2", now)
    stalled = await state_store.list_stalled(now - 50)
    assert [(r.queue, r.id, r.owner) for r in stalled if r.queue == queue] == [(queue, "old", "t1")]


async def test_paused_flag(state_store: Any, queue: str) -> None:
    assert not await state_store.is_paused(queue)
    await state_store.set_paused(queue, True)
    assert await state_store.is_paused(queue)
    await state_store.set_paused(queue, False)
    assert not await state_store.is_paused(queue)


async def test_dependencies_resolve_exactly_once(state_store: Any, queue: str) -> None:
    await state_store.create(
        [_rec(queue, "p1"), _rec(queue, "p2"), _rec(queue, "c", WAITING_CHILDREN)], {"c": ["p1", "p2"]}
    )
    assert await state_store.pending_parents(queue, "c") == {"p1", "p2"}
    assert await state_store.resolve_dependency(queue, "p1") == []
    results = await asyncio.gather(*[state_store.resolve_dependency(queue, "p2") for _ in range(10)])
    assert sorted(child for ready in results for child in ready) == ["c"]
    assert await state_store.pending_parents(queue, "c") == set()


async def test_concurrent_resolve_returns_each_child_once(state_store: Any, twin_state_store: Any, queue: str) -> None:
    """Every parent resolved 6 times concurrently through two clients: each child is
    returned exactly once overall, when its last parent resolves."""
    parents = [f"p{i}" for i in range(8)]
    rng = random.Random(7)
    deps = {f"c{i}": rng.sample(parents, rng.randint(1, 6)) for i in range(24)}
    deps["all"] = parents
    records = [_rec(queue, p) for p in parents] + [_rec(queue, c, WAITING_CHILDREN) for c in deps]
    await state_store.create(records, deps)
    calls = [store.resolve_dependency(queue, p) for p in parents for store in (state_store, twin_state_store) * 3]
    random.shuffle(calls)
    ready = [child for result in await asyncio.gather(*calls) for child in result]
    assert sorted(ready) == sorted(deps)
    for child in deps:
        assert await twin_state_store.pending_parents(queue, child) == set()


async def test_add_dependencies_fan_in(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "c", WAITING_CHILDREN)])
    await state_store.add_dependencies(queue, "c", ["a"])
    await state_store.add_dependencies(queue, "c", ["b"])
    assert await state_store.pending_parents(queue, "c") == {"a", "b"}
    assert await state_store.resolve_dependency(queue, "b") == []
    assert await state_store.resolve_dependency(queue, "a") == ["c"]


async def test_oversized_payload_writes_nothing(state_store: Any, queue: str) -> None:
    limit = state_store.max_payload_bytes
    big = _rec(queue, "big", blob="é" * (limit // 2 + 1))  # over the limit in bytes only ("é" is two)
    flow = [_rec(queue, "ok"), big, _rec(queue, "child", WAITING_CHILDREN)]
    with pytest.raises(PayloadTooLargeError) as info:
        await state_store.create(flow, {"child": ["ok", "big"]})
    assert info.value.limit == limit and info.value.size > limit
    for record in flow:
        assert await state_store.get(queue, record.id) is None
    assert await state_store.pending_parents(queue, "child") == set()
    assert await state_store.count_jobs(queue) == {}


async def test_oversized_updates_write_nothing(state_store: Any, queue: str) -> None:
    big = {"blob": "x" * state_store.max_payload_bytes}
    created = _rec(queue, "a")
    await state_store.create([created])
    await state_store.claim(queue, "a", "tok", time.time())
    # As in the reference store, a failed condition (or a missing job) wins over the size check ...
    assert await state_store.transition(queue, "a", "completed", expect_owner="other", payload=big) is None
    assert await state_store.transition(queue, "a", "completed", expect_states={"waiting"}, payload=big) is None
    assert await state_store.transition(queue, "missing", "completed", payload=big) is None
    assert not await state_store.update_payload(queue, "missing", big)
    # ... and a call that would have written raises without writing.
    with pytest.raises(PayloadTooLargeError):
        await state_store.transition(queue, "a", "completed", expect_owner="tok", payload=big)
    with pytest.raises(PayloadTooLargeError):
        await state_store.transition(queue, "a", "completed", payload=big)
    with pytest.raises(PayloadTooLargeError):
        await state_store.update_payload(queue, "a", big)
    record = await state_store.get(queue, "a")
    assert record is not None and record.state == "active" and record.owner == "tok"
    assert record.payload == created.payload


async def test_invalid_queue_name_is_refused(state_store: Any) -> None:
    with pytest.raises(InvalidNameError):
        await state_store.create([_rec("bad name#1", "a")])


async def test_repeatables_crud(state_store: Any, queue: str) -> None:
    record = RepeatableRecord("k1", {"task_id": "t", "every": 5}, time.time() + 5)
    await state_store.put_repeatable(queue, record)
    assert (await state_store.get_repeatable(queue, "k1")).job_def == {"task_id": "t", "every": 5}
    record.paused = True
    await state_store.put_repeatable(queue, record)
    assert [r.paused for r in await state_store.list_repeatables(queue)] == [True]
    assert await state_store.delete_repeatable(queue, "k1")
    assert await state_store.list_repeatables(queue) == []
    assert not await state_store.delete_repeatable(queue, "k1")


async def test_advance_repeatable_never_writes_back_a_removed_or_paused_one(state_store: Any, queue: str) -> None:
    await state_store.put_repeatable(queue, RepeatableRecord("k2", {"task_id": "t", "every": 5}, 100.0))
    assert await state_store.advance_repeatable(queue, "k2", 200.0)
    advanced = await state_store.get_repeatable(queue, "k2")
    assert advanced.next_run == 200.0 and advanced.job_def == {"task_id": "t", "every": 5} and not advanced.paused
    await state_store.put_repeatable(queue, RepeatableRecord("k2", {"task_id": "t", "every": 5}, 200.0, paused=True))
    assert not await state_store.advance_repeatable(queue, "k2", 300.0)
    paused = await state_store.get_repeatable(queue, "k2")
    assert paused.paused and paused.next_run == 200.0
    assert await state_store.delete_repeatable(queue, "k2")
    assert not await state_store.advance_repeatable(queue, "k2", 400.0)
    assert await state_store.get_repeatable(queue, "k2") is None


async def test_worker_registry(state_store: Any) -> None:
    worker_id = uuid.uuid4().hex
    await state_store.register_worker(WorkerRecord(worker_id, "q", 3, time.time()), 30)
    found = [w for w in await state_store.list_workers() if w.id == worker_id]
    assert len(found) == 1 and found[0].concurrency == 3 and found[0].queue == "q"
    await state_store.deregister_worker(worker_id)
    assert worker_id not in [w.id for w in await state_store.list_workers()]


async def test_locks(state_store: Any) -> None:
    key = f"lock-{uuid.uuid4().hex}"
    assert await state_store.acquire_lock(key, "a", 30)
    assert not await state_store.acquire_lock(key, "b", 30)
    assert not await state_store.release_lock(key, "b")
    assert await state_store.release_lock(key, "a")
    assert await state_store.acquire_lock(key, "b", 0.2)
    await asyncio.sleep(0.5)
    assert await state_store.acquire_lock(key, "c", 30)


async def test_lock_is_exclusive_under_contention(state_store: Any, twin_state_store: Any) -> None:
    key = f"lock-{uuid.uuid4().hex}"
    stores = [state_store, twin_state_store] * 30
    results = await asyncio.gather(*(s.acquire_lock(key, f"tok{n}", 30) for n, s in enumerate(stores)))
    assert results.count(True) == 1
    holder = f"tok{results.index(True)}"
    assert await twin_state_store.acquire_lock(key, holder, 30)  # the holder may renew, through any client
    assert not await twin_state_store.release_lock(key, "someone-else")
    assert await state_store.release_lock(key, holder)
    assert not await state_store.release_lock(key, holder)


async def test_lock_expires_for_every_client(state_store: Any, twin_state_store: Any) -> None:
    key = f"lock-{uuid.uuid4().hex}"
    # 3 s: long enough that a loaded machine's slow second call still finds the lock held.
    assert await state_store.acquire_lock(key, "a", 3.0)
    assert not await twin_state_store.acquire_lock(key, "b", 30)
    await asyncio.sleep(3.2)
    assert await twin_state_store.acquire_lock(key, "b", 30)
    assert not await state_store.release_lock(key, "a")  # an expired holder releases nothing
    assert not await state_store.acquire_lock(key, "c", 30)  # "b" holds it now
    assert await state_store.release_lock(key, "b")


async def test_claim_takes_over_an_expired_lease_only(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a")])
    now = time.time()
    assert await state_store.claim(queue, "a", "old", now - 100) is not None
    assert await state_store.claim(queue, "a", "new", now) is None  # no stale_before: never
    assert await state_store.claim(queue, "a", "new", now, stale_before=now - 200) is None  # lease fresh
    taken = await state_store.claim(queue, "a", "new", now, stale_before=now - 50)
    assert taken is not None and taken.owner == "new" and taken.state == "active"
    assert await state_store.heartbeat(queue, "a", now, "old") is False
    done = await state_store.transition(queue, "a", "completed", expect_states={"active"}, expect_owner="old")
    assert done is None


# -- the state machine, case by case (asyncmq_cloud/core/states.py is the reference) --------
#: Claim token of the worker that held a job before it reached its state (heartbeat cases).
HOLDER = "holder-token"


@dataclass(frozen=True, order=True)
class Setup:
    """How a table case's job is made (through the public store API, see :func:`_build`)."""

    state: str
    heartbeat: bool  # claimed once (owner + heartbeat) before ``set_state``; else never claimed
    big: bool = False  # payload near the store's ``max_payload_bytes``

    @property
    def name(self) -> str:
        return f"{self.state}-{'hb' if self.heartbeat else 'nohb'}{'-big' if self.big else ''}"


async def _build(store: Any, queue: str, jobs: dict[str, Setup], t0: float) -> dict[str, JobRecord]:
    """Create each job as AsyncMQ gets there; return the records as stored.

    Every job is created ``waiting`` with ``run_at = t0 + 500`` (what a ``delayed``
    job keeps). A heartbeat job is then claimed by :data:`HOLDER` at ``t0 - 1000``, so
    its heartbeat is far older than its last write. Every job then gets
    ``set_state(state)``, as ``update_job_state`` does: an ``active`` job without a
    heartbeat is one that no claim ever leased.
    """
    blob = "x" * (store.max_payload_bytes - 1024)
    records = [_rec(queue, i, run_at=t0 + 500, blob=blob if s.big else "") for i, s in jobs.items()]
    small = [r for r in records if not jobs[r.id].big]
    await asyncio.gather(
        *(store.create(small[n : n + 20]) for n in range(0, len(small), 20)),
        *(store.create([r]) for r in records if jobs[r.id].big),
    )

    async def advance(job_id: str, setup: Setup) -> JobRecord:
        if setup.heartbeat:
            assert await store.claim(queue, job_id, HOLDER, t0 - 1000) is not None
        assert await store.set_state(queue, job_id, setup.state)
        record = await store.get(queue, job_id)
        assert record is not None and record.state == setup.state
        assert (record.heartbeat is not None) == setup.heartbeat
        return record

    return {r.id: r for r in await asyncio.gather(*(advance(i, s) for i, s in jobs.items()))}


Check = Callable[[str, JobRecord, Any], Awaitable["str | None"]]


async def _run_table(
    store: Any, queue: str, cases: list[tuple[Setup, Any]], writes: Callable[[JobRecord, Any], bool], check: Check
) -> list[str]:
    """Run every case's ``check``; return the disagreements.

    One job per setup serves every case the reference refuses (a refused call must
    leave the job as it was: each check asserts it), run one after the other; each
    case the reference lets write gets a job of its own. Keeps the table to a few
    hundred calls, so it runs in seconds on every store.
    """
    t0 = time.time()
    setups = sorted({setup for setup, _ in cases})
    shared = await _build(store, queue, {s.name: s for s in setups}, t0)
    own = await _build(
        store, queue, {f"{s.name}-{n}": s for n, (s, v) in enumerate(cases) if writes(shared[s.name], v)}, t0
    )

    async def run(setup: Setup) -> list[str]:
        problems = []
        for n, (case_setup, variant) in enumerate(cases):
            if case_setup == setup:
                job_id = f"{setup.name}-{n}" if f"{setup.name}-{n}" in own else setup.name
                problem = await check(job_id, own.get(job_id) or shared[job_id], variant)
                problems += [f"{job_id} {variant}: {problem}"] if problem else []
        return problems

    return [p for found in await asyncio.gather(*(run(s) for s in setups)) for p in found]


def _claim_args(record: JobRecord, clock: str) -> tuple[float, float]:
    """``(now, stale_before)`` of a claim. "early": before ``run_at`` (``t0 + 500``) and
    ``stale_before`` 1 s before the lease (fresh); "late": after ``run_at`` and 1 s after it (stale)."""
    if clock == "early":
        return time.time(), states.lease_time(record) - 1
    return time.time() + 1000, states.lease_time(record) + 1


async def test_claim_follows_the_state_machine(state_store: Any, queue: str) -> None:
    """Every state x heartbeat or not x lease fresh or stale (not due or due) x payload size:
    ``claim`` succeeds exactly when ``states.claimable`` says so."""
    near_limit = states.CLAIMABLE | states.CLAIMABLE_WHEN_DUE | states.CLAIMABLE_WHEN_STALE
    cases = [
        (Setup(state, heartbeat, big), clock)
        for state in states.ALL_STATES
        for heartbeat in (False, True)
        for big in ((False, True) if state in near_limit else (False,))
        for clock in ("early", "late")
    ]

    def claimable(record: JobRecord, clock: str) -> bool:
        return states.claimable(record, *_claim_args(record, clock))

    async def check(job_id: str, record: JobRecord, clock: str) -> str | None:
        now, stale_before = _claim_args(record, clock)
        expected = states.claimable(record, now, stale_before)
        claimed = await state_store.claim(queue, job_id, "claimer", now, stale_before=stale_before)
        after = await state_store.get(queue, job_id)
        if (claimed is not None) != expected:
            return f"claim {'succeeded' if claimed else 'refused'}, states.claimable says {expected}"
        if claimed is not None and (claimed.state, claimed.owner, after.owner) != (
            states.CLAIMED,
            "claimer",
            "claimer",
        ):
            return f"claimed as {claimed.state}/{claimed.owner}, stored owner {after.owner}"
        if claimed is None and (after.state, after.owner, after.heartbeat) != (
            record.state,
            record.owner,
            record.heartbeat,
        ):
            return f"a refused claim changed the job to {after.state}/{after.owner}"
        return None

    problems = await _run_table(state_store, queue, cases, claimable, check)
    assert problems == [], f"{len(problems)} of {len(cases)} cases disagree with states.claimable"


async def test_transition_follows_the_state_machine(state_store: Any, queue: str) -> None:
    """Every state x owner or none x ``expect_owner`` x ``expect_states`` x payload size: a
    conditional ``transition`` goes ahead exactly when ``states.transition_allowed`` says so;
    a payload over the limit then raises, and a failed condition wins over the size."""
    owners = {"none": None, "holder": HOLDER, "intruder": "intruder"}
    cases = [
        (Setup(state, heartbeat), (owner, expect, size))
        for state in states.ALL_STATES
        for heartbeat in (False, True)
        for owner in owners
        for expect, size in [("own", "small"), ("others", "small"), ("own", "too-big")]
    ]

    def conditions(record: JobRecord, variant: tuple[str, str, str]) -> tuple[set[str], str | None]:
        owner, expect, _ = variant
        own = {record.state}
        return (own if expect == "own" else set(states.ALL_STATES) - own), owners[owner]

    def writes(record: JobRecord, variant: tuple[str, str, str]) -> bool:
        return variant[2] == "small" and states.transition_allowed(record, *conditions(record, variant))

    async def check(job_id: str, record: JobRecord, variant: tuple[str, str, str]) -> str | None:
        expect_states, expect_owner = conditions(record, variant)
        expected = states.transition_allowed(record, expect_states, expect_owner)
        payload = {"id": job_id, "result": "r" * (16 if variant[2] == "small" else state_store.max_payload_bytes)}
        try:
            done = await state_store.transition(
                queue, job_id, states.COMPLETED, expect_states=expect_states, expect_owner=expect_owner, payload=payload
            )
        except PayloadTooLargeError:
            done, raised = None, True
        else:
            raised = False
        after = await state_store.get(queue, job_id)
        if (done is not None or raised) != expected:
            return f"transition {'went ahead' if expected is False else 'refused'}, states says {expected}"
        if raised != (expected and variant[2] == "too-big"):
            return f"PayloadTooLargeError {'raised' if raised else 'not raised'}"
        if done is not None and (done.state, done.owner, done.heartbeat, after.payload) != (
            states.COMPLETED,
            None,
            None,
            payload,
        ):
            return f"transition wrote {done.state}/{done.owner}/{done.heartbeat}"
        if done is None and (after.state, after.owner, after.payload) != (record.state, record.owner, record.payload):
            return "a refused transition changed the job"
        return None

    problems = await _run_table(state_store, queue, cases, writes, check)
    assert problems == [], f"{len(problems)} of {len(cases)} cases disagree with states.transition_allowed"
