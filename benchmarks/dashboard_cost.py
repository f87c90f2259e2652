"""What an open dashboard page costs per event-stream tick on ``DynamoDBBackend``, in one run.

Three queues of ``--jobs`` jobs each (spread over the states as a busy queue holds them:
40 % completed, 30 % waiting, 10 % failed, 10 % delayed, 5 % active, 5 % expired) are
written to a DynamoDB table (a MiniStack server, or moto with ``--emulator moto``, unless
``--dynamodb-endpoint`` names one), then ten times as many. At each size the script measures, on the same table:

* **AsyncMQ's own stream** (``AsyncMQAdmin``'s ``/events``): the DynamoDB requests of one
  tick in steady state (between the arrivals of two ``overview`` events) and the tick's
  wall time;
* **the stream ``asyncmq-cloud dashboard`` serves** (``build_dashboard_app``; the shared
  overview with ``--queues-per-tick``): the requests of each of ``--ticks`` ticks (largest
  and mean), the wall time of a tick, and how many ticks it takes to re-read every queue;
* **a job-list page** (``inspect_jobs``, 20 newest ``completed``): the backend's paged
  reads against AsyncMQ's listing-based default.

Every request is counted through the backend's SDK hook (``asyncmq_cloud.observe``).
MiniStack cuts ``Query`` pages at 1 MB of index entries, as DynamoDB does; moto counts the
whole item, so a large state takes more pages there than on AWS. The script also prints the
pages the largest state would take on AWS (its index entries' size, 100 bytes of overhead
each included). Times are printed as ratios
(AsyncMQ's / ours) measured in this run. The target of issue 18: <= 15 requests per tick
for 3 queues x 1,000 jobs, and the same at 10x. Bounded; traffic stays on 127.0.0.1.

    python benchmarks/dashboard_cost.py [--jobs 1000] [--ticks 6] [--queues-per-tick 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
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

from asyncmq import monkay  # noqa: E402
from asyncmq.backends.base import BaseBackend  # noqa: E402

from asyncmq_cloud import DynamoDBBackend, observe  # noqa: E402
from asyncmq_cloud.core.records import JobRecord  # noqa: E402
from asyncmq_cloud.stores import _dynamodb_codec as codec  # noqa: E402

SHARES = {"completed": 0.40, "waiting": 0.30, "failed": 0.10, "delayed": 0.10, "active": 0.05, "expired": 0.05}
AWS_PAGE_BYTES = 1024 * 1024


class Calls:
    """Every service request of this process, by (service, operation)."""

    def __init__(self) -> None:
        self.by_operation: Counter[tuple[str, str]] = Counter()

    def __getattr__(self, name: str) -> Any:  # job events: not requests
        return lambda *args, **kwargs: None

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        self.by_operation[(service, operation)] += 1

    def total(self) -> int:
        return sum(self.by_operation.values())


async def seed(backend: DynamoDBBackend, queues: list[str], per_queue: int) -> None:
    """``per_queue`` more jobs in each queue, in the shares of :data:`SHARES`.

    The items are the store's own (``codec.job_item``, queue registry included) written
    with ``BatchWriteItem`` (8 in flight): the emulator takes them far faster than the
    store's conditional transactions, and the items are the same.
    """
    store = backend.store
    now, items = time.time(), []
    for queue in queues:
        for state, share in SHARES.items():
            for _ in range(round(per_queue * share)):
                job_id = uuid.uuid4().hex
                payload = {"id": job_id, "task_id": "bench.noop", "args": [], "kwargs": {}, "created_at": now}
                run_at = now + 86_400 if state == "delayed" else None
                record = JobRecord(queue=queue, id=job_id, state=state, payload=payload, run_at=run_at)
                created = now + len(items) * 1e-6
                items.append(
                    codec.job_item(record, created=created, now=created, expires=None, ready_shards=store.ready_shards)
                )
    for n, queue in enumerate(queues):  # registers the queues; one paused flag to show
        await store.set_paused(queue, n == 1)
    client = await store._client()
    gate = asyncio.Semaphore(8)

    async def write(batch: list[dict[str, Any]]) -> None:
        request: Any = {store.table_name: [{"PutRequest": {"Item": item}} for item in batch]}
        async with gate:
            while request:
                request = (await client.batch_write_item(RequestItems=request)).get("UnprocessedItems") or None

    await asyncio.gather(*(write(items[i : i + 25]) for i in range(0, len(items), 25)))


async def asyncmq_tick(calls: Calls) -> tuple[int, float]:
    """Requests and seconds of one steady-state tick of AsyncMQ's own stream."""
    from asyncmq.contrib.dashboard.admin import AsyncMQAdmin

    app = AsyncMQAdmin(enable_login=False).get_asgi_app()
    marks: list[tuple[int, float]] = []
    arrived = asyncio.Event()
    stop = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await stop.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if b"event: overview" in message.get("body", b""):
            marks.append((calls.total(), time.perf_counter()))
            if len(marks) == 2:
                arrived.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/events", "raw_path": b"/events", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("bench", 80),
    }  # fmt: skip
    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait_for(arrived.wait(), 600)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # Lilya sends each chunk when the next one is ready, so an overview event arrives once its
    # tick has counted every queue: between two of them, one whole tick of reads and 5 s of sleep.
    return marks[1][0] - marks[0][0], marks[1][1] - marks[0][1] - 5.0


