"""The ends of a run: one conditional store write each, then the ack.

Every end (complete, retry, defer, fail, expire, cancel) is ONE store write
conditional on ``state = active AND owner = token`` (the claim), then the
transport ack: a worker that lost its claim cannot overwrite the new owner's
result. While the write meets transient errors the job stays held (the lease
keeper renews it) and the write is retried until the lease would run out
(``core/resilience.py``); a write still failing then is given up with one log
line: the reference goes back to the broker for the takeover once the lease ran
out, and the job is never recorded as failed for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asyncmq.core.enums import State

from asyncmq_cloud import observe
from asyncmq_cloud.core.leases import LeaseKeeper
from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.records import CANCELLED, JobRecord, Lease
from asyncmq_cloud.core.resilience import GaveUp, retry_transient
from asyncmq_cloud.errors import PayloadTooLargeError, UnencodableError

logger = logging.getLogger("asyncmq_cloud.lifecycle")

#: Jobs completed here that no job waits for, kept for AsyncMQ's next ``resolve_dependency``.
CHILDLESS_LIMIT = 10_000
#: What :meth:`RunEnds._ride_out` returns once it gave up.
GAVE_UP: Any = object()


class RunEnds:
    """Ends the runs of the jobs a backend holds.

    Args:
        parts: the backend's components (store, transport, config).
        leases: the backend's lease keeper (the claims the writes are conditional on).
    """

    def __init__(self, parts: Components, leases: LeaseKeeper) -> None:
        self._parts = parts
        self._leases = leases
        #: Jobs this process completed that no job waits for (bounded, oldest dropped).
        self.childless: dict[tuple[str, str], None] = {}

    async def finish(
        self,
        queue: str,
        payload: dict[str, Any],
        to_state: str,
        *,
        run_at: float | None = None,
        extra: dict[str, Any] | None = None,
        expect_states: frozenset[str] = frozenset({State.ACTIVE}),
        then: Callable[[JobRecord], Awaitable[None]] | None = None,
    ) -> JobRecord | None:
        """End a run: ONE conditional write (``active``, owned by our claim), ``then``, the ack.

        ``then`` runs only when the write succeeded, before the ack: a crash between
        the two leaves the delivery to come back, so a job made ``waiting`` again is
        never left without a reference. ``None`` when the job was no longer ours, or
        when a transient error outlasted the lease (logged; the job is taken over).
        """
        job_id = str(payload["id"])
        lease = self._leases.get(queue, job_id)  # held, and renewed, until the write lands
        kept = lease.kept if lease else {}  # keys AsyncMQ's Job dropped from the payload (records.KEPT_KEYS)
        body = {**kept, **payload, "status": to_state, "updated_at": time.time(), **(extra or {})}
        owner, at = (lease.token if lease else None), dict[str, Any](run_at=run_at)
        tries = 0

        async def write() -> JobRecord | None:
            nonlocal tries
            tries += 1
            try:
                record = await self._parts.store.transition(
                    queue, job_id, to_state, expect_states=expect_states, expect_owner=owner, payload=body, **at
                )
            except (PayloadTooLargeError, UnencodableError) as exc:
                if to_state != State.COMPLETED:
                    raise  # unacknowledged, as any failed end: the lease takeover recovers the job
                return await self._fail_unstorable_result(queue, job_id, body, owner, exc)
            if record is None and tries > 1:  # an earlier try may have landed, its reply lost
                return await self._landed(queue, job_id, to_state, body)
            return record

        try:
            record = await self._finish_held(queue, job_id, to_state, lease, write, then)
        except Exception:
            self._leases.pop(queue, job_id)  # not held any more: the takeover recovers the job
            raise
        if record is not None:
            observe.job_ended(queue, payload, record.state, lease.claimed_at if lease else None)
        return record

    async def _finish_held(
        self,
        queue: str,
        job_id: str,
        to_state: str,
        lease: Lease | None,
        write: Callable[[], Awaitable[JobRecord | None]],
        then: Callable[[JobRecord], Awaitable[None]] | None,
    ) -> JobRecord | None:
        """The write (ridden out), ``then`` (ridden out), the ack; see :meth:`finish`."""
        outcome = await self._ride_out(queue, job_id, lease, write, f"moving job {queue}/{job_id} to {to_state}")
        if outcome is GAVE_UP:
            return None
        record: JobRecord | None = outcome
        if record is None and to_state != CANCELLED:
            logger.warning(
                "job %s/%s was no longer ours to move to %s (cancelled or recovered)", queue, job_id, to_state
            )
        if record is not None and then is not None:
            what = f"handing job {queue}/{job_id} over"
            if await self._ride_out(queue, job_id, lease, lambda: then(record), what, written=True) is GAVE_UP:
                return record
        self._leases.pop(queue, job_id)
        await self.ack(queue, job_id, lease)
        return record

    async def _landed(self, queue: str, job_id: str, to_state: str, body: dict[str, Any]) -> JobRecord | None:
        """The record our write produced, if an earlier try of it landed (same state and ``updated_at``)."""
        current = await self._parts.store.get(queue, job_id)
        ours = current is not None and current.payload.get("updated_at") == body["updated_at"]
        return current if ours and current is not None and current.state == to_state else None

    async def _ride_out(
        self,
        queue: str,
        job_id: str,
        lease: Lease | None,
        op: Callable[[], Awaitable[Any]],
        what: str,
        *,
        written: bool = False,
    ) -> Any:
        """``op`` retried while the lease lasts; :data:`GAVE_UP` once given up (the reference then goes back).

        ``written``: the end is already stored (the job is ``waiting`` or ``delayed``): the
        reference goes back at once rather than when the lease runs out.
        """
        try:
            return await retry_transient(op, deadline=self._leases.deadline_of(lease), what=what)
        except GaveUp as exc:
            self._leases.pop(queue, job_id)
            if written:
                logger.error("%s; the job's reference goes back to the broker", exc)
            else:
                logger.error("%s; left to be taken over once its lease runs out (at-least-once)", exc)
            if lease is not None:
                await self._return_reference(lease, 0.0 if written else None)
            return GAVE_UP

    async def during_run(
        self, queue: str, job_id: str, op: Callable[[], Awaitable[Any]], what: str, window: float | None = None
    ) -> Any:
        """``op`` about a job running here: transient errors retried while its lease lasts (at most
        ``window`` s), then :data:`GAVE_UP` (logged). For a job not running here (an
        administrative call) ``op``'s errors raise as usual."""
        lease = self._leases.get(queue, job_id)
        if lease is None:
            return await op()
        end = time.monotonic() + window if window is not None else float("inf")
        try:
            return await retry_transient(
                op, deadline=lambda: min(end, self._leases.deadline(lease)), what=f"{what} of {queue}/{job_id}"
            )
        except GaveUp as exc:
            logger.error("%s; the run goes on without it", exc)
            return GAVE_UP

    async def _return_reference(self, lease: Lease, delay: float | None) -> None:
        """Offer the reference again after ``delay`` (None: once the lease ran out); best effort, the
        broker's own lease returns it otherwise."""
        if delay is None:
            delay = max(1.0, lease.confirmed_at + (self._parts.config.lease_timeout or 0.0) - time.time())
        try:
            await self._parts.transport.release(lease.delivery, delay)
        except Exception as exc:  # the broker lease runs out by itself
            logger.warning("could not put job %s back on the broker: %s", lease.delivery.job_id, exc)

    async def ack(self, queue: str, job_id: str, lease: Lease | None) -> None:
        """Ack ``lease``'s delivery, retried while the lease lasts; once given up the delivery comes
        back later and its claim drops it (the store already holds the end)."""
        if lease is None:
            return
        try:
            await retry_transient(
                lambda: self._leases.ack(lease),
                deadline=self._leases.deadline_of(lease),
                what=f"acknowledging job {queue}/{job_id}",
            )
        except GaveUp as exc:
            logger.warning("%s; its redelivery will be dropped", exc)

    async def _fail_unstorable_result(
        self, queue: str, job_id: str, body: dict[str, Any], owner: str | None, exc: Exception
    ) -> JobRecord | None:
        """A result the store cannot hold (too large, or not encodable as JSON): the job fails once,
        with the reason; the worker goes on. Raising would not help: AsyncMQ's failure path writes
        the same payload and ends the worker."""
        if isinstance(exc, PayloadTooLargeError):
            reason = f"the job with its result is {exc.size} bytes; the store's limit is {exc.limit} bytes (not stored)"
        else:
            reason = f"the job's result cannot be stored: {exc}"
        logger.error("job %s/%s failed: %s", queue, job_id, reason)
        failed = {**body, "status": State.FAILED, "result": None, "last_error": reason, "failed_at": time.time()}
        failed.pop("completed_at", None)
        record = await self._parts.store.transition(
            queue, job_id, State.FAILED, expect_states={State.ACTIVE}, expect_owner=owner, payload=failed
        )
        self.childless[(queue, job_id)] = None  # not completed: AsyncMQ's resolve_dependency must release nothing
        return record

    def completed_childless(self, queue: str, job_id: str) -> None:
        """Remember a job completed here that no job waits for (bounded)."""
        self.childless[(queue, job_id)] = None
        if len(self.childless) > CHILDLESS_LIMIT:
            self.childless.pop(next(iter(self.childless)))

    async def move_to_dlq(self, queue: str, payload: dict[str, Any]) -> None:
        """The job to ``failed`` (or ``expired``) with its payload, created if missing; then the ack."""
        status = payload.get("status")
        target = status if status in (State.FAILED, State.EXPIRED) else State.FAILED
        job_id = str(payload["id"])
        body = {**payload, "status": target, "failed_at": time.time(), "updated_at": time.time()}
        lease = self._leases.get(queue, job_id)

        async def write() -> None:
            if await self._parts.store.transition(queue, job_id, target, payload=body) is None:
                await self._parts.store.create([JobRecord(queue=queue, id=job_id, state=target, payload=body)])

        if await self._ride_out(queue, job_id, lease, write, f"moving job {queue}/{job_id} to the DLQ") is GAVE_UP:
            return
        self._leases.pop(queue, job_id)
        await self.ack(queue, job_id, lease)
