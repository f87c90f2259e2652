"""``asyncmq-cloud worker`` drain benchmark (SQSBackend on ElasticMQ, Redis state store), on this machine.

Real worker processes run the e2e app (``tests/e2e/app``: each run appends ``start PID`` /
``done PID`` to a marker file, polled every 20 ms). Per round:

* ``drain``: a worker (concurrency 4) running 4 jobs of ``--job-seconds`` gets SIGTERM;
  reported: the drain time (signal -> exit) and its overhead beyond the jobs' own remaining
  run time (signal -> exit minus signal -> last ``done``);
* ``takeover``: a worker running one long job gets SIGTERM with ``--grace 1`` while a second
  worker idles; reported: the delay from the end of the grace to the job's start on the
  second worker, and the victim's exit time after the signal;
* ``baseline``: the same with AsyncMQ's own ``asyncmq worker start`` as the victim (SIGTERM
  kills it: exit code reported): the job starts again on the second worker only once its
  lease and SQS visibility (``--lease`` s) ran out.

Both victims use the same lease and visibility timeout (``--lease``), so the ratio
baseline / takeover delay is what the give-back saves on this machine. AsyncMQ's stalled
checker is off unless ``--stalled-check``: with it on, the baseline's takeover comes from
that checker once the job's heartbeat is ``stalled_threshold`` old (3 s in the e2e app)
rather than from the lease. Every wait is
bounded; traffic stays on 127.0.0.1.

Usage::

    python benchmarks/worker_drain.py [--rounds 3] [--job-seconds 2] [--lease 10]
        [--sqs-endpoint URL] [--redis-url URL]

Without ``--sqs-endpoint`` / ``--redis-url`` (or ``ELASTICMQ_ENDPOINT_URL`` / ``REDIS_URL``)
ElasticMQ and a redis-server are started through ``scripts/services.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from asyncmq.jobs import Job  # noqa: E402

from asyncmq_cloud import SQSBackend  # noqa: E402

BIN = Path(sys.executable).parent
QUEUE = "e2e"
TASK = "tests.e2e.app.tasks.work"
POLL = 0.02
#: Bound (s) on every wait of the script.
TIMEOUT = 120.0


@dataclass
class Bench:
    """One round's services, environment, log directory and processes."""

    sqs: str
    redis: str
    lease: int
    stalled_check: bool = False
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="worker-drain-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def env(self) -> dict[str, str]:
        store = f"{self.redis}?prefix=wd-{self.run}"
        return {
            **os.environ,
            "AWS_ENDPOINT_URL_SQS": self.sqs,
            "E2E_QUEUE_PREFIX": f"wd{self.run}-",
            "E2E_STORE": store,
            "E2E_DELAY_STORE": store,
            "E2E_VISIBILITY": str(self.lease),
            "E2E_LEASE": str(self.lease),
            "E2E_STALLED_CHECK": "1" if self.stalled_check else "0",
            "E2E_LOG_DIR": str(self.logdir),
            "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings.Settings",
            "PYTHONPATH": str(ROOT),
        }

    def start(self, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.logdir / f"worker-{len(self.procs)}.log").open("wb") as log:
            proc = subprocess.Popen(command, env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def cloud(self, *args: str) -> subprocess.Popen[bytes]:
        return self.start([str(BIN / "asyncmq-cloud"), "worker", QUEUE, *args])

    def runs(self, marker: str) -> list[str]:
        path = self.logdir / marker
        return path.read_text().split("\n")[:-1] if path.exists() else []

    def backend(self) -> SQSBackend:
        store = f"{self.redis}?prefix=wd-{self.run}"
        return SQSBackend(queue_prefix=f"wd{self.run}-", store=store, delay_store=store)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


async def until(check: Any, what: str) -> float:
    """Poll ``check`` (a function, its result may be awaitable) until true; returns ``time.monotonic()`` then."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL)


async def provision(bench: Bench) -> None:
    backend = bench.backend()
    try:
        await backend.provision([QUEUE])
    finally:
        await backend.close()


async def enqueue(bench: Bench, markers: list[str], seconds: float) -> None:
    backend = bench.backend()
    try:
        jobs = [Job(TASK, [m], {"seconds": seconds}).to_dict() for m in markers]
        await backend.bulk_enqueue(QUEUE, jobs)
    finally:
        await backend.close()


async def drain_round(bench: Bench, job_seconds: float) -> dict[str, float]:
    await provision(bench)
    victim = bench.cloud("--concurrency", "4", "--grace", str(job_seconds * 5))
    markers = [f"d{i}" for i in range(4)]
    await enqueue(bench, markers, job_seconds)
    await until(lambda: all(bench.runs(m) == [f"start {victim.pid}"] for m in markers), "4 running jobs")
    signalled = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    last_done = await until(lambda: all(len(bench.runs(m)) == 2 for m in markers), "the 4 jobs done")
    exited = await until(lambda: victim.poll() is not None, "the drained worker's exit")
    assert victim.returncode == 0, f"exit code {victim.returncode}"
    return {"drain_s": exited - signalled, "overhead_s": exited - last_done}


async def takeover_round(bench: Bench, victim_command: list[str], grace: float) -> dict[str, float]:
    await provision(bench)
    victim = bench.start(victim_command)
    marker = f"long-{uuid.uuid4().hex[:6]}"
    await enqueue(bench, [marker], 60.0)
    await until(lambda: bench.runs(marker) == [f"start {victim.pid}"], "the long job on the victim")
    other = bench.cloud("--concurrency", "2")
    backend = bench.backend()
    try:
        await until(lambda: _count_workers(backend, 2), "the second worker's registration")
    finally:
        await backend.close()
    signalled = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    started = await until(lambda: f"start {other.pid}" in bench.runs(marker), "the start on the other worker")
    exited = await until(lambda: victim.poll() is not None, "the victim's exit")
    return {
        "takeover_after_grace_s": started - signalled - grace,
        "victim_exit_s": exited - signalled,
        "victim_exit_code": float(victim.returncode or 0),
    }


async def _count_workers(backend: SQSBackend, count: int) -> bool:
    return len(await backend.list_workers()) >= count


def summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    drains: list[dict[str, float]] = []
    ours: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    for round_no in range(args.rounds):
        for kind in ("drain", "takeover", "baseline"):
            bench = Bench(args.sqs_endpoint, args.redis_url, args.lease, args.stalled_check)
            try:
                if kind == "drain":
                    drains.append(await drain_round(bench, args.job_seconds))
                elif kind == "takeover":
                    command = [str(BIN / "asyncmq-cloud"), "worker", QUEUE, "--concurrency", "1", "--grace", "1"]
                    ours.append(await takeover_round(bench, command, 1.0))
                else:
                    command = [str(BIN / "asyncmq"), "worker", "start", QUEUE, "--concurrency", "1"]
                    base.append(await takeover_round(bench, command, 0.0))
            finally:
                bench.stop()
            print(f"round {round_no + 1} {kind}: done", flush=True)
    ours_delay = summary([r["takeover_after_grace_s"] for r in ours])
    base_delay = summary([r["takeover_after_grace_s"] for r in base])
    return {
        "rounds": args.rounds,
        "job_seconds": args.job_seconds,
        "lease_and_visibility_s": args.lease,
        "asyncmq_stalled_check": args.stalled_check,
        "drain_s": summary([r["drain_s"] for r in drains]),
        "drain_overhead_s": summary([r["overhead_s"] for r in drains]),
        "takeover_after_grace_s": ours_delay,
        "asyncmq_cloud_worker_exit_s": summary([r["victim_exit_s"] for r in ours]),
        "asyncmq_cloud_worker_exit_codes": sorted({int(r["victim_exit_code"]) for r in ours}),
        "baseline_asyncmq_worker_start_takeover_s": base_delay,
        "baseline_exit_codes": sorted({int(r["victim_exit_code"]) for r in base}),
        "takeover_speedup_median": round(base_delay["median"] / max(ours_delay["median"], POLL), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--lease", type=int, default=10, help="lease_timeout and SQS visibility (s) of the workers")
    parser.add_argument(
        "--stalled-check", action="store_true", help="AsyncMQ's stalled checker on (the app's threshold: 3 s)"
    )
    parser.add_argument("--sqs-endpoint", default=os.environ.get("ELASTICMQ_ENDPOINT_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import services  # scripts/services.py

    started: list[Any] = []
    try:
        for attr, name in (("sqs_endpoint", "elasticmq"), ("redis_url", "redis")):
            if not getattr(args, attr):
                service = services.start(name)
                started.append(service)
                setattr(args, attr, service.url)
        os.environ["AWS_ENDPOINT_URL_SQS"] = args.sqs_endpoint  # the in-process producer's endpoint
        print(json.dumps(asyncio.run(measure(args)), indent=2), flush=True)
    finally:
        for service in started:
            service.stop()


if __name__ == "__main__":
    main()
