"""Transient errors while a job runs never reach AsyncMQ (issue 16, decision 50).

In-process: the memory store and transport behind a wrapper that fails chosen calls
with ``TransientError`` for a while. The real-service proof is
``tests/e2e/test_outage_matrix.py`` (a proxy cuts Redis, DynamoDB or SQS under
worker processes).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from typing import Any

import pytest
from asyncmq.queues import Queue
from asyncmq.workers import handle_job

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core import resilience
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.errors import PermanentError, TransientError
from asyncmq_cloud.stores.memory import MemoryStateStore
from asyncmq_cloud.transports.memory import MemoryTransport

T = "tests.tasks."


class Flaky:
    """Wraps a component; each method named in ``failing`` raises ``TransientError`` while
    ``failing[name] > 0`` (decremented per call) or until ``until`` (monotonic) passes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.failing: dict[str, int] = {}
        self.until: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.failing.get(name, 0) > 0 or time.monotonic() < self.until.get(name, 0.0):
                self.failing[name] = max(0, self.failing.get(name, 0) - 1)
                raise TransientError(f"{name}: store away")
            return await attr(*args, **kwargs)

        return wrapper


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resilience, "BACKOFF_BASE", 0.01)
    monkeypatch.setattr(resilience, "BACKOFF_CAP", 0.05)


@pytest.fixture
def qname() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"


def make_backend(store: Any, transport: Any, **config: Any) -> CloudBackend:
    return CloudBackend(store, transport, MemoryDelayStore(), config=LifecycleConfig(**config))


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    low = [resilience.backoff(n, rng=lambda: 0.0) for n in range(12)]
    high = [resilience.backoff(n, rng=lambda: 0.999999) for n in range(12)]
    assert low[0] == pytest.approx(resilience.BACKOFF_BASE / 2)
    assert all(a <= b for a, b in itertools.pairwise(low)), "never shrinks"
    assert max(high) <= resilience.BACKOFF_CAP and max(high) == pytest.approx(resilience.BACKOFF_CAP, rel=1e-3)
    assert all(h / 2 == pytest.approx(lo) for lo, h in zip(low, high, strict=True) if h < resilience.BACKOFF_CAP)


async def test_retry_gives_up_at_the_deadline_and_permanent_errors_raise_at_once() -> None:
    calls = 0

    async def away() -> None:
        nonlocal calls
        calls += 1
        raise TransientError("away")

    began = time.monotonic()
    with pytest.raises(resilience.GaveUp) as caught:
        await resilience.retry_transient(away, deadline=resilience.window_from_now(0.3), what="writing")
    assert 0.2 <= time.monotonic() - began < 1.0 and calls > 2
    assert "writing" in str(caught.value) and isinstance(caught.value.last, TransientError)

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("no")

    calls = 0
    with pytest.raises(PermanentError):
        await resilience.retry_transient(refused, deadline=resilience.window_from_now(5), what="writing")
    assert calls == 1


async def test_a_completion_write_that_fails_for_a_while_completes_the_job(qname: str) -> None:
    store, transport = Flaky(MemoryStateStore()), MemoryTransport()
    backend = make_backend(store, transport)
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
    job = await backend.dequeue(qname)
    assert job is not None
    store.failing["transition"] = 3  # the completion write fails three times, then lands
    await handle_job(qname, job, backend)
    assert await backend.get_job_state(qname, job_id) == "completed"
    assert await backend.get_job_result(qname, job_id) == 3
    assert store.calls["transition"] == 4 and backend.running == 0
    assert await transport.depth(qname) == 0, "acked once the write landed"
    await backend.close()


async def test_a_write_failing_past_the_lease_is_given_up_never_recorded_failed(
    qname: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, transport = Flaky(MemoryStateStore()), MemoryTransport()
    backend = make_backend(store, transport, lease_timeout=1.0)
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
    job = await backend.dequeue(qname)
    assert job is not None
    store.until["transition"] = time.monotonic() + 30  # longer than the lease
    store.until["heartbeat"] = time.monotonic() + 30
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="asyncmq_cloud.lifecycle"):
        await handle_job(qname, job, backend)  # returns: nothing raised into AsyncMQ
    assert time.monotonic() - began < 2.0, "given up when the lease ran out (1 s, minus the margin)"
    gave_up = [r for r in caplog.records if "taken over" in r.getMessage()]
    assert len(gave_up) == 1, [r.getMessage() for r in caplog.records]
    assert await backend.get_job_state(qname, job_id) == "active", "neither completed nor failed"
    assert backend.running == 0
    store.until.clear()
    # The reference went back to the broker; once the lease ran out another worker takes the job over.
    other = make_backend(store, transport, lease_timeout=1.0)
    deadline = time.monotonic() + 10
    taken = None
    while taken is None and time.monotonic() < deadline:
        taken = await other.dequeue(qname)
        await asyncio.sleep(0.1)
    assert taken is not None and taken["id"] == job_id
    await handle_job(qname, taken, other)
    assert await other.get_job_state(qname, job_id) == "completed"
    await backend.close()
    await other.close()


