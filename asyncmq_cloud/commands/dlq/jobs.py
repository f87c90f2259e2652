"""``asyncmq-cloud dlq ... --source jobs``: AsyncMQ's failed jobs, in the state store (every backend).

``list`` pages the ``failed`` state oldest first; ``show`` prints one job's record;
``redrive`` is ``retry_job`` per job (``failed -> waiting`` and a new reference, one
conditional store write: a job is either still failed or redriven, never both, whatever
the moment the command stops); ``purge`` is ``remove_job`` of a job still failed (one
conditional removal). Both take the ids
first (up to ``--limit``), then act on each at ``--rate``; a job that left ``failed``
meanwhile (retried by someone else) is counted as skipped.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from asyncmq_cloud.commands.dlq._run import Run
from asyncmq_cloud.core.bodies import metadata_of
from asyncmq_cloud.core.lifecycle import CloudBackend

PAGE = 100
#: ``SomeError: message`` (or ``pkg.SomeError: ...``), the line a traceback ends with.
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Group)?: ")
_GROUPS = ("ExceptionGroup:", "BaseExceptionGroup:")


def _when(stamp: object) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def describe(job: dict[str, Any]) -> str:
    """One line: id, task, attempts, when it failed, the error (a traceback's exception line)."""
    failed_at = _when(job.get("failed_at") or job.get("updated_at"))
    error = error_line(str(job.get("last_error") or ""))[:120]
    return f"{job.get('id')}  {job.get('task')}  attempts={job.get('retries', 0)}  failed={failed_at}  {error}"


def error_line(text: str) -> str:
    """The exception line of a traceback (``RuntimeError: ...``), inside an exception group too;
    else the last line."""
    lines = [line.strip().lstrip("|").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("+", "File ", "^", "~"))]
    raised = [line for line in lines if _RAISED.match(line) and not line.startswith(_GROUPS)]
    return (raised or lines or [""])[-1]


async def failed_jobs(backend: CloudBackend, queue: str, limit: int | None) -> tuple[list[dict[str, Any]], int]:
    """The failed jobs of ``queue``, oldest first, at most ``limit``; and how many there are."""
    jobs: list[dict[str, Any]] = []
    page, total = 1, 0
    while limit is None or len(jobs) < limit:
        found = await backend.inspect_jobs(queue, "failed", page=page, size=PAGE, sort="oldest")
        total = found.total
        jobs += found.jobs
        if not found.jobs or page >= found.total_pages:
            break
        page += 1
    return (jobs if limit is None else jobs[:limit]), total


async def list_failed(backend: CloudBackend, queue: str, limit: int | None, run: Run) -> None:
    jobs, total = await failed_jobs(backend, queue, limit)
    for job in jobs:
        print(describe(job), flush=True)
        run.done("listed")
    run.total = total


async def show_failed(backend: CloudBackend, queue: str, job_id: str) -> dict[str, Any]:
    """The job's record; :class:`LookupError` when there is none."""
    job = await backend.get_job(queue, job_id)
    if job is None:
        raise LookupError(f"no job {job_id!r} in queue {queue!r}")
    print(json.dumps(job, indent=2, sort_keys=True, default=str), flush=True)
    return job


async def act_on_failed(backend: CloudBackend, queue: str, limit: int | None, run: Run, dry_run: bool) -> None:
    """``redrive`` (``retry_job``) or ``purge`` (``remove_job``) each failed job, at the run's rate."""
    jobs, _ = await metadata_of(failed_jobs(backend, queue, limit))  # ids only: no payload body fetched
    run.total = len(jobs)
    verb = "redriven" if run.action == "redrive" else "purged"
    for job in jobs:
        if run.stopped:
            break
        if dry_run:
            run.done(f"would be {verb}")
            continue
        await run.pace()
        job_id = str(job["id"])
        if run.action == "redrive":
            changed = await backend.retry_job(queue, job_id)
        else:  # only a job still failed, in one step: one retried meanwhile stays
            changed = await backend.remove_job(queue, job_id, expect_state="failed")
        run.done(verb if changed else "skipped (no longer failed)")
