"""A sequential producer on ``SQSBackend``: direct ``SendMessage`` against botocore's, in one run.

``SQSBackend`` with a Redis state and delay store, on LocalStack's SQS (or ElasticMQ with
``--emulator elasticmq``; both started through ``scripts/services.py`` unless
``--sqs-endpoint`` / ``--redis-url`` are given). One producer adds ``--jobs`` no-op jobs
with ``Queue.add`` in a loop (each job is sent alone: one ``SendMessage``), with
``direct_send`` on (the default: the request built, signed and sent by
``transports/_sqs_direct.py``) and off (every call through botocore), alternated round by
round (the order flips every round). Reported: each setting's median jobs/s and CPU of
this process per add, the ratios on/off, and per job the ``SendMessage`` requests (from
the observe hook, which sees both paths) and the direct ones among them, so a run that
did not send directly shows it. Nothing is drained: each round uses queues of its own.
Bounded; traffic stays on 127.0.0.1.

    python benchmarks/direct_send.py [--jobs 500] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from asyncmq.queues import Queue  # noqa: E402

from asyncmq_cloud import SQSBackend, observe  # noqa: E402
from asyncmq_cloud.transports import _sqs_direct  # noqa: E402
from benchmarks._sqs_bench import SqsCalls, add_service_arguments, sqs_and_redis  # noqa: E402

TASK = "bench.noop"


def _direct_sent() -> int:
    return sum(direct.sent for direct in list(_sqs_direct._clients.values()))


async def one_round(redis_url: str, direct: bool, jobs: int, calls: SqsCalls) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    backend = SQSBackend(queue_prefix=f"ds{run}-", store=f"{redis_url}?prefix=ds-{run}", direct_send=direct)
    try:
        await backend.provision(["direct"])
        queue = Queue("direct", backend=backend)
        await queue.add(TASK)  # warm: the queue URL is resolved, the clients are open, the template kept
        calls.by_operation.clear()
        sent_before = _direct_sent()
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(jobs):
            await queue.add(TASK)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        direct_sent = _direct_sent() - sent_before  # before the close: a closed client's sender goes with it
    finally:
        await backend.close()
    return {
        "jobs_per_s": jobs / elapsed,
        "cpu_ms_per_add": 1000 * cpu / jobs,
        "send_message_per_job": calls.by_operation["SendMessage"] / jobs,
        "direct_per_job": direct_sent / jobs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs per round and setting (default 500)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each setting, alternated (default 6)")
    add_service_arguments(parser)
    args = parser.parse_args()
    with sqs_and_redis(args) as (_, redis_url):
        calls = SqsCalls()
        observe.subscribe(calls)
        results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for i in range(args.rounds):
            for direct in (True, False) if i % 2 == 0 else (False, True):
                outcome = asyncio.run(one_round(str(redis_url), direct, args.jobs, calls))
                results[direct].append(outcome)
                label = "direct" if direct else "botocore"
                print(f"round {i + 1} {label}: {json.dumps({k: round(v, 3) for k, v in outcome.items()})}", flush=True)

        def median(direct: bool, key: str) -> float:
            return statistics.median(r[key] for r in results[direct])

        summary: dict[str, Any] = {"jobs": args.jobs, "rounds": args.rounds}
        for key in ("jobs_per_s", "cpu_ms_per_add", "send_message_per_job", "direct_per_job"):
            summary[key] = {"direct": round(median(True, key), 3), "botocore": round(median(False, key), 3)}
        summary["jobs_per_s_direct_over_botocore"] = round(median(True, "jobs_per_s") / median(False, "jobs_per_s"), 3)
        summary["cpu_per_add_direct_over_botocore"] = round(
            median(True, "cpu_ms_per_add") / median(False, "cpu_ms_per_add"), 3
        )
        print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
