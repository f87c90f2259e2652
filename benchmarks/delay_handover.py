"""Delayed-job hand-over benchmark (issue: delay scanners), on this machine.

Part A — correctness and lateness: N delayed jobs (run_at spread uniformly over
``--max-delay`` seconds after a common start point that follows the enqueue
phase), ``--scanners`` scanner *processes* (``asyncmq-cloud scanner run``)
handing them to a Redis-list transport. Reports lost/duplicated references and
the lateness (send time - run_at) p50/p99 against the target
``p99 <= scan interval + 0.5 s``.

Part B — throughput: M due jobs promoted by one in-process scanner over the
Redis state + delay stores, reported as jobs/s and as a ratio against AsyncMQ's
own ``RedisBackend.promote_due_delayed`` on the same server in the same run.

Usage::

    python benchmarks/delay_handover.py [--redis-url URL] [--jobs 10000] [--scanners 4]

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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from asyncmq.backends.redis import RedisBackend  # noqa: E402

from asyncmq_cloud.config import LifecycleConfig  # noqa: E402
from asyncmq_cloud.core.lifecycle import CloudBackend  # noqa: E402
from asyncmq_cloud.scanners.redis import RedisDelayStore  # noqa: E402
from asyncmq_cloud.stores.redis import RedisStateStore  # noqa: E402
from tests.support.redis_transport import RedisListTransport, sent_log  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cloud(url: str, prefix: str, batch: int = 200) -> CloudBackend:
    return CloudBackend(
        RedisStateStore(url, prefix=prefix),
        RedisListTransport(url, prefix),
        RedisDelayStore(url, prefix=prefix),
        config=LifecycleConfig(promote_batch=batch, repair_interval=3600),
    )


async def enqueue_all(backend: CloudBackend, queue: str, run_at: dict[str, float], concurrency: int = 64) -> None:
    items = list(run_at.items())

    async def worker(offset: int) -> None:
        for job_id, at in items[offset::concurrency]:
            await backend.enqueue_delayed(queue, {"id": job_id, "task_id": "t", "args": [], "kwargs": {}}, at)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


async def part_a(url: str, jobs: int, scanners: int, max_delay: float, interval: float) -> dict[str, Any]:
    prefix, queue = f"bench-{uuid.uuid4().hex[:8]}", "handover"
    backend = cloud(url, prefix)
    await backend.start()
    env = {**os.environ, "REDIS_URL": url, "HANDOVER_PREFIX": prefix, "HANDOVER_REPAIR_GRACE": "3600"}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "asyncmq_cloud.cli", "--settings", "tests.support.scanner_settings.Settings"]
    cmd += ["scanner", "run", "--queue", queue, "--interval", str(interval), "--report-every", "5"]
    logdir = Path(tempfile.mkdtemp(prefix="bench-scanners-"))
    procs = []
    for i in range(scanners):
        with (logdir / f"s{i}.log").open("wb") as log:
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))  # noqa: ASYNC220
    try:
        rng = random.Random(42)
        start_at = time.time() + 5 + jobs / 300  # conservatively after the enqueue phase
        run_at = {f"j{i}": start_at + rng.uniform(0, max_delay) for i in range(jobs)}
        t0 = time.perf_counter()
        await enqueue_all(backend, queue, run_at)
        enqueue_s = time.perf_counter() - t0
        late_start = max(0.0, time.time() - start_at)
        client = backend.transport.client  # type: ignore[attr-defined]
        deadline = time.monotonic() + max_delay + 60
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
        await drop(url, prefix)
        await backend.close()
    counts = Counter(e["id"] for e in log)
    lateness = [e["t"] - run_at[e["id"]] for e in log]
    return {
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


async def part_b(url: str, jobs: int) -> dict[str, Any]:
    # asyncmq-cloud: one scanner, batch 1000.
    prefix, queue = f"bench-{uuid.uuid4().hex[:8]}", "throughput"
    backend = cloud(url, prefix, batch=1000)
    await backend.start()
    due = time.time() + 2 + jobs / 1500
    await enqueue_all(backend, queue, {f"t{i}": due for i in range(jobs)})
    await asyncio.sleep(max(0.0, due - time.time()) + 0.05)
    t0 = time.perf_counter()
    promoted = 0
    for _ in range(jobs):  # bounded
        moved = await backend.promote_due_delayed(queue)
        if not moved:
            break
        promoted += len(moved)
    ours = promoted / (time.perf_counter() - t0)
    await drop(url, prefix)
    await backend.close()
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
        "jobs": jobs,
        "promoted": promoted,
        "jobs_per_s": round(ours),
        "baseline_asyncmq_redisbackend_jobs_per_s": round(baseline),
        "ratio_vs_baseline": round(ours / baseline, 2) if baseline else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--scanners", type=int, default=4)
    parser.add_argument("--max-delay", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--throughput-jobs", type=int, default=20_000)
    args = parser.parse_args()
    service = None
    url = args.redis_url
    if not url:
        sys.path.insert(0, str(ROOT / "scripts"))
        import services  # type: ignore[import-not-found]

        service = services.start("redis")
        url = service.url
    try:
        print("part A: hand-over across scanner processes ...", flush=True)
        a = asyncio.run(part_a(url, args.jobs, args.scanners, args.max_delay, args.interval))
        print(json.dumps(a, indent=2), flush=True)
        print("part B: promotion throughput ...", flush=True)
        b = asyncio.run(part_b(url, args.throughput_jobs))
        print(json.dumps(b, indent=2), flush=True)
    finally:
        if service is not None:
            service.stop()


if __name__ == "__main__":
    main()
