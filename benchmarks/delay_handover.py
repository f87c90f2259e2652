"""Delayed-job hand-over benchmark (issue: delay scanners), on this machine.

Part A — correctness and lateness: N delayed jobs (run_at spread uniformly over
``--max-delay`` seconds after a common start point that follows the enqueue
phase), ``--scanners`` scanner *processes* (``asyncmq-cloud scanner run``)
handing them to a Redis-list transport. Reports lost/duplicated references and
the lateness (send time - run_at) p50/p99 against the target
``p99 <= scan interval + 0.5 s``.

Part B — throughput: M due jobs promoted by one in-process scanner over the
chosen state + delay stores, reported as jobs/s and as a ratio against AsyncMQ's
own ``RedisBackend.promote_due_delayed`` on the same Redis in the same run.

``--store redis`` (default): Redis state store + Redis delay store.
``--store dynamodb``: DynamoDB state store + DynamoDB delay store on an emulator
(``--dynamodb-endpoint`` / ``AWS_ENDPOINT_URL``, else a private moto server; dummy
credentials). moto applies DynamoDB requests one at a time, so its numbers measure
the emulator as much as the stores: compare them with each other, not with AWS.

Usage::

    python benchmarks/delay_handover.py [--store redis|dynamodb] [--redis-url URL]
        [--dynamodb-endpoint URL] [--jobs 10000] [--scanners 4] [--throughput-jobs 20000]

Without ``--redis-url`` (or ``REDIS_URL``) a private redis-server is started
through ``scripts/services.py``. Every loop is bounded; traffic is loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from asyncmq.backends.redis import RedisBackend  # noqa: E402

from asyncmq_cloud.aws import AwsClients  # noqa: E402
from asyncmq_cloud.config import LifecycleConfig  # noqa: E402
from asyncmq_cloud.core.lifecycle import CloudBackend  # noqa: E402
from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore  # noqa: E402
from asyncmq_cloud.delays.redis import RedisDelayStore  # noqa: E402
from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore  # noqa: E402
from asyncmq_cloud.stores.redis import RedisStateStore  # noqa: E402
from tests.support.redis_transport import RedisListTransport, sent_log  # noqa: E402

SETTINGS = {
    "redis": "tests.support.scanner_settings.Settings",
    "dynamodb": "tests.support.scanner_settings_dynamodb.Settings",
}
#: Delayed enqueues per second to plan for, so jobs fall due after the enqueue phase
#: (moto with 4 scanners polling measured ~21/s: two DynamoDB writes per job, serialized).
ENQUEUE_RATE = {"redis": 300.0, "dynamodb": 15.0}
REGION = "us-east-1"


@dataclass(frozen=True)
class Target:
    """Where the stores live: ``store`` is ``redis`` or ``dynamodb``."""

    store: str
    redis_url: str
    dynamodb_endpoint: str | None = None

    def env(self, prefix: str) -> dict[str, str]:
        """Scanner-process environment for the settings module of ``store``."""
        env = {"REDIS_URL": self.redis_url, "HANDOVER_PREFIX": prefix}
        if self.store == "dynamodb":
            assert self.dynamodb_endpoint is not None
            env["HANDOVER_DYNAMODB_ENDPOINT"] = self.dynamodb_endpoint
            env.update(tables(prefix))
        return env


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tables(prefix: str) -> dict[str, str]:
    return {"HANDOVER_JOBS_TABLE": f"{prefix}-jobs", "HANDOVER_DELAY_TABLE": f"{prefix}-delays"}


async def open_backend(target: Target, prefix: str, batch: int = 200) -> CloudBackend:
    """A started backend over ``target``'s stores (DynamoDB tables provisioned)."""
    config = LifecycleConfig(promote_batch=batch, repair_interval=3600)
    transport = RedisListTransport(target.redis_url, prefix)
    if target.store == "dynamodb":
        names = tables(prefix)
        endpoint = target.dynamodb_endpoint
        backend = CloudBackend(
            DynamoDBStateStore(names["HANDOVER_JOBS_TABLE"], endpoint_url=endpoint, region_name=REGION),
            transport,
            DynamoDBDelayStore(names["HANDOVER_DELAY_TABLE"], endpoint_url=endpoint, region_name=REGION),
            config=config,
        )
        await backend.provision()
        return backend
    url = target.redis_url
    backend = CloudBackend(
        RedisStateStore(url, prefix=prefix), transport, RedisDelayStore(url, prefix=prefix), config=config
    )
    await backend.start()
    return backend


