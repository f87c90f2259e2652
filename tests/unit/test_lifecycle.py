"""CloudBackend lifecycle: store/transport call counts, crash repair, bad input.

Call counts run over every state store (``state_store`` fixture) through a
counting proxy, so "a claim returns the payload" and "complete is one write"
hold for the real stores, not only for the memory one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from asyncmq import monkay
from asyncmq.queues import Queue
from asyncmq.workers import handle_job

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.errors import ConfigurationError, InvalidNameError, PayloadTooLargeError, TransientError
from asyncmq_cloud.transports.memory import MemoryTransport

T = "tests.tasks."


class Counting:
    """Proxy that counts awaited method calls on the wrapped object."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return wrapper


@pytest.fixture
def qname() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


async def test_store_calls_per_job(state_store: Any, qname: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # AsyncMQ's settings are read once per process: an earlier test may have loaded an app's
    # settings with its stalled check on (a heartbeat write per run). This count is without it.
    monkeypatch.setattr(monkay.settings, "enable_stalled_check", False)
    store = Counting(state_store)
    transport = MemoryTransport()
    # A task starting more than cancel_cache_ttl after its claim reads the cancel flag once more:
    # a long TTL keeps the count to the job's own path on a slow machine.
    config = LifecycleConfig(cancel_cache_ttl=60)
    backend = CloudBackend(store, transport, MemoryDelayStore(), config=config)  # type: ignore[arg-type]
    await backend.start()
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
    assert store.calls == Counter({"start": 1, "create": 1}) and transport.calls == {"send": 1}
    assert not await backend.is_queue_paused(qname)  # AsyncMQ's worker asks before each dequeue (cached 1 s)
    store.calls.clear()
    job = await backend.dequeue(qname)
    assert job is not None and job["status"] == "active" and job["args"] == [1, 2]
    assert store.calls == Counter({"claim": 1}), "the claim must return the payload (no extra read)"
    store.calls.clear()
    await handle_job(qname, job, backend)
    # complete = ONE conditional write; AsyncMQ's follow-up resolve_dependency costs
    # nothing for a job nobody waits for.
    assert store.calls == Counter({"transition": 1})
    assert transport.calls["ack"] == 1
    assert await backend.get_job_result(qname, job_id) == 3


async def test_a_job_claimed_as_a_pause_lands_is_given_back_or_run_if_that_fails(
    memory_state_store: Any, qname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = CloudBackend(memory_state_store, MemoryTransport(), MemoryDelayStore())
    first = await Queue(qname, backend=backend).add(T + "add", args=[1, 1])

    async def paused_during_the_claim(queue: str, fresh_only: bool) -> bool:
        return fresh_only  # not paused at the receive, paused by the time the claim returns

    assert await backend._leases.take(qname, paused_during_the_claim) is None
    assert await backend.get_job_state(qname, first) == "waiting" and not backend._leases.held

    async def failing(*args: Any) -> bool:
        raise TransientError("store away")

    monkeypatch.setattr(backend._leases, "_give_back", failing)
    job = await backend._leases.take(qname, paused_during_the_claim)
    assert job is not None and job["id"] == first, "a claim that cannot be given back is run, not orphaned"
    assert backend._leases.holds(qname, first)
    await handle_job(qname, job, backend)
    assert await backend.get_job_state(qname, first) == "completed"


async def test_paused_flag_is_cached(memory_state_store: Any, qname: str) -> None:
    store = Counting(memory_state_store)
    backend = CloudBackend(store, MemoryTransport(), MemoryDelayStore(), config=LifecycleConfig(pause_cache_ttl=60))  # type: ignore[arg-type]
    for _ in range(5):
        assert not await backend.is_queue_paused(qname)
    assert store.calls["is_paused"] == 1
    await backend.pause_queue(qname)
    assert await backend.is_queue_paused(qname)
    assert store.calls["is_paused"] == 1


async def test_crash_between_delay_claim_and_promotion_is_repaired(memory_state_store: Any, qname: str) -> None:
    delay_store = MemoryDelayStore()
    config = LifecycleConfig(repair_interval=0.01, repair_grace=0.0)
    backend = CloudBackend(memory_state_store, MemoryTransport(), delay_store, config=config)
    await Queue(qname, backend=backend).add(T + "record", args=["x"], delay=0.05)
    await asyncio.sleep(0.1)
    # A scanner claimed the id from the delay store and crashed before the state write.
    assert len(await delay_store.claim_due(qname, time.time(), 10)) == 1
    assert await backend.promote_due_delayed(qname) == []  # starts the repair clock
    await asyncio.sleep(0.05)
    promoted = await backend.promote_due_delayed(qname)
    assert [j["status"] for j in promoted] == ["waiting"]
    assert await backend.promote_due_delayed(qname) == []  # exactly once
    assert (await backend.dequeue(qname)) is not None


async def test_duplicate_delivery_never_runs_twice(memory_state_store: Any, qname: str) -> None:
    transport = MemoryTransport()
    config = LifecycleConfig(receive_wait=0.05)
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=config)
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 1])
    await transport.send(qname, [job_id])  # the broker delivers the reference twice
    first = await backend.dequeue(qname)
    assert first is not None
    assert await backend.dequeue(qname) is None  # held by a live lease: put back, not run
    await handle_job(qname, first, backend)
    for message in transport._queues[qname]:
        message.visible_at = 0  # make the parked duplicate visible now
    assert await backend.dequeue(qname) is None  # the job is done: the duplicate is dropped
    assert await transport.depth(qname) == 0


