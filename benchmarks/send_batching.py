"""Producers on ``SQSBackend``: adaptive send batching against the fixed 5 ms linger, in one run.

``SQSBackend`` with a Redis state and delay store, on LocalStack's SQS (or ElasticMQ with
``--emulator elasticmq``; both started through ``scripts/services.py`` unless
``--sqs-endpoint`` / ``--redis-url`` are given). Two send settings, alternated round by
round on the same services:

* **adaptive** (this version's default): a send goes in the next turn of the event loop
  when no send of its queue is in flight; sends that come while one is in flight wait for
  it (at most ``busy_linger``) and go together;
* **fixed linger** (the previous default): every batch waits ``linger`` = 5 ms for more
  entries (20 ms while a send is in flight), and never goes before that.

Scenarios per round: ``--jobs`` no-op jobs added by one sequential producer (``Queue.add``
in a loop: the common case, and what AsyncMQ's ``Queue.add_bulk`` does), then by
``--producers`` concurrent producers. Reported per scenario: jobs/s of each setting (median
over ``--rounds``), the ratio adaptive / fixed, and send calls per job (``SendMessageBatch`` and ``SendMessage``)
(counted through the SDK hook). Nothing is drained: each round uses queues of its own.
Bounded; traffic stays on 127.0.0.1.

    python benchmarks/send_batching.py [--jobs 500] [--producers 8] [--rounds 3]
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
from benchmarks._sqs_bench import SqsCalls, add_service_arguments, sqs_and_redis  # noqa: E402

TASK = "bench.noop"


async def one_round(redis_url: str, adaptive: bool, jobs: int, producers: int, calls: SqsCalls) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    options: dict[str, Any] = {} if adaptive else {"linger": 0.005}
    backend = SQSBackend(queue_prefix=f"sb{run}-", store=f"{redis_url}?prefix=sb-{run}", **options)
    if not adaptive:
        backend.transport._sends.adaptive = False  # the previous batcher: no send before the linger
    queue_name = "sends"
    out: dict[str, Any] = {}
    try:
        await backend.provision([queue_name])
        queue = Queue(queue_name, backend=backend)
        await queue.add(TASK)  # warm: the queue URL is resolved, the clients are open
        for scenario, n_producers in (("sequential", 1), ("concurrent", producers)):
            per = jobs // n_producers

            async def produce(per: int = per) -> None:
                for _ in range(per):
                    await queue.add(TASK)

            calls.by_operation.clear()
            began = time.perf_counter()
            await asyncio.gather(*(produce() for _ in range(n_producers)))
            elapsed = time.perf_counter() - began
            sent = per * n_producers
            out[scenario] = {
                "jobs_per_s": sent / elapsed,
                # a batch of one is a SendMessage (decision 75)
                "send_calls_per_job": (calls.by_operation["SendMessageBatch"] + calls.by_operation["SendMessage"])
                / sent,
            }
    finally:
        await backend.close()
    return out


def _median(rounds: list[dict[str, Any]], scenario: str, key: str) -> float:
    return round(statistics.median(r[scenario][key] for r in rounds), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs per scenario and round (default 500)")
    parser.add_argument("--producers", type=int, default=8, help="concurrent producers (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each setting, alternated (default 3)")
    add_service_arguments(parser)
    args = parser.parse_args()
    with sqs_and_redis(args) as (_, redis_url):
        calls = SqsCalls()
        observe.subscribe(calls)
        results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for i in range(args.rounds):
            for adaptive in (True, False) if i % 2 == 0 else (False, True):
                outcome = asyncio.run(one_round(str(redis_url), adaptive, args.jobs, args.producers, calls))
                results[adaptive].append(outcome)
                print(f"round {i + 1} {'adaptive' if adaptive else 'fixed linger'}: {json.dumps(outcome)}", flush=True)
        summary: dict[str, Any] = {"jobs": args.jobs, "producers": args.producers, "rounds": args.rounds}
        for scenario in ("sequential", "concurrent"):
            new = statistics.median(r[scenario]["jobs_per_s"] for r in results[True])
            old = statistics.median(r[scenario]["jobs_per_s"] for r in results[False])
            summary[scenario] = {
                "adaptive_jobs_per_s": round(new, 1),
                "fixed_linger_jobs_per_s": round(old, 1),
                "ratio_adaptive_over_fixed": round(new / old, 2),
                "send_calls_per_job_adaptive": _median(results[True], scenario, "send_calls_per_job"),
                "send_calls_per_job_fixed": _median(results[False], scenario, "send_calls_per_job"),
            }
        print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
