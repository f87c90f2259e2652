"""SQSBackend cost and throughput benchmark, on this machine.

API calls are *counted* (every botocore call of the backend's clients, by
service and operation), not timed:

* ``bulk``: jobs arrive through AsyncMQ's ``bulk_enqueue`` (chunks of 100);
* ``concurrent``: producers add jobs concurrently (the transport batches their
  sends);
* ``sequential``: one producer awaits each ``Queue.add`` in turn;
* ``idle``: a worker with nothing to do, calls per second.

In each scenario AsyncMQ's own ``run_worker`` (concurrency N) runs the jobs.

Each call is classed as **per job** or **background**. Background calls are
those of AsyncMQ's periodic loops, which run per worker and per second whether
jobs flow or not: the delayed-job scanner (``promote_due_delayed``), the
repeatable scheduler (its lock, ``get_due_repeatables``, ``list_repeatables``),
the worker registry heartbeat, the paused-flag check, the stalled-job check, and
receives that came back empty. Counting starts once the worker runs: its first
delay scan reads the delay store's whole lookback (once per process). What is
left is what jobs cost. So a run reports ``per_job`` calls (independent of how
fast the emulator is), ``background_per_s`` calls, and their sum per job at the
throughput of this run (``all_per_job``): ``all = per_job + background_per_s /
jobs_per_s``. On a real service the throughput, and with it the background share,
is higher than on an emulator that applies requests one at a time.

Throughput of the ``concurrent`` scenario is reported as a ratio against AsyncMQ's
``RedisBackend`` running the same jobs with the same worker in the same script.

SQS is ElasticMQ and DynamoDB the moto server unless ``--sqs-endpoint`` /
``--dynamodb-endpoint`` name running ones. moto applies DynamoDB requests one at
a time, so the jobs/s mostly measure the emulator. Every loop is bounded;
traffic stays on 127.0.0.1.

Usage::

    python benchmarks/sqs_cost.py [--jobs 1000] [--concurrency 10] [--idle-seconds 10] [--store dynamodb|redis]
        [--priority-lanes N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import logging
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from asyncmq.backends.redis import RedisBackend  # noqa: E402
from asyncmq.jobs import Job  # noqa: E402
from asyncmq.queues import Queue  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from asyncmq.tasks import task  # noqa: E402

from asyncmq_cloud import SQSBackend  # noqa: E402
from asyncmq_cloud.config import LifecycleConfig  # noqa: E402

QUEUE = "bench"
#: A worker's first delay scan reads the delay store's whole lookback (one Query per
#: bucket, once per process): counting starts after it.
WARM_UP_SECONDS = 3.0


@task(queue=QUEUE)
async def noop(i: int) -> int:
    return i


TASK_ID = f"{noop.__module__}.noop" if hasattr(noop, "__module__") else "__main__.noop"


#: True inside a call made by one of AsyncMQ's periodic loops (see the module docstring).
BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("background", default=False)
#: Backend methods only AsyncMQ's periodic loops call.
PERIODIC = (
    "promote_due_delayed",
    "get_due_repeatables",
    "list_repeatables",
    "register_worker",
    "deregister_worker",
    "is_queue_paused",
    "fetch_stalled_jobs",
)


class CallCounter:
    """Counts every botocore call made through the hooked clients, per job or background."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.background: Counter[str] = Counter()

    def clear(self) -> None:
        self.calls.clear()
        self.background.clear()

    def hook(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def after_call(model: Any, parsed: Any, **_: Any) -> None:
            name = f"{service}.{model.name}"
            empty_receive = model.name == "ReceiveMessage" and not parsed.get("Messages")
            (self.background if BACKGROUND.get() or empty_receive else self.calls)[name] += 1

        client.meta.events.register("after-call", after_call)

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        """(per-job calls, background calls) by service."""
        out: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
        for counter, total in zip((self.calls, self.background), out, strict=True):
            for name, count in counter.items():
                total[name.split(".")[0]] += count
        return dict(out[0]), dict(out[1])


def mark_background(backend: Any) -> None:
    """Run the periodic loops' backend calls (and their lock) with ``BACKGROUND`` set."""

    def wrap(fn: Any) -> Any:
        async def marked(*args: Any, **kwargs: Any) -> Any:
            token = BACKGROUND.set(True)
            try:
                return await fn(*args, **kwargs)
            finally:
                BACKGROUND.reset(token)

        return marked

    for name in PERIODIC:
        setattr(backend, name, wrap(getattr(backend, name)))
    create_lock = backend.create_lock

    async def create_marked_lock(*args: Any, **kwargs: Any) -> Any:
        lock = await create_lock(*args, **kwargs)
        for name in ("try_acquire", "acquire", "release"):
            setattr(lock, name, wrap(getattr(lock, name)))
        return lock

    backend.create_lock = create_marked_lock


STORE: dict[str, Any] = {"kind": "dynamodb", "redis_url": "", "lanes": 1}


def priority(i: int) -> int:
    """Job ``i``'s AsyncMQ priority: the default (5) with one lane; spread over 1 .. 9 with lanes."""
    return 5 if STORE["lanes"] == 1 else 1 + i % 9


def store_urls(run: str) -> tuple[str, str]:
    if STORE["kind"] == "redis":
        url = f"{STORE['redis_url']}?prefix=bench-{run}"
        return url, url
    return f"dynamodb://bench-jobs-{run}", f"dynamodb://bench-delays-{run}"


async def sqs_backend(prefix: str, run: str, counter: CallCounter | None) -> SQSBackend:
    store, delays = store_urls(run)
    backend = SQSBackend(
        queue_prefix=prefix,
        store=store,
        delay_store=delays,
        config=LifecycleConfig(receive_wait=1.0),
        priority_lanes=STORE["lanes"],
    )
    await backend.provision([QUEUE])
    if counter is not None:
        counter.hook(await backend.clients.sqs())
        counter.hook(await backend.clients.dynamodb())
        mark_background(backend)
    return backend


async def wait_completed(backend: Any, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (await backend.get_job_counts(QUEUE, "completed"))["completed"] < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all {total} jobs completed in {timeout}s")
        await asyncio.sleep(0.5)


async def produce(backend: Any, jobs: int, mode: str) -> None:
    queue = Queue(QUEUE, backend=backend)
    if mode == "sequential":
        for i in range(jobs):
            await queue.add(TASK_ID, args=[i], priority=priority(i))
    elif mode == "concurrent":
        for start in range(0, jobs, 100):
            adds = (queue.add(TASK_ID, args=[i], priority=priority(i)) for i in range(start, min(jobs, start + 100)))
            await asyncio.gather(*adds)
    else:  # bulk: AsyncMQ's bulk_enqueue, 100 jobs per call
        for start in range(0, jobs, 100):
            chunk = [
                Job(task_id=TASK_ID, args=[i], kwargs={}, priority=priority(i)).to_dict()
                for i in range(start, min(jobs, start + 100))
            ]
            await backend.bulk_enqueue(QUEUE, chunk)


async def run_jobs(
    backend: Any, jobs: int, concurrency: int, *, mode: str, observer: Any = None, counter: CallCounter | None = None
) -> float:
    """Produce ``jobs`` and run them with AsyncMQ's worker; returns seconds from first add to last completion.

    ``observer`` (a second, un-hooked backend on the same store) does the polling,
    so the benchmark's own progress checks are not counted as the backend's cost.
    """
    worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=concurrency))
    await asyncio.sleep(WARM_UP_SECONDS)  # the worker's start-up reads are not a per-job cost
    if counter is not None:
        counter.clear()
    started = time.perf_counter()
    await produce(backend, jobs, mode)
    await wait_completed(observer or backend, jobs, timeout=600)
    elapsed = time.perf_counter() - started
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    return elapsed


