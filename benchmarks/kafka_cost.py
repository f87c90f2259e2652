"""KafkaBackend cost and throughput benchmark, on this machine.

Requests are *counted*, not timed:

* Kafka: every request aiokafka writes to a broker connection
  (``aiokafka.conn.AIOKafkaConnection.send``, hooked in this process only), by
  client and API (the request's class: ``Produce``, ``Fetch``, ``OffsetCommit``,
  ``Heartbeat``, ``Metadata`` ...). ``producer`` is the transport's producer and
  its admin/offsets clients, ``consumer`` the queue's consumer-group member; they
  are told apart by client id, and the observer's requests are not counted;
* state store: every Redis command of the backend's state and delay stores (an
  ``EVALSHA`` is one call, a ``MULTI``/``EXEC`` or pipeline one call) or, with
  ``--store dynamodb``, every DynamoDB call of its clients; also by the AsyncMQ
  backend method that made it.

Scenarios, as in ``sqs_cost.py``: ``bulk`` (AsyncMQ's ``bulk_enqueue``, 100 jobs
per call), ``concurrent`` (100 concurrent ``Queue.add`` at a time; the producer
batches their records), ``sequential`` (one producer awaits each ``Queue.add``),
and ``idle`` (a worker with nothing to do, requests per second). AsyncMQ's own
``run_worker`` (concurrency N) runs the jobs.

Per job vs background, as in ``sqs_cost.py``: store calls made by AsyncMQ's
periodic loops (delay scan, scheduler, worker registry, paused flag, stalled
check) are background. Kafka requests are classed by API, because aiokafka sends
them from its own tasks: group membership (``Heartbeat``, ``JoinGroup``,
``SyncGroup``, ``FindCoordinator``, ``OffsetFetch``, ``LeaveGroup``), ``Metadata``,
``ApiVersions`` and fetches that returned no record (the consumer long-polls its
partition leaders every ``fetch_max_wait_ms``) are background; ``Produce``,
fetches that returned records and ``OffsetCommit`` (at most one per
``commit_interval``, only after jobs finished) are per job. Each run first takes
one warm-up job end to end (the group join, the producer's topic metadata and the
worker's first delay scan are start-up costs), then counts from the first add
until one commit interval after the last completion. ``all_per_job = per_job +
background_per_s / jobs_per_s`` at this run's throughput.

Throughput is reported as a ratio against AsyncMQ's ``RedisBackend`` running the
same jobs with the same worker in the same script (on a queue of random name,
whose keys are deleted afterwards): absolute jobs/s only describe this machine.

Topics get a random prefix (``kb{hex8}-``) and are deleted afterwards, Redis keys
live under ``kbench-{hex8}:`` and are deleted afterwards, DynamoDB tables too.
Consumer groups are left to the broker's offsets retention (aiokafka's admin
client cannot delete groups). Kafka, Redis and (``--store dynamodb``) moto are
``$KAFKA_BOOTSTRAP_SERVERS``, ``$REDIS_URL`` and ``$AWS_ENDPOINT_URL`` or the
flags; missing ones are started through ``scripts/services.py``. Every loop is
bounded; traffic stays on 127.0.0.1.

Usage::

    python benchmarks/kafka_cost.py [--jobs 1000] [--concurrency 10] [--partitions 4] [--idle-seconds 10]
        [--store redis|dynamodb] [--fetch-max-wait-ms N] [--linger-ms N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import redis.asyncio as aioredis  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from aiokafka.conn import AIOKafkaConnection  # noqa: E402
from asyncmq.backends.base import BaseBackend  # noqa: E402
from asyncmq.backends.redis import RedisBackend  # noqa: E402
from asyncmq.jobs import Job  # noqa: E402
from asyncmq.queues import Queue  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from sqs_cost import BACKGROUND, PERIODIC, TASK_ID, WARM_UP_SECONDS  # noqa: E402

from asyncmq_cloud import KafkaBackend  # noqa: E402
from asyncmq_cloud.aws import AwsClients  # noqa: E402
from asyncmq_cloud.config import LifecycleConfig  # noqa: E402
from asyncmq_cloud.delays.redis import RedisDelayStore  # noqa: E402
from asyncmq_cloud.stores.redis import RedisStateStore  # noqa: E402

QUEUE = "bench"
REGION = "us-east-1"
#: Client id suffix of the consumer-group member (the producer, admin and offsets clients have none).
CONSUMER_SUFFIX = "-consumer"
#: Kafka APIs of aiokafka's own periodic work (group membership, metadata), never per job.
BACKGROUND_APIS = frozenset(
    {"Heartbeat", "JoinGroup", "SyncGroup", "LeaveGroup", "FindCoordinator", "OffsetFetch", "Metadata", "ApiVersions"}
)
#: Kafka protocol names where aiokafka's request class is named otherwise.
API_NAMES = {"Offset": "ListOffsets", "ApiVersion": "ApiVersions", "SaslHandShake": "SaslHandshake"}
#: Longest wait for the warm-up job (group join included).
WARM_UP_TIMEOUT = 60.0
#: Slack after the last completion so the final offset commit (``commit_interval`` 1 s) is counted.
SETTLE_SECONDS = 1.5

#: The backend method an in-flight store call belongs to.
METHOD: contextvars.ContextVar[str] = contextvars.ContextVar("method", default="-")


@dataclass
class Setup:
    """Where and how the benchmark runs."""

    bootstrap: str
    redis_url: str
    store: str = "redis"  # or "dynamodb"
    dynamodb_endpoint: str | None = None
    partitions: int = 4
    concurrency: int = 10
    transport_options: dict[str, Any] = field(default_factory=dict)
    timeout: float = 600.0

    @property
    def poll(self) -> float:
        """Completion polling period (moto applies requests one at a time: poll it less)."""
        return 0.05 if self.store == "redis" else 0.5


@dataclass(frozen=True)
class Names:
    """The resources of one run, all under a random id."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def topics(self) -> str:
        return f"kb{self.run}-"

    @property
    def client_id(self) -> str:
        return f"kbench-{self.run}"

    @property
    def redis_prefix(self) -> str:
        return f"kbench-{self.run}"

    @property
    def tables(self) -> tuple[str, str]:
        return f"kbench-jobs-{self.run}", f"kbench-delays-{self.run}"


