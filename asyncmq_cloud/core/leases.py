"""Claims and leases: taking jobs from the broker, holding them, renewing them.

The worker knows jobs only by ``(queue, job_id)``; the backend keeps, for every job
it claimed, the :class:`Lease` (the delivery and the claim token) in a
:class:`LeaseKeeper`. The keeper receives references (never more than the free
capacity of the workers registered through the backend, the rest of a receive
buffered for the next ``dequeue``), claims their jobs, heartbeats the jobs it holds and
remembers the jobs cancelled through the backend (AsyncMQ's ``is_job_cancelled`` right after a claim reads nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from asyncmq import monkay

from asyncmq_cloud import observe
from asyncmq_cloud.core import states
from asyncmq_cloud.core.bodies import metadata_of
from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.read_ahead import ReadAhead
from asyncmq_cloud.core.receives import Receives
from asyncmq_cloud.core.records import Delivery, JobRecord, Lease, UnknownReferences
from asyncmq_cloud.core.registry import PausedCheck, WorkerRegistry, never_paused
from asyncmq_cloud.core.resilience import UNBOUNDED_LEASE_WINDOW
from asyncmq_cloud.core.validation import validate_job_id
from asyncmq_cloud.errors import InvalidNameError, PermanentError, TransientError

logger = logging.getLogger("asyncmq_cloud.lifecycle")
#: Lease renewal period when ``lease_timeout`` is 0 (no take-over): still extends broker leases.
LEASE_RENEW_SECONDS = 20.0


class LeaseKeeper:
    """The claims and leases of a backend, and the task that heartbeats them.

    Args:
        parts: the backend's components (transport and config are read at call time).
        workers: the worker registry, whose capacity bounds a receive.
        renew: heartbeats one job (``(queue, job_id, now)``): a store write and a broker
            lease extension (the backend's ``save_heartbeat``).
    """

    def __init__(
        self,
        parts: Components,
        workers: WorkerRegistry,
        renew: Callable[[str, str, float], Awaitable[None]],
    ) -> None:
        self._parts = parts
        self._workers = workers
        self._renew = renew
        #: The leases held, by ``(queue, job_id)``.
        self.held: dict[tuple[str, str], Lease] = {}
        #: Received references not claimed yet, per queue (the rest of a receive).
        self.buffer: dict[str, deque[Delivery]] = {}
        #: Jobs cancelled through this backend (their runs see it without a store read).
        self._cancelled_here: set[tuple[str, str]] = set()
        #: The running keeper task of the current event loop, if any.
        self.task: asyncio.Task[None] | None = None
        self._stopped = False
        #: Set by ``drain``: no job is claimed any more; a receive in flight ends (``receives``).
        self.stopping, self.receives = False, Receives()
        self.ahead = ReadAhead(parts, self)
        #: References dropped because no job with their id exists (removed, or never written).
        self.unknown = UnknownReferences()
        self._heartbeat_warned_at = 0.0

    @property
    def closing(self) -> bool:
        """A drain began or the keeper stopped: no receive is started any more."""
        return self.stopping or self._stopped

    # -- claiming ---------------------------------------------------------------------
    async def take(self, queue: str, paused: PausedCheck = never_paused) -> dict[str, Any] | None:
        """Claim the next job of ``queue`` (from the buffer, else one receive); None if none is claimable.
        ``paused``: what a receive got as a pause landed goes back for immediate redelivery,
        and a job claimed as a pause landed here is given back."""
        parts = self._parts
        if self.stopping:
            return None
        buffered = self.buffer.setdefault(queue, deque())
        if not buffered and not await self.ahead.join(queue):  # no read-ahead: receive now
            want = self.receive_size(queue)
            buffered.extend(await self.receives.wait(parts.transport.receive(queue, want, parts.config.receive_wait)))
        if buffered and await paused(queue, False):
            await self.return_buffered(queues=(queue,))
            return None
        while buffered and not self.stopping:
            delivery = buffered.popleft()
            self.ahead.start(queue, held=1 + len(buffered))  # this one and the rest of the buffer
            token, now = uuid.uuid4().hex, time.time()
            record = await self._claim(queue, delivery, token, now, buffered)
            if record is None:
                continue
            if self.stopping or await paused(queue, True):
                # the drain began, or the queue was paused here, during the claim: never started here
                if await self._given_back(queue, record.id, Lease(delivery, token, now)):
                    if self.stopping:
                        break
                    await self.return_buffered(queues=(queue,))
                    return None
            self.add(queue, record.id, Lease(delivery, token, now, kept=record.kept()))
            job = record.job()
            job.setdefault("active_since", now)
            observe.job_started(queue, job, now)
            return job
        if self.stopping:
            await self.return_buffered()
        return None

    async def _given_back(self, queue: str, job_id: str, lease: Lease) -> bool:
        """:meth:`_give_back` a job claimed as a drain or pause landed; False if that failed:
        the job is ours and is run (held, renewed, released by a drain) rather than orphaned."""
        try:
            await self._give_back(queue, job_id, lease)
            return True
        except Exception as exc:
            logger.warning("could not give back %s/%s (%s: %s); running it", queue, job_id, type(exc).__name__, exc)
            return False

    async def _claim(
        self, queue: str, delivery: Delivery, token: str, now: float, buffered: deque[Delivery]
    ) -> JobRecord | None:
        """Claim ``delivery``'s job; None (the reference dealt with) if it cannot be claimed."""
        lease = self._parts.config.lease_timeout
        try:
            validate_job_id(delivery.job_id)  # an id no add path accepts: never claimable in any store
            stale_before = now - lease if lease > 0 else None
            record = await self._parts.store.claim(queue, delivery.job_id, token, now, stale_before=stale_before)
        except TransientError:
            buffered.appendleft(delivery)  # claimed next time; never dropped unacknowledged
            raise
        except (PermanentError, InvalidNameError) as exc:  # this reference can never be claimed
            await self._poison(delivery, exc)
            return None
        if record is None:
            await self._unclaimable(delivery, now)
        return record

    async def _unclaimable(self, delivery: Delivery, now: float) -> None:
        """A reference whose job could not be claimed.

        Held by a live worker (its lease is fresh): put it back until the lease
        would run out, so that the job is taken over if that worker dies.
        Anything else (duplicate, cancelled, removed, finished, not yet due): the
        state store is the truth and the reference is spent. A transport that
        does not redeliver (``capabilities.redelivers`` False: DynamoDB, where the
        index is the queue) has nothing to put back, so nothing is read.
        """
        transport, lease, reason = self._parts.transport, self._parts.config.lease_timeout, "duplicate"
        if lease > 0 and transport.capabilities.redelivers:
            record = await metadata_of(self._parts.store.get(delivery.queue, delivery.job_id))
            if record is not None and record.state == states.ACTIVE:
                await transport.release(delivery, max(1.0, states.lease_time(record) + lease - now))
                return
            if record is None:
                self.unknown.count(delivery)
            reason = "unknown" if record is None else "cancelled" if record.state == states.CANCELLED else reason
        observe.reference_dropped(delivery.queue, reason)  # DynamoDB reads nothing: a lost claim race
        await transport.ack([delivery])

    async def _poison(self, delivery: Delivery, exc: Exception) -> None:
        """A reference the store refuses outright (e.g. an id over its key size): dead-lettered with the reason.

        Raising out of ``dequeue`` would end AsyncMQ's worker, and every redelivery would end the next one.
        """
        reason = f"unclaimable reference {delivery.queue}/{delivery.job_id[:80]}: {type(exc).__name__}: {exc}"
        logger.error("%s; moved to the dead-letter queue", reason)
        await self._parts.transport.dead_letter(delivery, reason)
        observe.reference_dead_lettered(delivery.queue)

    async def heartbeat(self, queue: str, job_id: str, timestamp: float) -> None:
        """AsyncMQ's heartbeat: one store write (owner-checked for a job held here), then the broker lease.

        For a job held here a :class:`TransientError` is logged (at most every 10 s) and
        swallowed: the next renewal tries again, and AsyncMQ calls the first heartbeat of
        a run outside its own error handling.
        """
        lease = self.get(queue, job_id)
        if lease is None:
            await self._parts.store.heartbeat(queue, job_id, timestamp, None)
            return
        lease.renewed_at = time.time()
        try:
            if await self._parts.store.heartbeat(queue, job_id, timestamp, lease.token):
                lease.confirmed_at = max(lease.confirmed_at, timestamp)
            else:
                logger.warning("heartbeat for %s/%s refused: the job is no longer owned by this worker", queue, job_id)
        except TransientError as exc:
            self._renewal_failed(queue, job_id, "store", exc)
        try:  # the broker lease is extended even while the store is away (and the reverse)
            await self._parts.transport.extend(lease.delivery, self._parts.config.visibility_extension)
        except TransientError as exc:
            self._renewal_failed(queue, job_id, "broker", exc)

    def _renewal_failed(self, queue: str, job_id: str, where: str, exc: TransientError) -> None:
        now = time.monotonic()
        if now - self._heartbeat_warned_at >= 10.0:
            self._heartbeat_warned_at = now
            logger.warning("%s lease renewal of %s/%s failed (retried next time): %s", where, queue, job_id, exc)

    def deadline(self, lease: Lease | None) -> float:
        """When a job's lease runs out, as a ``time.monotonic()`` value (minus a margin).

        ``lease_timeout`` after the lease time the store last accepted, another worker may
        take the job over; writes about it are retried until then (``core/resilience.py``).
        """
        window = self._parts.config.lease_timeout or UNBOUNDED_LEASE_WINDOW
        if lease is None:
            return time.monotonic() + window
        margin = min(2.0, window / 10)
        return time.monotonic() + (lease.confirmed_at + window - margin - time.time())

    def deadline_of(self, lease: Lease | None) -> Callable[[], float]:
        """:meth:`deadline` as :func:`retry_transient` asks it: follows the lease's renewals;
        without a lease, fixed from now (asked again it would move on forever)."""
        if lease is None:
            end = self.deadline(None)
            return lambda: end
        return lambda: self.deadline(lease)

    # -- giving jobs back ---------------------------------------------------------------
    async def _give_back(self, queue: str, job_id: str, lease: Lease) -> bool:
        """Make a job held here claimable again at once: ``active -> waiting`` (owner-checked),
        then its reference released for immediate redelivery. False if it was no longer ours."""
        record = await self._parts.store.transition(
            queue, job_id, states.WAITING, expect_states={states.ACTIVE}, expect_owner=lease.token
        )
        if record is None:
            current = await self._parts.store.get(queue, job_id)
            if current is not None and current.state in (states.WAITING, states.DELAYED):
                # our own end already made it waiting (its hand-over cut short): keep a reference
                await self._parts.transport.release(lease.delivery, 0.0)
            else:  # taken over (the new holder has its own delivery), or ended
                await self._parts.transport.ack([lease.delivery])
            return False
        await self._parts.transport.release(lease.delivery, 0.0)
        return True

    async def release_running(self, timeout: float) -> int:
        """Give back every job held here (their runs were stopped); returns how many went back.

        A job whose give-back fails (outage, ``timeout`` over) stays ``active`` and is taken
        over once its lease runs out.
        """
        released = 0
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
            for (queue, job_id), lease in list(self.held.items()):
                self.pop(queue, job_id)
                try:
                    released += await self._give_back(queue, job_id, lease)
                except Exception as exc:  # the rest are still given back
                    logger.warning("could not give back %s/%s (taken over after its lease): %s", queue, job_id, exc)
        return released

    async def return_buffered(self, timeout: float | None = None, queues: tuple[str, ...] | None = None) -> None:
        """Release every received-but-unclaimed reference (of ``queues``, default all) for immediate
        redelivery (within ``timeout`` s if given: what is not returned by then comes back after its lease)."""
        deadline = anyio.current_time() + timeout if timeout is not None else float("inf")
        with anyio.CancelScope(shield=True, deadline=deadline):
            for queue, buffered in self.buffer.items():
                if queues is not None and queue not in queues:
                    continue
                while buffered:
                    delivery = buffered.popleft()
                    try:
                        await self._parts.transport.release(delivery, 0.0)
                    except Exception:  # best effort: an unreturned reference comes back after its lease
                        logger.warning("could not return prefetched job %s", delivery.job_id, exc_info=True)

    # -- holding ----------------------------------------------------------------------
    def get(self, queue: str, job_id: str) -> Lease | None:
        return self.held.get((queue, job_id))

    def holds(self, queue: str, job_id: str) -> bool:
        return (queue, job_id) in self.held

    def add(self, queue: str, job_id: str, lease: Lease) -> None:
        """Hold ``lease`` and make sure the keeper of this event loop runs."""
        self.held[(queue, job_id)] = lease
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._keep(), name="asyncmq-cloud lease keeper")

    def pop(self, queue: str, job_id: str) -> Lease | None:
        """Stop holding the job (its run ended); ``None`` if it was not held here."""
        self._cancelled_here.discard((queue, job_id))
        return self.held.pop((queue, job_id), None)

    async def ack(self, lease: Lease | None) -> None:
        """Ack the lease's delivery (nothing when ``lease`` is ``None``)."""
        if lease is not None:
            await self._parts.transport.ack([lease.delivery])

    def mark_cancelled(self, queue: str, job_id: str) -> None:
        self._cancelled_here.add((queue, job_id))

    def known_cancelled(self, queue: str, job_id: str) -> bool | None:
        """``True``: cancelled through this backend; ``False``: claimed less than
        ``cancel_cache_ttl`` ago (the claim proved it was not cancelled); ``None``: unknown."""
        if (queue, job_id) in self._cancelled_here:
            return True
        lease = self.held.get((queue, job_id))
        if lease is not None and time.time() - lease.claimed_at < self._parts.config.cancel_cache_ttl:
            return False
        return None

    def receive_size(self, queue: str, extra: int = 0, floor: int = 1) -> int:
        """References to take in one receive: the free capacity of this process's workers, capped by ``prefetch``.

        AsyncMQ's worker calls ``dequeue`` only with a free slot, and registers
        its concurrency first; what it does not run yet must not be hidden from
        other workers, so a receive never takes more than the registered
        concurrency minus the jobs this backend has running. Without a
        registered worker (a hand-written loop) it takes one. A read-ahead also
        counts the ``extra`` references it already holds (buffered or being
        claimed) and may find nothing free (``floor=0``).
        """
        capacity = self._workers.capacity(queue)
        if capacity <= 0:
            return floor
        running = sum(1 for q, _ in self.held if q == queue)
        return max(floor, min(self._parts.config.prefetch, capacity - running) - extra)

    # -- the keeper -------------------------------------------------------------------
    def renew_every(self) -> float:
        """A third of ``lease_timeout`` (or of AsyncMQ's ``stalled_threshold``, if shorter): a job
        running here never looks stalled to AsyncMQ's stalled check nor abandoned to a claim."""
        lease = self._parts.config.lease_timeout
        every = lease / 3 if lease > 0 else LEASE_RENEW_SECONDS
        settings = monkay.settings
        threshold = float(settings.stalled_threshold or 0.0) if settings.enable_stalled_check else 0.0
        return min(every, threshold / 3) if threshold > 0 else every

    def pause(self, every: float) -> float:
        """Half the renewal period, or half the shortest broker lease left, if shorter."""
        pause, mono = every / 2, time.monotonic()
        for lease in self.held.values():
            lease_until = lease.delivery.lease_until
            if lease_until is not None:
                pause = min(pause, max(0.05, (lease_until - mono) / 2))
        return pause

    async def _keep(self) -> None:
        """Heartbeat every job this backend runs, whether or not AsyncMQ does.

        AsyncMQ writes heartbeats only with ``enable_stalled_check`` (off by default).
        Without them a job running longer than ``lease_timeout`` would look abandoned
        and be taken over (run twice), and on SQS its message would reappear after
        the visibility timeout. The lease belongs to the backend that claimed the
        job, so the backend renews it: each lease not renewed for ``lease_timeout / 3``
        seconds, or whose broker lease (``Delivery.lease_until``) ends within that
        time, gets a heartbeat (store) and a broker lease extension. Stops when this
        backend holds no lease.
        """
        every = self.renew_every()
        while self.held and not self._stopped:
            await asyncio.sleep(self.pause(every))
            now, mono = time.time(), time.monotonic()
            for (queue, job_id), lease in list(self.held.items()):
                # A broker lease that runs out sooner (SQS visibility) is renewed in time, too.
                lease_until = lease.delivery.lease_until
                expiring = lease_until is not None and lease_until - mono < every
                if (now - lease.renewed_at < every and not expiring) or self.held.get((queue, job_id)) is not lease:
                    continue
                try:
                    await self._renew(queue, job_id, now)
                except Exception:  # keep renewing the others; the next round retries this one
                    logger.warning("could not renew the lease of %s/%s", queue, job_id, exc_info=True)

    async def stop(self) -> None:
        """Stop the keeper for good and return the buffered references (the backend closes)."""
        self._stopped = True
        await self.ahead.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.task = None
        await self.return_buffered()

    def reset(self) -> None:
        """Forget the buffer, every lease and the keeper: their event loop ended (the backend starts again)."""
        self.buffer.clear()
        self.held.clear()
        self.ahead.reset()
        self.task = None
        self._stopped = False
