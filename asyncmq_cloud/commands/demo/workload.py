"""The demo workload: four AsyncMQ features on one queue, watched until each ends.

* a ``FlowProducer`` DAG: ingest → two parallel transforms → aggregate;
* a job delayed by :attr:`Workload.delay` seconds — every demo backend has no
  per-message broker delay (SQS FIFO, Kafka, DynamoDB), so it waits in the delay
  store and a standalone scanner (``run_scanner``, what ``asyncmq-cloud scanner
  run`` runs) hands it over when due;
* a job that always fails: retried with exponential backoff (AsyncMQ's
  ``backoff ** retries`` seconds), then dead-lettered;
* a cron repeatable (every 2 seconds) kept until it has fired
  :attr:`Workload.cron_fires` times, then removed.

One in-process AsyncMQ worker (``asyncmq.runners.run_worker``, concurrency 4)
runs the jobs. Every check in :class:`Outcome` is an observation of what ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asyncmq.flow import FlowProducer
from asyncmq.jobs import Job
from asyncmq.queues import Queue
from asyncmq.runners import run_worker

from asyncmq_cloud.commands.demo import tasks
from asyncmq_cloud.commands.demo.ledger import CallLedger
from asyncmq_cloud.commands.demo.tasks import QUEUE, TIMELINE
from asyncmq_cloud.commands.scanner import run_scanner
from asyncmq_cloud.core.lifecycle import CloudBackend

TERMINAL = ("completed", "failed", "expired", "cancelled")
CRON = "* * * * * */2"  # croniter's optional sixth field: seconds
SCAN_INTERVAL = 2.0  # the worker's delayed/repeatable scan (AsyncMQ's scan_interval)
SETTLE = SCAN_INTERVAL + 0.5
BACKOFF = 1.5
RETRIES = 2
ROWS = 100
FACTORS = {"transform-a": 2, "transform-b": 3}
EXPECTED_TOTAL = sum(FACTORS.values()) * ROWS * (ROWS + 1) // 2


@dataclass
class JobRow:
    label: str
    task: str
    job_id: str
    expected: str
    state: str | None = None
    attempts: int = 0
    started: float | None = None  # seconds since the workload began
    finished: float | None = None
    calls: float = 0.0
    note: str = ""


@dataclass
class Outcome:
    rows: list[JobRow]
    checks: dict[str, bool]
    elapsed: float
    calls_total: int
    calls_background: float
    by_operation: dict[str, int]
    scanner_promoted: int
    timed_out: bool
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(self.checks.values())


Report = Callable[[str], None]


@dataclass
class _Facts:
    """What the attempts of the flow and of the failing job show."""

    flow: list[str]  # the flow's labels
    ordered: bool  # every step started after its parents finished
    overlapped: bool  # the two transforms ran at the same time
    failing_attempts: int
    gaps: list[float]  # seconds between the failing job's attempts


class Workload:
    def __init__(self, backend: CloudBackend, ledger: CallLedger, report: Report, *, timeout: float = 90.0) -> None:
        self.backend, self.ledger, self.report, self.timeout = backend, ledger, report, timeout
        self.delay = 4.0
        self.cron_fires = 3
        self.ids: dict[str, str] = {}
        self.states: dict[str, str | None] = {}
        self.ticks: dict[str, str | None] = {}  # tick job id -> state
        self.held_in_delay_store = False
        self.repeatable_removed = False
        self.removed_at = 0.0
        self.due = 0.0
        self.t0 = 0.0

    def _since(self, moment: float | None) -> float | None:
        return None if moment is None else round(moment - self.t0, 2)

    async def run(self) -> Outcome:
        backend = self.backend
        TIMELINE.backend = backend
        TIMELINE.attempts.clear()
        self.t0 = time.time()
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(QUEUE, backend, concurrency=4, scan_interval=SCAN_INTERVAL))
        scanner = asyncio.create_task(run_scanner(backend, [QUEUE], interval=0.25, stop=stop, report_every=3600))
        timed_out = False
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._submit()
                    await self._watch()
            except TimeoutError:
                timed_out = True
                self.report(f"[red]gave up after {self.timeout:.0f}s[/red] (see the table for what did not finish)")
        finally:
            stop.set()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(worker, 10)
            stats = await scanner
            if not self.repeatable_removed:
                await self._remove_repeatable()
        return await self._outcome(timed_out, sum(stats.promoted.values()))

    async def _submit(self) -> None:
        queue = Queue(QUEUE, backend=self.backend)
        ingest = Job(tasks.ingest.task_id, [], {"label": "ingest", "rows": ROWS}, max_retries=0)
        steps = [ingest]
        for label, factor in FACTORS.items():
            kwargs = {"label": label, "source": ingest.id, "factor": factor}
            steps.append(Job(tasks.transform.task_id, [], kwargs, max_retries=0, depends_on=[ingest.id]))
        parts = [job.id for job in steps[1:]]
        steps.append(Job(tasks.aggregate.task_id, [], {"label": "aggregate", "parts": parts}, depends_on=parts))
        await FlowProducer(backend=self.backend).add_flow(QUEUE, steps)
        for job in steps:
            self.ids[job.kwargs["label"]] = job.id
        self.report("flow submitted: ingest → transform-a, transform-b → aggregate (one atomic store write)")

        self.due = time.time() + self.delay
        self.ids["delayed"] = await queue.add(
            tasks.report.task_id, kwargs={"label": "delayed", "due": self.due}, delay=self.delay
        )
        with self.ledger.quiet():
            held = await self.backend.delay_store.list(QUEUE)
        self.held_in_delay_store = any(job_id == self.ids["delayed"] for job_id, _ in held)
        where = "held in the delay store" if self.held_in_delay_store else "[red]NOT in the delay store[/red]"
        self.report(f"delayed job submitted: due in {self.delay:.0f}s, {where} until the scanner hands it over")

        self.ids["failing"] = await queue.add(
            tasks.flaky.task_id, kwargs={"label": "failing"}, retries=RETRIES, backoff=BACKOFF
        )
        self.report(f"failing job submitted: {RETRIES} retries, backoff {BACKOFF}**n s, then failed (AsyncMQ's DLQ)")
        await queue.upsert_repeatable(tasks.tick.task_id, cron=CRON, kwargs={"label": "cron"})
        self.report(f"cron repeatable registered: '{CRON}' (every 2 s), removed after {self.cron_fires} runs")

    async def _remove_repeatable(self) -> bool:
        """Remove the cron repeatable; True if there was one to remove."""
        found = False
        with self.ledger.quiet():
            for record in await self.backend.list_repeatables(QUEUE):
                if record.job_def.get("task_id") == tasks.tick.task_id:
                    await self.backend.remove_repeatable(QUEUE, record.job_def)
                    found = True
        if not self.repeatable_removed:
            self.removed_at = time.monotonic()
        self.repeatable_removed = True
        return found

    async def _poll(self) -> None:
        with self.ledger.quiet():
            for label, job_id in self.ids.items():
                state = await self.backend.get_job_state(QUEUE, job_id)
                if state != self.states.get(label):
                    old = self.states.get(label) or "submitted"
                    self.states[label] = state
                    self.report(f"+{time.time() - self.t0:5.1f}s  {label:<12} {old} → {state}")
            for state in ("waiting", "active", "delayed", *TERMINAL):
                for job in await self.backend.list_jobs(QUEUE, state):
                    if job.get("task") == tasks.tick.task_id and self.ticks.get(job["id"]) != state:
                        if job["id"] not in self.ticks:
                            self.report(f"+{time.time() - self.t0:5.1f}s  cron fired (run {len(self.ticks) + 1})")
                        self.ticks[job["id"]] = state

    def _done(self) -> bool:
        named = all(self.states.get(label) in TERMINAL for label in self.ids)
        # A scheduler pass that read the repeatable just before the removal may still enqueue one
        # run (or write the definition back): wait out one worker scan interval after removing it.
        settled = self.repeatable_removed and time.monotonic() - self.removed_at >= SETTLE
        return named and settled and all(state in TERMINAL for state in self.ticks.values())

    async def _watch(self) -> None:
        while True:
            await self._poll()
            fired = sum(state == "completed" for state in self.ticks.values())
            if fired >= self.cron_fires and not self.repeatable_removed:
                await self._remove_repeatable()
                self.report(f"+{time.time() - self.t0:5.1f}s  cron repeatable removed after {fired} runs")
            elif self.repeatable_removed and await self._remove_repeatable():
                self.report(
                    f"+{time.time() - self.t0:5.1f}s  cron repeatable written back by a scheduler pass: removed again"
                )
            if self._done():
                return
            await asyncio.sleep(0.3)

    async def _outcome(self, timed_out: bool, promoted: int) -> Outcome:
        with self.ledger.quiet():
            await self._poll()
            failed = {job["id"] for job in await self.backend.list_jobs(QUEUE, "failed")}
            aggregate = self.ids.get("aggregate")  # missing only if the run timed out while submitting
            result = await self.backend.get_job_result(QUEUE, aggregate) if aggregate else None
        rows, background = self._rows()
        facts = self._flow_facts()
        self._notes(rows, facts, result)
        return Outcome(
            rows=rows,
            checks=self._checks(facts, result, failed),
            elapsed=round(time.time() - self.t0, 2),
            calls_total=len(self.ledger.calls),
            calls_background=round(background, 1),
            by_operation=dict(self.ledger.by_operation().most_common()),
            scanner_promoted=promoted,
            timed_out=timed_out,
            details={
                "aggregate_result": result,
                "retry_gaps": [round(gap, 3) for gap in facts.gaps],
                "transforms_overlapped": facts.overlapped,
            },
        )

    def _rows(self) -> tuple[list[JobRow], float]:
        """A row per named job and per cron run, with the calls each cost; and the calls no job named."""
        rows = [self._row(label, job_id) for label, job_id in self.ids.items()]
        for n, (job_id, state) in enumerate(self.ticks.items(), 1):
            rows.append(JobRow(f"cron #{n}", "tick", job_id, "completed", state, int(state == "completed")))
        ticks = sorted(a.started for a in TIMELINE.attempts["cron"])
        for row, started in zip(rows[len(self.ids) :], ticks, strict=False):
            row.started = row.finished = self._since(started)
        per_job, background = self.ledger.attribute(row.job_id for row in rows)
        for row in rows:
            row.calls = round(per_job[row.job_id], 1)
        return rows, background

    def _flow_facts(self) -> _Facts:
        """What the attempts show: the flow's order and overlap, the retry gaps."""
        flow = {label: TIMELINE.attempts[label] for label in ("ingest", *FACTORS, "aggregate")}
        ordered = all(a for a in flow.values()) and all(
            (flow["ingest"][-1].finished or 0)
            <= flow[label][0].started
            <= (flow[label][-1].finished or 0)
            <= flow["aggregate"][0].started
            for label in FACTORS
        )
        a, b = (flow[label][0] if flow[label] else None for label in FACTORS)
        overlapped = bool(a and b and a.finished and b.finished and a.started < b.finished and b.started < a.finished)
        failing = TIMELINE.attempts["failing"]
        gaps = [later.started - (earlier.finished or later.started) for earlier, later in itertools.pairwise(failing)]
        return _Facts(list(flow), ordered, overlapped, len(failing), gaps)

    def _notes(self, rows: list[JobRow], facts: _Facts, result: Any) -> None:
        """Fill the ``note`` of the named jobs' rows (a timed-out run may lack some)."""
        rows_by = {row.label: row for row in rows}
        spare = JobRow("", "", "", "")  # takes the notes of jobs a timed-out run never submitted

        def row_of(label: str) -> JobRow:
            return rows_by.get(label, spare)

        row_of("aggregate").note = f"result {result} (expected {EXPECTED_TOTAL})"
        for label in FACTORS:
            row_of(label).note = "ran in parallel with its sibling" if facts.overlapped else "ran one after the other"
        if delayed := TIMELINE.attempts["delayed"]:
            late, due = delayed[0].started - self.due, self.due - self.t0
            row_of("delayed").note = f"due +{due:.1f}s; delay store, then the scanner; started {late:.2f}s after due"
        row_of("failing").note = (
            "retried after " + ", ".join(f"{gap:.1f}s" for gap in facts.gaps) + " → failed (AsyncMQ's DLQ)"
        )

    def _checks(self, facts: _Facts, result: Any, failed: set[str]) -> dict[str, bool]:
        """Each check of the demo and whether it held."""
        delayed, gaps = TIMELINE.attempts["delayed"], facts.gaps
        return {
            "flow: all four steps completed": all(self.states.get(label) == "completed" for label in facts.flow),
            "flow: every step started after its parents finished": facts.ordered,
            f"flow: aggregate result is {EXPECTED_TOTAL}": result == EXPECTED_TOTAL,
            "delayed: held in the delay store, not on the broker": self.held_in_delay_store,
            "delayed: completed, never before its due time": self.states.get("delayed") == "completed"
            and bool(delayed)
            and delayed[0].started >= self.due,
            f"failing: {RETRIES + 1} attempts, then dead-lettered": self.states.get("failing") == "failed"
            and facts.failing_attempts == RETRIES + 1
            and self.ids.get("failing") in failed,
            "failing: each retry waited its backoff": len(gaps) == RETRIES
            and all(gap >= BACKOFF**n - 0.05 for n, gap in enumerate(gaps, 1)),
            f"cron: fired at least {self.cron_fires} times, every run completed, then removed": self.repeatable_removed
            and len(self.ticks) >= self.cron_fires
            and all(state == "completed" for state in self.ticks.values()),
        }

    def _row(self, label: str, job_id: str) -> JobRow:
        attempts = TIMELINE.attempts[label]
        task_name = {"delayed": "report", "failing": "flaky", "aggregate": "aggregate", "ingest": "ingest"}
        return JobRow(
            label=label,
            task=task_name.get(label, "transform"),
            job_id=job_id,
            expected="failed" if label == "failing" else "completed",
            state=self.states.get(label),
            attempts=len(attempts),
            started=self._since(attempts[0].started) if attempts else None,
            finished=self._since(attempts[-1].finished) if attempts else None,
        )
