"""How job references reach the broker after a state write, so that no order of failures strands a job.

* A just-created job whose reference the broker refuses is deleted again and the
  caller sees the error (:meth:`HandOver.send_or_undo`).
* A job a transition just made ``waiting`` (retry, dependency release, stalled
  recovery, ``retry_job``) whose reference the broker refuses goes to the delay
  store as due now; the next promotion pass sends it (:meth:`HandOver.hand_over`).
* Delayed ids go to the broker when it holds delays (``max_native_delay``), else
  to the delay store (:meth:`HandOver.schedule`).
* ``promote_due_delayed`` claims due ids from the delay store, sends their
  references and moves ``delayed -> waiting`` conditionally. A claim also accepts a
  ``delayed`` job whose ``run_at`` has passed, so a crash after the send loses
  nothing; a crash before it leaves a ``delayed`` record whose ``run_at`` is past,
  which the periodic repair pass finds and promotes (:meth:`HandOver.promote_due`).
* A job added ``waiting`` (or made ``waiting`` by a dependency release, a stalled
  re-enqueue, ``retry_job``) is written marked *unsent* (:attr:`HandOver.marks_unsent`);
  its claim clears the mark. A producer that dies between that write and the send
  leaves a marked job no reference points to: the repair pass sends the references
  of jobs still marked ``resend_grace`` after their write, once (:meth:`HandOver.resend_unsent`).
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from asyncmq.core.enums import State

from asyncmq_cloud import observe
from asyncmq_cloud.core.bodies import metadata_only
from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.records import JobRecord

logger = logging.getLogger("asyncmq_cloud.lifecycle")
#: Due times of parked ids remembered per queue (:meth:`HandOver._park`); past it, regular scans.
MAX_PARKED = 10_000
#: The AsyncMQ payloads of the jobs of a send, one per id (``None``: unknown, read from the
#: store when the transport needs them: priority lanes, fair-queue groups).
Payloads = Sequence[Mapping[str, Any]] | None


def payloads_of(records: Sequence[JobRecord]) -> list[dict[str, Any]]:
    """The AsyncMQ payload of each record (what a send's priorities and groups are read from)."""
    return [record.payload for record in records]


class HandOver:
    """The "never strand a job" rules (see the module docstring).

    Args:
        parts: the backend's components (read at call time).
    """

    def __init__(self, parts: Components) -> None:
        self._parts = parts
        #: Queue -> time of its last repair pass (the first promotion only starts the clock).
        self._last_repair: dict[str, float] = {}
        #: Queue -> earliest time its next throttled promotion reads the delay store (:meth:`promote_due`).
        self._next_scan: dict[str, float] = {}
        #: Queue -> due times (a heap) of the ids parked in the delay store by this process.
        self._parked: dict[str, list[float]] = {}
        self._token = uuid.uuid4().hex  # holds the per-queue re-send lock

    @property
    def marks_unsent(self) -> bool:
        """Whether new ``waiting`` records are marked unsent: when the transport carries references.

        ``DynamoDBBackend``'s transport sends nothing (``redelivers`` is False: the jobs table's
        ready index is the queue), so a ``waiting`` record is claimable by itself: no window.
        """
        return self._parts.transport.capabilities.redelivers

    async def send(self, queue: str, job_ids: Sequence[str], delay: float = 0.0, payloads: Payloads = None) -> None:
        """``transport.send``; with priority lanes each job's priority, with a fair key each job's
        group, from its payload (read from the store when the caller does not have it: one read
        per job, on the paths without the record)."""
        transport = self._parts.transport
        lanes, fair_key = transport.capabilities.priority_lanes > 1, transport.capabilities.fair_key
        if not lanes and fair_key is None:
            await (transport.send(queue, job_ids, delay) if delay else transport.send(queue, job_ids))
            return
        if payloads is None:
            records = [await self._parts.store.get(queue, job_id) for job_id in job_ids]
            payloads = [r.payload if r is not None else {} for r in records]
        priorities = [p.get("priority") for p in payloads] if lanes else None
        groups = [fair_key(p) for p in payloads] if fair_key is not None else None
        await transport.send(queue, job_ids, delay, priorities=priorities, groups=groups)

    async def send_or_undo(self, queue: str, job_ids: Sequence[str], payloads: Payloads = None) -> None:
        """Send the references of just-created jobs; if the broker refuses, delete the jobs and raise.

        The caller sees the error and nothing is left half-written (a waiting record
        no reference points to). Should the broker have taken the reference after
        all (an ambiguous timeout), the claim finds no job and drops it.
        """
        try:
            await self.send(queue, job_ids, payloads=payloads)
        except Exception:  # not on cancellation: a cancelled caller's send may still go out (SQS batcher)
            await self._undo(queue, job_ids, "send")
            raise

    async def schedule_or_undo(
        self, queue: str, job_ids: Sequence[str], run_at: float, payloads: Payloads = None
    ) -> None:
        """:meth:`schedule` the ids of just-created delayed jobs; if that fails, delete the jobs and raise.

        A caller told "no" (a missing delay table, an outage) must not find the job later:
        a retrying caller would get two, and the repair pass would run the orphan.
        """
        try:
            await self.schedule(queue, job_ids, run_at, payloads)
        except Exception:
            await self._undo(queue, job_ids, "delay")
            raise

    async def _undo(self, queue: str, job_ids: Sequence[str], what: str) -> None:
        with anyio.CancelScope(shield=True):
            for job_id in job_ids:
                try:
                    await self._parts.store.delete(queue, job_id)
                except Exception:  # the first error is the one to report
                    logger.warning("could not undo job %s/%s after a failed %s", queue, job_id, what, exc_info=True)

    async def _park(self, queue: str, job_id: str, run_at: float) -> None:
        """Put ``job_id`` in the delay store due at ``run_at``; this process's next scan of
        ``queue`` reads the store by then (``delay_scan_interval`` does not hold it back)."""
        await self._parts.delay_store.schedule(queue, job_id, run_at)
        parked = self._parked.setdefault(queue, [])
        if len(parked) < MAX_PARKED:  # past it, the ids wait for the regular scans
            heapq.heappush(parked, run_at)
        if run_at < self._next_scan.get(queue, run_at):
            self._next_scan[queue] = run_at

    @property
    def scan_interval(self) -> float:
        """``delay_scan_interval`` (decision 72)."""
        return self._parts.config.delay_scan_interval

    def _schedule_next_scan(self, queue: str, now: float, more: bool) -> None:
        """After a read at ``now``: the next one ``delay_scan_interval`` later, at once if the
        read filled a batch, or when the next id parked here is due, whichever comes first."""
        parked = self._parked.get(queue, [])
        while parked and parked[0] <= now:
            heapq.heappop(parked)
        next_scan = now if more else now + self.scan_interval
        self._next_scan[queue] = min(next_scan, parked[0]) if parked else next_scan

    async def hand_over(self, queue: str, job_ids: Sequence[str], payloads: Payloads = None) -> None:
        """Send the references of jobs a transition just made ``waiting``; never strand them.

        If the broker refuses (down, timing out), the ids go to the delay store as due
        now: the next ``promote_due_delayed`` pass of any worker or scanner sends them.
        Only if the delay store fails too does the error propagate.
        """
        if not job_ids:
            return
        try:
            await self.send(queue, job_ids, payloads=payloads)
        except Exception as exc:
            logger.warning(
                "could not send %d reference(s) of %r (%s); the next promotion pass sends them",
                len(job_ids),
                queue,
                exc,
            )
            now = time.time()
            for job_id in job_ids:
                await self._park(queue, job_id, now)

    async def schedule(self, queue: str, job_ids: Sequence[str], run_at: float, payloads: Payloads = None) -> None:
        """Hand delayed ids to the broker (native delay) or to the delay store.

        An id that became due meanwhile still goes to the delay store: the next
        promotion pass moves it properly, instead of leaving a ``delayed`` record
        with a reference that the repair pass would send a second time.
        """
        transport = self._parts.transport
        delay = run_at - time.time()
        if 0 < delay <= transport.capabilities.max_native_delay:
            try:
                await self.send(queue, job_ids, delay, payloads)
                return
            except Exception as exc:  # the delay store holds them instead
                logger.warning("could not send %d delayed reference(s) of %r (%s)", len(job_ids), queue, exc)
        for job_id in job_ids:
            await self._park(queue, job_id, run_at)

    async def promote_due(self, queue: str, throttled: bool = True) -> list[dict[str, Any]]:
        """Move due delayed jobs to ``waiting`` and send them; exactly once per job.

        ``throttled``: read the delay store at most every ``delay_scan_interval`` (AsyncMQ's
        scanner calls this every ``scan_interval`` on every worker), sooner when a job
        parked here is due or the last read filled a batch; a call in between answers
        ``[]`` without a store call (decision 68).
        """
        config = self._parts.config
        now = time.time()
        # The first call only starts the clock: a repair pass reads every delayed
        # record, so it runs once per repair_interval, not on every worker start.
        repair = now - self._last_repair.setdefault(queue, now) >= config.repair_interval
        if throttled and not repair and now < self._next_scan.get(queue, now):
            return []
        due = await self._parts.delay_store.claim_due(queue, now, config.promote_batch)
        self._schedule_next_scan(queue, now, len(due) >= config.promote_batch)
        ids = [job_id for job_id, _ in due]
        observe.delayed_handed_over(queue, [run_at for _, run_at in due], now)
        if not repair:
            return await self._promote(queue, ids)
        self._last_repair[queue] = now
        try:
            ids.extend(await self._stranded(queue, now))
        finally:  # the ids claimed from the delay store above are promoted even if the repair failed
            promoted = await self._promote(queue, ids)
        await self.resend_unsent(queue, now)
        return promoted

    async def pop_due(self, queue: str) -> list[dict[str, Any]]:
        """Remove due ids from the delay store and return their jobs still ``delayed`` (AsyncMQ's raw hook)."""
        store = self._parts.store
        due = await self._parts.delay_store.claim_due(queue, time.time(), self._parts.config.promote_batch)
        jobs = []
        for job_id, _ in due:
            record = await store.get(queue, job_id)
            if record is not None and record.state == State.DELAYED:
                jobs.append(record.job())
        return jobs

    async def remove_delayed(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still ``delayed`` (and its delay-store entry); False otherwise."""
        record = await self._parts.store.get(queue, job_id)
        if record is None or record.state != State.DELAYED:
            return False
        await self._parts.delay_store.cancel(queue, job_id)
        return await self._parts.store.delete(queue, job_id) is not None

    async def resend_unsent(self, queue: str, now: float) -> list[str]:
        """Send once more the references of jobs still marked unsent ``resend_grace`` after their write.

        Their producer may have died between the record write and the send; a job that
        merely waits in a long queue gets a duplicate reference, which the claim drops.
        One process per queue and ``repair_interval`` does it (a store lock), for at most
        ``promote_batch`` jobs; their marks are cleared after the hand-over, so each job
        is re-sent once. Returns the ids handed over.
        """
        store, config = self._parts.store, self._parts.config
        if not self.marks_unsent:
            return []
        if not await store.acquire_lock(f"asyncmq-cloud:resend:{queue}", self._token, config.repair_interval):
            return []
        ids = await store.list_unsent(queue, now - config.resend_grace, config.promote_batch)
        if ids:
            logger.warning(
                "re-sending the references of %d job(s) of %r unclaimed %ss after their write "
                "(a producer may have stopped before sending)",
                len(ids),
                queue,
                config.resend_grace,
            )
            await self.hand_over(queue, ids)
            await store.clear_unsent(queue, ids)
        return ids

    async def _stranded(self, queue: str, now: float) -> list[str]:
        cutoff = now - self._parts.config.repair_grace
        with metadata_only():  # ids and due times only
            delayed = await self._parts.store.list_jobs(queue, State.DELAYED)
        stranded = [r.id for r in delayed if (r.run_at or 0) <= cutoff]
        if stranded:
            logger.warning(
                "repairing %d delayed job(s) of %r past due by > %ss",
                len(stranded),
                queue,
                self._parts.config.repair_grace,
            )
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
            await self.send(queue, ids)
        except Exception:
            # Claimed from the delay store but not sent: put them back as due now, so the
            # next pass retries them instead of waiting for the repair pass.
            now = time.time()
            for job_id in ids:
                await self._park(queue, job_id, now)
            raise
        moved = await self._parts.store.promote(queue, ids)
        return [{"id": job_id, "status": State.WAITING} for job_id in moved]
