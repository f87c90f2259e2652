"""What an idle worker costs: calls per second to each service, at default settings, in one run.

Each backend runs AsyncMQ's own ``run_worker`` (concurrency 3) on an empty queue; after a
warm-up the calls it makes are counted for ``--seconds``:

* AWS calls (SQS, DynamoDB) and Redis commands through the backends' own observation
  hook (``asyncmq_cloud.observe``: every botocore call and every Redis command or
  pipeline the backend sends, by operation; an ``EVALSHA`` is one command);
* Kafka requests at aiokafka's connection (``AIOKafkaConnection.send``, by API):
  fetches, heartbeats, metadata, commits; what the broker sees.

Backends: ``SQSBackend`` with the Redis store on ElasticMQ (``sqs-redis``) and with the
DynamoDB stores on MiniStack (``sqs-dynamodb``), ``KafkaBackend`` with the Redis store
(``kafka-redis``), ``DynamoDBBackend`` on MiniStack (``dynamodb``). The baseline, in the
same run: AsyncMQ's ``RedisBackend`` idle, its Redis commands counted at its client.
Issue 19's targets: an idle SQS worker <= 0.05 SQS calls/s, every idle worker <= 1 call/s
in all. ``--idle-poll-max`` shows what ``DynamoDBBackend``'s idle polling trades.
Services start through ``scripts/services.py`` unless their variables are set
(``REDIS_URL``, ``ELASTICMQ_ENDPOINT_URL``, ``MINISTACK_ENDPOINT_URL``,
``KAFKA_BOOTSTRAP_SERVERS``). Traffic stays on 127.0.0.1; each count ends by itself.

    python benchmarks/idle_cost.py [--seconds 30] [--backends sqs-redis,dynamodb] [--idle-poll-max S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import redis.asyncio as aioredis  # noqa: E402
from aiokafka.conn import AIOKafkaConnection  # noqa: E402
from asyncmq.backends.redis import RedisBackend  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402

from asyncmq_cloud import DynamoDBBackend, KafkaBackend, SQSBackend, observe  # noqa: E402

QUEUE = "idle"
BACKENDS = ("sqs-redis", "sqs-dynamodb", "kafka-redis", "dynamodb")
SERVICES = {
    "REDIS_URL": "redis",
    "ELASTICMQ_ENDPOINT_URL": "elasticmq",
    "MINISTACK_ENDPOINT_URL": "ministack",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka",
}


class Calls(observe.BaseObserver):
    """Calls counted while :attr:`on`, by ``service.operation``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.on = False

    def add(self, name: str) -> None:
        if self.on:
            self.counts[name] += 1

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        if service != "kafka":  # the consumer's local buffer polls; Kafka requests are counted at the connection
            self.add(f"{service}.{operation}")

    @contextmanager
    def kafka_requests(self) -> Iterator[None]:
        original = AIOKafkaConnection.send

        def send(conn: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
            self.add(f"kafka.{type(request).__name__.split('Request')[0]}")
            return original(conn, request, expect_response)

        AIOKafkaConnection.send = send  # type: ignore[method-assign]
        try:
            yield
        finally:
            AIOKafkaConnection.send = original  # type: ignore[method-assign]


def counting_redis(url: str, calls: Calls) -> aioredis.Redis:
    """A client for AsyncMQ's ``RedisBackend`` that counts its commands (a pipeline: one)."""

    class Counted(aioredis.Redis):
        async def execute_command(self, *args: Any, **options: Any) -> Any:
            calls.add(f"redis.{str(args[0]).upper()}")
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            calls.add("redis.PIPELINE")
            return super().pipeline(transaction, shard_hint)

    return Counted.from_url(url)


def build(kind: str, env: dict[str, str], calls: Calls, idle_poll_max: float | None) -> Any:
    run = uuid.uuid4().hex[:8]
    redis = f"{env['REDIS_URL']}?prefix=idle-{run}"
    ministack = env["MINISTACK_ENDPOINT_URL"]
    if kind == "sqs-redis":
        sqs = env["ELASTICMQ_ENDPOINT_URL"]
        return SQSBackend(
            queue_prefix=f"i{run}-", store=redis, delay_store=redis, endpoint_url=sqs, create_missing=True
        )
    if kind == "sqs-dynamodb":
        return SQSBackend(
            queue_prefix=f"i{run}-", store=f"dynamodb://i{run}-jobs", delay_store=f"dynamodb://i{run}-delays",
            endpoint_url=ministack, create_missing=True,
        )  # fmt: skip
    if kind == "kafka-redis":
        return KafkaBackend(
            bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], topic_prefix=f"i{run}-", store=redis, delay_store=redis,
            create_missing=True,
        )  # fmt: skip
    if kind == "dynamodb":
        return DynamoDBBackend(
            table=f"i{run}-jobs", delay_store=f"dynamodb://i{run}-delays", endpoint_url=ministack,
            create_missing=True, **({} if idle_poll_max is None else {"idle_poll_max": idle_poll_max}),
        )  # fmt: skip
    return RedisBackend(counting_redis(f"{env['REDIS_URL']}", calls))