async def test_heartbeats_registration_and_cancel_reads_ride_out_an_outage(qname: str) -> None:
    store, transport = Flaky(MemoryStateStore()), MemoryTransport()
    backend = make_backend(store, transport)
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
    job = await backend.dequeue(qname)
    assert job is not None
    for name in ("heartbeat", "register_worker", "deregister_worker", "get"):
        store.failing[name] = 2
    await backend.save_heartbeat(qname, job_id, time.time())  # logged, not raised
    await backend.register_worker("w1", qname, 4, time.time())
    await backend.deregister_worker("w1")
    backend._leases.held[(qname, job_id)].claimed_at -= 60
    assert await backend.is_job_cancelled(qname, job_id) is False  # read retried, then answered
    assert store.calls["get"] == 3
    # An administrative call about a job not running here raises as before.
    store.failing["set_state"] = 1
    with pytest.raises(TransientError):
        await backend.update_job_state(qname, "not-running-here", "waiting")
    await backend.close()


async def test_drain_gives_back_what_a_receive_got_and_stops_claiming(qname: str) -> None:
    store, transport = MemoryStateStore(), MemoryTransport()
    backend = make_backend(store, transport, prefetch=5)
    await backend.register_worker("w1", qname, 5, time.time())
    ids = [await Queue(qname, backend=backend).add(T + "add", args=[i, i]) for i in range(4)]
    first = await backend.dequeue(qname)  # one claimed, three buffered
    assert first is not None
    await backend.drain()
    assert backend.draining and await backend.dequeue(qname) is None
    assert [await backend.get_job_state(qname, i) for i in ids].count("waiting") == 3
    other = make_backend(store, transport, prefetch=1)
    taken = {(await other.dequeue(qname) or {}).get("id") for _ in range(3)}
    assert taken == set(ids) - {first["id"]}, "the prefetched references went back at once"
    # The running job is given back once its run was stopped: claimable by another worker at once.
    assert await backend.release_running() == 1 and backend.running == 0
    assert await backend.get_job_state(qname, first["id"]) == "waiting"
    again = await other.dequeue(qname)
    assert again is not None and again["id"] == first["id"]
    await backend.close()
    await other.close()


async def test_a_claim_that_lands_after_the_drain_began_is_given_back(qname: str) -> None:
    store, transport = MemoryStateStore(), MemoryTransport()
    backend = make_backend(store, transport)
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 1])
    claim = store.claim

    async def slow_claim(*args: Any, **kwargs: Any) -> Any:
        record = await claim(*args, **kwargs)
        await backend.drain()  # the signal arrives while the claim is in flight
        return record

    store.claim = slow_claim  # type: ignore[method-assign]
    assert await backend.dequeue(qname) is None
    assert await backend.get_job_state(qname, job_id) == "waiting" and backend.running == 0
    assert await transport.depth(qname) == 1
    await backend.close()


class LandsThenFails(Flaky):
    """The first ``transition`` is applied, then its reply is lost (``TransientError``)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        attr = super().__getattr__(name)
        if name != "transition":
            return attr

        async def transition(*args: Any, **kwargs: Any) -> Any:
            record = await attr(*args, **kwargs)
            if self.lost == 0:
                self.lost += 1
                raise TransientError("reply lost")
            return record

        return transition


async def test_an_end_whose_first_try_landed_unseen_is_not_mistaken_for_a_lost_claim(qname: str) -> None:
    store, transport = LandsThenFails(MemoryStateStore()), MemoryTransport()
    backend = make_backend(store, transport)
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
    job = await backend.dequeue(qname)
    assert job is not None
    await backend.retry_active_job(qname, job, time.time() - 1)  # due now: waiting + a new reference
    assert await backend.get_job_state(qname, job_id) == "waiting"
    again = await backend.dequeue(qname)
    assert again is not None and again["id"] == job_id, "the hand-over ran: the job has a reference"
    await backend.close()


async def test_a_give_back_of_a_job_our_end_already_made_waiting_keeps_its_reference(qname: str) -> None:
    store, transport = MemoryStateStore(), MemoryTransport()
    backend = make_backend(store, transport)
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
    assert await backend.dequeue(qname) is not None
    # The run's own end wrote ``waiting`` and was cut short before its hand-over.
    assert await store.transition(qname, job_id, "waiting", expect_states={"active"}) is not None
    assert await backend.release_running() == 0
    other = make_backend(store, transport)
    again = await other.dequeue(qname)
    assert again is not None and again["id"] == job_id, "the delivery was released, not acked"
    await backend.close()
    await other.close()


async def test_retries_without_a_lease_end_at_a_fixed_deadline() -> None:
    backend = make_backend(MemoryStateStore(), MemoryTransport(), lease_timeout=0.5)
    deadline = backend._leases.deadline_of(None)
    first = deadline()
    await asyncio.sleep(0.1)
    assert deadline() == first, "asked again, it must not move on"

    async def away() -> None:
        raise TransientError("away")

    began = time.monotonic()
    with pytest.raises(resilience.GaveUp):
        await resilience.retry_transient(away, deadline=backend._leases.deadline_of(None), what="releasing")
    assert time.monotonic() - began < 2.0
    await backend.close()
