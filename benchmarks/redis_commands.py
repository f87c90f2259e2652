"""Server-side Redis commands per job, end to end: this project's Redis store against AsyncMQ's.

Each round adds ``--jobs`` no-op jobs with ``Queue.add`` (20 at a time) and drains them with
AsyncMQ's worker (``run_worker``, concurrency 10), once on ``SQSBackend`` (ElasticMQ) with the
Redis state and delay stores and once on AsyncMQ's own ``RedisBackend``, on the same Redis
server, started for this run alone. What is counted is what the server executed, from
``INFO commandstats`` before and after: every command, those run inside Lua scripts
included (an ``EVALSHA`` and each ``redis.call`` of its script), the worker's periodic loops
included. The ``INFO`` calls themselves are left out, and the run's own watching is a
counter in the task plus a few ``get_job_counts`` at the end (counted, a few dozen commands
per round). Issue 19's target: <= 25 commands per job.

    python benchmarks/redis_commands.py [--jobs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import redis.asyncio as aioredis  # noqa: E402
from asyncmq.backends.redis import RedisBackend  # noqa: E402
from asyncmq.queues import Queue  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from asyncmq.tasks import task  # noqa: E402

from asyncmq_cloud import SQSBackend  # noqa: E402

TASK_ID = f"{__name__}.noop"
done = {"n": 0}


@task(queue="rc")
async def noop(i: int) -> int:
    done["n"] += 1
    return i


async def commandstats(client: aioredis.Redis) -> Counter[str]:
    stats = await client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})


async def one_round(kind: str, jobs: int, redis_url: str, sqs_url: str) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    queue_name = f"rc-{run}"
    if kind == "ours":
        backend: Any = SQSBackend(
            queue_prefix=f"r{run}-", store=f"{redis_url}?prefix=rc-{run}", delay_store=f"{redis_url}?prefix=rc-{run}",
            endpoint_url=sqs_url, create_missing=True,
        )  # fmt: skip
        await backend.provision([queue_name])
    else:
        backend = RedisBackend(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    done["n"] = 0
    try:
        queue = Queue(queue_name, backend=backend)
        before = await commandstats(client)
        worker = asyncio.create_task(run_worker(queue_name, backend=backend, concurrency=10))
        for start in range(0, jobs, 20):
            await asyncio.gather(*(queue.add(TASK_ID, args=[i]) for i in range(start, min(jobs, start + 20))))
        for _ in range(6000):  # at most 10 minutes
            if done["n"] >= jobs and (await backend.get_job_counts(queue_name, "completed"))["completed"] >= jobs:
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError(f"{kind}: {jobs} jobs not completed in 10 minutes")
        after = await commandstats(client)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    finally:
        if kind == "ours":
            await backend.close()
        await client.flushdb()
        await client.aclose()
    delta = after - before
    delta.pop("info", None)
    return {
        "backend": kind,
        "per_job": sum(delta.values()) / jobs,
        "by_command": {c: n / jobs for c, n in delta.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("redis").setLevel(logging.WARNING)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "rc",
        "AWS_SECRET_ACCESS_KEY": "rc",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    import services  # scripts/services.py

    started = [services.start("redis")]  # this run's alone: INFO commandstats counts the whole server
    try:
        sqs_url = os.environ.get("ELASTICMQ_ENDPOINT_URL")
        if not sqs_url:
            started.append(services.start("elasticmq"))
            sqs_url = started[-1].url
        results: dict[str, list[dict[str, Any]]] = {"ours": [], "asyncmq": []}
        for i in range(args.rounds):
            for kind in ("ours", "asyncmq") if i % 2 == 0 else ("asyncmq", "ours"):
                outcome = asyncio.run(one_round(kind, args.jobs, started[0].url, sqs_url))
                results[kind].append(outcome)
                print(f"round {i + 1} {kind}: {outcome['per_job']:.2f} commands per job", flush=True)
        summary = {}
        for kind, rounds in results.items():
            median = statistics.median(r["per_job"] for r in rounds)
            last = rounds[-1]["by_command"]
            summary[kind] = {
                "commands_per_job_median": round(median, 2),
                "by_command_last_round": {c: round(n, 3) for c, n in last.items()},
            }
        ours, theirs = summary["ours"]["commands_per_job_median"], summary["asyncmq"]["commands_per_job_median"]
        summary["ratio_ours_over_asyncmq"] = round(ours / theirs, 3)
        summary["target"] = {"ours_le_25": ours <= 25}
        print(json.dumps(summary, indent=2), flush=True)
    finally:
        for service in started:
            service.stop()


if __name__ == "__main__":
    main()