async def our_ticks(backend: DynamoDBBackend, calls: Calls, ticks: int, per_tick: int) -> dict[str, Any]:
    from asyncmq_cloud.commands._overview import Overview

    clock = [0.0]
    overview = Overview(backend, queues_per_tick=per_tick, clock=lambda: clock[0])
    costs, seconds = [], []
    for _ in range(ticks):
        before, began = calls.total(), time.perf_counter()
        await overview.snapshot()
        costs.append(calls.total() - before)
        seconds.append(time.perf_counter() - began)
        clock[0] += overview.tick
    return {"requests": costs, "seconds": seconds}


async def job_page(backend: DynamoDBBackend, queue: str, calls: Calls) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, call in (
        ("ours", backend.inspect_jobs(queue, "completed", page=1, size=20)),
        ("asyncmq_default", BaseBackend.inspect_jobs(backend, queue, "completed", page=1, size=20)),
    ):
        before, began = calls.total(), time.perf_counter()
        page = await call
        out[name] = {"requests": calls.total() - before, "seconds": time.perf_counter() - began, "total": page.total}
    return out


def aws_pages(queue: str, count: int) -> int:
    """``Query`` pages DynamoDB would return for ``count`` index keys of one state."""
    sample = {
        codec.PK: {"S": codec.job_pk(queue, uuid.uuid4().hex)},
        codec.SK: {"S": codec.JOB_SK},
        codec.BY_STATE_PK: {"S": codec.state_partition(queue, "completed")},
        codec.BY_STATE_SK: codec.num(time.time()),
    }
    return max(1, math.ceil(count * (codec.item_size(sample) + 100) / AWS_PAGE_BYTES))


async def run(endpoint: str, jobs: int, ticks: int, per_tick: int) -> list[dict[str, Any]]:
    suffix = uuid.uuid4().hex[:8]
    backend = DynamoDBBackend(
        table=f"bench-dash-{suffix}",
        delay_store=f"dynamodb://bench-dash-delays-{suffix}",
        endpoint_url=endpoint,
        region_name="us-east-1",
        create_missing=True,
    )
    monkay.settings.backend = backend
    calls = Calls()
    observe.subscribe(calls)
    queues = [f"dash-{n}" for n in range(3)]
    results = []
    try:
        await backend.start()
        await backend.register_worker("bench-worker", queues[0], 4, time.time())
        for scale, added in ((1, jobs), (10, jobs * 9)):
            began = time.perf_counter()
            await seed(backend, queues, added)
            print(f"[{scale}x] wrote {added * 3} jobs in {time.perf_counter() - began:.0f}s", flush=True)
            theirs, their_seconds = await asyncmq_tick(calls)
            ours = await our_ticks(backend, calls, ticks, per_tick)
            page = await job_page(backend, queues[0], calls)
            our_seconds = sum(ours["seconds"]) / len(ours["seconds"])
            result = {
                "jobs_per_queue": jobs * scale,
                "asyncmq_stream_requests_per_tick": theirs,
                "our_requests_per_tick_max": max(ours["requests"]),
                "our_requests_per_tick_mean": round(sum(ours["requests"]) / ticks, 2),
                "our_requests_by_tick": ours["requests"],
                "ticks_to_reread_every_queue": math.ceil(len(queues) / per_tick),
                "tick_time_ratio_asyncmq_over_ours": round(their_seconds / our_seconds, 1),
                "job_page_requests": {"ours": page["ours"]["requests"], "asyncmq": page["asyncmq_default"]["requests"]},
                "job_page_time_ratio_asyncmq_over_ours": round(
                    page["asyncmq_default"]["seconds"] / page["ours"]["seconds"], 1
                ),
                "largest_state_pages_on_aws": aws_pages(queues[0], round(jobs * scale * max(SHARES.values()))),
                "target": "<= 15 requests per tick",
            }
            results.append(result)
            print(json.dumps(result), flush=True)
        await backend.deregister_worker("bench-worker")
    finally:
        observe.unsubscribe(calls)
        await backend.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per queue at the first size (default 1000)")
    parser.add_argument("--ticks", type=int, default=6, help="ticks of our stream measured per size (default 6)")
    parser.add_argument("--queues-per-tick", type=int, default=2)
    parser.add_argument("--emulator", choices=("ministack", "moto"), default="ministack")
    parser.add_argument("--dynamodb-endpoint", help="a running DynamoDB endpoint instead of --emulator")
    args = parser.parse_args()
    logging.getLogger("aiobotocore").setLevel(logging.WARNING)
    import services  # scripts/services.py

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    started = None if args.dynamodb_endpoint else services.start(args.emulator)
    try:
        endpoint = args.dynamodb_endpoint or str(started.url)
        results = asyncio.run(run(endpoint, args.jobs, args.ticks, args.queues_per_tick))
        print(json.dumps(results, indent=2), flush=True)
    finally:
        if started is not None:
            started.stop()


if __name__ == "__main__":
    main()