async def test_redelivered_reference_takes_over_a_dead_workers_job(memory_state_store: Any, qname: str) -> None:
    transport = MemoryTransport(visibility_timeout=0.1)
    config = LifecycleConfig(receive_wait=0.05, lease_timeout=0.4)
    dead = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=config)
    job_id = await Queue(qname, backend=dead).add(T + "add", args=[2, 2])
    assert (await dead.dequeue(qname)) is not None
    assert dead._leases.task is not None
    dead._leases.task.cancel()  # ... and the worker dies: no heartbeat (not even its lease keeper), no ack
    alive = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=config)
    await asyncio.sleep(0.15)  # visibility expired, the lease has not
    assert await alive.dequeue(qname) is None
    assert await transport.depth(qname) == 1  # parked until the lease runs out
    deadline = time.monotonic() + 5
    job = None
    while job is None and time.monotonic() < deadline:
        job = await alive.dequeue(qname)
    assert job is not None and job["id"] == job_id
    await handle_job(qname, job, alive)
    assert await alive.get_job_result(qname, job_id) == 4
    # The presumed-dead worker finishing late cannot overwrite the outcome.
    await dead.fail_active_job(qname, {**job, "status": "failed"})
    assert await alive.get_job_state(qname, job_id) == "completed"


async def test_oversized_payload_refused_at_enqueue(memory_state_store: Any, qname: str) -> None:
    transport = MemoryTransport()
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore())
    blob = "x" * (memory_state_store.max_payload_bytes + 10)
    with pytest.raises(PayloadTooLargeError):
        await backend.enqueue(qname, {"id": "big", "task_id": T + "add", "args": [blob], "kwargs": {}})
    assert await memory_state_store.get(qname, "big") is None
    assert await transport.depth(qname) == 0


async def test_invalid_queue_name(memory_state_store: Any) -> None:
    backend = CloudBackend(memory_state_store, MemoryTransport(), MemoryDelayStore())
    with pytest.raises(InvalidNameError, match="may only contain"):
        await backend.enqueue("bad queue!", {"id": "a", "task_id": "t", "args": [], "kwargs": {}})


def test_malformed_config_names_the_field() -> None:
    with pytest.raises(ConfigurationError, match="prefetch"):
        LifecycleConfig.build(prefetch=0)
    with pytest.raises(ConfigurationError, match="bogus"):
        LifecycleConfig.build(bogus=1)


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCMQ_CLOUD_RECEIVE_WAIT", "2.5")
    assert LifecycleConfig.from_env().receive_wait == 2.5
    monkeypatch.setenv("ASYNCMQ_CLOUD_RECEIVE_WAIT", "lots")
    with pytest.raises(ConfigurationError, match="receive_wait"):
        LifecycleConfig.from_env()


async def test_closed_backend_cannot_restart(memory_state_store: Any) -> None:
    backend = CloudBackend(memory_state_store, MemoryTransport(), MemoryDelayStore())
    async with backend:
        pass
    await backend.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await backend.start()


async def test_deregister_worker_survives_a_cancelled_scope(state_store: Any) -> None:
    """AsyncMQ calls deregister_worker from a scope that is already cancelled."""
    import anyio

    backend = CloudBackend(state_store, MemoryTransport(), MemoryDelayStore())
    worker_id = uuid.uuid4().hex
    await backend.register_worker(worker_id, "q", 1, time.time())
    with anyio.CancelScope() as scope:
        scope.cancel()
        await backend.deregister_worker(worker_id)
    assert worker_id not in [w.id for w in await backend.list_workers()]


