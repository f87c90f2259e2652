"""Our ``SQSBackend`` against Celery + kombu on the same LocalStack SQS and Redis, interleaved.

Issue 19's peer benchmark. Both sides send to and receive from the same LocalStack SQS
(through a counting proxy of this script, which counts each side's SQS requests) and keep
their bookkeeping in the same Redis: ours its state and delay stores, Celery the runs its
task counts. Celery, kombu (SQS transport: boto3 and pycurl) and redis-py live in a venv of
their own that this script builds (``.cache/benchmarks/peers-venv``, pinned versions), and
run in subprocesses (``benchmarks/_celery_peer.py``). Rounds alternate which side goes
first. Per scenario (``--jobs`` no-op jobs, a new queue each):

* ``seq``: one producer adding jobs one after another (``Queue.add`` in a loop /
  ``apply_async`` in a loop);
* ``concurrent``: ``--producers`` producers at once (coroutines / threads);
* ``bulk``: AsyncMQ's ``Queue.add_bulk`` / Celery's ``group(...).apply_async()``;
* ``drain``: the jobs added first, then one worker (AsyncMQ's ``run_worker``, concurrency
  10 / ``celery worker --pool threads -c 10``, late acks), timed from the first job's start
  to the last job's end; the worker's CPU per 1,000 jobs over the same span;
* ``idle``: a worker with nothing to do, its SQS requests per second (after a warm-up).

Printed: each side's medians and ours / Celery. Issue 19's targets (``SQSBackend`` + Redis
store): seq >= 1.0x, concurrent >= 3x, drain >= 2.5x, idle <= 0.05 SQS calls/s.

    python benchmarks/peers.py [--jobs 500] [--rounds 3] [--producers 8] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import redis.asyncio as aioredis  # noqa: E402
from aiobotocore.session import get_session  # noqa: E402
from asyncmq.queues import Queue  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from asyncmq.tasks import task  # noqa: E402

from asyncmq_cloud import SQSBackend  # noqa: E402

VENV = ROOT / ".cache" / "benchmarks" / "peers-venv"
PEER_PACKAGES = ("celery[sqs]==5.7.0", "kombu[sqs]==5.7.0", "pycurl==7.49.0", "redis==5.3.1", "hiredis==3.5.0")
PEER = ROOT / "benchmarks" / "_celery_peer.py"
CREDENTIALS = {"aws_access_key_id": "peers", "aws_secret_access_key": "peers", "region_name": "us-east-1"}
TASK_ID = f"{__name__}.noop"
SCENARIOS = ("seq", "concurrent", "bulk", "drain")
runs: dict[str, Any] = {"first": None, "last": 0.0, "done": 0, "cpu_first": 0.0}


@task(queue="peers")
async def noop(i: int) -> int:
    now = time.time()
    if runs["first"] is None:
        runs["first"], runs["cpu_first"] = now, time.process_time()
    runs["done"] += 1
    runs["last"] = now
    return i


class CountingProxy:
    """Forwards 127.0.0.1:port to the SQS endpoint and counts the HTTP requests sent through it.

    It runs in a process of its own, so that forwarding costs neither side's process CPU or
    GIL: both sides' clients reach LocalStack through the same separate process (a thread of
    this process would have competed with our side's producer and worker, and been counted in
    our worker's CPU).
    """

    def __init__(self, host: str, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._count = context.Value("q", 0)
        ready = context.Queue()
        self._process = context.Process(
            target=_proxy_main, args=((host, port), self._count, ready), name="sqs-counting-proxy", daemon=True
        )
        self._process.start()
        self.port = int(ready.get(timeout=30))

    @property
    def requests(self) -> int:
        return int(self._count.value)

    @requests.setter
    def requests(self, value: int) -> None:
        with self._count.get_lock():
            self._count.value = value

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(10)


def _proxy_main(target: tuple[str, int], count: Any, ready: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, counted: bool) -> None:
            try:
                while data := await source.read(65536):
                    if counted:
                        with count.get_lock():
                            count.value += data.count(b" HTTP/1.1\r\n")
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer, True), pipe(upstream_reader, writer, False))

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        ready.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def build_venv() -> Path:
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(PEER_PACKAGES):
        return python
    print(f"building the peers' venv at {VENV} ({', '.join(PEER_PACKAGES)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES]
    subprocess.run(pip, check=True, timeout=600)
    marker.write_text("\n".join(PEER_PACKAGES))
    return python


async def new_queue(endpoint: str, name: str) -> str:
    async with get_session().create_client("sqs", endpoint_url=endpoint, **CREDENTIALS) as sqs:
        return str((await sqs.create_queue(QueueName=name))["QueueUrl"])


async def drop_queue(endpoint: str, url: str) -> None:
    async with get_session().create_client("sqs", endpoint_url=endpoint, **CREDENTIALS) as sqs:
        await sqs.delete_queue(QueueUrl=url)


# -- ours ---------------------------------------------------------------------------------------
async def ours(scenario: str, jobs: int, producers: int, proxy: CountingProxy, redis_url: str, idle: float) -> Any:
    run = uuid.uuid4().hex[:8]
    store = f"{redis_url}?prefix=peers-{run}"
    backend = SQSBackend(
        queue_prefix=f"o{run}-", store=store, delay_store=store, endpoint_url=proxy.url, create_missing=True
    )
    try:
        await backend.provision(["peers"])
        queue = Queue("peers", backend=backend)
        await queue.add(TASK_ID, args=[-1])  # warm: connections open, the queue URL known
        if scenario == "idle":
            return await _ours_idle(backend, proxy, idle)
        if scenario == "drain":
            return await _ours_drain(backend, queue, jobs)
        began = time.perf_counter()
        if scenario == "seq":
            for i in range(jobs):
                await queue.add(TASK_ID, args=[i])
        elif scenario == "bulk":
            await queue.add_bulk([{"task_id": TASK_ID, "args": [i]} for i in range(jobs)])
        else:

            async def producer(share: range) -> None:
                for i in share:
                    await queue.add(TASK_ID, args=[i])

            await asyncio.gather(*(producer(range(p, jobs, producers)) for p in range(producers)))
        return {"jobs_per_s": jobs / (time.perf_counter() - began)}
    finally:
        await backend.close()
        client = aioredis.Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=f"peers-{run}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()


async def _ours_drain(backend: SQSBackend, queue: Queue, jobs: int) -> dict[str, float]:
    for start in range(0, jobs, 100):
        await asyncio.gather(*(queue.add(TASK_ID, args=[i]) for i in range(start, min(jobs, start + 100))))
    runs.update(first=None, last=0.0, done=0)
    worker = asyncio.create_task(run_worker("peers", backend=backend, concurrency=10))
    try:
        for _ in range(6000):  # at most 10 minutes
            if runs["done"] >= jobs + 1:  # and the warm-up job
                break
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"ours: {jobs} jobs not drained in 10 minutes")
        cpu = time.process_time() - runs["cpu_first"]
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    span = runs["last"] - runs["first"]
    return {"jobs_per_s": jobs / span, "cpu_ms_per_1000_jobs": 1e6 * cpu / jobs}


async def _ours_idle(backend: SQSBackend, proxy: CountingProxy, seconds: float) -> dict[str, float]:
    runs.update(first=None, last=0.0, done=0)
    worker = asyncio.create_task(run_worker("peers", backend=backend, concurrency=10))
    try:
        await asyncio.sleep(5)  # the warm-up job runs; startup reads
        proxy.requests = 0
        await asyncio.sleep(seconds)
        return {"sqs_calls_per_s": proxy.requests / seconds}
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


# -- Celery -------------------------------------------------------------------------------------
def celery(
    scenario: str, jobs: int, producers: int, python: Path, proxy: CountingProxy, env: dict[str, str], idle: float
) -> Any:
    run = uuid.uuid4().hex[:8]
    name = f"c{run}-peers"
    url = asyncio.run(new_queue(env["LOCALSTACK_ENDPOINT_URL"], name)).replace(
        env["LOCALSTACK_ENDPOINT_URL"].rstrip("/"), proxy.url
    )
    peer_env = {
        **os.environ, "PEER_QUEUE": name, "PEER_QUEUE_URL": url, "PEER_RUN": run,
        "PEER_REDIS_URL": env["REDIS_URL"], "PEER_BROKER_URL": f"sqs://peers:peers@127.0.0.1:{proxy.port}",
        "AWS_ACCESS_KEY_ID": "peers", "AWS_SECRET_ACCESS_KEY": "peers", "AWS_DEFAULT_REGION": "us-east-1",
    }  # fmt: skip
    try:
        if scenario in ("seq", "concurrent", "bulk"):
            return _peer_json(python, peer_env, scenario, jobs, producers)
        if scenario == "drain":
            _peer_json(python, peer_env, "concurrent", jobs, producers)  # the backlog, untimed
            return _celery_worker(python, peer_env, lambda w: _celery_drained(w, peer_env, jobs + 1, jobs))
        return _celery_worker(python, peer_env, lambda w: _celery_idle(proxy, idle))
    finally:
        asyncio.run(drop_queue(env["LOCALSTACK_ENDPOINT_URL"], url.replace(proxy.url, env["LOCALSTACK_ENDPOINT_URL"])))


def _peer_json(python: Path, env: dict[str, str], scenario: str, jobs: int, producers: int) -> Any:
    done = subprocess.run(
        [str(python), str(PEER), scenario, "--jobs", str(jobs), "--producers", str(producers)],
        env=env, capture_output=True, text=True, timeout=600, cwd=PEER.parent,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"celery {scenario} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _celery_worker(python: Path, env: dict[str, str], measure: Callable[[subprocess.Popen[bytes]], Any]) -> Any:
    worker = subprocess.Popen(
        [str(python), str(PEER), "worker"], env=env, cwd=PEER.parent,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        return measure(worker)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def _celery_drained(worker: subprocess.Popen[bytes], env: dict[str, str], total: int, jobs: int) -> dict[str, float]:
    import redis

    client, run = redis.Redis.from_url(env["PEER_REDIS_URL"]), env["PEER_RUN"]
    cpu_first: float | None = None
    for _ in range(12000):  # at most 10 minutes
        if cpu_first is None and client.exists(f"peer:{run}:first"):
            cpu_first = _cpu_seconds(worker.pid)
        if int(client.get(f"peer:{run}:done") or 0) >= total:
            break
        if worker.poll() is not None:
            raise RuntimeError("the Celery worker exited")
        time.sleep(0.05)
    else:
        raise TimeoutError(f"celery: {jobs} jobs not drained in 10 minutes")
    cpu = _cpu_seconds(worker.pid) - (cpu_first or 0.0)
    span = float(client.get(f"peer:{run}:last") or 0) - float(client.get(f"peer:{run}:first") or 0)
    client.delete(f"peer:{run}:first", f"peer:{run}:last", f"peer:{run}:done")
    client.close()
    return {"jobs_per_s": jobs / span, "cpu_ms_per_1000_jobs": 1e6 * cpu / jobs}


def _celery_idle(proxy: CountingProxy, seconds: float) -> dict[str, float]:
    time.sleep(8)  # the worker starts and connects
    proxy.requests = 0
    time.sleep(seconds)
    return {"sqs_calls_per_s": proxy.requests / seconds}


# -- the run ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS) + ",idle")
    args = parser.parse_args()
    logging.getLogger("redis").setLevel(logging.WARNING)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "peers",
        "AWS_SECRET_ACCESS_KEY": "peers",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    import services  # scripts/services.py

    python = build_venv()
    started, env = [], {k: os.environ[k] for k in ("LOCALSTACK_ENDPOINT_URL", "REDIS_URL") if os.environ.get(k)}
    try:
        for key, name in (("LOCALSTACK_ENDPOINT_URL", "localstack"), ("REDIS_URL", "redis")):
            if key not in env:
                started.append(services.start(name))
                env[key] = started[-1].env.get(key, started[-1].url)
        host, port = env["LOCALSTACK_ENDPOINT_URL"].removeprefix("http://").rstrip("/").split(":")
        proxy = CountingProxy(host, int(port))
        started.append(proxy)
        scenarios = args.scenarios.split(",")
        results: dict[str, dict[str, list[Any]]] = {s: {"ours": [], "celery": []} for s in scenarios}
        for i in range(args.rounds):
            for scenario in scenarios:
                if scenario == "idle" and i > 0:
                    continue  # once: it is a count, not a race
                for side in ("ours", "celery") if i % 2 == 0 else ("celery", "ours"):
                    if side == "ours":
                        outcome = asyncio.run(
                            ours(scenario, args.jobs, args.producers, proxy, env["REDIS_URL"], args.idle_seconds)
                        )
                    else:
                        outcome = celery(scenario, args.jobs, args.producers, python, proxy, env, args.idle_seconds)
                    results[scenario][side].append(outcome)
                    print(f"round {i + 1} {scenario} {side}: {json.dumps(outcome)}", flush=True)
        print(json.dumps(summarize(results), indent=2), flush=True)
    finally:
        for service in started:
            service.stop()


def summarize(results: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario, sides in results.items():
        entry: dict[str, Any] = {}
        for metric in sorted({m for side in sides.values() for r in side for m in r}):
            ours_value = statistics.median(r[metric] for r in sides["ours"])
            theirs = statistics.median(r[metric] for r in sides["celery"])
            entry[metric] = {
                "ours": round(ours_value, 3),
                "celery": round(theirs, 3),
                "ours_over_celery": round(ours_value / theirs, 3) if theirs else None,
            }
        summary[scenario] = entry
    targets = {"seq": 1.0, "concurrent": 3.0, "drain": 2.5}
    summary["targets"] = {
        **{
            f"{s}_ge_{t}x": summary[s]["jobs_per_s"]["ours_over_celery"] >= t
            for s, t in targets.items()
            if s in summary
        },
        **(
            {"idle_le_0.05_sqs_calls_per_s": summary["idle"]["sqs_calls_per_s"]["ours"] <= 0.05}
            if "idle" in summary
            else {}
        ),
    }
    return summary


if __name__ == "__main__":
    main()