def api_name(request: Any) -> str:
    name = type(request).__name__.removesuffix("Request")
    return API_NAMES.get(name, name)


def has_records(response: Any) -> bool:
    """Whether a FetchResponse carries records (the last field of every partition is its record bytes)."""
    return any(p[-1] for _, partitions in getattr(response, "topics", None) or () for p in partitions)


class CostCounter:
    """Kafka requests, Redis commands and DynamoDB calls of one backend, per job or background."""

    def __init__(self, client_id: str) -> None:
        self.client_ids = {client_id: "producer", client_id + CONSUMER_SUFFIX: "consumer"}
        self.calls: Counter[str] = Counter()
        self.background: Counter[str] = Counter()
        #: Per-job store calls by the backend method that made them.
        self.methods: Counter[str] = Counter()

    def clear(self) -> None:
        for counter in (self.calls, self.background, self.methods):
            counter.clear()

    def snapshot(self) -> CostCounter:
        copy = CostCounter("")
        copy.calls, copy.background, copy.methods = Counter(self.calls), Counter(self.background), Counter(self.methods)
        return copy

    def add_store(self, name: str) -> None:
        if BACKGROUND.get():
            self.background[name] += 1
        else:
            self.calls[name] += 1
            self.methods[METHOD.get()] += 1

    def hook_redis(self, client: aioredis.Redis) -> aioredis.Redis:
        """Count every command and every pipeline execution of ``client`` (instance-level wrappers)."""
        execute, make_pipeline = client.execute_command, client.pipeline

        async def execute_command(*args: Any, **options: Any) -> Any:
            self.add_store(f"redis.{str(args[0]).upper()}")
            return await execute(*args, **options)

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = make_pipeline(*args, **kwargs)
            run = pipe.execute

            async def execute_pipeline(*a: Any, **kw: Any) -> Any:
                if pipe.command_stack:
                    self.add_store("redis.MULTI" if pipe.is_transaction else "redis.PIPELINE")
                return await run(*a, **kw)

            pipe.execute = execute_pipeline  # type: ignore[method-assign]
            return pipe

        client.execute_command = execute_command  # type: ignore[method-assign]
        client.pipeline = pipeline  # type: ignore[method-assign]
        return client

    def hook_botocore(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def after_call(model: Any, **_: Any) -> None:
            self.add_store(f"{service}.{model.name}")

        client.meta.events.register("after-call", after_call)

    def _kafka_request(self, role: str, api: str, background: bool) -> None:
        (self.background if background or api in BACKGROUND_APIS else self.calls)[f"kafka.{role}.{api}"] += 1

    @contextlib.contextmanager
    def kafka(self) -> Iterator[None]:
        """Count the Kafka requests of this counter's client ids while inside the block."""
        original = AIOKafkaConnection.send

        def send(conn: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
            result = original(conn, request, expect_response)  # raises (uncounted) when not connected
            role = self.client_ids.get(getattr(conn, "_client_id", ""))
            if role is None:
                return result
            api = api_name(request)
            if api != "Fetch" or not expect_response:
                self._kafka_request(role, api, background=False)
                return result

            async def fetched() -> Any:
                response = await result
                self._kafka_request(role, api, background=not has_records(response))
                return response

            return fetched()

        AIOKafkaConnection.send = send  # type: ignore[method-assign]
        try:
            yield
        finally:
            AIOKafkaConnection.send = original  # type: ignore[method-assign]

    def totals(self) -> tuple[Counter[str], Counter[str]]:
        """(per-job calls, background calls) by service: kafka, redis, dynamodb."""
        out: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
        for counter, total in zip((self.calls, self.background), out, strict=True):
            for name, count in counter.items():
                total[name.split(".")[0]] += count
        return out

    def kafka_by_api(self, background: bool = False) -> Counter[str]:
        by_api: Counter[str] = Counter()
        for name, count in (self.background if background else self.calls).items():
            if name.startswith("kafka."):
                by_api[name.rsplit(".", 1)[1]] += count
        return by_api


def mark_calls(backend: Any) -> None:
    """Name each store call after the backend method that made it; the periodic loops' are background."""

    def wrap(name: str, fn: Any, background: bool) -> Any:
        async def marked(*args: Any, **kwargs: Any) -> Any:
            tokens = (METHOD.set(name), BACKGROUND.set(True) if background else None)
            try:
                return await fn(*args, **kwargs)
            finally:
                if tokens[1] is not None:
                    BACKGROUND.reset(tokens[1])
                METHOD.reset(tokens[0])

        return marked

    for name in dir(BaseBackend):
        fn = getattr(backend, name, None)
        if not name.startswith("_") and name != "create_lock" and inspect.iscoroutinefunction(fn):
            setattr(backend, name, wrap(name, fn, name in PERIODIC))
    create_lock = backend.create_lock

    async def create_marked_lock(*args: Any, **kwargs: Any) -> Any:
        lock = await create_lock(*args, **kwargs)
        for name in ("try_acquire", "acquire", "release"):
            setattr(lock, name, wrap(f"lock.{name}", getattr(lock, name), True))
        return lock

    backend.create_lock = create_marked_lock


# -- resources -------------------------------------------------------------------------------


async def make_backend(setup: Setup, names: Names, counter: CostCounter | None, stack: AsyncExitStack) -> KafkaBackend:
    """A provisioned KafkaBackend on ``names``; with ``counter`` its stores and requests are counted."""
    client_id = names.client_id if counter is not None else f"{names.client_id}-observer"
    store: Any
    delays: Any
    if setup.store == "dynamodb":
        store, delays = (f"dynamodb://{t}" for t in names.tables)
    elif counter is None:
        store, delays = f"{setup.redis_url}?prefix={names.redis_prefix}", None
    else:  # the stores' own kinds of client, created here so they can be counted
        pool = aioredis.BlockingConnectionPool.from_url(setup.redis_url, decode_responses=True)
        state_client = counter.hook_redis(aioredis.Redis.from_pool(pool))
        delay_client = counter.hook_redis(aioredis.from_url(setup.redis_url))
        stack.push_async_callback(state_client.aclose)
        stack.push_async_callback(delay_client.aclose)
        store = RedisStateStore(setup.redis_url, prefix=names.redis_prefix, client=state_client)
        delays = RedisDelayStore(setup.redis_url, prefix=names.redis_prefix, client=delay_client)
    aws = {"endpoint_url": setup.dynamodb_endpoint, "region_name": REGION} if setup.store == "dynamodb" else {}
    backend = KafkaBackend(
        bootstrap_servers=setup.bootstrap,
        topic_prefix=names.topics,
        store=store,
        delay_store=delays,
        partitions=setup.partitions,
        create_missing=True,
        config=LifecycleConfig(receive_wait=1.0),
        client_id=client_id,
        consumer_options={"client_id": client_id + CONSUMER_SUFFIX},
        **aws,
        **setup.transport_options,
    )
    stack.push_async_callback(backend.close)
    await backend.provision([QUEUE])
    if counter is not None:
        if setup.store == "dynamodb":
            counter.hook_botocore(await backend.clients.dynamodb())
        mark_calls(backend)
    return backend


async def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (never any other)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


async def drop_redis_keys(url: str, match: str) -> None:
    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=match, count=1000)]
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
    finally:
        await client.aclose()