async def close_backend(target: Target, backend: CloudBackend, prefix: str) -> None:
    """Close ``backend`` and delete everything it wrote (Redis keys, DynamoDB tables)."""
    await backend.close()
    await drop(target.redis_url, prefix)
    if target.store == "dynamodb":
        async with AwsClients(endpoint_url=target.dynamodb_endpoint, region_name=REGION) as clients:
            client = await clients.dynamodb()
            for table in tables(prefix).values():
                with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                    await client.delete_table(TableName=table)


async def enqueue_all(backend: CloudBackend, queue: str, run_at: dict[str, float], concurrency: int = 64) -> None:
    items = list(run_at.items())

    async def worker(offset: int) -> None:
        for job_id, at in items[offset::concurrency]:
            await backend.enqueue_delayed(queue, {"id": job_id, "task_id": "t", "args": [], "kwargs": {}}, at)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


async def part_a(target: Target, jobs: int, scanners: int, max_delay: float, interval: float) -> dict[str, Any]:
    prefix, queue = f"bench-{uuid.uuid4().hex[:8]}", "handover"
    backend = await open_backend(target, prefix)
    env = {**os.environ, **target.env(prefix), "HANDOVER_REPAIR_GRACE": "3600", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "asyncmq_cloud.cli", "--settings", SETTINGS[target.store]]
    cmd += ["scanner", "run", "--queue", queue, "--interval", str(interval), "--report-every", "5"]
    logdir = Path(tempfile.mkdtemp(prefix="bench-scanners-"))
    procs = []
    for i in range(scanners):
        with (logdir / f"s{i}.log").open("wb") as log:
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))  # noqa: ASYNC220
    try:
        rng = random.Random(42)
        start_at = time.time() + 5 + jobs / ENQUEUE_RATE[target.store]  # conservatively after the enqueue phase
        run_at = {f"j{i}": start_at + rng.uniform(0, max_delay) for i in range(jobs)}
        t0 = time.perf_counter()
        await enqueue_all(backend, queue, run_at)
        enqueue_s = time.perf_counter() - t0
        late_start = max(0.0, time.time() - start_at)
        client = backend.transport.client  # type: ignore[attr-defined]
        deadline = time.monotonic() + max_delay + 60 + (jobs / 20 if target.store == "dynamodb" else 0)
        log: list[Any] = []
        while time.monotonic() < deadline:
            log = await sent_log(client, prefix, queue)
            if len({e["id"] for e in log}) >= jobs:
                break
            await asyncio.sleep(0.2)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=20) for proc in procs]
        await close_backend(target, backend, prefix)
    counts = Counter(e["id"] for e in log)
    lateness = [e["t"] - run_at[e["id"]] for e in log]
    return {
        "store": target.store,
        "jobs": jobs,
        "scanners": scanners,
        "scan_interval_s": interval,
        "enqueue_jobs_per_s": round(jobs / enqueue_s),
        "enqueue_overran_start_by_s": round(late_start, 3),
        "lost": jobs - len(counts),
        "duplicates": sum(n - 1 for n in counts.values()),
        "lateness_p50_s": round(pct(lateness, 0.50), 3) if lateness else None,
        "lateness_p99_s": round(pct(lateness, 0.99), 3) if lateness else None,
        "target_p99_s": interval + 0.5,
        "scanner_exit_codes": codes,
    }


