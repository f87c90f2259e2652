"""``CloudBackend``: AsyncMQ's job lifecycle, written once over three protocols.

Every AsyncMQ ``BaseBackend`` method is implemented in terms of a
:class:`StateStore` (the truth about each job), a :class:`Transport` (moves job
*references*) and a :class:`DelayStore` (holds delayed ids). The cloud backends
(``SQSBackend``, ``KafkaBackend``, ``DynamoDBBackend``) only choose those three.
This module is the job lifecycle; the administrative hooks are ``core/backend.py``,
the leases ``core/leases.py``, the hand-over to the broker ``core/handover.py``.

The flow, and why it is safe with an at-least-once broker:

* enqueue: write the record (``waiting``, marked unsent: ``core/handover.py``), then send the reference. A worker
  that receives a reference *claims* the job — a conditional
  ``waiting -> active`` that returns the record — so a duplicate delivery, or a
  reference to a cancelled/removed/finished job, is acked and dropped.
* every end of a run (complete, retry, defer, fail, expire) is ONE conditional
  store write on ``state = active AND owner = token``, then the transport ack.
  A worker that lost its claim (stalled recovery gave the job to another) cannot
  overwrite the new owner's result.
* delays: the record goes to ``delayed`` with ``run_at``; the transport holds the
  reference if it can (``capabilities.max_native_delay``), else the delay store
  does; ``promote_due_delayed`` moves them on (see ``core/handover.py``).

Reads AsyncMQ's worker asks for, and what answers them (see also ``core/backend.py``):

* ``is_job_cancelled`` (twice, just before the task runs): answered by the claim
  for ``cancel_cache_ttl`` (1 s) after it — the claim proved the job was not
  cancelled — and from memory for jobs cancelled through this backend. The read
  that remains: a check later than 1 s after the claim reads the store.
* ``resolve_dependency`` after a completion: skipped (no read) when the
  completion's own write showed that no job waits for this one.
* ``save_heartbeat``: one store write per heartbeat; the broker lease is extended only when
  needed (``Transport.extend``). ``dequeue``: a receive takes up to ``prefetch`` references,
  never more than the free capacity of this backend's workers (``LeaseKeeper.receive_size``).

Every add, claim, end of a run and hand-over is told to :mod:`asyncmq_cloud.observe`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asyncmq.core.enums import State

from asyncmq_cloud import observe
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.backend import BackendCore, lazily_started
from asyncmq_cloud.core.bodies import metadata_only
from asyncmq_cloud.core.dependencies import Dependencies
from asyncmq_cloud.core.handover import HandOver, payloads_of
from asyncmq_cloud.core.leases import LeaseKeeper
from asyncmq_cloud.core.protocols import DelayStore, StateStore, Transport
from asyncmq_cloud.core.records import CANCELLED, JobRecord, new_job_record
from asyncmq_cloud.core.resilience import GaveUp, OutageLog, retry_transient
from asyncmq_cloud.core.runs import GAVE_UP, RunEnds
from asyncmq_cloud.core.states import CANCELLABLE, RETRYABLE
from asyncmq_cloud.core.stopping import WorkerStops
from asyncmq_cloud.core.validation import validate_job_id, validate_queue_name, validate_run_at
from asyncmq_cloud.errors import TransientError

logger = logging.getLogger("asyncmq_cloud.lifecycle")

#: Longest retry (s) of the cancel-flag read of a running job before the run goes on.
CANCEL_READ_WINDOW = 10.0
#: Longest pause (s) of ``dequeue`` after an outage error (``receive_wait`` if shorter).
OUTAGE_PAUSE = 1.0


class CloudBackend(WorkerStops, BackendCore):
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
        super().__init__(store, transport, delay_store, config=config)
        self._leases = LeaseKeeper(self, self._workers, self.save_heartbeat)
        self._handover = HandOver(self)
        self._deps = Dependencies(self, self._handover)
        self._ends = RunEnds(self, self._leases)
        self._outage = OutageLog()  # dequeue outages: logged once per 10 s, the recovery once

    def _rebind(self) -> None:
        super()._rebind()
        self._leases.reset()  # its buffer, leases and keeper belonged to the finished loop

    async def close(self) -> None:
        """Stop the lease keeper, return prefetched references, flush the transport, close everything (idempotent)."""
        if not self._closed:
            await self._leases.stop()
        await super().close()

    async def update_job_state(self, queue_name: str, job_id: str, state: str) -> None:
        write = super().update_job_state  # the store write; ridden out here for a running job
        await self._ends.during_run(queue_name, job_id, lambda: write(queue_name, job_id, state), "setting the state")

    async def save_job_result(self, queue_name: str, job_id: str, result: Any) -> None:
        write = super().save_job_result
        await self._ends.during_run(queue_name, job_id, lambda: write(queue_name, job_id, result), "saving the result")

    # -- enqueue ---------------------------------------------------------------------
    def _writable(self, queue: str) -> None:
        """Check ``queue`` against AsyncMQ's and the broker's name rules before anything is written."""
        validate_queue_name(queue)
        self.transport.check_queue(queue)

    @lazily_started
    async def enqueue(self, queue_name: str, payload: dict[str, Any]) -> str:
        self._writable(queue_name)
        observe.jobs_adding(queue_name, [payload])
        pending = await self._deps.pending(queue_name, payload.get("depends_on") or [])
        record = new_job_record(queue_name, payload, pending)
        await self.store.create([record], {record.id: pending} if pending else None, unsent=self._handover.marks_unsent)
        if pending:
            await self._deps.recheck(queue_name, pending)
        else:
            await self._handover.send_or_undo(queue_name, [record.id], payloads_of([record]))
        observe.jobs_enqueued(queue_name, [payload])
        return record.id

    @lazily_started
    async def bulk_enqueue(self, queue_name: str, jobs: list[dict[str, Any]]) -> None:
        self._writable(queue_name)
        ids = [validate_job_id(job["id"]) for job in jobs]  # every id checked before the first chunk is written
        observe.jobs_adding(queue_name, jobs)
        for start in range(0, len(jobs), 25):
            chunk = [new_job_record(queue_name, job, []) for job in jobs[start : start + 25]]
            await self.store.create(chunk, unsent=self._handover.marks_unsent, atomic=False)
            await self._handover.send_or_undo(queue_name, ids[start : start + 25], payloads_of(chunk))
            observe.jobs_enqueued(queue_name, jobs[start : start + 25])

    @lazily_started
    async def atomic_add_flow(
        self,
        queue_name: str,
        job_dicts: list[dict[str, Any]],
        dependency_links: list[tuple[str, str]],
    ) -> list[str]:
        """Write every job of the flow and its edges in one store write, then send the roots."""
        self._writable(queue_name)
        observe.jobs_adding(queue_name, job_dicts)
        in_flow = {str(job["id"]) for job in job_dicts}
        parents_of: dict[str, set[str]] = {}
        for parent, child in dependency_links:
            parents_of.setdefault(str(child), set()).add(str(parent))
        records: list[JobRecord] = []
        deps: dict[str, list[str]] = {}
        for job in job_dicts:
            job_id = str(job["id"])
            parents = parents_of.get(job_id, set()) | {str(p) for p in job.get("depends_on") or []}
            external = await self._deps.pending(queue_name, sorted(parents - in_flow))
            pending = sorted((parents & in_flow) | set(external))
            records.append(new_job_record(queue_name, job, pending))
            if pending:
                deps[job_id] = pending
        await self.store.create(records, deps or None, unsent=self._handover.marks_unsent)
        roots = [r for r in records if r.state == State.WAITING]
        if roots:
            # The flow is stored whole: its roots are handed over (or parked) rather than undone.
            await self._handover.hand_over(queue_name, [r.id for r in roots], payloads_of(roots))
        observe.jobs_enqueued(queue_name, job_dicts)
        return [r.id for r in records]

    @lazily_started
    async def enqueue_delayed(self, queue_name: str, payload: dict[str, Any], run_at: float) -> None:
        self._writable(queue_name)
        run_at = validate_run_at(run_at)
        now = time.time()  # a run_at already past is a due delayed job, as on AsyncMQ's backends (decision 59)
        body = {**payload, "id": validate_job_id(payload["id"]), "delay_until": run_at, "updated_at": now}
        body.setdefault("created_at", now)
        observe.jobs_adding(queue_name, [body])
        record = JobRecord(queue=queue_name, id=body["id"], state=State.DELAYED, payload=body, run_at=run_at)
        await self.store.create([record])
        await self._handover.schedule_or_undo(queue_name, [record.id], run_at, [body])
        observe.jobs_enqueued(queue_name, [body])

    # -- dequeue / ack -----------------------------------------------------------------
    async def dequeue(self, queue_name: str) -> dict[str, Any] | None:
        """The next claimed job, or None. A :class:`TransientError` (broker or store outage) is
        logged and answered with None after a pause (``receive_wait``, at most 1 s): AsyncMQ 0.10.1's worker
        loop does not catch dequeue errors, so raising would end the worker (decision 37)."""
        try:
            job = await self._dequeue(queue_name)
        except TransientError as exc:
            self._outage.failed(queue_name, exc)
            await asyncio.sleep(min(self.config.receive_wait, OUTAGE_PAUSE))
            return None
        self._outage.recovered(queue_name)
        return job

    @lazily_started
    async def _dequeue(self, queue_name: str) -> dict[str, Any] | None:
        return await self._leases.take(queue_name, self._pauses.check)

    @property
    def unknown_references(self) -> int:
        """References dropped because no job with their id exists (logged at most once a minute)."""
        return self._leases.unknown.total

    async def ack(self, queue_name: str, job_id: str) -> None:
        await self._leases.ack(self._leases.pop(queue_name, job_id))

    # -- ends of a run: one conditional write each, then the ack (core/runs.py) -------
    async def complete_active_job(self, queue_name: str, payload: dict[str, Any], result: Any) -> None:
        extra = {"result": result, "completed_at": time.time()}
        record = await self._ends.finish(queue_name, payload, State.COMPLETED, extra=extra)
        if record is None or (record.state == State.COMPLETED and not record.has_children):
            # AsyncMQ calls resolve_dependency right after this; it skips the store when nothing
            # waits for the job, or it did not complete here (no longer ours, or given up). A
            # child registered after this write sees the parent completed and resolves itself.
            self._ends.completed_childless(queue_name, str(payload["id"]))

    async def retry_active_job(self, queue_name: str, payload: dict[str, Any], run_at: float) -> None:
        """Back to ``waiting`` (due now) or ``delayed`` (until ``run_at``); the reference is handed over."""
        run_at = validate_run_at(run_at)
        due_now = run_at <= time.time()

        async def hand_over(record: JobRecord) -> None:
            if due_now:
                await self._handover.hand_over(queue_name, [record.id], [payload])
            else:
                await self._handover.schedule(queue_name, [record.id], run_at, [payload])

        state, delay_until = (State.WAITING, None) if due_now else (State.DELAYED, run_at)
        extra = {"delay_until": delay_until}
        await self._ends.finish(queue_name, payload, state, run_at=delay_until, extra=extra, then=hand_over)

    async def defer_active_job(self, queue_name: str, payload: dict[str, Any], run_at: float) -> None:
        await self.retry_active_job(queue_name, payload, run_at)

    async def fail_active_job(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._ends.finish(queue_name, payload, State.FAILED, extra={"failed_at": time.time()})

    async def expire_active_job(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._ends.finish(queue_name, payload, State.EXPIRED, extra={"failed_at": time.time()})

    async def cancel_active_job(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._ends.finish(queue_name, payload, CANCELLED, expect_states=frozenset({State.ACTIVE, CANCELLED}))

    async def move_to_dlq(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._ensure_started()
        await self._ends.move_to_dlq(queue_name, payload)

    # -- delayed jobs -----------------------------------------------------------------
    @lazily_started
    async def promote_due_delayed(self, queue_name: str) -> list[dict[str, Any]]:
        """Move due delayed jobs to ``waiting`` and send them; exactly once per job (``HandOver.promote_due``).
        Reads the delay store at most every ``config.delay_scan_interval`` (AsyncMQ's scanner
        calls it every ``scan_interval``), sooner when a job parked through this backend is due."""
        return await self._handover.promote_due(queue_name)

    @lazily_started
    async def promote_due_now(self, queue_name: str) -> list[dict[str, Any]]:
        """:meth:`promote_due_delayed` reading the delay store on every call (``asyncmq-cloud scanner``)."""
        return await self._handover.promote_due(queue_name, throttled=False)

    @lazily_started
    async def pop_due_delayed(self, queue_name: str) -> list[dict[str, Any]]:
        """Remove due ids from the delay store and return their jobs (AsyncMQ's raw hook)."""
        return await self._handover.pop_due(queue_name)

    @lazily_started
    async def get_due_delayed(self, queue_name: str) -> list[dict[str, Any]]:
        """The ``delayed`` jobs whose ``run_at`` has passed, wherever their delay is held (delay
        store or the broker's native delay); a view: the next promotion hands them over."""
        return await self._jobs.due_delayed(queue_name, time.time())

    @lazily_started
    async def remove_delayed(self, queue_name: str, job_id: str) -> bool:
        return await self._handover.remove_delayed(queue_name, job_id)

    # -- cancel / remove / retry ------------------------------------------------------
    @lazily_started
    async def cancel_job(self, queue_name: str, job_id: str) -> bool:
        record = await self.store.transition(queue_name, job_id, CANCELLED, expect_states=CANCELLABLE)
        if record is None:
            return False
        self._leases.mark_cancelled(queue_name, job_id)
        await self.delay_store.cancel(queue_name, job_id)
        return True

    async def is_job_cancelled(self, queue_name: str, job_id: str) -> bool:
        """From memory right after the claim, else one store read; for a job running here a
        store outage answers ``False`` (the run goes on; its end is owner-checked)."""
        known = self._leases.known_cancelled(queue_name, job_id)
        if known is not None:
            return known  # cancelled through this backend, or claimed just now (not cancelled)
        await self._ensure_started()
        with metadata_only():  # the state, never the body
            read = lambda: self.store.get(queue_name, job_id)  # noqa: E731
            record = await self._ends.during_run(
                queue_name, job_id, read, "reading the cancel flag", CANCEL_READ_WINDOW
            )
        return record is not None and record is not GAVE_UP and record.state == CANCELLED

    @lazily_started
    async def remove_job(self, queue_name: str, job_id: str, *, expect_state: str | None = None) -> bool:
        """AsyncMQ's ``remove_job``; with ``expect_state`` (not AsyncMQ's), only a job in that state."""
        removed = await self.store.delete(queue_name, job_id, expect_state)
        if removed is None:
            return False
        if removed.state == State.DELAYED:
            await self.delay_store.cancel(queue_name, job_id)
        return True

    @lazily_started
    async def retry_job(self, queue_name: str, job_id: str) -> bool:
        record = await self.store.get(queue_name, job_id)
        if record is None or record.state not in RETRYABLE:
            return False
        body = {**self._prepare_retry_payload(record.job(), job_id), "updated_at": time.time()}
        mark = self._handover.marks_unsent
        if await self.store.transition(
            queue_name, job_id, State.WAITING, expect_states=RETRYABLE, payload=body, unsent=mark
        ):
            await self._handover.hand_over(queue_name, [job_id])
            return True
        return False

    # -- dependencies -------------------------------------------------------------------
    @lazily_started
    async def add_dependencies(self, queue_name: str, job_dict: dict[str, Any]) -> None:
        await self._deps.add(queue_name, job_dict)

    async def resolve_dependency(self, queue_name: str, parent_id: str) -> None:
        """Release the jobs waiting for ``parent_id``; transient errors are retried for a lease
        window, then logged (AsyncMQ calls this after a completion, outside its error handling)."""
        if self._ends.childless.pop((queue_name, parent_id), 0) is None:
            return  # completed here with no children (see complete_active_job)
        await self._ensure_started()
        try:
            await retry_transient(
                lambda: self._deps.resolve(queue_name, parent_id),
                deadline=self._leases.deadline_of(None),
                what=f"releasing the jobs waiting for {queue_name}/{parent_id}",
            )
        except GaveUp as exc:
            logger.error("%s; they stay waiting until it is retried", exc)

    # -- heartbeats and stalled recovery --------------------------------------------
    @lazily_started
    async def save_heartbeat(self, queue_name: str, job_id: str, timestamp: float) -> None:
        await self._leases.heartbeat(queue_name, job_id, timestamp)

    @lazily_started
    async def fetch_stalled_jobs(self, older_than: float) -> list[dict[str, Any]]:
        # Jobs this process runs are left out: a late heartbeat of a busy loop is not a dead worker
        # (decision 10, kept: decision 59).
        records = await self.store.list_stalled(older_than)
        mine = self._leases.holds
        return [
            {"queue_name": r.queue, "job_data": {**r.job(), "_owner": r.owner}}
            for r in records
            if not mine(r.queue, r.id)
        ]

    @lazily_started
    async def reenqueue_stalled(self, queue_name: str, job_data: dict[str, Any]) -> None:
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
            unsent=self._handover.marks_unsent,
        )
        if record is not None:
            await self._handover.hand_over(queue_name, [job_id])