async def drop_tables(endpoint: str | None, tables: tuple[str, ...]) -> None:
    async with AwsClients(endpoint_url=endpoint, region_name=REGION) as clients:
        dynamodb = await clients.dynamodb()
        for table in tables:
            with contextlib.suppress(Exception):  # never created, or already gone
                await dynamodb.delete_table(TableName=table)


async def drop_resources(setup: Setup, names: Names) -> None:
    await drop_topics(setup.bootstrap, names.topics)
    if setup.store == "dynamodb":
        await drop_tables(setup.dynamodb_endpoint, names.tables)
    else:
        await drop_redis_keys(setup.redis_url, f"{names.redis_prefix}:*")


@asynccontextmanager
async def kafka_backends(setup: Setup, counter: CostCounter, names: Names) -> AsyncIterator[tuple[KafkaBackend, Any]]:
    """(counted backend, observer): the observer polls completions on the same store, uncounted."""
    async with AsyncExitStack() as stack:
        stack.push_async_callback(drop_resources, setup, names)  # runs last
        stack.enter_context(counter.kafka())
        backend = await make_backend(setup, names, counter, stack)
        observer = await make_backend(setup, names, None, stack)
        yield backend, observer


# -- running jobs ----------------------------------------------------------------------------


async def wait_completed(backend: Any, queue: str, total: int, timeout: float, poll: float) -> None:
    """Until ``total`` jobs of ``queue`` completed (bounded); progress every 10 s."""
    loop = asyncio.get_running_loop()
    deadline = next_report = loop.time()
    deadline += timeout
    while (done := (await backend.get_job_counts(queue, "completed"))["completed"]) < total:
        now = loop.time()
        if now > deadline:
            raise TimeoutError(f"{done} of {total} jobs completed in {timeout}s")
        if now >= next_report + 10:
            next_report = now
            print(f"  {done}/{total} completed ...", flush=True)
        await asyncio.sleep(poll)


