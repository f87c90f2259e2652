"""Read-ahead (core/read_ahead.py): the next receive starts while the buffer runs low, within the free capacity.

On the memory transport with ``read_ahead`` declared (SQS declares it; tests/test_read_ahead_sqs.py
runs the same drain on real SQS servers).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from asyncmq.queues import Queue
from asyncmq.workers import handle_job

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.errors import TransientError
from asyncmq_cloud.transports.memory import MemoryTransport

T = "tests.tasks."
READ_AHEAD: contextvars.ContextVar[bool] = contextvars.ContextVar("read_ahead", default=False)


class Spy:
    """The transport's receives: what each asked, and whether a read-ahead made it."""

    def __init__(self, backend: CloudBackend, transport: MemoryTransport, queue: str) -> None:
        self.asked: list[tuple[int, bool]] = []
        self.held_max = 0
        self.fail_next = 0
        self.gate: asyncio.Event | None = None
        self._backend, self._queue, self._receive = backend, queue, transport.receive
        transport.receive = self.receive  # type: ignore[method-assign]
        fill = backend._leases.ahead._fill

        async def marked_fill(queue: str, want: int) -> None:
            READ_AHEAD.set(True)  # the receive's own task copies this context
            await fill(queue, want)

        backend._leases.ahead._fill = marked_fill  # type: ignore[method-assign]

    def holding(self) -> int:
        """References this backend holds for the queue: running jobs and buffered references."""
        leases = self._backend._leases
        return sum(1 for q, _ in leases.held if q == self._queue) + len(leases.buffer.get(self._queue, ()))

    async def receive(self, queue: str, max_messages: int, wait: float) -> Any:
        self.asked.append((max_messages, READ_AHEAD.get()))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("broker away (test)")
        got = await self._receive(queue, max_messages, wait)
        return got


def make(memory_state_store: Any, **config: Any) -> tuple[CloudBackend, MemoryTransport, str]:
    transport = MemoryTransport()
    transport.capabilities = dataclasses.replace(transport.capabilities, read_ahead=True)
    config = {"receive_wait": 0, **config}
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=LifecycleConfig(**config))  # type: ignore[arg-type]
    return backend, transport, f"ra-{uuid.uuid4().hex[:10]}"


def visible(transport: MemoryTransport, queue: str) -> list[Any]:
    """The queue's messages any receive would get now."""
    now = time.time()
    return [m for m in transport._queues[queue] if m.visible_at <= now]


async def read_ahead_ended(backend: CloudBackend) -> None:
    """Wait (bounded) until no read-ahead of ``backend`` is in flight."""
    for _ in range(50):
        if not backend._leases.ahead._tasks:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"a read-ahead is still in flight: {backend._leases.ahead._tasks}")


async def run_all(backend: CloudBackend, spy: Spy, queue: str, jobs: int) -> Counter[str]:
    """Dequeue and complete every job, one at a time (no-op jobs: the buffer drains fast)."""
    done: Counter[str] = Counter()
    for _ in range(jobs * 3):
        job = await backend.dequeue(queue)
        await asyncio.sleep(0)  # a read-ahead started by the claim gets its turn
        spy.held_max = max(spy.held_max, spy.holding())
        if job is None:
            if sum(done.values()) >= jobs:
                break
            continue
        await handle_job(queue, job, backend)
        done[job["id"]] += 1
    return done


async def test_a_read_ahead_refills_the_buffer_within_the_free_capacity(memory_state_store: Any) -> None:
    backend, transport, queue = make(memory_state_store, prefetch=10)
    spy = Spy(backend, transport, queue)
    ids = [await Queue(queue, backend=backend).add(T + "add", args=[i, 1]) for i in range(40)]
    await backend.register_worker("w", queue, 10, time.time())
    done = await run_all(backend, spy, queue, len(ids))
    assert done == Counter({job_id: 1 for job_id in ids}), "every job ran exactly once"
    assert spy.asked[0] == (10, False), "the first receive fills the buffer"
    ahead = [n for n, by_read_ahead in spy.asked if by_read_ahead]
    assert ahead, f"no read-ahead was made: {spy.asked}"
    assert all(5 <= n <= 10 for n in ahead), f"a read-ahead asks for at least half the prefetch: {spy.asked}"
    assert spy.held_max <= 10, "never more held than the registered concurrency"
    await backend.close()


@pytest.mark.parametrize("setting", ["prefetch=1", "no worker registered", "transport without read-ahead"])
async def test_no_read_ahead_where_it_would_hide_jobs_or_the_transport_races(
    memory_state_store: Any, setting: str
) -> None:
    backend, transport, queue = make(memory_state_store, prefetch=1 if setting == "prefetch=1" else 10)
    if setting == "transport without read-ahead":
        transport.capabilities = dataclasses.replace(transport.capabilities, read_ahead=False)
    spy = Spy(backend, transport, queue)
    ids = [await Queue(queue, backend=backend).add(T + "add", args=[i, 1]) for i in range(12)]
    if setting != "no worker registered":
        await backend.register_worker("w", queue, 10, time.time())
    done = await run_all(backend, spy, queue, len(ids))
    assert sum(done.values()) == 12 and set(done) == set(ids)
    assert not any(by_read_ahead for _, by_read_ahead in spy.asked), spy.asked
    await backend.close()