async def test_a_heartbeat_cancelled_in_flight_cannot_outlive_the_deregistration(memory_state_store: Any) -> None:
    """AsyncMQ cancels its heartbeat loop, then deregisters: a registry write cancelled on the
    client side must not land after the delete and list a stopped worker."""
    store = memory_state_store
    register = store.register_worker
    landed = asyncio.Event()

    async def slow_register(record: Any, ttl: float) -> None:
        await asyncio.sleep(0.2)  # the server takes its time; the client gives up meanwhile
        await register(record, ttl)
        landed.set()

    store.register_worker = slow_register
    backend = CloudBackend(store, MemoryTransport(), MemoryDelayStore())
    worker_id = uuid.uuid4().hex
    heartbeat = asyncio.ensure_future(backend.register_worker(worker_id, "q", 1, time.time()))
    await asyncio.sleep(0.05)
    heartbeat.cancel()
    await backend.deregister_worker(worker_id)
    assert landed.is_set(), "the deregistration waited for the write in flight"
    assert worker_id not in [w.id for w in await backend.list_workers()]
    await backend.register_worker(worker_id, "q", 1, time.time())  # a late heartbeat
    assert worker_id not in [w.id for w in await backend.list_workers()]
    await backend.close()


async def test_receive_takes_only_the_free_capacity_of_registered_workers(memory_state_store: Any, qname: str) -> None:
    transport = Counting(MemoryTransport())
    asked: list[int] = []
    receive = transport._inner.receive

    async def spy(queue: str, max_messages: int, wait: float) -> Any:
        asked.append(max_messages)
        return await receive(queue, max_messages, wait)

    transport._inner.receive = spy
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=LifecycleConfig(receive_wait=0))  # type: ignore[arg-type]
    queue = Queue(qname, backend=backend)
    for i in range(12):
        await queue.add(T + "add", args=[i, 0])
    first = await backend.dequeue(qname)
    assert first is not None
    assert asked == [1], "no registered worker: one at a time"
    await backend.register_worker("w1", qname, 4, time.time())
    running = [first] + [await backend.dequeue(qname) for _ in range(3)]
    assert asked == [1, 3], "one receive of capacity 4 minus the 1 job running; the rest came from its buffer"
    for job in running:
        assert job is not None
        await handle_job(qname, job, backend)
    asked.clear()
    await backend.dequeue(qname)
    assert asked == [4], "nothing running: the whole capacity"
    await backend.deregister_worker("w1")
    assert backend._leases.receive_size(qname) == 1, "the worker is gone: one at a time again"
    await backend.close()


async def test_scheduler_pass_reads_the_repeatables_once(memory_state_store: Any, qname: str) -> None:
    store = Counting(memory_state_store)
    backend = CloudBackend(store, MemoryTransport(), MemoryDelayStore())  # type: ignore[arg-type]
    await backend.upsert_repeatable(qname, {"task_id": T + "add", "every": 60, "args": [1, 2]})
    store.calls.clear()
    # AsyncMQ's scheduler pass: get_due_repeatables, then list_repeatables for its sleep.
    assert await backend.get_due_repeatables(qname) == []
    assert len(await backend.list_repeatables(qname)) == 1
    assert store.calls["list_repeatables"] == 1
    # The reuse is one-shot: the next list (e.g. the dashboard) reads again.
    await backend.list_repeatables(qname)
    assert store.calls["list_repeatables"] == 2
    # A change through the backend between the two calls is never hidden.
    await backend.get_due_repeatables(qname)
    await backend.remove_repeatable(qname, {"task_id": T + "add", "every": 60, "args": [1, 2]})
    assert await backend.list_repeatables(qname) == []
    await backend.close()


async def test_the_backend_renews_its_leases_without_asyncmq_heartbeats(memory_state_store: Any, qname: str) -> None:
    """With AsyncMQ's stalled check off (its default) nobody heartbeats: the backend must, or a
    job running longer than lease_timeout would be taken over by another worker and run twice."""
    transport = MemoryTransport(visibility_timeout=0.2)  # the broker redelivers quickly, too
    config = LifecycleConfig(receive_wait=0.05, lease_timeout=0.3)
    worker = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=config)
    rival = CloudBackend(memory_state_store, transport, MemoryDelayStore(), config=config)
    job_id = await Queue(qname, backend=worker).add(T + "add", args=[1, 2])
    job = await worker.dequeue(qname)
    assert job is not None
    claimed = (await memory_state_store.get(qname, job_id)).heartbeat
    for _ in range(8):  # 1.2 s: four lease timeouts without a single AsyncMQ heartbeat
        await asyncio.sleep(0.15)
        assert await rival.dequeue(qname) is None, "a live worker's job was taken over"
    assert (await memory_state_store.get(qname, job_id)).heartbeat > claimed + 0.5
    await handle_job(qname, job, worker)
    assert await worker.get_job_result(qname, job_id) == 3
    await asyncio.sleep(0.3)
    assert worker._leases.task is not None and worker._leases.task.done(), "the keeper stops with the last lease"
    await worker.close()
    await rival.close()


