"""LingerBatcher: linger vs busy linger, per-entry results, close drains."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from asyncmq_cloud.errors import ClosedError
from asyncmq_cloud.transports._batcher import LingerBatcher


class Recorder:
    """A flush that records its batches and, while ``gate`` is clear, stays in flight."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, key: str, entries: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(entries))
        await self.gate.wait()
        return [e if e >= 0 else ValueError(f"entry {e} refused") for e in entries]


async def test_a_sequential_caller_never_waits_the_busy_linger() -> None:
    flush = Recorder()
    # A 30 s busy linger would time this out if a lone awaiting caller ever got it.
    batcher = LingerBatcher(flush, max_size=10, linger=0.0, busy_linger=30.0, name="t")
    for i in range(5):
        assert await asyncio.wait_for(batcher.submit("q", [i]), 5) == [i]
    assert flush.batches == [[0], [1], [2], [3], [4]]


async def _until(condition, timeout: float = 10.0) -> None:
    """Yields to the loop until ``condition()`` holds (a loaded machine may be slow to get there)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_batches_opened_while_a_call_is_in_flight_wait_the_busy_linger() -> None:
    flush = Recorder()
    # The busy linger is long next to the steps below, so a slow machine cannot blur the two lingers.
    batcher = LingerBatcher(flush, max_size=10, linger=0.0, busy_linger=3.0, name="t")
    flush.gate.clear()  # the first call stays in flight
    first = asyncio.ensure_future(batcher.submit("q", [0]))
    await _until(lambda: flush.batches == [[0]])
    started = asyncio.get_running_loop().time()
    staggered = []
    for i in (1, 2, 3):  # staggered callers: each alone would be a batch of one with linger=0
        staggered.append(asyncio.ensure_future(batcher.submit("q", [i])))
        await asyncio.sleep(0.01)
    if asyncio.get_running_loop().time() - started < 2.5:  # still well inside the busy linger
        assert flush.batches == [[0]], "entries that arrive during a call must wait the busy linger"
    await _until(lambda: len(flush.batches) == 2)
    assert flush.batches == [[0], [1, 2, 3]]
    flush.gate.set()
    assert await first == [0]
    assert [await s for s in staggered] == [[1], [2], [3]]
    # The calls are done: the next lone caller is back to the short linger (not the 3 s busy one).
    assert await asyncio.wait_for(batcher.submit("q", [4]), 1.5) == [4]


async def test_full_batch_goes_at_once_and_each_caller_gets_its_own_error() -> None:
    flush = Recorder()
    batcher = LingerBatcher(flush, max_size=3, linger=30.0, name="t")
    ok, bad = await asyncio.wait_for(
        asyncio.gather(batcher.submit("q", [1, 2]), batcher.submit("q", [-1]), return_exceptions=True), 5
    )
    assert flush.batches == [[1, 2, -1]]
    assert ok == [1, 2]
    assert isinstance(bad, ValueError) and "entry -1" in str(bad)


async def test_close_sends_what_is_pending_and_refuses_more() -> None:
    flush = Recorder()
    errors: list[BaseException] = []
    batcher = LingerBatcher(flush, max_size=10, linger=30.0, name="acks")
    batcher.post("q", [1, 2, -3], errors.append)
    assert batcher.pending == 3
    await asyncio.wait_for(batcher.close(), 5)
    assert flush.batches == [[1, 2, -3]] and batcher.pending == 0
    assert len(errors) == 1 and "entry -3" in str(errors[0])
    with pytest.raises(ClosedError):
        await batcher.submit("q", [4])


async def test_adaptive_batch_waiting_for_a_call_in_flight_goes_when_it_returns() -> None:
    flush = Recorder()
    # A 30 s cap would time this out if the batch waited for it instead of the call in flight.
    batcher = LingerBatcher(flush, max_size=10, linger=0.0, busy_linger=30.0, name="t", adaptive=True)
    flush.gate.clear()
    first = asyncio.ensure_future(batcher.submit("q", [0]))
    await _until(lambda: flush.batches == [[0]])
    later = [asyncio.ensure_future(batcher.submit("q", [i])) for i in (1, 2)]
    await asyncio.sleep(0.05)
    assert flush.batches == [[0]], "entries that come while a call is in flight wait for it"
    flush.gate.set()
    assert await asyncio.wait_for(first, 5) == [0]
    assert [await asyncio.wait_for(f, 5) for f in later] == [[1], [2]]
    assert flush.batches == [[0], [1, 2]]


async def test_with_no_linger_callers_of_one_loop_turn_share_a_call() -> None:
    flush = Recorder()
    batcher = LingerBatcher(flush, max_size=10, linger=0.0, busy_linger=30.0, name="t", adaptive=True)
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit("q", [i]) for i in range(3))), 5)
    assert results == [[0], [1], [2]] and flush.batches == [[0, 1, 2]]
    assert await asyncio.wait_for(batcher.submit("q", [3]), 5) == [3]  # a lone caller: its own call, at once
    assert flush.batches == [[0, 1, 2], [3]]