async def test_a_failed_read_ahead_is_raised_by_the_dequeue_that_needed_it_and_loses_nothing(
    memory_state_store: Any,
) -> None:
    backend, transport, queue = make(memory_state_store, prefetch=10)
    spy = Spy(backend, transport, queue)
    ids = [await Queue(queue, backend=backend).add(T + "add", args=[i, 1]) for i in range(20)]
    await backend.register_worker("w", queue, 10, time.time())
    first = await backend.dequeue(queue)
    assert first is not None
    spy.fail_next = 1  # the read-ahead started by a later claim fails
    failures_before = len(spy.asked)
    done = Counter({first["id"]: 1})
    await handle_job(queue, first, backend)
    done += await run_all(backend, spy, queue, len(ids) - 1)
    assert done == Counter({job_id: 1 for job_id in ids}), "every job ran exactly once, outage or not"
    assert any(by_read_ahead for _, by_read_ahead in spy.asked[failures_before:])
    assert not backend._leases.ahead._failed, "the failure was handed to a dequeue, not kept"
    await backend.close()


async def test_a_drain_ends_a_read_ahead_at_once_and_returns_what_it_got(memory_state_store: Any) -> None:
    backend, transport, queue = make(memory_state_store, prefetch=10, receive_wait=20)
    spy = Spy(backend, transport, queue)
    ids = [await Queue(queue, backend=backend).add(T + "add", args=[i, 1]) for i in range(14)]
    await backend.register_worker("w", queue, 20, time.time())
    jobs = [await backend.dequeue(queue) for _ in range(5)]  # 5 running, 5 buffered: 5 of 20 free after the next
    assert all(jobs)
    spy.gate = asyncio.Event()  # the next receive (a read-ahead) hangs like a long poll
    jobs.append(await backend.dequeue(queue))
    await asyncio.sleep(0.05)
    assert spy.asked[-1][1], f"a read-ahead is in flight: {spy.asked}"
    began = time.monotonic()
    await backend.drain()
    assert time.monotonic() - began < 1.0, "the drain does not wait the read-ahead out"
    await read_ahead_ended(backend)  # the cancelled read-ahead ends in the next turns of the loop
    assert await backend.dequeue(queue) is None, "a draining backend claims nothing"
    for job in jobs:
        assert job is not None
        await handle_job(queue, job, backend)
    # Everything not run is visible on the broker again at once (the buffered 4 were released,
    # the read-ahead took nothing): the other 8 references, and no other.
    assert len(visible(transport, queue)) == len(ids) - len(jobs) == 8
    await backend.close()


async def test_what_a_read_ahead_gets_after_a_drain_began_goes_straight_back(memory_state_store: Any) -> None:
    backend, transport, queue = make(memory_state_store, prefetch=10)
    spy = Spy(backend, transport, queue)
    ids = [await Queue(queue, backend=backend).add(T + "add", args=[i, 1]) for i in range(14)]
    await backend.register_worker("w", queue, 20, time.time())
    jobs = [await backend.dequeue(queue) for _ in range(5)]
    spy.gate = asyncio.Event()
    jobs.append(await backend.dequeue(queue))  # starts a read-ahead of 5, held at the gate
    await asyncio.sleep(0.05)
    assert spy.asked[-1] == (5, True), spy.asked
    # A drain began (it returned the buffer's 4), and its interrupt came before this receive answered.
    backend._leases.stopping = True
    await backend._leases.return_buffered()
    assert not backend._leases.buffer[queue]
    spy.gate.set()
    await read_ahead_ended(backend)
    assert spy.asked[-1] == (5, True) and not backend._leases.buffer[queue], "its references were not kept"
    back = visible(transport, queue)
    # every unrun reference is visible now, the 5 the read-ahead received (of the 8 visible) among
    # them: 4 + 5 receives of them in all (the drain returned the first receive's other 4)
    assert len(back) == len(ids) - len(jobs) == 8 and sum(m.receive_count for m in back) == 4 + 5, back
    await backend.close()


async def test_a_dequeue_waiting_for_a_read_ahead_stopped_by_close_answers_no_job(memory_state_store: Any) -> None:
    backend, transport, queue = make(memory_state_store, prefetch=10)
    spy = Spy(backend, transport, queue)
    for i in range(14):
        await Queue(queue, backend=backend).add(T + "add", args=[i, 1])
    await backend.register_worker("w", queue, 20, time.time())
    jobs = [await backend.dequeue(queue) for _ in range(5)]
    spy.gate = asyncio.Event()
    jobs += [await backend.dequeue(queue) for _ in range(5)]  # the 6th started a read-ahead, held at the gate
    await asyncio.sleep(0.05)
    assert all(jobs) and spy.asked[-1] == (5, True), spy.asked
    waiting = asyncio.create_task(backend.dequeue(queue))  # buffer empty: waits for the read-ahead
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await backend._leases.ahead.cancel()  # what the lease keeper's stop does as the backend closes
    assert await asyncio.wait_for(waiting, 2) is None, "no job, and no CancelledError into AsyncMQ's loop"
    spy.gate.set()
    await backend.close()