async def drop(url: str, prefix: str) -> None:
    client = aioredis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
    finally:
        await client.aclose()


async def part_b(target: Target, jobs: int) -> dict[str, Any]:
    # asyncmq-cloud: one scanner, batch 1000.
    prefix, queue = f"bench-{uuid.uuid4().hex[:8]}", "throughput"
    backend = await open_backend(target, prefix, batch=1000)
    claim_s = 0.0
    claim_due = backend.delay_store.claim_due

    async def timed_claim(queue_name: str, now: float, limit: int) -> list[tuple[str, float]]:
        nonlocal claim_s
        t = time.perf_counter()
        try:
            return await claim_due(queue_name, now, limit)
        finally:
            claim_s += time.perf_counter() - t

    backend.delay_store.claim_due = timed_claim  # type: ignore[method-assign]
    try:
        due = time.time() + 2 + jobs / ENQUEUE_RATE[target.store]
        await enqueue_all(backend, queue, {f"t{i}": due for i in range(jobs)})
        await asyncio.sleep(max(0.0, due - time.time()) + 0.05)
        t0 = time.perf_counter()
        promoted = 0
        for _ in range(jobs):  # bounded
            moved = await backend.promote_due_delayed(queue)
            if not moved:
                break
            promoted += len(moved)
        elapsed = time.perf_counter() - t0
        ours = promoted / elapsed
    finally:
        await close_backend(target, backend, prefix)
    url = target.redis_url
    # Baseline: AsyncMQ's RedisBackend on the same server.
    base = RedisBackend(url)
    bq = f"bench-base-{uuid.uuid4().hex[:8]}"
    due = time.time() + 2 + jobs / 1500
    for i in range(jobs):
        await base.enqueue_delayed(bq, {"id": f"b{i}", "task_id": "t", "args": [], "kwargs": {}}, due)
    await asyncio.sleep(max(0.0, due - time.time()) + 0.05)
    t0 = time.perf_counter()
    base_promoted = 0
    for _ in range(jobs):
        moved = await base.promote_due_delayed(bq)
        if not moved:
            break
        base_promoted += len(moved)
    baseline = base_promoted / (time.perf_counter() - t0)
    await drop(url, f"queue:{bq}")
    with contextlib.suppress(Exception):
        await base.close()
    return {
        "store": target.store,
        "jobs": jobs,
        "promoted": promoted,
        "jobs_per_s": round(ours),
        "delay_store_claim_share": round(claim_s / elapsed, 2) if elapsed else None,
        "baseline_asyncmq_redisbackend_jobs_per_s": round(baseline),
        "ratio_vs_baseline": round(ours / baseline, 2) if baseline else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=sorted(SETTINGS), default="redis")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--dynamodb-endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--scanners", type=int, default=4)
    parser.add_argument("--max-delay", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--throughput-jobs", type=int, default=20_000)
    args = parser.parse_args()
    services: list[Any] = []
    try:
        url = args.redis_url or start_service("redis", services)
        endpoint = None
        if args.store == "dynamodb":
            for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
                os.environ.setdefault(key, value)  # an emulator takes any credentials
            os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
            endpoint = args.dynamodb_endpoint or start_service("moto", services)
        target = Target(args.store, url, endpoint)
        print(f"part A: hand-over across scanner processes ({args.store}) ...", flush=True)
        a = asyncio.run(part_a(target, args.jobs, args.scanners, args.max_delay, args.interval))
        print(json.dumps(a, indent=2), flush=True)
        print(f"part B: promotion throughput ({args.store}) ...", flush=True)
        b = asyncio.run(part_b(target, args.throughput_jobs))
        print(json.dumps(b, indent=2), flush=True)
    finally:
        for service in services:
            service.stop()


def start_service(name: str, started: list[Any]) -> str:
    """Start a private ``name`` service through ``scripts/services.py``; returns its address."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import services  # type: ignore[import-not-found]

    service = services.start(name)
    started.append(service)
    return str(service.url)


if __name__ == "__main__":
    main()