async def produce(backend: Any, queue: str, jobs: int, mode: str) -> None:
    q = Queue(queue, backend=backend)
    if mode == "sequential":
        for i in range(jobs):
            await q.add(TASK_ID, args=[i])
    elif mode == "concurrent":
        for start in range(0, jobs, 100):
            await asyncio.gather(*(q.add(TASK_ID, args=[i]) for i in range(start, min(jobs, start + 100))))
    else:  # bulk: AsyncMQ's bulk_enqueue, 100 jobs per call
        for start in range(0, jobs, 100):
            chunk = [Job(task_id=TASK_ID, args=[i], kwargs={}).to_dict() for i in range(start, min(jobs, start + 100))]
            await backend.bulk_enqueue(queue, chunk)


@dataclass
class Timing:
    elapsed: float  # first add to last completion
    window: float  # counting window (background calls per second divide by this)


async def run_jobs(
    backend: Any, observer: Any, queue: str, jobs: int, setup: Setup, *, mode: str, counter: CostCounter | None = None
) -> tuple[Timing, CostCounter | None]:
    """One warm-up job, then ``jobs`` through AsyncMQ's worker; the counts of exactly that window."""
    loop = asyncio.get_running_loop()
    worker = asyncio.create_task(run_worker(queue, backend=backend, concurrency=setup.concurrency))
    try:
        begun = loop.time()
        await Queue(queue, backend=backend).add(TASK_ID, args=[-1])
        await wait_completed(observer, queue, 1, WARM_UP_TIMEOUT, setup.poll)
        await asyncio.sleep(max(WARM_UP_SECONDS - (loop.time() - begun), SETTLE_SECONDS))
        if counter is not None:
            counter.clear()
        started = loop.time()
        await produce(backend, queue, jobs, mode)
        await wait_completed(observer, queue, jobs + 1, setup.timeout, setup.poll)
        elapsed = loop.time() - started
        await asyncio.sleep(SETTLE_SECONDS)
        snapshot = counter.snapshot() if counter is not None else None
        return Timing(elapsed, loop.time() - started), snapshot
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


