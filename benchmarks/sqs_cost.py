"""SQSBackend cost and throughput benchmark, on this machine.

API calls are deterministic, so they are *counted* (every botocore call of the
backend's clients, by service and operation) rather than timed:

* ``concurrent``: producers add jobs concurrently (the transport batches their
  sends), AsyncMQ's own ``run_worker`` (concurrency N, prefetch 10) runs them;
* ``sequential``: one producer awaits each ``Queue.add`` in turn;
* ``idle``: a worker with nothing to do, SQS calls per second.

Throughput of the ``concurrent`` scenario is reported as a ratio against AsyncMQ's
``RedisBackend`` running the same jobs with the same worker in the same script.

SQS is ElasticMQ and DynamoDB the moto server unless ``--sqs-endpoint`` /
``--dynamodb-endpoint`` name running ones. moto applies DynamoDB requests one at
a time, so the jobs/s mostly measure the emulator; the call counts do not depend
on it. Every loop is bounded; traffic stays on 127.0.0.1.

Usage::

    python benchmarks/sqs_cost.py [--jobs 1000] [--concurrency 10] [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from asyncmq.queues import Queue  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from asyncmq.tasks import task  # noqa: E402

from asyncmq_cloud import SQSBackend  # noqa: E402
from asyncmq_cloud.config import LifecycleConfig  # noqa: E402

QUEUE = "bench"


@task(queue=QUEUE)
async def noop(i: int) -> int:
    return i


TASK_ID = f"{noop.__module__}.noop" if hasattr(noop, "__module__") else "__main__.noop"


class CallCounter:
    """Counts every botocore call made through the hooked clients."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def hook(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def before_call(model: Any, **_: Any) -> None:
            self.calls[f"{service}.{model.name}"] += 1

        client.meta.events.register("before-call", before_call)

    def by_service(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for name, count in self.calls.items():
            out[name.split(".")[0]] += count
        return dict(out)


STORE = {"kind": "dynamodb", "redis_url": ""}


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
        config=LifecycleConfig(receive_wait=1.0, prefetch=10),
    )
    await backend.provision([QUEUE])
    if counter is not None:
        counter.hook(await backend.clients.sqs())
        counter.hook(await backend.clients.dynamodb())
    return backend


async def wait_completed(backend: Any, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (await backend.get_job_counts(QUEUE, "completed"))["completed"] < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all {total} jobs completed in {timeout}s")
        await asyncio.sleep(0.5)


async def run_jobs(backend: Any, jobs: int, concurrency: int, *, sequential: bool, observer: Any = None) -> float:
    """Produce ``jobs`` and run them with AsyncMQ's worker; returns seconds from first add to last completion.

    ``observer`` (a second, un-hooked backend on the same store) does the polling,
    so the benchmark's own progress checks are not counted as the backend's cost.
    """
    queue = Queue(QUEUE, backend=backend)
    worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=concurrency))
    started = time.perf_counter()
    if sequential:
        for i in range(jobs):
            await queue.add(TASK_ID, args=[i])
    else:
        for start in range(0, jobs, 100):
            await asyncio.gather(*(queue.add(TASK_ID, args=[i]) for i in range(start, min(jobs, start + 100))))
    await wait_completed(observer or backend, jobs, timeout=600)
    elapsed = time.perf_counter() - started
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    return elapsed


async def scenario(name: str, jobs: int, concurrency: int, sequential: bool) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    counter = CallCounter()
    backend = await sqs_backend(f"b{run}-", run, counter)
    observer = await sqs_backend(f"b{run}-", run, None)
    try:
        counter.calls.clear()  # provisioning is not a per-job cost
        elapsed = await run_jobs(backend, jobs, concurrency, sequential=sequential, observer=observer)
    finally:
        await backend.close()
        await observer.close()
    services = counter.by_service()
    return {
        "scenario": name,
        "store": STORE["kind"],
        "jobs": jobs,
        "sqs_calls_per_job": round(services.get("sqs", 0) / jobs, 3),
        "all_aws_calls_per_job": round(sum(services.values()) / jobs, 3),
        "calls": dict(sorted(counter.calls.items())),
        "jobs_per_s": round(jobs / elapsed, 1),
    }


async def idle(seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    counter = CallCounter()
    backend = await sqs_backend(f"i{run}-", run, counter)
    try:
        worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=4))
        await asyncio.sleep(2)  # start-up calls are not idle cost
        counter.calls.clear()
        await asyncio.sleep(seconds)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    finally:
        await backend.close()
    services = counter.by_service()
    return {
        "scenario": "idle",
        "seconds": seconds,
        "sqs_calls_per_s": round(services.get("sqs", 0) / seconds, 2),
        "dynamodb_calls_per_s": round(services.get("dynamodb", 0) / seconds, 2),
        "calls": dict(sorted(counter.calls.items())),
    }


async def redis_baseline(url: str, jobs: int, concurrency: int) -> float:
    backend = RedisBackend(url)
    try:
        elapsed = await run_jobs(backend, jobs, concurrency, sequential=False)
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
    args = parser.parse_args()
    STORE["kind"] = args.store
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
        for name, sequential in (("concurrent", False), ("sequential", True)):
            print(f"scenario {name}: {args.jobs} jobs ...", flush=True)
            results.append(asyncio.run(scenario(name, args.jobs, args.concurrency, sequential)))
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
