"""The unsent marks in the lifecycle (issue 17 item 13, decision 6), on the memory components:
what marks a job, what clears it, and that the repair pass re-sends each stranded reference once.
The same window closed on real services with a killed producer: ``tests/test_unsent_repair.py``."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from asyncmq.jobs import Job
from asyncmq.queues import Queue

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.transports.memory import MemoryTransport

T = "tests.tasks."
REPAIR = LifecycleConfig(receive_wait=0.05, repair_interval=0.01, resend_grace=0.05)


class Crash(BaseException):
    """Stands for the producer's death (not an ``Exception``: nothing undoes the write)."""


class CrashingTransport(MemoryTransport):
    """A memory transport whose next ``crashes`` sends end the "process"."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes = 0

    async def send(
        self, queue: str, job_ids: Sequence[str], delay: float = 0.0, priorities: Any = None, groups: Any = None
    ) -> None:
        if self.crashes:
            self.crashes -= 1
            raise Crash
        await super().send(queue, job_ids, delay)


@pytest.fixture
def qname() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


async def _repair(backend: CloudBackend, qname: str) -> None:
    """Let ``resend_grace`` pass, then run a repair pass (the first call only starts its clock)."""
    await backend.promote_due_delayed(qname)
    await asyncio.sleep(REPAIR.resend_grace + REPAIR.repair_interval)
    await backend.promote_due_delayed(qname)


async def test_enqueue_marks_and_the_claim_clears(memory_state_store: Any, qname: str) -> None:
    backend = CloudBackend(memory_state_store, MemoryTransport(), MemoryDelayStore(), config=REPAIR)
    queue = Queue(qname, backend=backend)
    job_id = await queue.add(T + "record", args=["a"])
    delayed = await queue.add(T + "record", args=["b"], delay=60)
    assert await memory_state_store.list_unsent(qname, time.time() + 1, 10) == [job_id]
    assert delayed not in await memory_state_store.list_unsent(qname, time.time() + 1, 10)
    job = await backend.dequeue(qname)
    assert job is not None and job["id"] == job_id
    assert await memory_state_store.list_unsent(qname, time.time() + 1, 10) == []


async def test_a_crash_between_write_and_send_is_repaired_once(memory_state_store: Any, qname: str) -> None:
    transport = CrashingTransport()
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=REPAIR)
    transport.crashes = 1
    with pytest.raises(Crash):
        await Queue(qname, backend=backend).add(T + "record", args=["x"])
    [stranded] = await backend.list_jobs(qname, "waiting")
    assert await transport.depth(qname) == 0  # no reference points to it
    await _repair(backend, qname)
    assert await transport.depth(qname) == 1
    await _repair(backend, qname)
    assert await transport.depth(qname) == 1  # re-sent once, not on every pass
    job = await backend.dequeue(qname)
    assert job is not None and job["id"] == stranded["id"]


async def test_a_job_waiting_past_the_grace_gets_one_duplicate_that_the_claim_drops(
    memory_state_store: Any, qname: str
) -> None:
    transport = MemoryTransport()
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=REPAIR)
    await Queue(qname, backend=backend).add(T + "record", args=["y"])
    await _repair(backend, qname)
    await _repair(backend, qname)
    assert await transport.depth(qname) == 2  # the cost of a backlog older than resend_grace
    assert await backend.dequeue(qname) is not None
    assert await backend.dequeue(qname) is None  # the duplicate: not claimable


async def test_a_repair_pass_with_nothing_to_resend_costs_two_store_calls(memory_state_store: Any, qname: str) -> None:
    calls: list[str] = []
    store = memory_state_store
    for name in ("acquire_lock", "list_unsent", "list_jobs", "clear_unsent"):
        original = getattr(store, name)

        async def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(_name)
            return await _original(*args, **kwargs)

        setattr(store, name, counted)
    backend = CloudBackend(store, MemoryTransport(), MemoryDelayStore(), config=REPAIR)
    await _repair(backend, qname)
    # list_jobs is the delayed-job repair (decision 7); the unsent repair adds the lock and one read.
    assert sorted(calls) == ["acquire_lock", "list_jobs", "list_unsent"]


async def test_no_marks_when_the_transport_carries_no_references(memory_state_store: Any, qname: str) -> None:
    transport = MemoryTransport()
    transport.capabilities = dataclasses.replace(transport.capabilities, redelivers=False)  # as DynamoDBBackend's
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=REPAIR)
    await Queue(qname, backend=backend).add(T + "record", args=["z"])
    assert await memory_state_store.list_unsent(qname, time.time() + 1, 10) == []


async def test_a_released_child_is_marked_until_claimed(memory_state_store: Any, qname: str) -> None:
    transport = CrashingTransport()
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=REPAIR)
    parent = await Queue(qname, backend=backend).add(T + "record", args=["p"])
    child = await backend.enqueue(qname, Job(T + "record", ["c"], {}, depends_on=[parent]).to_dict())
    claimed = await backend.dequeue(qname)
    assert claimed is not None and claimed["id"] == parent
    await backend.complete_active_job(qname, claimed, "p")
    transport.crashes = 1  # the worker dies between the child's release and its hand-over
    with pytest.raises(Crash):
        await backend.resolve_dependency(qname, parent)
    assert await memory_state_store.list_unsent(qname, time.time() + 1, 10) == [child]
    await _repair(backend, qname)
    job = await backend.dequeue(qname)
    assert job is not None and job["id"] == child
