"""The StateStore contract of the unsent marks (``create(unsent=True)``, ``list_unsent``,
``clear_unsent``): run against every store through the ``state_store`` fixture, like
``test_store_contract.py``. The marks close the enqueue crash window (decision 6)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from asyncmq_cloud.core.protocols import WAITING_CHILDREN, JobRecord


def _rec(queue: str, job_id: str, state: str = "waiting", run_at: float | None = None) -> JobRecord:
    body = {"id": job_id, "task_id": "tests.tasks.noop", "args": [], "kwargs": {}}
    return JobRecord(queue=queue, id=job_id, state=state, payload=body, run_at=run_at)


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def _later() -> float:
    return time.time() + 60


async def test_only_waiting_records_created_unsent_are_marked(state_store: Any, queue: str) -> None:
    now = time.time()
    records = [_rec(queue, "w1"), _rec(queue, "d", "delayed", now + 60), _rec(queue, "c", WAITING_CHILDREN)]
    await state_store.create([*records, _rec(queue, "w2")], unsent=True)
    await state_store.create([_rec(queue, "plain")])
    assert await state_store.list_unsent(queue, _later(), 100) == ["w1", "w2"]  # oldest first
    assert await state_store.list_unsent(f"{queue}-other", _later(), 100) == []


async def test_list_unsent_honours_the_age_and_the_limit(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "old")], unsent=True)
    cutoff = time.time()
    await asyncio.sleep(0.05)
    await state_store.create([_rec(queue, "young")], unsent=True)
    assert await state_store.list_unsent(queue, cutoff, 100) == ["old"]
    assert await state_store.list_unsent(queue, _later(), 1) == ["old"]
    assert await state_store.list_unsent(queue, time.time() - 60, 100) == []


async def test_every_state_change_and_delete_clears_the_mark(state_store: Any, queue: str) -> None:
    ids = ["claimed", "cancelled", "set", "deleted", "overwritten", "kept"]
    await state_store.create([_rec(queue, job_id) for job_id in ids], unsent=True)
    claimed = await state_store.claim(queue, "claimed", "t", time.time())
    assert claimed is not None and claimed.state == "active"
    assert await state_store.transition(queue, "cancelled", "cancelled", expect_states={"waiting"})
    assert await state_store.set_state(queue, "set", "failed")
    assert await state_store.delete(queue, "deleted") is not None
    await state_store.create([_rec(queue, "overwritten")])  # an overwrite without the mark
    assert await state_store.list_unsent(queue, _later(), 100) == ["kept"]


async def test_clear_unsent_leaves_a_claimed_job_alone(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "a"), _rec(queue, "b"), _rec(queue, "c")], unsent=True)
    t0 = time.time()
    assert await state_store.claim(queue, "b", "t", t0) is not None
    await state_store.clear_unsent(queue, ["a", "b", "missing"])
    await state_store.clear_unsent(queue, [])
    assert await state_store.list_unsent(queue, _later(), 100) == ["c"]
    record = await state_store.get(queue, "b")
    assert record is not None and record.state == "active" and record.owner == "t"
    stalled = [r.id for r in await state_store.list_stalled(t0 + 1) if r.queue == queue]
    assert stalled == ["b"]  # the claim's lease entry survived the clear
    waiting = await state_store.get(queue, "a")
    assert waiting is not None and waiting.state == "waiting"  # cleared, not changed


async def test_a_transition_to_waiting_marks_with_unsent(state_store: Any, queue: str) -> None:
    await state_store.create([_rec(queue, "child", WAITING_CHILDREN), _rec(queue, "done", "failed")])
    moved = await state_store.transition(queue, "child", "waiting", expect_states={WAITING_CHILDREN}, unsent=True)
    assert moved is not None and moved.state == "waiting"
    assert await state_store.transition(queue, "done", "completed", unsent=True)  # not waiting: no mark
    assert await state_store.list_unsent(queue, _later(), 10) == ["child"]
    assert await state_store.claim(queue, "child", "t", time.time()) is not None
    assert await state_store.list_unsent(queue, _later(), 10) == []
