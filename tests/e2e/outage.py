"""The outage matrix: a service made unreachable under worker processes that run jobs.

One *cell* is a backend combination and the service that goes away: the state store
(Redis; DynamoDB on moto) or the broker (SQS on ElasticMQ; the Kafka broker). The
workers reach that service through a :class:`~tests.support.tcp_proxy.TcpProxy`; the
producer (this process) reaches every service directly. While the jobs run, the proxy is
cut for ``outage`` seconds, then restored. What a cell measures:

* worker exits: processes that ended on their own;
* lost: jobs not ``completed`` once the run settled;
* run twice: jobs whose task started more than once;
* recorded failed: jobs in ``failed`` state (each job succeeds when it runs).

Used by ``tests/e2e/test_outage_matrix.py`` (small runs) and
``benchmarks/outage_matrix.py`` (the full matrix, 5 s and 20 s outages).
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.parse
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncmq.jobs import Job

from asyncmq_cloud import KafkaBackend, SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from tests.e2e.helpers import QUEUE, ROOT, TASK, Workers, runs
from tests.support.tcp_proxy import TcpProxy

#: The cells: (name, what goes away).
CELLS = {
    "redis-store/kafka": "store",
    "dynamodb-store/sqs": "store",
    "sqs-broker/redis": "broker",
    "kafka-broker/redis": "broker",
}


@dataclass
class Services:
    """Addresses of the real services (the producer's view)."""

    redis_url: str = ""
    moto: str = ""
    elasticmq: str = ""
    kafka: str = ""


@dataclass
class CellResult:
    cell: str
    outage: float
    jobs: int
    worker_exits: int = 0
    lost: int = 0
    run_twice: int = 0
    recorded_failed: int = 0
    started_before_cut: int = 0
    ended_during_cut: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        return not (self.worker_exits or self.lost or self.run_twice or self.recorded_failed)


def _hostport(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url if "://" in url else f"tcp://{url}")
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


def _swap_port(url: str, port: int) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=f"{parts.hostname}:{port}").geturl()


def cell_env(
    cell: str, services: Services, proxy: TcpProxy | None, logs: Path
) -> tuple[dict[str, str], dict[str, str], Any]:
    """The workers' environment for ``cell`` (through ``proxy``), the producer's, and its backend factory.

    The producer's environment names every service directly; set it (e.g. with
    ``monkeypatch.setenv``) before calling the factory.
    """
    run = uuid.uuid4().hex[:8]
    # AsyncMQ's stalled checker on, at its default threshold (30 s): above the outage (a job whose
    # heartbeats could not be written for longer than the threshold counts as stalled and runs again).
    base = {"E2E_LOG_DIR": str(logs), "PYTHONPATH": str(ROOT), "E2E_STALLED_CHECK": "1", "E2E_STALLED_THRESHOLD": "30"}
    via = (lambda url: _swap_port(url, proxy.port)) if proxy else (lambda url: url)
    config = LifecycleConfig(receive_wait=0.2)
    store = f"{services.redis_url}?prefix=e2e-o-{run}"
    if cell in ("redis-store/kafka", "kafka-broker/redis"):
        env = {
            **base,
            "E2E_TOPIC_PREFIX": f"o{run}-",
            "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings_kafka.Settings",
        }
        env["E2E_STORE"] = f"{via(services.redis_url)}?prefix=e2e-o-{run}" if cell.startswith("redis") else store
        env["KAFKA_BOOTSTRAP_SERVERS"] = services.kafka
        producer_env = {"KAFKA_BOOTSTRAP_SERVERS": services.kafka}
        return (
            env,
            producer_env,
            lambda: KafkaBackend(topic_prefix=env["E2E_TOPIC_PREFIX"], store=store, partitions=4, config=config),
        )
    env = {**base, "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings.Settings", "E2E_QUEUE_PREFIX": f"o{run}-"}
    if cell == "dynamodb-store/sqs":
        env |= {"E2E_STORE": f"dynamodb://e2e-o-jobs-{run}", "E2E_DELAY_STORE": f"dynamodb://e2e-o-delays-{run}"}
        env |= {"AWS_ENDPOINT_URL_SQS": services.elasticmq, "AWS_ENDPOINT_URL_DYNAMODB": via(services.moto)}
        producer_env = {"AWS_ENDPOINT_URL_SQS": services.elasticmq, "AWS_ENDPOINT_URL_DYNAMODB": services.moto}
    elif cell == "sqs-broker/redis":
        env |= {"E2E_STORE": store, "E2E_DELAY_STORE": store, "AWS_ENDPOINT_URL_SQS": via(services.elasticmq)}
        producer_env = {"AWS_ENDPOINT_URL_SQS": services.elasticmq}
    else:
        raise ValueError(f"unknown cell {cell!r}")
    return (
        env,
        producer_env,
        lambda: SQSBackend(
            queue_prefix=env["E2E_QUEUE_PREFIX"],
            store=env["E2E_STORE"],
            delay_store=env["E2E_DELAY_STORE"],
            config=config,
        ),
    )


