"""The workload ``asyncmq-cloud cost`` prices: jobs added and run to completion, then idle.

Per backend, on uniquely named tables and queues of the embedded endpoint, at default
settings: ``--jobs`` no-op jobs added with ``Queue.add`` (20 at a time, as a web app adds
them), drained by one in-process AsyncMQ worker (concurrency 10), then the same worker left
idle for ``--idle-seconds``. Everything the backend sends while the jobs are added and run
is their cost (its background calls included: empty receives, scheduler, delay scans);
what it sends while idle is the idle cost. The command watches the jobs through requests
signed with :data:`~asyncmq_cloud.commands.cost.meter.QUIET_KEY`, which are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asyncmq.queues import Queue
from asyncmq.runners import run_worker
from asyncmq.tasks import task

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.commands.cost.meter import QUIET_KEY, Meter
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import ConfigurationError

QUEUE = "cost"
TASK_ID = f"{__name__}.noop"
CONCURRENCY = 10
ADD_BATCH = 20


@task(queue=QUEUE)
async def noop(i: int) -> int:
    return i


@dataclass
class Measured:
    """What one backend cost: calls and billed units for the jobs, and per second idle."""

    backend: str
    jobs: int
    seconds: float
    calls: Counter[str]
    billed: Counter[str]
    idle_seconds: float = 0.0
    idle_calls: Counter[str] = field(default_factory=Counter)
    idle_billed: Counter[str] = field(default_factory=Counter)
    fifo: bool = False


def build(kind: str, prefix: str, clients: AwsClients, bootstrap: str | None, fifo: bool) -> CloudBackend:
    """A backend at default settings on tables and queues named under ``prefix``."""
    from asyncmq_cloud.backends.dynamodb import DynamoDBBackend
    from asyncmq_cloud.backends.sqs import SQSBackend

    jobs, delays = f"dynamodb://{prefix}jobs", f"dynamodb://{prefix}delays"
    if kind == "sqs":
        return SQSBackend(
            queue_prefix=prefix, fifo=fifo, store=jobs, delay_store=delays, clients=clients, create_missing=True
        )
    if kind == "dynamodb":
        return DynamoDBBackend(table=f"{prefix}jobs", delay_store=delays, clients=clients, create_missing=True)
    if kind == "kafka":
        from asyncmq_cloud.backends.kafka import KafkaBackend

        if not bootstrap:
            raise ConfigurationError("--backend kafka needs a broker: --kafka HOST:PORT or $KAFKA_BOOTSTRAP_SERVERS")
        return KafkaBackend(
            bootstrap_servers=bootstrap, topic_prefix=prefix, store=jobs, delay_store=delays, clients=clients,
            create_missing=True,
        )  # fmt: skip
    raise ConfigurationError(f"--backend must be sqs, dynamodb or kafka, not {kind!r}")


async def measure(
    kind: str,
    endpoint: str,
    meter: Meter,
    *,
    jobs: int,
    idle_seconds: float,
    bootstrap: str | None = None,
    fifo: bool = False,
    progress: Callable[[str], None] = print,
) -> Measured:
    prefix = f"cost-{uuid.uuid4().hex[:6]}-"
    clients = AwsClients(endpoint_url=endpoint, region_name="us-east-1", client_kwargs=_credentials("cost"))
    quiet = AwsClients(endpoint_url=endpoint, region_name="us-east-1", client_kwargs=_credentials(QUIET_KEY))
    backend, watcher = build(kind, prefix, clients, bootstrap, fifo), build(kind, prefix, quiet, bootstrap, fifo)
    worker: asyncio.Task[Any] | None = None
    try:
        await backend.provision([QUEUE])
        meter.reset(prefix)
        began = time.monotonic()
        queue = Queue(QUEUE, backend=backend)
        worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=CONCURRENCY))
        for start in range(0, jobs, ADD_BATCH):
            await asyncio.gather(*(queue.add(TASK_ID, args=[i]) for i in range(start, min(jobs, start + ADD_BATCH))))
            progress(f"{kind}: added {min(jobs, start + ADD_BATCH)}/{jobs}")
        await _drained(watcher, jobs, kind, progress)
        calls, billed = meter.snapshot()
        measured = Measured(kind, jobs, time.monotonic() - began, calls, billed, fifo=fifo and kind == "sqs")
        meter.reset(prefix)
        progress(f"{kind}: idle for {idle_seconds:g} s")
        idle_began = time.monotonic()
        await asyncio.sleep(idle_seconds)
        measured.idle_calls, measured.idle_billed = meter.snapshot()
        measured.idle_seconds = time.monotonic() - idle_began
        return measured
    finally:
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        for each in (backend, watcher):
            with contextlib.suppress(Exception):
                await each.close()
        await clients.close()
        await quiet.close()


async def _drained(watcher: CloudBackend, jobs: int, kind: str, progress: Callable[[str], None]) -> None:
    done = -1
    while done < jobs:
        counts = await watcher.get_job_counts(QUEUE, "completed", "failed")
        if counts["failed"]:
            raise RuntimeError(f"{kind}: {counts['failed']} job(s) failed; the workload's jobs cannot fail")
        if counts["completed"] != done:
            done = counts["completed"]
            progress(f"{kind}: completed {done}/{jobs}")
        await asyncio.sleep(0.25)


def _credentials(key: str) -> dict[str, str]:
    return {"aws_access_key_id": key, "aws_secret_access_key": "embedded"}
