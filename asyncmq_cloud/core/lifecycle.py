"""``CloudBackend``: AsyncMQ's job lifecycle, written once over three protocols.

Every AsyncMQ ``BaseBackend`` method is implemented here in terms of a
:class:`StateStore` (the truth about each job), a :class:`Transport` (moves job
*references*) and a :class:`DelayStore` (holds delayed ids). The cloud backends
(``SQSBackend``, ``KafkaBackend``, ``DynamoDBBackend``) only choose those three.

The flow, and why it is safe with an at-least-once broker:

* enqueue: write the record (``waiting``), then send the reference. A worker
  that receives a reference *claims* the job — a conditional
  ``waiting -> active`` that returns the record — so a duplicate delivery, or a
  reference to a cancelled/removed/finished job, is acked and dropped.
* every end of a run (complete, retry, defer, fail, expire) is ONE conditional
  store write on ``state = active AND owner = token``, then the transport ack.
  A worker that lost its claim (stalled recovery gave the job to another) cannot
  overwrite the new owner's result.
* delays: the record goes to ``delayed`` with ``run_at``; the transport holds the
  reference if it can (``max_native_delay``), else the delay store does.
  ``promote_due_delayed`` claims due ids from the delay store, sends their
  references and moves ``delayed -> waiting`` conditionally. A claim also
  accepts a ``delayed`` job whose ``run_at`` has passed (that is how natively
  delayed references are taken), so a crash after the send loses nothing; a
  crash before it leaves a ``delayed`` record whose ``run_at`` is past, which
  the periodic repair pass finds and promotes.

The worker knows jobs only by ``(queue, job_id)``; this class keeps the lease
(delivery + claim token) of every job it claimed in ``_leases``.

Reads AsyncMQ's worker asks for, and what answers them:

* ``is_queue_paused`` (every loop iteration): a per-queue cache no older than
  ``pause_cache_ttl`` (1 s); pause/resume through this backend update it at once,
  another process's pause is seen within 1 s. At most one store read per second.
* ``is_job_cancelled`` (twice, just before the task runs): answered by the claim
  for ``cancel_cache_ttl`` (1 s) after it — the claim proved the job was not
  cancelled — and from memory for jobs cancelled through this backend. The read
  that remains: a check later than 1 s after the claim reads the store.
* ``resolve_dependency`` after a completion: skipped (no read) when the
  completion's own write showed that no job waits for this one.
* ``get_due_repeatables`` then ``list_repeatables`` (each scheduler pass): one read,
  the second call reuses it (see ``core/admin.py``).
* ``save_heartbeat``: one store write per heartbeat; the broker lease is extended
  only when needed (``Transport.extend``).
* ``dequeue``: a receive takes up to ``prefetch`` references but never more than
  the free capacity of the workers registered through this backend
  (:meth:`_receive_size`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from asyncmq.backends.base import BaseBackend
from asyncmq.core.enums import State

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.admin import AdminMixin
from asyncmq_cloud.core.protocols import (
    CANCELLED,
    WAITING_CHILDREN,
    DelayStore,
    Delivery,
    JobRecord,
    RepeatableRecord,
    StateStore,
    Transport,
)
from asyncmq_cloud.core.validation import validate_queue_name, validate_run_at
from asyncmq_cloud.errors import ClosedError, TransientError

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec

logger = logging.getLogger("asyncmq_cloud.lifecycle")

#: States a job can be cancelled from.
CANCELLABLE = frozenset({State.WAITING, State.DELAYED, State.ACTIVE, WAITING_CHILDREN})
#: Lease renewal period when ``lease_timeout`` is 0 (no take-over): still extends broker leases.
LEASE_RENEW_SECONDS = 20.0

#: States ``retry_job`` moves back to ``waiting``.
RETRYABLE = frozenset({State.FAILED, State.EXPIRED})


@dataclass
class Lease:
    """What this process holds for a job it claimed."""

    delivery: Delivery
    token: str
    claimed_at: float
    #: Last heartbeat written for the job (by AsyncMQ or by the lease keeper).
    renewed_at: float = 0.0

    def __post_init__(self) -> None:
        self.renewed_at = self.renewed_at or self.claimed_at


class CloudBackend(AdminMixin, BaseBackend):
    """An AsyncMQ backend over a StateStore, a Transport and a DelayStore.

    Args:
        store: the job state store.
        transport: the broker that carries job references.
        delay_store: where delayed ids wait when the broker cannot hold them.
        config: lifecycle knobs (see :class:`LifecycleConfig`).
    """

    def __init__(
        self,
        store: StateStore,
        transport: Transport,
        delay_store: DelayStore,
        *,
        config: LifecycleConfig | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.delay_store = delay_store
        self.config = config or LifecycleConfig()
        self._leases: dict[tuple[str, str], Lease] = {}
        self._buffer: dict[str, deque[Delivery]] = {}
        self._outage_logged = 0.0  # monotonic time of the last dequeue-outage warning; 0 = none
        #: Workers registered through this backend: id -> (queue, concurrency).
        self._workers: dict[str, tuple[str, int]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._repeatables_read: dict[str, tuple[list[RepeatableRecord], float]] = {}
        self._paused_cache: dict[str, tuple[bool, float]] = {}
        self._cancelled_here: set[tuple[str, str]] = set()
        self._last_repair: dict[str, float] = {}
        #: Jobs this process completed that no job waits for (bounded, oldest dropped).
        self._childless: dict[tuple[str, str], None] = {}
        self._started = False
        self._closed = False
        self._start_lock = anyio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle of the backend object ------------------------------------------
    async def start(self) -> None:
        """Start the store, delay store and transport (idempotent)."""
        if self._closed:
            raise ClosedError(f"{type(self).__name__} is closed; create a new one")
        async with self._start_lock:
            if self._started:
                return
            await self.store.start()
            await self.delay_store.start()
            await self.transport.start()
            self._loop = asyncio.get_running_loop()
            self._started = True

    async def _ready(self) -> None:
        if self._started and self._loop is not None and self._loop.is_closed():
            # AsyncMQ's CLI runs each backend call in a fresh event loop: clients
            # bound to the finished loop cannot be used (nor closed) any more.
            self._rebind()
        if not self._started:
            await self.start()

    def _rebind(self) -> None:
        """Forget the components' loop-bound state after their event loop ended.

        Presets that build their components (``SQSBackend``) rebuild them; the
        memory pieces need nothing. Components given as objects that hold
        loop-bound clients cannot be rebuilt here: create the backend per loop.
        """
        logger.debug("%s: event loop changed; starting again", type(self).__name__)
        self._started = False
        self._start_lock = anyio.Lock()
        self._buffer.clear()
        self._leases.clear()
        self._keeper = None  # it belonged to the finished loop

    async def provision(self, queues: Sequence[str] = ()) -> None:
        """Create every table/key/queue the backend needs (idempotent, for local development)."""
        await self._ready()
        await self.store.provision()
        await self.delay_store.provision()
        for queue in queues:
            await self.transport.provision(validate_queue_name(queue))

    def resources(self, queues: Sequence[str] = ()) -> list[ResourceSpec]:
        """Every table, queue and topic ``provision(queues)`` creates, each once, in that order (no I/O).

        Args:
            queues: the AsyncMQ queues whose queue/topic on the broker is wanted.
        """
        names = [validate_queue_name(queue) for queue in queues]
        parts = (self.store, self.delay_store, self.transport)
        return list(dict.fromkeys(spec for part in parts for spec in part.resources(names)))

    async def close(self) -> None:
        """Return prefetched references, flush the transport, close everything (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # No early return when not started: a start that failed half-way (the transport refused,
        # the stores were up) left components open; each close is idempotent.
        if self._keeper is not None and not self._keeper.done():
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        self._keeper = None
        with anyio.CancelScope(shield=True):
            for buffered in self._buffer.values():
                for delivery in buffered:
                    try:
                        await self.transport.release(delivery, 0.0)
                    except Exception:  # pragma: no cover - best effort on shutdown
                        logger.warning("could not return prefetched job %s", delivery.job_id, exc_info=True)
            self._buffer.clear()
            await self.transport.close()
            await self.delay_store.close()
            await self.store.close()

    async def __aenter__(self) -> CloudBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- enqueue ---------------------------------------------------------------------
    async def _pending_parents(self, queue: str, parents: Sequence[str]) -> list[str]:
        pending = []
        for parent in parents:
            record = await self.store.get(queue, str(parent))
            if record is None or record.state != State.COMPLETED:
                pending.append(str(parent))
        return sorted(set(pending))

    def _record(self, queue: str, payload: dict[str, Any], pending: Sequence[str]) -> JobRecord:
        body = {**payload, "id": str(payload["id"]), "updated_at": time.time()}
        body.setdefault("created_at", body["updated_at"])
        if pending:
            body["depends_on"] = list(pending)
        else:
            body.pop("depends_on", None)
        state = WAITING_CHILDREN if pending else State.WAITING
        return JobRecord(queue=queue, id=body["id"], state=state, payload=body)

    async def enqueue(self, queue_name: str, payload: dict[str, Any]) -> str:
        await self._ready()
        validate_queue_name(queue_name)
        pending = await self._pending_parents(queue_name, payload.get("depends_on") or [])
        record = self._record(queue_name, payload, pending)
        await self.store.create([record], {record.id: pending} if pending else None)
        if pending:
            await self._recheck_parents(queue_name, pending)
        else:
            await self._send_or_undo(queue_name, [record.id])
        return record.id

    async def _send_or_undo(self, queue: str, job_ids: Sequence[str]) -> None:
        """Send the references of just-created jobs; if the broker refuses, delete the jobs and raise.

        The caller sees the error and nothing is left half-written (a waiting record
        no reference points to). Should the broker have taken the reference after
        all (an ambiguous timeout), the claim finds no job and drops it.
        """
        try:
            await self.transport.send(queue, job_ids)
        except Exception:  # not on cancellation: a cancelled caller's send may still go out (SQS batcher)
            with anyio.CancelScope(shield=True):
                for job_id in job_ids:
                    try:
                        await self.store.delete(queue, job_id)
                    except Exception:  # the send error is the one to report
                        logger.warning("could not undo job %s/%s after a failed send", queue, job_id, exc_info=True)
            raise

    async def _hand_over(self, queue: str, job_ids: Sequence[str]) -> None:
        """Send the references of jobs a transition just made ``waiting``; never strand them.

        If the broker refuses (down, timing out), the ids go to the delay store as due
        now: the next ``promote_due_delayed`` pass of any worker or scanner sends them.
        Only if the delay store fails too does the error propagate.
        """
        if not job_ids:
            return
        try:
            await self.transport.send(queue, job_ids)
        except Exception as exc:
            logger.warning(
                "could not send %d reference(s) of %r (%s); the next promotion pass sends them",
                len(job_ids),
                queue,
                exc,
            )
            now = time.time()
            for job_id in job_ids:
                await self.delay_store.schedule(queue, job_id, now)

    async def _recheck_parents(self, queue: str, parents: Sequence[str]) -> None:
        """Close the race where a parent completed between our check and the edge write."""
        for parent in parents:
            record = await self.store.get(queue, parent)
            if record is not None and record.state == State.COMPLETED:
                await self.resolve_dependency(queue, parent)

    async def bulk_enqueue(self, queue_name: str, jobs: list[dict[str, Any]]) -> None:
        await self._ready()
        validate_queue_name(queue_name)
        for start in range(0, len(jobs), 25):
            chunk = [self._record(queue_name, job, []) for job in jobs[start : start + 25]]
            await self.store.create(chunk)
            await self._send_or_undo(queue_name, [r.id for r in chunk])

    async def atomic_add_flow(
        self,
        queue_name: str,
        job_dicts: list[dict[str, Any]],
        dependency_links: list[tuple[str, str]],
    ) -> list[str]:
        """Write every job of the flow and its edges in one store write, then send the roots."""
        await self._ready()
        validate_queue_name(queue_name)
        in_flow = {str(job["id"]) for job in job_dicts}
        parents_of: dict[str, set[str]] = {}
        for parent, child in dependency_links:
            parents_of.setdefault(str(child), set()).add(str(parent))
        records: list[JobRecord] = []
        deps: dict[str, list[str]] = {}
        for job in job_dicts:
            job_id = str(job["id"])
            parents = parents_of.get(job_id, set()) | {str(p) for p in job.get("depends_on") or []}
            external = await self._pending_parents(queue_name, sorted(parents - in_flow))
            pending = sorted((parents & in_flow) | set(external))
            records.append(self._record(queue_name, job, pending))
            if pending:
                deps[job_id] = pending
        await self.store.create(records, deps or None)
        roots = [r.id for r in records if r.state == State.WAITING]
        if roots:
            # The flow is stored whole: its roots are handed over (or parked) rather than undone.
            await self._hand_over(queue_name, roots)
        return [r.id for r in records]

    async def enqueue_delayed(self, queue_name: str, payload: dict[str, Any], run_at: float) -> None:
        await self._ready()
        validate_queue_name(queue_name)
        run_at = validate_run_at(run_at)
        now = time.time()
        if run_at <= now:  # already due: an ordinary waiting job (no delayed record to repair)
            await self.enqueue(queue_name, {**payload, "delay_until": None})
            return
        body = {**payload, "id": str(payload["id"]), "delay_until": run_at, "updated_at": now}
        body.setdefault("created_at", now)
        record = JobRecord(queue=queue_name, id=body["id"], state=State.DELAYED, payload=body, run_at=run_at)
        await self.store.create([record])
        await self._schedule(queue_name, [record.id], run_at)

    async def _schedule(self, queue: str, job_ids: Sequence[str], run_at: float) -> None:
        """Hand delayed ids to the broker (native delay) or to the delay store.

        An id that became due meanwhile still goes to the delay store: the next
        promotion pass moves it properly, instead of leaving a ``delayed`` record
        with a reference that the repair pass would send a second time.
        """
        delay = run_at - time.time()
        if 0 < delay <= self.transport.max_native_delay:
            try:
                await self.transport.send(queue, job_ids, delay)
                return
            except Exception as exc:  # the delay store holds them instead
                logger.warning("could not send %d delayed reference(s) of %r (%s)", len(job_ids), queue, exc)
        for job_id in job_ids:
            await self.delay_store.schedule(queue, job_id, run_at)

    # -- dequeue / ack -----------------------------------------------------------------
    async def dequeue(self, queue_name: str) -> dict[str, Any] | None:
        """The next claimed job, or None. A :class:`TransientError` (broker or store outage) is
        logged and answered with None after a pause of ``receive_wait``: AsyncMQ 0.10.1's worker
        loop does not catch dequeue errors, so raising would end the worker (decision 37)."""
        try:
            job = await self._dequeue(queue_name)
        except TransientError as exc:
            now = time.monotonic()
            if now - self._outage_logged >= 10.0:
                self._outage_logged = now
                logger.warning("dequeue from %r failed, retrying: %s: %s", queue_name, type(exc).__name__, exc)
            await asyncio.sleep(self.config.receive_wait)
            return None
        if self._outage_logged:
            self._outage_logged = 0.0
            logger.warning("dequeue from %r works again", queue_name)
        return job

    async def _dequeue(self, queue_name: str) -> dict[str, Any] | None:
        await self._ready()
        buffered = self._buffer.setdefault(queue_name, deque())
        if not buffered:
            want = self._receive_size(queue_name)
            buffered.extend(await self.transport.receive(queue_name, want, self.config.receive_wait))
        lease = self.config.lease_timeout
        while buffered:
            delivery = buffered.popleft()
            token = uuid.uuid4().hex
            now = time.time()
            stale_before = now - lease if lease > 0 else None
            try:
                record = await self.store.claim(queue_name, delivery.job_id, token, now, stale_before=stale_before)
            except TransientError:
                buffered.appendleft(delivery)  # claimed next time; never dropped unacknowledged
                raise
            if record is None:
                await self._unclaimable(delivery, now)
                continue
            self._leases[(queue_name, record.id)] = Lease(delivery, token, now)
            self._keep_leases()
            job = record.job()
            job.setdefault("active_since", now)
            return job
        return None

    def _keep_leases(self) -> None:
        """Start the lease keeper of this event loop if it is not running."""
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(
                self._lease_keeper(), name="asyncmq-cloud lease keeper"
            )

    def _keeper_pause(self, every: float) -> float:
        """Half the renewal period, or half the shortest broker lease left, if shorter."""
        pause, mono = every / 2, time.monotonic()
        for lease in self._leases.values():
            visible_until = lease.delivery.extra.get("visible_until")
            if isinstance(visible_until, float):
                pause = min(pause, max(0.05, (visible_until - mono) / 2))
        return pause

    def _renew_every(self) -> float:
        lease = self.config.lease_timeout
        return lease / 3 if lease > 0 else LEASE_RENEW_SECONDS

    async def _lease_keeper(self) -> None:
        """Heartbeat every job this backend runs, whether or not AsyncMQ does.

        AsyncMQ writes heartbeats only with ``enable_stalled_check`` (off by default).
        Without them a job running longer than ``lease_timeout`` would look abandoned
        and be taken over (run twice), and on SQS its message would reappear after
        the visibility timeout. The lease belongs to the backend that claimed the
        job, so the backend renews it: each lease not renewed for ``lease_timeout / 3``
        seconds, or whose broker lease (SQS visibility) ends within that time, gets a
        heartbeat (store) and a broker lease extension. Stops when this backend holds
        no lease.
        """
        every = self._renew_every()
        while self._leases and not self._closed:
            await asyncio.sleep(self._keeper_pause(every))
            now, mono = time.time(), time.monotonic()
            for (queue, job_id), lease in list(self._leases.items()):
                # A broker lease that runs out sooner (SQS visibility) is renewed in time, too.
                visible_until = lease.delivery.extra.get("visible_until")
                expiring = isinstance(visible_until, float) and visible_until - mono < every
                if (now - lease.renewed_at < every and not expiring) or self._leases.get((queue, job_id)) is not lease:
                    continue
                try:
                    await self.save_heartbeat(queue, job_id, now)
                except Exception:  # keep renewing the others; the next round retries this one
                    logger.warning("could not renew the lease of %s/%s", queue, job_id, exc_info=True)

    def _receive_size(self, queue: str) -> int:
        """References to take in one receive: the free capacity of this process's workers, capped by ``prefetch``.

        AsyncMQ's worker calls ``dequeue`` only with a free slot, and registers
        its concurrency first; what it does not run yet must not be hidden from
        other workers, so a receive never takes more than the registered
        concurrency minus the jobs this backend has running. Without a
        registered worker (a hand-written loop) it takes one.
        """
        capacity = sum(concurrency for q, concurrency in self._workers.values() if q == queue)
        if capacity <= 0:
            return 1
        running = sum(1 for q, _ in self._leases if q == queue)
        return max(1, min(self.config.prefetch, capacity - running))

    async def _unclaimable(self, delivery: Delivery, now: float) -> None:
        """A reference whose job could not be claimed.

        Held by a live worker (its lease is fresh): put it back until the lease
        would run out, so that the job is taken over if that worker dies.
        Anything else (duplicate, cancelled, removed, finished, not yet due): the
        state store is the truth and the reference is spent. A transport that
        does not redeliver (``redelivers = False``: DynamoDB, where the index is
        the queue) has nothing to put back, so nothing is read.
        """
        lease = self.config.lease_timeout
        if lease > 0 and getattr(self.transport, "redelivers", True):
            record = await self.store.get(delivery.queue, delivery.job_id)
            if record is not None and record.state == State.ACTIVE:
                last = record.heartbeat if record.heartbeat is not None else record.updated_at
                await self.transport.release(delivery, max(1.0, last + lease - now))
                return
        await self.transport.ack([delivery])

    def _pop_lease(self, queue: str, job_id: str) -> Lease | None:
        self._cancelled_here.discard((queue, job_id))
        return self._leases.pop((queue, job_id), None)

    async def _ack_lease(self, lease: Lease | None) -> None:
        if lease is not None:
            await self.transport.ack([lease.delivery])

    async def ack(self, queue_name: str, job_id: str) -> None:
        await self._ack_lease(self._pop_lease(queue_name, job_id))

    # -- ends of a run: one conditional write each, then the ack --------------------
    async def _finish(
        self,
        queue: str,
        payload: dict[str, Any],
        to_state: str,
        *,
        run_at: float | None = None,
        extra: dict[str, Any] | None = None,
        expect_states: frozenset[str] = frozenset({State.ACTIVE}),
    ) -> JobRecord | None:
        job_id = str(payload["id"])
        lease = self._pop_lease(queue, job_id)
        now = time.time()
        body = {**payload, "status": to_state, "updated_at": now, **(extra or {})}
        record = await self.store.transition(
            queue,
            job_id,
            to_state,
            expect_states=expect_states,
            expect_owner=lease.token if lease else None,
            payload=body,
            run_at=run_at,
        )
        if record is None and to_state != CANCELLED:
            logger.warning(
                "job %s/%s was no longer ours to move to %s (cancelled or recovered)", queue, job_id, to_state
            )
        await self._ack_lease(lease)
        return record

    async def complete_active_job(self, queue_name: str, payload: dict[str, Any], result: Any) -> None:
        extra = {"result": result, "completed_at": time.time()}
        record = await self._finish(queue_name, payload, State.COMPLETED, extra=extra)
        if record is not None and not record.has_children:
            # AsyncMQ calls resolve_dependency right after this; nothing waits for
            # the job, so that call can skip the store. A child registered after
            # this write sees the parent completed and resolves itself.
            self._childless[(queue_name, record.id)] = None
            if len(self._childless) > 10_000:
                self._childless.pop(next(iter(self._childless)))

    async def retry_active_job(self, queue_name: str, payload: dict[str, Any], run_at: float) -> None:
        run_at = validate_run_at(run_at)
        job_id = str(payload["id"])
        lease = self._leases.get((queue_name, job_id))
        due_now = run_at <= time.time()
        state = State.WAITING if due_now else State.DELAYED
        record = await self.store.transition(
            queue_name,
            job_id,
            state,
            expect_states={State.ACTIVE},
            expect_owner=lease.token if lease else None,
            payload={**payload, "delay_until": None if due_now else run_at, "status": state, "updated_at": time.time()},
            run_at=None if due_now else run_at,
        )
        if record is not None and due_now:
            await self._hand_over(queue_name, [job_id])
        elif record is not None:
            await self._schedule(queue_name, [job_id], run_at)
        await self._ack_lease(self._pop_lease(queue_name, job_id))

    async def defer_active_job(self, queue_name: str, payload: dict[str, Any], run_at: float) -> None:
        await self.retry_active_job(queue_name, payload, run_at)

    async def fail_active_job(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._finish(queue_name, payload, State.FAILED, extra={"failed_at": time.time()})

    async def expire_active_job(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._finish(queue_name, payload, State.EXPIRED, extra={"failed_at": time.time()})

    async def cancel_active_job(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._finish(queue_name, payload, CANCELLED, expect_states=frozenset({State.ACTIVE, CANCELLED}))

    async def move_to_dlq(self, queue_name: str, payload: dict[str, Any]) -> None:
        status = payload.get("status")
        target = status if status in (State.FAILED, State.EXPIRED) else State.FAILED
        job_id = str(payload["id"])
        body = {**payload, "status": target, "failed_at": time.time(), "updated_at": time.time()}
        if await self.store.transition(queue_name, job_id, target, payload=body) is None:
            await self.store.create([JobRecord(queue=queue_name, id=job_id, state=target, payload=body)])
        await self._ack_lease(self._pop_lease(queue_name, job_id))

    # -- delayed jobs -----------------------------------------------------------------
    async def promote_due_delayed(self, queue_name: str) -> list[dict[str, Any]]:
        """Move due delayed jobs to ``waiting`` and send them; exactly once per job."""
        await self._ready()
        now = time.time()
        due = await self.delay_store.claim_due(queue_name, now, self.config.promote_batch)
        ids = [job_id for job_id, _ in due]
        # The first call only starts the clock: a repair pass reads every delayed
        # record, so it runs once per repair_interval, not on every worker start.
        if now - self._last_repair.setdefault(queue_name, now) >= self.config.repair_interval:
            self._last_repair[queue_name] = now
            ids.extend(await self._stranded_delayed(queue_name, now))
        return await self._promote(queue_name, ids)

    async def _stranded_delayed(self, queue: str, now: float) -> list[str]:
        cutoff = now - self.config.repair_grace
        stranded = [r.id for r in await self.store.list_jobs(queue, State.DELAYED) if (r.run_at or 0) <= cutoff]
        if stranded:
            logger.warning("repairing %d delayed job(s) of %r past due by > %ss", len(stranded), queue, cutoff)
        return stranded

    async def _promote(self, queue: str, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Send the references, then ONE conditional batch write ``delayed -> waiting``.

        Send first: a crash after the send leaves ``delayed`` records that a
        worker can already claim (a due ``delayed`` job is claimable), and a
        crash before it leaves them to the repair pass; no order of crashes
        strands a job. The price is a possible duplicate reference, which the
        claim drops. Returns ``{"id", "status"}`` stubs (AsyncMQ's scanner only
        logs the ids): reading every payload back would double the hot path.
        """
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return []
        try:
            await self.transport.send(queue, ids)
        except Exception:
            # Claimed from the delay store but not sent: put them back as due now, so the
            # next pass retries them instead of waiting for the repair pass.
            now = time.time()
            for job_id in ids:
                await self.delay_store.schedule(queue, job_id, now)
            raise
        moved = await self.store.promote(queue, ids)
        return [{"id": job_id, "status": State.WAITING} for job_id in moved]

    async def pop_due_delayed(self, queue_name: str) -> list[dict[str, Any]]:
        """Remove due ids from the delay store and return their jobs (AsyncMQ's raw hook)."""
        await self._ready()
        due = await self.delay_store.claim_due(queue_name, time.time(), self.config.promote_batch)
        jobs = []
        for job_id, _ in due:
            record = await self.store.get(queue_name, job_id)
            if record is not None and record.state == State.DELAYED:
                jobs.append(record.job())
        return jobs

    async def get_due_delayed(self, queue_name: str) -> list[dict[str, Any]]:
        return await self.pop_due_delayed(queue_name)

    async def remove_delayed(self, queue_name: str, job_id: str) -> bool:
        await self._ready()
        record = await self.store.get(queue_name, job_id)
        if record is None or record.state != State.DELAYED:
            return False
        await self.delay_store.cancel(queue_name, job_id)
        return await self.store.delete(queue_name, job_id) is not None

    # -- cancel / remove / retry ------------------------------------------------------
    async def cancel_job(self, queue_name: str, job_id: str) -> bool:
        await self._ready()
        record = await self.store.transition(queue_name, job_id, CANCELLED, expect_states=CANCELLABLE)
        if record is None:
            return False
        self._cancelled_here.add((queue_name, job_id))
        await self.delay_store.cancel(queue_name, job_id)
        return True

    async def is_job_cancelled(self, queue_name: str, job_id: str) -> bool:
        key = (queue_name, job_id)
        if key in self._cancelled_here:
            return True
        lease = self._leases.get(key)
        if lease is not None and time.time() - lease.claimed_at < self.config.cancel_cache_ttl:
            return False  # the claim itself proved the job was not cancelled
        await self._ready()
        record = await self.store.get(queue_name, job_id)
        return record is not None and record.state == CANCELLED

    async def remove_job(self, queue_name: str, job_id: str) -> bool:
        await self._ready()
        removed = await self.store.delete(queue_name, job_id)
        if removed is None:
            return False
        if removed.state == State.DELAYED:
            await self.delay_store.cancel(queue_name, job_id)
        return True

    async def retry_job(self, queue_name: str, job_id: str) -> bool:
        await self._ready()
        record = await self.store.get(queue_name, job_id)
        if record is None or record.state not in RETRYABLE:
            return False
        body = {**self._prepare_retry_payload(record.job(), job_id), "updated_at": time.time()}
        if await self.store.transition(queue_name, job_id, State.WAITING, expect_states=RETRYABLE, payload=body):
            await self._hand_over(queue_name, [job_id])
            return True
        return False

    # -- dependencies -------------------------------------------------------------------
    async def add_dependencies(self, queue_name: str, job_dict: dict[str, Any]) -> None:
        await self._ready()
        child = str(job_dict["id"])
        pending = await self._pending_parents(queue_name, job_dict.get("depends_on") or [])
        if not pending:
            return
        await self.store.add_dependencies(queue_name, child, pending)
        record = await self.store.get(queue_name, child)
        if record is None:
            body = {**job_dict, "id": child, "depends_on": pending}
            await self.store.create([JobRecord(queue_name, child, WAITING_CHILDREN, body)])
        elif record.state == State.WAITING:
            body = {**record.payload, "depends_on": pending}
            await self.store.transition(
                queue_name, child, WAITING_CHILDREN, expect_states={State.WAITING}, payload=body
            )
        await self._recheck_parents(queue_name, pending)

    async def resolve_dependency(self, queue_name: str, parent_id: str) -> None:
        if self._childless.pop((queue_name, parent_id), 0) is None:
            return  # completed here with no children (see complete_active_job)
        await self._ready()
        ready = await self.store.resolve_dependency(queue_name, parent_id)
        released: list[str] = []
        for child in ready:
            record = await self.store.get(queue_name, child)
            if record is None or record.state != WAITING_CHILDREN:
                continue
            body = {k: v for k, v in record.payload.items() if k != "depends_on"}
            body["updated_at"] = time.time()
            if await self.store.transition(
                queue_name, child, State.WAITING, expect_states={WAITING_CHILDREN}, payload=body
            ):
                released.append(child)
        await self._hand_over(queue_name, released)

    # -- heartbeats and stalled recovery --------------------------------------------
    async def save_heartbeat(self, queue_name: str, job_id: str, timestamp: float) -> None:
        await self._ready()
        lease = self._leases.get((queue_name, job_id))
        if lease is not None:
            lease.renewed_at = time.time()
        ok = await self.store.heartbeat(queue_name, job_id, timestamp, lease.token if lease else None)
        if not ok and lease is not None:
            logger.warning("heartbeat for %s/%s refused: the job is no longer owned by this worker", queue_name, job_id)
        if lease is not None:
            await self.transport.extend(lease.delivery, self.config.visibility_extension)

    async def fetch_stalled_jobs(self, older_than: float) -> list[dict[str, Any]]:
        await self._ready()
        stalled = []
        for record in await self.store.list_stalled(older_than):
            if (record.queue, record.id) in self._leases:
                continue  # running here; a late heartbeat is not a dead worker
            stalled.append({"queue_name": record.queue, "job_data": {**record.job(), "_owner": record.owner}})
        return stalled

    async def reenqueue_stalled(self, queue_name: str, job_data: dict[str, Any]) -> None:
        await self._ready()
        job_id = str(job_data["id"])
        body = {k: v for k, v in job_data.items() if k not in ("_owner", "status", "heartbeat", "active_since")}
        body["updated_at"] = time.time()
        record = await self.store.transition(
            queue_name,
            job_id,
            State.WAITING,
            expect_states={State.ACTIVE},
            expect_owner=job_data.get("_owner"),
            payload=body,
        )
        if record is not None:
            await self._hand_over(queue_name, [job_id])