def proxied_target(cell: str, services: Services) -> tuple[str, int] | None:
    """The service the cell takes away through a proxy (None: the Kafka broker is halted instead)."""
    url = {"redis-store/kafka": services.redis_url, "dynamodb-store/sqs": services.moto}.get(cell)
    url = services.elasticmq if cell == "sqs-broker/redis" else url
    return _hostport(url) if url else None


async def _states(backend: CloudBackend, ids: list[str]) -> list[str | None]:
    return list(await asyncio.gather(*(backend.get_job_state(QUEUE, job_id) for job_id in ids)))


async def run_cell(
    cell: str,
    producer: CloudBackend,
    workers: Workers,
    logs: Path,
    *,
    cut: Any,
    restore: Any,
    jobs: int,
    outage: float,
    worker_count: int = 3,
    settle_timeout: float = 180.0,
) -> CellResult:
    """Enqueue ``jobs`` jobs of 0.2-1 s, start the workers, cut the service mid-run, restore it, wait."""
    began = time.monotonic()
    result = CellResult(cell, outage, jobs)
    rng = random.Random(7)
    batch = [Job(TASK + "work", [f"o{i}", round(rng.uniform(0.2, 1.0), 2)], {}) for i in range(jobs)]
    await producer.bulk_enqueue(QUEUE, [job.to_dict() for job in batch])
    ids, markers = [job.id for job in batch], [f"o{i}" for i in range(jobs)]
    procs = [workers.start() for _ in range(worker_count)]
    await _wait(lambda: sum(1 for m in markers if runs({"E2E_LOG_DIR": str(logs)}, m)) >= jobs // 4, 120, workers)
    done_before = _count(logs, markers, "done")
    result.started_before_cut = _count(logs, markers, "start")
    await asyncio.to_thread(cut)
    await asyncio.sleep(outage)
    result.ended_during_cut = _count(logs, markers, "done") - done_before
    await asyncio.to_thread(restore)
    deadline = time.monotonic() + settle_timeout
    while time.monotonic() < deadline:
        states = await _states(producer, ids)
        if all(s in ("completed", "failed") for s in states) or any(p.poll() is not None for p in procs):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)  # a late duplicate start would show up here
    states = await _states(producer, ids)
    result.worker_exits = sum(1 for p in procs if p.poll() is not None)
    result.lost = sum(1 for s in states if s != "completed")
    result.recorded_failed = sum(1 for s in states if s == "failed")
    starts = [sum(1 for line in runs({"E2E_LOG_DIR": str(logs)}, m) if line.startswith("start")) for m in markers]
    result.run_twice = sum(1 for n in starts if n > 1)
    result.seconds = time.monotonic() - began
    return result


def _count(logs: Path, markers: list[str], event: str) -> int:
    env = {"E2E_LOG_DIR": str(logs)}
    return sum(1 for m in markers for line in runs(env, m) if line.startswith(event))


async def _wait(predicate: Any, timeout: float, workers: Workers) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, workers.logs()
        await asyncio.sleep(0.1)


async def provisioned(stack: AsyncExitStack, factory: Any) -> CloudBackend:
    backend: CloudBackend = factory()
    stack.push_async_callback(backend.close)
    await backend.provision([QUEUE])
    return backend
