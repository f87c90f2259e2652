"""End-to-end: ``asyncmq-cloud worker`` processes started as a user starts them, stopped by signals.

The unchanged e2e app (``tests/e2e/app``) on SQSBackend (ElasticMQ, Redis state and delay
stores), on DynamoDBBackend (moto) and on KafkaBackend (the Kafka broker, Redis stores).
Each job run appends ``start PID`` / ``done PID`` to its marker file, so the tests see which
process started which job and when.

* SIGTERM under load: the jobs running at the signal finish within the grace, no job starts
  in that worker after the signal, the worker is deregistered, exit code 0;
* a job still running when a short grace ends is given back and started by another,
  already running, worker well before the lease / visibility timeout (the measured delay is
  printed; its figures are in ``benchmarks/worker_drain.py``);
* a second signal stops at once (exit 0) and gives the job back.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncmq.jobs import Job

from asyncmq_cloud import DynamoDBBackend, KafkaBackend, SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from tests.e2e.helpers import QUEUE, ROOT, TASK, Workers, runs, wait_states
from tests.plugins.backend_kafka import drop_topics
from tests.plugins.store_dynamodb import drop_tables
from tests.plugins.store_redis import drop_prefix

pytestmark = [pytest.mark.slow]

CLOUD = str(Path(sys.executable).parent / "asyncmq-cloud")
#: The lease and the SQS visibility timeout of the app: a take-over by timeout would take this long.
LEASE = 60
#: The short grace of the take-over test (s).
GRACE = 1.0


class CloudWorkers(Workers):
    """``asyncmq-cloud worker`` processes (stdout and stderr in ``worker-N.log``)."""

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:  # type: ignore[override]
        self.command = [CLOUD, "worker", QUEUE, *(args or ("--concurrency", "4"))]
        return super().start(**extra_env)

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logdir / f"worker-{self.procs.index(proc)}.log").read_text(errors="replace")


def _sqs_env(request: pytest.FixtureRequest, run: str) -> dict[str, str]:
    redis_url = request.getfixturevalue("redis_url")
    return {
        "AWS_ENDPOINT_URL_SQS": request.getfixturevalue("elasticmq_endpoint"),
        "E2E_QUEUE_PREFIX": f"w{run}-",
        "E2E_STORE": f"{redis_url}?prefix=wk-{run}",
        "E2E_DELAY_STORE": f"{redis_url}?prefix=wk-{run}",
        "E2E_VISIBILITY": str(LEASE),
        "E2E_LEASE": str(LEASE),
        "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings.Settings",
    }


def _dynamodb_env(request: pytest.FixtureRequest, run: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": request.getfixturevalue("dynamodb_endpoint"),
        "E2E_TABLE": f"e2e-wk-jobs-{run}",
        "E2E_DELAY_STORE": f"dynamodb://e2e-wk-delays-{run}",
        "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings_dynamodb.Settings",
    }


def _kafka_env(request: pytest.FixtureRequest, run: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": request.getfixturevalue("kafka_bootstrap"),
        "E2E_TOPIC_PREFIX": f"w{run}-",
        "E2E_STORE": f"{request.getfixturevalue('redis_url')}?prefix=wk-{run}",
        "E2E_LEASE": str(LEASE),
        "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings_kafka.Settings",
    }


ENVS = {"sqs": _sqs_env, "dynamodb": _dynamodb_env, "kafka": _kafka_env}
BACKENDS = [
    pytest.param("sqs", marks=[pytest.mark.elasticmq, pytest.mark.redis], id="sqs-redis"),
    pytest.param("dynamodb", marks=[pytest.mark.moto], id="dynamodb"),
    pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.redis], id="kafka-redis"),
]


@pytest.fixture(params=BACKENDS)
async def app_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, str]]:
    logs = tmp_path / "runs"
    logs.mkdir()
    run = uuid.uuid4().hex[:8]
    env = ENVS[request.param](request, run)
    env.update({"E2E_LOG_DIR": str(logs), "PYTHONPATH": str(ROOT), "E2E_KIND": request.param})
    for key, value in env.items():  # restored by monkeypatch after the test
        monkeypatch.setenv(key, value)
    try:
        yield dict(os.environ)
    finally:
        if request.param == "dynamodb":
            await drop_tables(env["AWS_ENDPOINT_URL_DYNAMODB"], env["E2E_TABLE"], env["E2E_DELAY_STORE"][11:])
        else:
            await drop_prefix(request.getfixturevalue("redis_url"), f"wk-{run}")
        if request.param == "kafka":
            await drop_topics(env["KAFKA_BOOTSTRAP_SERVERS"], env["E2E_TOPIC_PREFIX"])


@pytest.fixture
async def producer(app_env: dict[str, str]) -> AsyncIterator[Any]:
    config = LifecycleConfig(receive_wait=0.2)
    backend: SQSBackend | DynamoDBBackend | KafkaBackend
    if app_env["E2E_KIND"] == "kafka":
        backend = KafkaBackend(
            bootstrap_servers=app_env["KAFKA_BOOTSTRAP_SERVERS"],
            topic_prefix=app_env["E2E_TOPIC_PREFIX"],
            store=app_env["E2E_STORE"],
            partitions=4,
            config=config,
        )
    elif app_env["E2E_KIND"] == "sqs":
        store = app_env["E2E_STORE"]
        backend = SQSBackend(queue_prefix=app_env["E2E_QUEUE_PREFIX"], store=store, delay_store=store, config=config)
    else:
        backend = DynamoDBBackend(table=app_env["E2E_TABLE"], delay_store=app_env["E2E_DELAY_STORE"], config=config)
    await backend.provision([QUEUE])
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def cloud_workers(app_env: dict[str, str], tmp_path: Path) -> Any:
    group = CloudWorkers(app_env, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def starts_by(app_env: dict[str, str], markers: list[str], pid: int) -> list[str]:
    return [m for m in markers if f"start {pid}" in runs(app_env, m)]


def running_on(app_env: dict[str, str], markers: list[str], pid: int) -> list[str]:
    return [m for m in markers if runs(app_env, m) == [f"start {pid}"]]


async def until(check: Any, timeout: float, workers: CloudWorkers, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{workers.logs()}"
        await asyncio.sleep(0.05)


async def enqueue(producer: Any, count: int, seconds: float, prefix: str = "m") -> tuple[list[str], list[str]]:
    """``count`` jobs of ``seconds`` each: their markers and their ids."""
    markers = [f"{prefix}{i}" for i in range(count)]
    jobs = [Job(TASK + "work", [m], {"seconds": seconds}) for m in markers]
    await producer.bulk_enqueue(QUEUE, [job.to_dict() for job in jobs])
    return markers, [job.id for job in jobs]


async def registered(producer: Any, count: int) -> bool:
    return len(await producer.list_workers()) == count


async def test_sigterm_drains_running_jobs_and_starts_none(
    app_env: dict[str, str], producer: Any, cloud_workers: CloudWorkers
) -> None:
    worker = cloud_workers.start("--concurrency", "4", "--grace", "30")
    markers, ids = await enqueue(producer, 12, seconds=4.0)
    busy = await until(lambda: len(running_on(app_env, markers, worker.pid)) == 4, 60, cloud_workers, "4 runs")
    assert busy
    worker.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    at_signal = starts_by(app_env, markers, worker.pid)
    assert worker.wait(timeout=45) == 0, cloud_workers.logs()
    took = time.monotonic() - signalled
    assert starts_by(app_env, markers, worker.pid) == at_signal, "no job starts after the signal"
    for marker in at_signal:
        assert runs(app_env, marker) == [f"start {worker.pid}", f"done {worker.pid}"], "ran to its end"
    assert took < 30, f"the drain took {took:.1f} s, over the grace"
    assert await producer.list_workers() == [], "the drained worker deregistered"
    log = cloud_workers.log_of(worker)
    assert f"{len(at_signal)} of {len(at_signal)} job(s) running at the signal finished, 0 given back" in log, log
    # the jobs it did not start are still there: another worker runs each exactly once
    cloud_workers.start("--concurrency", "8")
    await wait_states(producer, ids, "completed", 60, cloud_workers)
    assert all(sum(line.startswith("done") for line in runs(app_env, m)) == 1 for m in markers)
    print(f"\ndrain of {len(at_signal)} running jobs took {took:.2f} s (jobs of 4 s)")


async def _victim_with_a_long_job(
    app_env: dict[str, str], producer: Any, workers: CloudWorkers, *args: str
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], str]:
    """A worker running one long job, and a second, idle worker started after that job started."""
    victim = workers.start("--concurrency", "1", *args)
    # Long enough to outlast the second worker's start on a loaded machine (the run is cut anyway).
    [marker], _ = await enqueue(producer, 1, seconds=20.0, prefix="long")
    await until(lambda: runs(app_env, marker) == [f"start {victim.pid}"], 60, workers, "the long job on the victim")
    other = workers.start("--concurrency", "2", E2E_SECONDS_SCALE="0.05")  # the job takes 1 s there
    assert await until(lambda: registered(producer, 2), 60, workers, "the second worker")
    assert runs(app_env, marker) == [f"start {victim.pid}"], "the long job still runs on the victim"
    return victim, other, marker


async def test_a_job_running_at_the_end_of_the_grace_is_taken_over_at_once(
    app_env: dict[str, str], producer: Any, cloud_workers: CloudWorkers
) -> None:
    victim, other, marker = await _victim_with_a_long_job(app_env, producer, cloud_workers, "--grace", str(GRACE))
    victim.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await until(lambda: f"start {other.pid}" in runs(app_env, marker), 30, cloud_workers, "the take-over")
    delay = time.monotonic() - signalled - GRACE
    assert victim.wait(timeout=30) == 0, cloud_workers.logs()
    assert delay < LEASE / 6, f"started again {delay:.1f} s after the grace: the lease ran out instead of a release"
    assert "0 of 1 job(s) running at the signal finished, 1 given back" in cloud_workers.log_of(victim)
    await until(lambda: f"done {other.pid}" in runs(app_env, marker), 60, cloud_workers, "the run on the other")
    assert runs(app_env, marker) == [f"start {victim.pid}", f"start {other.pid}", f"done {other.pid}"]
    print(f"\nthe given-back job started on the other worker {delay:.2f} s after the end of the grace")


async def test_a_second_signal_stops_at_once_and_gives_the_job_back(
    app_env: dict[str, str], producer: Any, cloud_workers: CloudWorkers
) -> None:
    victim, other, marker = await _victim_with_a_long_job(app_env, producer, cloud_workers, "--grace", "60")
    victim.send_signal(signal.SIGTERM)
    await asyncio.sleep(1.0)
    assert victim.poll() is None, "the grace (60 s) is still running"
    victim.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert victim.wait(timeout=20) == 0, cloud_workers.logs()
    stopped = time.monotonic() - signalled
    assert "SIGTERM received again: stopping now" in cloud_workers.log_of(victim)
    assert "(stopped by the second signal): 0 of 1 job(s) running at the signal finished, 1 given back" in (
        cloud_workers.log_of(victim)
    )
    await until(lambda: f"done {other.pid}" in runs(app_env, marker), 60, cloud_workers, "the run on the other")
    assert runs(app_env, marker) == [f"start {victim.pid}", f"start {other.pid}", f"done {other.pid}"]
    assert await until(lambda: registered(producer, 1), 20, cloud_workers, "one worker left")
    print(f"\nthe second signal stopped the worker in {stopped:.2f} s")
