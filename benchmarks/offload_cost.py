"""What the S3 claim check costs: calls per job by service and operation, and drain time.

``DynamoDBBackend`` on moto's DynamoDB and S3 (the embedded server, a real server on a socket
on 127.0.0.1), jobs added one by one and drained by AsyncMQ's own worker (concurrency 4):

* ``small``: jobs far below the threshold, with ``offload`` on and off (the baseline),
  alternated round by round: the claim check must cost them nothing (no S3 call) beyond one
  JSON encoding per write;
* ``large``: jobs whose arguments (``--kib`` KiB) and result (a quarter of it) are above the
  threshold, with ``offload`` on; and, while they fit the 400 KB item, the same jobs with it
  off (the baseline): what moving the body out of the record changes per job.

Calls are counted through the backends' observation hook (every botocore call, by
operation); the DynamoDB write units are computed (the item writes counted times the 1 KB
units of a completed job's stored record; moto reports no consumed capacity). Times are
this machine's, on an emulator: the ratios are the result.

    python benchmarks/offload_cost.py [--jobs 200] [--rounds 3] [--kib 128]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncmq  # noqa: E402
from asyncmq.queues import Queue  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from asyncmq.tasks import task  # noqa: E402

from asyncmq_cloud import DynamoDBBackend, observe  # noqa: E402
from asyncmq_cloud.aws import AwsClients  # noqa: E402
from asyncmq_cloud.commands.demo._moto import threaded_moto  # noqa: E402
from asyncmq_cloud.config import LifecycleConfig  # noqa: E402
from asyncmq_cloud.core.validation import encode_payload  # noqa: E402
from asyncmq_cloud.stores.offload import OffloadingStore, S3Offload  # noqa: E402

QUEUE = "offload-bench"
WRITES = {"dynamodb:UpdateItem", "dynamodb:PutItem"}  # the job item's writes (a transaction would count twice)
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}  # moto takes any


@task(queue=QUEUE)
async def shrink(data: str, out: int) -> str:
    return "r" * out


class Calls(observe.BaseObserver):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        self.counts[f"{service}:{operation}"] += 1


async def one_run(url: str, jobs: int, size: int, offload: bool) -> tuple[float, Counter[str], int]:
    """Add ``jobs`` jobs of ``size`` bytes of arguments, drain them; (seconds, calls by operation,
    the encoded size of a completed job's record as the table holds it)."""
    suffix = uuid.uuid4().hex[:8]
    clients = AwsClients(endpoint_url=url, region_name="us-east-1", client_kwargs=CREDENTIALS)
    backend = DynamoDBBackend(
        table=f"b-jobs-{suffix}", delay_store=f"dynamodb://b-delays-{suffix}", clients=clients, create_missing=True,
        config=LifecycleConfig(receive_wait=0.2),
        offload=S3Offload(bucket=f"b-bodies-{suffix}", threshold=32 * 1024) if offload else None,
    )  # fmt: skip
    calls = Calls()
    try:
        await backend.start()
        await backend.provision([QUEUE])
        queue = Queue(QUEUE, backend=backend)
        observe.subscribe(calls)
        started = time.perf_counter()
        ids = [await queue.add(shrink.task_id, kwargs={"data": "d" * size, "out": size // 4}) for _ in range(jobs)]
        worker = asyncio.create_task(run_worker(QUEUE, backend, concurrency=4, scan_interval=0.5))
        deadline = time.monotonic() + 600
        while (await backend.get_job_counts(QUEUE, "completed"))["completed"] < len(ids):
            assert time.monotonic() < deadline, "the drain did not finish in 600 s"
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        observe.unsubscribe(calls)
        store = backend.store.inner if isinstance(backend.store, OffloadingStore) else backend.store
        record = await store.get(QUEUE, ids[0])
        assert record is not None and record.state == "completed"
        return seconds, calls.counts, len(encode_payload(record.payload).encode())
    finally:
        await backend.close()
        await clients.close()


def per_job(counts: Counter[str], jobs: int) -> str:
    return ", ".join(f"{op} {n / jobs:.2f}" for op, n in sorted(counts.items()) if n / jobs >= 0.01)


async def scenario(url: str, name: str, jobs: int, size: int, rounds: int) -> None:
    times: dict[bool, list[float]] = {True: [], False: []}
    counts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    stored: dict[bool, int] = {}
    for round_ in range(rounds):
        for offload in (round_ % 2 == 0, round_ % 2 == 1):  # alternate which goes first
            seconds, calls, stored[offload] = await one_run(url, jobs, size, offload)
            times[offload].append(seconds)
            counts[offload] += calls
            print(f"  {name} round {round_ + 1} offload={'on ' if offload else 'off'}: {jobs / seconds:7.1f} jobs/s")
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"{name} ({size} B of arguments, {size // 4} B of result), {jobs} jobs x {rounds} rounds:")
    print(f"  drain throughput, offload on / off (medians): {off / on:.3f}")
    for offload in (True, False):
        label = "on " if offload else "off"
        print(f"  calls per job, offload {label}: {per_job(counts[offload], jobs * rounds)}")
        writes = sum(n for op, n in counts[offload].items() if op in WRITES) / (jobs * rounds)
        units = writes * math.ceil(stored[offload] / 1024)
        print(f"    stored record {stored[offload]} B; DynamoDB write units per job (computed): {units:.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kib", type=int, default=128, help="arguments of a large job, KiB (< 390 for a baseline)")
    args = parser.parse_args()
    asyncmq.monkay.settings.max_job_payload_bytes = None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the embedded server's request lines
    with threaded_moto() as url:
        await scenario(url, "small", args.jobs, 100, args.rounds)
        await scenario(url, "large", args.jobs, args.kib * 1024, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