async def scenario(mode: str, jobs: int, concurrency: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    counter = CallCounter()
    backend = await sqs_backend(f"b{run}-", run, counter)
    observer = await sqs_backend(f"b{run}-", run, None)
    try:
        elapsed = await run_jobs(backend, jobs, concurrency, mode=mode, observer=observer, counter=counter)
    finally:
        await backend.close()
        await observer.close()
    per_job, background = counter.totals()
    jobs_per_s = jobs / elapsed
    background_per_s = sum(background.values()) / elapsed
    return {
        "scenario": mode,
        "store": STORE["kind"],
        "jobs": jobs,
        "per_job": {
            "sqs": round(per_job.get("sqs", 0) / jobs, 3),
            "all": round(sum(per_job.values()) / jobs, 3),
        },
        "background_per_s": {k: round(v / elapsed, 2) for k, v in sorted(background.items())},
        "all_per_job": {
            "sqs": round((per_job.get("sqs", 0) + background.get("sqs", 0)) / jobs, 3),
            "all": round((sum(per_job.values()) + sum(background.values())) / jobs, 3),
        },
        "calls": dict(sorted(counter.calls.items())),
        "background_calls": dict(sorted(counter.background.items())),
        "jobs_per_s": round(jobs_per_s, 1),
        "background_share_per_job": round(background_per_s / jobs_per_s, 3),
    }


async def idle(seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    counter = CallCounter()
    backend = await sqs_backend(f"i{run}-", run, counter)
    try:
        worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=4))
        await asyncio.sleep(WARM_UP_SECONDS)  # start-up calls are not idle cost
        counter.clear()
        await asyncio.sleep(seconds)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    finally:
        await backend.close()
    calls = counter.calls + counter.background
    services: Counter[str] = Counter()
    for name, count in calls.items():
        services[name.split(".")[0]] += count
    return {
        "scenario": "idle",
        "seconds": seconds,
        "sqs_calls_per_s": round(services["sqs"] / seconds, 2),
        "dynamodb_calls_per_s": round(services["dynamodb"] / seconds, 2),
        "calls": dict(sorted(calls.items())),
    }