def rounded(counter: Counter[str] | dict[str, float], divisor: float, digits: int = 3) -> dict[str, float]:
    return {k: round(v / divisor, digits) for k, v in sorted(counter.items())}


async def scenario(setup: Setup, mode: str, jobs: int) -> dict[str, Any]:
    """Counted requests per job of ``jobs`` produced by ``mode`` and run by AsyncMQ's worker."""
    names = Names()
    counter = CostCounter(names.client_id)
    async with kafka_backends(setup, counter, names) as (backend, observer):
        produced_before = backend.transport.produced["jobs"]
        timing, counts = await run_jobs(backend, observer, QUEUE, jobs, setup, mode=mode, counter=counter)
        produced = backend.transport.produced["jobs"] - produced_before - 1  # not the warm-up job's record
    assert counts is not None
    per_job, background = counts.totals()
    jobs_per_s = jobs / timing.elapsed
    background_per_s = sum(background.values()) / timing.window
    by_api = counts.kafka_by_api()
    return {
        "scenario": mode,
        "store": setup.store,
        "jobs": jobs,
        "partitions": setup.partitions,
        "concurrency": setup.concurrency,
        "per_job": {**rounded(per_job, jobs), "all": round(sum(per_job.values()) / jobs, 3)},
        "kafka_per_job_by_api": rounded(by_api, jobs),
        "records_per_produce": round(produced / by_api["Produce"], 1) if by_api["Produce"] else None,
        "store_calls_per_job_by_method": rounded(counts.methods, jobs),
        "background_per_s": rounded(background, timing.window, 2),
        "kafka_background_per_s_by_api": rounded(counts.kafka_by_api(background=True), timing.window, 2),
        "all_per_job": {
            **rounded(per_job + background, jobs),
            "all": round((sum(per_job.values()) + sum(background.values())) / jobs, 3),
        },
        "calls": dict(sorted(counts.calls.items())),
        "background_calls": dict(sorted(counts.background.items())),
        "jobs_per_s": round(jobs_per_s, 1),
        "background_share_per_job": round(background_per_s / jobs_per_s, 3),
    }


async def idle(setup: Setup, seconds: float) -> dict[str, Any]:
    """Requests per second of a worker with nothing to do (after its warm-up job)."""
    names = Names()
    counter = CostCounter(names.client_id)
    async with kafka_backends(setup, counter, names) as (backend, observer):
        worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=4))
        try:
            await Queue(QUEUE, backend=backend).add(TASK_ID, args=[-1])
            await wait_completed(observer, QUEUE, 1, WARM_UP_TIMEOUT, setup.poll)
            await asyncio.sleep(max(WARM_UP_SECONDS, SETTLE_SECONDS))
            counter.clear()
            await asyncio.sleep(seconds)
            counts = counter.snapshot()
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    calls = counts.calls + counts.background
    services: Counter[str] = Counter(name.split(".")[0] for name in calls.elements())
    return {
        "scenario": "idle",
        "store": setup.store,
        "seconds": seconds,
        "partitions": setup.partitions,
        "kafka_requests_per_s": round(services["kafka"] / seconds, 2),
        "store_calls_per_s": round((services["redis"] + services["dynamodb"]) / seconds, 2),
        "kafka_per_s_by_api": rounded(counts.kafka_by_api() + counts.kafka_by_api(background=True), seconds, 2),
        "calls_per_s": rounded(calls, seconds, 2),
    }