async def measure(
    kind: str, env: dict[str, str], seconds: float, warmup: float, idle_poll_max: float | None
) -> dict[str, Any]:
    calls = Calls()
    observe.subscribe(calls)
    backend = build(kind, env, calls, idle_poll_max)
    try:
        with calls.kafka_requests():
            if kind != "asyncmq-redis":
                await backend.provision([QUEUE])
            queue = f"{QUEUE}-{uuid.uuid4().hex[:6]}" if kind == "asyncmq-redis" else QUEUE
            worker = asyncio.create_task(run_worker(queue, backend=backend, concurrency=3))
            await asyncio.sleep(warmup)
            calls.on, began = True, time.monotonic()
            await asyncio.sleep(seconds)
            calls.on, elapsed = False, time.monotonic() - began
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    finally:
        observe.unsubscribe(calls)
        if kind != "asyncmq-redis":
            await backend.close()
    by_service: Counter[str] = Counter()
    for name, count in calls.counts.items():
        by_service[name.split(".")[0]] += count
    return {
        "backend": kind,
        "seconds": round(elapsed, 1),
        "calls_per_s": round(sum(calls.counts.values()) / elapsed, 3),
        "by_service_per_s": {s: round(n / elapsed, 3) for s, n in sorted(by_service.items())},
        "by_operation_per_s": {op: round(n / elapsed, 3) for op, n in calls.counts.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="counted seconds per backend")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before counting (startup reads)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--idle-poll-max", type=float, help="DynamoDBBackend's idle_poll_max (s; default: its own)")
    args = parser.parse_args()
    logging.getLogger("redis").setLevel(logging.WARNING)
    credentials = {"AWS_ACCESS_KEY_ID": "idle", "AWS_SECRET_ACCESS_KEY": "idle", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        os.environ.setdefault(name, value)
    import services  # scripts/services.py

    started: list[Any] = []
    env = {name: os.environ[name] for name in SERVICES if os.environ.get(name)}
    try:
        for name, service_name in SERVICES.items():
            if name not in env:
                service = services.start(service_name)
                started.append(service)
                env[name] = service.env.get(name, service.url)
        results = [asyncio.run(measure("asyncmq-redis", env, args.seconds, args.warmup, args.idle_poll_max))]
        for kind in args.backends.split(","):
            print(f"{kind}: counting {args.seconds:g} s idle ...", flush=True)
            results.append(asyncio.run(measure(kind, env, args.seconds, args.warmup, args.idle_poll_max)))
        baseline = results[0]["calls_per_s"]
        for result in results:
            result["ratio_to_asyncmq_redis"] = round(result["calls_per_s"] / baseline, 3) if baseline else None
            sqs = result["by_service_per_s"].get("sqs")
            result["targets"] = {
                "all_in_le_1_per_s": result["calls_per_s"] <= 1.0,
                **({"sqs_le_0.05_per_s": sqs <= 0.05} if sqs is not None else {}),
            }
            print(json.dumps(result), flush=True)
    finally:
        for service in started:
            service.stop()


if __name__ == "__main__":
    main()