async def redis_baseline(url: str, jobs: int, concurrency: int) -> float:
    backend = RedisBackend(url)
    try:
        elapsed = await run_jobs(backend, jobs, concurrency, mode="concurrent")
    finally:
        await backend.close() if hasattr(backend, "close") else None
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--sqs-endpoint")
    parser.add_argument("--dynamodb-endpoint")
    parser.add_argument("--redis-url")
    parser.add_argument("--store", choices=["dynamodb", "redis"], default="dynamodb")
    parser.add_argument(
        "--priority-lanes", type=int, default=1, help="SQSBackend priority_lanes (jobs then spread over priorities 1-9)"
    )
    args = parser.parse_args()
    STORE["kind"] = args.store
    STORE["lanes"] = args.priority_lanes
    logging.getLogger("redis").setLevel(logging.WARNING)  # AsyncMQ puts the root logger at DEBUG
    import services  # scripts/services.py

    started: list[Any] = []
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        for flag, name, var in (
            (args.sqs_endpoint, "elasticmq", "AWS_ENDPOINT_URL_SQS"),
            (args.dynamodb_endpoint, "moto", "AWS_ENDPOINT_URL_DYNAMODB"),
            (args.redis_url, "redis", None),
        ):
            url = flag
            if not url:
                service = services.start(name)
                started.append(service)
                url = service.url
            if var:
                os.environ[var] = url
            else:
                args.redis_url = url
        STORE["redis_url"] = args.redis_url
        results = []
        for mode in ("concurrent", "bulk", "sequential"):
            print(f"scenario {mode}: {args.jobs} jobs ...", flush=True)
            results.append(asyncio.run(scenario(mode, args.jobs, args.concurrency)))
            print(json.dumps(results[-1], indent=2), flush=True)
        print(f"idle worker for {args.idle_seconds}s ...", flush=True)
        print(json.dumps(asyncio.run(idle(args.idle_seconds)), indent=2), flush=True)
        print("baseline: AsyncMQ RedisBackend, same jobs and worker ...", flush=True)
        baseline = asyncio.run(redis_baseline(args.redis_url, args.jobs, args.concurrency))
        ratio = results[0]["jobs_per_s"] / baseline if baseline else None
        print(
            json.dumps(
                {
                    "redisbackend_jobs_per_s": round(baseline, 1),
                    "sqs_concurrent_jobs_per_s": results[0]["jobs_per_s"],
                    "ratio_vs_redisbackend": round(ratio, 3) if ratio else None,
                },
                indent=2,
            ),
            flush=True,
        )
    finally:
        for service in started:
            service.stop()


if __name__ == "__main__":
    main()