async def redis_baseline(setup: Setup, jobs: int, mode: str) -> float:
    """Jobs/s of AsyncMQ's RedisBackend, same jobs and worker, on a queue of random name (keys dropped)."""
    queue = f"kbench-{uuid.uuid4().hex[:8]}"
    backend = RedisBackend(setup.redis_url)
    try:
        timing, _ = await run_jobs(backend, backend, queue, jobs, setup, mode=mode)
    finally:
        await backend.redis.aclose()  # RedisBackend has no close(); its pool is its own
        await backend.redis.connection_pool.disconnect()
        await drop_redis_keys(setup.redis_url, f"*{queue}*")
    return jobs / timing.elapsed


# -- command line ------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--store", choices=["redis", "dynamodb"], default="redis")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument(
        "--dynamodb-endpoint", default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    )
    parser.add_argument("--fetch-max-wait-ms", type=int, help="transport option (default: the transport's)")
    parser.add_argument("--linger-ms", type=int, help="transport option (default: the transport's)")
    return parser.parse_args()


def start_services(args: argparse.Namespace, started: list[Any]) -> None:
    """Fill in the addresses not given, starting those services through scripts/services.py."""
    import services  # scripts/services.py

    wanted = [("bootstrap_servers", "kafka"), ("redis_url", "redis")]
    if args.store == "dynamodb":
        wanted.append(("dynamodb_endpoint", "moto"))
    for attr, name in wanted:
        if not getattr(args, attr):
            print(f"starting {name} ...", flush=True)
            service = services.start_kafka() if name == "kafka" else services.start(name)
            started.append(service)
            setattr(args, attr, service.url)


def main() -> None:
    args = parse_args()
    for name in ("redis", "aiokafka"):  # AsyncMQ puts the root logger at DEBUG
        logging.getLogger(name).setLevel(logging.WARNING)
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(key, value)
    given = {"fetch_max_wait_ms": args.fetch_max_wait_ms, "linger_ms": args.linger_ms}
    options = {k: v for k, v in given.items() if v is not None}
    started: list[Any] = []
    try:
        start_services(args, started)
        setup = Setup(
            bootstrap=args.bootstrap_servers,
            redis_url=args.redis_url,
            store=args.store,
            dynamodb_endpoint=args.dynamodb_endpoint,
            partitions=args.partitions,
            concurrency=args.concurrency,
            transport_options=options,
        )
        results = {}
        for mode in ("concurrent", "bulk", "sequential"):
            print(f"scenario {mode}: {args.jobs} jobs ...", flush=True)
            results[mode] = asyncio.run(scenario(setup, mode, args.jobs))
            print(json.dumps(results[mode], indent=2), flush=True)
        print(f"idle worker for {args.idle_seconds}s ...", flush=True)
        print(json.dumps(asyncio.run(idle(setup, args.idle_seconds)), indent=2), flush=True)
        summary: dict[str, Any] = {"store": args.store, "jobs": args.jobs, "partitions": args.partitions}
        for mode, result in results.items():
            print(f"baseline {mode}: AsyncMQ RedisBackend, same jobs and worker ...", flush=True)
            baseline = asyncio.run(redis_baseline(setup, args.jobs, mode))
            summary[mode] = {
                "redisbackend_jobs_per_s": round(baseline, 1),
                "kafka_jobs_per_s": result["jobs_per_s"],
                "ratio_vs_redisbackend": round(result["jobs_per_s"] / baseline, 3),
            }
        print(json.dumps(summary, indent=2), flush=True)
    finally:
        for service in started:
            service.stop()


if __name__ == "__main__":
    main()
