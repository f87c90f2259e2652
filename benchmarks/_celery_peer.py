"""Celery + kombu's SQS transport, as ``benchmarks/peers.py`` measures it (run with the peers' venv).

Not part of the package and never imported by it: ``peers.py`` builds a venv with Celery,
kombu, pycurl, boto3 and redis and runs this file there, one scenario per call, printing one
JSON line. The task counts its runs in memory (first start, last end; a thread of the
worker copies the counts to Redis every 50 ms, as the other side counts in memory), so the
drain is timed from the first job's start to the last job's end, as on the other side.

    python _celery_peer.py (seq|concurrent|bulk) --jobs N ...   # adds, timed
    python _celery_peer.py worker ...                            # a worker (celery's own CLI)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import redis
from celery import Celery, group

QUEUE = os.environ["PEER_QUEUE"]
REDIS = redis.Redis.from_url(os.environ["PEER_REDIS_URL"])
RUN = os.environ["PEER_RUN"]

app = Celery("peer", broker=os.environ["PEER_BROKER_URL"])
app.conf.update(
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "wait_time_seconds": 20,  # long polls, as ours
        "predefined_queues": {
            QUEUE: {
                "url": os.environ["PEER_QUEUE_URL"],
                "access_key_id": "peers",
                "secret_access_key": "peers",
            }
        },
    },
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=4,
    task_acks_late=True,  # at-least-once, as ours: acked after the run
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


RUNS: dict[str, float] = {"done": 0, "first": 0.0, "last": 0.0}
LOCK = threading.Lock()


@app.task(name="peer.noop")
def noop(i: int) -> int:
    now = time.time()
    with LOCK:
        RUNS["first"] = RUNS["first"] or now
        RUNS["done"] += 1
        RUNS["last"] = now
    return i


def report_runs() -> None:
    """The worker's counts, copied to Redis every 50 ms for ``peers.py`` to read."""
    while True:
        with LOCK:
            done, first, last = RUNS["done"], RUNS["first"], RUNS["last"]
        if done:
            REDIS.mset(
                {f"peer:{RUN}:done": int(done), f"peer:{RUN}:first": repr(first), f"peer:{RUN}:last": repr(last)}
            )
        time.sleep(0.05)


def add(scenario: str, jobs: int, producers: int) -> dict[str, float]:
    with app.connection_for_write() as conn:  # connect and look up the queue before timing
        conn.ensure_connection(max_retries=3)
    noop.apply_async(args=[-1])  # warm: the producer's first send opens its connection
    began = time.perf_counter()
    if scenario == "seq":
        for i in range(jobs):
            noop.apply_async(args=[i])
    elif scenario == "bulk":
        group(noop.s(i) for i in range(jobs)).apply_async()
    else:
        share = [range(p, jobs, producers) for p in range(producers)]
        threads = [threading.Thread(target=lambda r=r: [noop.apply_async(args=[i]) for i in r]) for r in share]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {"jobs_per_s": jobs / (time.perf_counter() - began)}


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        threading.Thread(target=report_runs, name="report-runs", daemon=True).start()
        app.worker_main(["worker", "--pool", "threads", "-c", "10", "-Q", QUEUE, "-l", "warning",
                         "--without-heartbeat", "--without-gossip", "--without-mingle"])  # fmt: skip
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("seq", "concurrent", "bulk"))
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--producers", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(add(args.scenario, args.jobs, args.producers)), flush=True)


if __name__ == "__main__":
    main()