class FlakyTransport(MemoryTransport):
    """A memory broker whose sends fail while ``down`` (a broker outage)."""

    down = False

    async def send(self, queue: str, job_ids: Any, delay: float = 0.0) -> None:
        if self.down:
            raise TransientError("broker unavailable (test)")
        await super().send(queue, job_ids, delay)


async def test_a_failed_send_at_enqueue_raises_and_leaves_nothing(memory_state_store: Any, qname: str) -> None:
    transport = FlakyTransport()
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore())
    queue = Queue(qname, backend=backend)
    transport.down = True
    with pytest.raises(TransientError):
        await queue.add(T + "add", args=[1, 2])
    with pytest.raises(TransientError):
        await backend.bulk_enqueue(qname, [{"id": uuid.uuid4().hex, "task": T + "add", "args": [1, 1]}])
    assert (await backend.get_job_counts(qname, "waiting"))["waiting"] == 0
    assert await transport.depth(qname) == 0


async def test_references_a_transition_could_not_send_are_parked_until_the_broker_is_back(
    memory_state_store: Any, qname: str
) -> None:
    """Retry, dependency release and retry_job move a job to waiting first: a failed send
    must not strand it; the next promotion pass sends it."""
    transport = FlakyTransport()
    delays = MemoryDelayStore()
    backend = CloudBackend(memory_state_store, transport, delays)
    queue = Queue(qname, backend=backend)
    retried = await queue.add(T + "add", args=[1, 2])
    job = await backend.dequeue(qname)
    assert job is not None and job["id"] == retried
    transport.down = True
    await backend.retry_active_job(qname, job, time.time())
    assert await backend.get_job_state(qname, retried) == "waiting"
    assert [job_id for job_id, _ in await delays.list(qname)] == [retried]
    with pytest.raises(TransientError):  # the promotion pass fails too, and keeps the id
        await backend.promote_due_delayed(qname)
    assert [job_id for job_id, _ in await delays.list(qname)] == [retried]
    transport.down = False
    await backend.promote_due_delayed(qname)
    again = await backend.dequeue(qname)
    assert again is not None and again["id"] == retried
    assert await delays.count(qname) == 0


async def test_a_delayed_send_the_broker_refuses_goes_to_the_delay_store(memory_state_store: Any, qname: str) -> None:
    transport = FlakyTransport(max_native_delay=900)
    delays = MemoryDelayStore()
    backend = CloudBackend(memory_state_store, transport, delays)
    transport.down = True
    job_id = await Queue(qname, backend=backend).add(T + "add", args=[1, 2], delay=0.2)
    assert [entry[0] for entry in await delays.list(qname)] == [job_id]
    transport.down = False
    await asyncio.sleep(0.25)
    await backend.promote_due_delayed(qname)
    job = await backend.dequeue(qname)
    assert job is not None and job["id"] == job_id


class OrderedTransport(MemoryTransport):
    """A memory broker that records the order of sends and acks."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    async def send(self, queue: str, job_ids: Any, delay: float = 0.0) -> None:
        self.order.append("send")
        await super().send(queue, job_ids, delay)

    async def ack(self, deliveries: Any) -> None:
        self.order.append("ack")
        await super().ack(deliveries)


async def test_a_retry_hands_the_reference_over_before_acking_the_old_one(memory_state_store: Any, qname: str) -> None:
    """A crash between the two must leave the old delivery to come back, never a waiting job without one."""
    transport = OrderedTransport()
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore())
    await Queue(qname, backend=backend).add(T + "add", args=[1, 2])
    job = await backend.dequeue(qname)
    assert job is not None
    transport.order.clear()
    await backend.retry_active_job(qname, job, time.time())
    assert transport.order == ["send", "ack"]
    again = await backend.dequeue(qname)
    assert again is not None and again["id"] == job["id"]
    await backend.close()


def test_a_backend_called_from_a_new_event_loop_starts_again(memory_state_store: Any, qname: str) -> None:
    """AsyncMQ's CLI runs each backend call in a fresh event loop (decision 26): every public
    method starts the backend again on the new loop, the state in the stores stays."""
    backend = CloudBackend(memory_state_store, MemoryTransport(), MemoryDelayStore())
    job_id = asyncio.run(Queue(qname, backend=backend).add(T + "add", args=[1, 2]))
    first = backend._loop
    assert first is not None and first.is_closed()
    assert asyncio.run(backend.get_job_state(qname, job_id)) == "waiting"
    assert backend._loop is not None and backend._loop is not first
    asyncio.run(backend.close())
