"""End-to-end: an unchanged AsyncMQ app under the real ``asyncmq`` CLI on SQSBackend.

SQS is ElasticMQ, the state and delay stores DynamoDB on the moto server — real
processes, configured only through ``ASYNCMQ_SETTINGS_MODULE`` and the standard
``AWS_ENDPOINT_URL_SQS`` / ``AWS_ENDPOINT_URL_DYNAMODB`` variables.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncmq.jobs import Job

from asyncmq_cloud import SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from tests.e2e.helpers import QUEUE, ROOT, TASK, Workers, drop_in_scenario, runs, wait_states, wait_victim_busy

pytestmark = [pytest.mark.elasticmq, pytest.mark.slow]


@pytest.fixture
def stores(request: pytest.FixtureRequest) -> dict[str, str]:
    """The default combination (DynamoDB on moto); the crash test asks for Redis (faster)."""
    run = uuid.uuid4().hex[:8]
    if getattr(request, "param", "dynamodb") == "redis":
        redis_url = request.getfixturevalue("redis_url")
        return {"E2E_STORE": f"{redis_url}?prefix=e2e-{run}", "E2E_DELAY_STORE": f"{redis_url}?prefix=e2e-{run}"}
    moto = request.getfixturevalue("moto_endpoint")
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": moto,
        "E2E_STORE": f"dynamodb://e2e-jobs-{run}",
        "E2E_DELAY_STORE": f"dynamodb://e2e-delays-{run}",
    }


@pytest.fixture
def app_env(
    elasticmq_endpoint: str, stores: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    logs = tmp_path / "runs"
    logs.mkdir()
    env = {
        **stores,
        "AWS_ENDPOINT_URL_SQS": elasticmq_endpoint,
        "E2E_QUEUE_PREFIX": f"e{uuid.uuid4().hex[:8]}-",
        "E2E_LOG_DIR": str(logs),
        "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings.Settings",
        "PYTHONPATH": str(ROOT),
    }
    for key, value in env.items():  # restored by monkeypatch after the test
        monkeypatch.setenv(key, value)
    return dict(os.environ)


@pytest.fixture
async def producer(app_env: dict[str, str]) -> AsyncIterator[SQSBackend]:
    backend = SQSBackend(
        queue_prefix=app_env["E2E_QUEUE_PREFIX"],
        store=app_env["E2E_STORE"],
        delay_store=app_env["E2E_DELAY_STORE"],
        config=LifecycleConfig(receive_wait=0.2),
    )
    await backend.provision([QUEUE])
    try:
        yield backend
    finally:
        await backend.close()


@pytest.mark.moto
async def test_unchanged_app_runs_under_asyncmq_worker_cli(
    app_env: dict[str, str], producer: SQSBackend, workers: Workers
) -> None:
    await drop_in_scenario(app_env, producer, workers)


@pytest.mark.redis
@pytest.mark.parametrize("stores", ["redis"], indirect=True)
async def test_sigkilled_worker_jobs_run_again_and_complete_once(
    app_env: dict[str, str], producer: SQSBackend, workers: Workers
) -> None:
    # AsyncMQ's stalled checker off: recovery must come from SQS redelivery + the lease.
    lease = {"E2E_VISIBILITY": "4", "E2E_LEASE": "4", "E2E_STALLED_CHECK": "0"}
    victim = workers.start(**lease, E2E_SECONDS_SCALE="25")  # its jobs take 5 s: killed with jobs in flight
    for _ in range(2):
        workers.start(**lease)
    markers = [f"m{i}" for i in range(int(os.environ.get("E2E_CRASH_JOBS", "2000")))]
    jobs = [Job(TASK + "work", [m], {"seconds": 0.2}) for m in markers]
    await producer.bulk_enqueue(QUEUE, [job.to_dict() for job in jobs])
    # Kill one worker while it holds jobs in flight.
    await wait_victim_busy(app_env, markers, victim.pid, workers, started=100, timeout=60)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    interrupted = [m for m in markers if runs(app_env, m) == [f"start {victim.pid}"]]
    assert interrupted, "the victim had no job in flight; the test proved nothing"
    await wait_states(producer, [job.id for job in jobs], "completed", 180, workers)
    done_counts = {m: sum(1 for line in runs(app_env, m) if line.startswith("done")) for m in markers}
    assert [m for m, n in done_counts.items() if n != 1] == [], "every job completes exactly once"
    for marker in interrupted:
        assert len(runs(app_env, marker)) == 3, runs(app_env, marker)  # killed start, start, done
    print(f"\n{len(interrupted)} job(s) were in flight on the killed worker and ran again")
