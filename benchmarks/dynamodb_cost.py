"""DynamoDBBackend cost, contention and throughput benchmark, on this machine.

DynamoDB calls are *counted* (every botocore call of each backend's client) and
classed per job or background exactly as in ``sqs_cost.py`` (background = AsyncMQ's
periodic loops and empty receives). ``--workers`` AsyncMQ workers (``run_worker``,
each with its own backend, as separate processes would have) race over one queue:

* ``per_job``: DynamoDB calls per completed job, background excluded;
* ``conditional_check_failures``: claims lost to a rival worker, per job and as a
  share of all claims (the price of contention);
* ``background_per_s`` and ``all_per_job`` at this run's throughput;
* throughput as a ratio against AsyncMQ's ``RedisBackend`` running the same jobs
  with the same number of workers in the same script.

DynamoDB is the moto server unless ``--dynamodb-endpoint`` names a running one.
moto applies requests one at a time, so jobs/s measure the emulator more than the
backend; the call counts do not depend on it. Bounded; traffic stays on 127.0.0.1.

Usage::

    python benchmarks/dynamodb_cost.py [--jobs 1000] [--workers 4] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from asyncmq.backends.redis import RedisBackend  # noqa: E402
from asyncmq.jobs import Job  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from sqs_cost import QUEUE, TASK_ID, WARM_UP_SECONDS, CallCounter, mark_background, wait_completed  # noqa: E402

from asyncmq_cloud import DynamoDBBackend  # noqa: E402
from asyncmq_cloud.config import LifecycleConfig  # noqa: E402


def conditional_failure_hook(client: Any, failures: Counter[str]) -> None:
    def after_call(model: Any, parsed: Any, **_: Any) -> None:
        error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
        if error.get("Code") == "ConditionalCheckFailedException":
            failures[model.name] += 1

    client.meta.events.register("after-call", after_call)


async def backend_for(run: str, counter: CallCounter | None, failures: Counter[str] | None) -> DynamoDBBackend:
    backend = DynamoDBBackend(
        table=f"bench-ddb-jobs-{run}",
        delay_store=f"dynamodb://bench-ddb-delays-{run}",
        config=LifecycleConfig(receive_wait=1.0),
    )
    await backend.provision([QUEUE])
    if counter is not None and failures is not None:
        client = await backend.clients.dynamodb()
        counter.hook(client)
        conditional_failure_hook(client, failures)
        mark_background(backend)
    return backend


def job_dicts(total: int) -> list[dict[str, Any]]:
    return [Job(task_id=TASK_ID, args=[i], kwargs={}).to_dict() for i in range(total)]


async def race(jobs: int, workers: int, concurrency: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    counter = CallCounter()
    failures: Counter[str] = Counter()
    backends = [await backend_for(run, counter, failures) for _ in range(workers)]
    producer = await backend_for(run, None, None)
    tasks = [asyncio.create_task(run_worker(QUEUE, backend=b, concurrency=concurrency)) for b in backends]
    try:
        await asyncio.sleep(WARM_UP_SECONDS)  # start-up reads (delay lookback) are not per-job cost
        counter.clear()
        failures.clear()
        await producer.bulk_enqueue(QUEUE, job_dicts(jobs))  # producer calls are not counted: add 1/25 per job
        started = time.perf_counter()
        await wait_completed(producer, jobs, timeout=900)
        elapsed = time.perf_counter() - started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for backend in [*backends, producer]:
            await backend.close()
    per_job, background = counter.totals()
    claims = counter.calls["dynamodb.UpdateItem"]  # claim + completion per job, + lost claims
    lost = failures["UpdateItem"]
    return {
        "scenario": "race",
        "jobs": jobs,
        "workers": workers,
        "concurrency": concurrency,
        "per_job": round(per_job.get("dynamodb", 0) / jobs + 1 / 25, 3),
        "calls": dict(sorted(counter.calls.items())),
        "conditional_check_failures": {
            "per_job": round(lost / jobs, 3),
            "share_of_claims": round(lost / max(1, claims - jobs), 3),
        },
        "background_per_s": round(sum(background.values()) / elapsed, 2),
        "background_calls": dict(sorted(counter.background.items())),
        "all_per_job": round((sum(per_job.values()) + sum(background.values())) / jobs + 1 / 25, 3),
        "jobs_per_s": round(jobs / elapsed, 1),
    }


async def idle(seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    counter = CallCounter()
    failures: Counter[str] = Counter()
    backend = await backend_for(run, counter, failures)
    try:
        worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=4))
        await asyncio.sleep(WARM_UP_SECONDS)
        counter.clear()
        await asyncio.sleep(seconds)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    finally:
        await backend.close()
    receives = sum(n for name, n in (counter.calls + counter.background).items() if name == "dynamodb.Query")
    return {
        "scenario": "idle",
        "seconds": seconds,
        "all_dynamodb_calls_per_s": round(sum((counter.calls + counter.background).values()) / seconds, 2),
        "queries_per_s": round(receives / seconds, 2),
        "calls": dict(sorted((counter.calls + counter.background).items())),
    }


async def redis_baseline(url: str, jobs: int, workers: int, concurrency: int) -> float:
    backend = RedisBackend(url)
    queue = f"{QUEUE}-{uuid.uuid4().hex[:6]}"
    tasks = [asyncio.create_task(run_worker(queue, backend=backend, concurrency=concurrency)) for _ in range(workers)]
    try:
        await backend.bulk_enqueue(queue, job_dicts(jobs))
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while (await backend.get_job_counts(queue, "completed"))["completed"] < jobs:
            if time.monotonic() > deadline:
                raise TimeoutError("baseline did not finish")
            await asyncio.sleep(0.2)
        return jobs / (time.perf_counter() - started)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--dynamodb-endpoint")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    logging.getLogger("redis").setLevel(logging.WARNING)  # AsyncMQ puts the root logger at DEBUG
    import services  # scripts/services.py

    started: list[Any] = []
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        for flag, name in ((args.dynamodb_endpoint, "moto"), (args.redis_url, "redis")):
            url = flag
            if not url:
                service = services.start(name)
                started.append(service)
                url = service.url
            if name == "moto":
                os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = url
            else:
                args.redis_url = url
        print(f"race: {args.jobs} jobs, {args.workers} workers x concurrency {args.concurrency} ...", flush=True)
        result = asyncio.run(race(args.jobs, args.workers, args.concurrency))
        print(json.dumps(result, indent=2), flush=True)
        print(f"idle worker for {args.idle_seconds}s ...", flush=True)
        print(json.dumps(asyncio.run(idle(args.idle_seconds)), indent=2), flush=True)
        print("baseline: AsyncMQ RedisBackend, same jobs and workers ...", flush=True)
        baseline = asyncio.run(redis_baseline(args.redis_url, args.jobs, args.workers, args.concurrency))
        summary = {
            "redisbackend_jobs_per_s": round(baseline, 1),
            "dynamodb_jobs_per_s": result["jobs_per_s"],
            "ratio_vs_redisbackend": round(result["jobs_per_s"] / baseline, 3),
        }
        print(json.dumps(summary, indent=2), flush=True)
    finally:
        for service in started:
            service.stop()


if __name__ == "__main__":
    main()
