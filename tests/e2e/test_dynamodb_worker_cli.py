"""End-to-end: the unchanged AsyncMQ app under the real ``asyncmq`` CLI on DynamoDBBackend.

DynamoDB is the moto server (a real process); the 2,000-job race runs on MiniStack (a real
process too), whose index queries read one index partition where moto's scan the whole table
(the race took 5 to 6 minutes on moto, under a minute on MiniStack). The app is configured
only through ``ASYNCMQ_SETTINGS_MODULE`` (``tests/e2e/app/settings_dynamodb.py``: the backend
line is the only difference from the SQS app) and ``AWS_ENDPOINT_URL_DYNAMODB``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncmq.jobs import Job
from asyncmq.queues import Queue

from asyncmq_cloud import DynamoDBBackend
from asyncmq_cloud.config import LifecycleConfig
from tests.e2e.helpers import QUEUE, ROOT, TASK, Workers, drop_in_scenario, runs, wait_states
from tests.plugins.store_dynamodb import drop_tables

pytestmark = [pytest.mark.slow]


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> str:
    """MiniStack for a test marked ``ministack``, else the DynamoDB emulator of the suite (moto)."""
    wanted = "ministack_endpoint" if request.node.get_closest_marker("ministack") else "dynamodb_endpoint"
    return str(request.getfixturevalue(wanted))


@pytest.fixture
async def app_env(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, str]]:
    logs = tmp_path / "runs"
    logs.mkdir()
    run = uuid.uuid4().hex[:8]
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "E2E_TABLE": f"e2e-ddb-jobs-{run}",
        "E2E_DELAY_STORE": f"dynamodb://e2e-ddb-delays-{run}",
        "E2E_LOG_DIR": str(logs),
        "ASYNCMQ_SETTINGS_MODULE": "tests.e2e.app.settings_dynamodb.Settings",
        "PYTHONPATH": str(ROOT),
    }
    for key, value in env.items():  # restored by monkeypatch after the test
        monkeypatch.setenv(key, value)
    try:
        yield dict(os.environ)
    finally:
        await drop_tables(endpoint, env["E2E_TABLE"], env["E2E_DELAY_STORE"].removeprefix("dynamodb://"))


@pytest.fixture
async def producer(app_env: dict[str, str]) -> AsyncIterator[DynamoDBBackend]:
    backend = DynamoDBBackend(
        table=app_env["E2E_TABLE"], delay_store=app_env["E2E_DELAY_STORE"], config=LifecycleConfig(receive_wait=0.2)
    )
    await backend.provision([QUEUE])
    try:
        yield backend
    finally:
        await backend.close()


def start_order(app_env: dict[str, str]) -> list[str]:
    path = Path(app_env["E2E_LOG_DIR"]) / "_starts"
    return path.read_text().split("\n")[:-1] if path.exists() else []


@pytest.mark.moto
async def test_unchanged_app_runs_under_asyncmq_worker_cli(
    app_env: dict[str, str], producer: DynamoDBBackend, workers: Workers
) -> None:
    await drop_in_scenario(app_env, producer, workers)


@pytest.mark.first  # the suite's longest test: start it before everything else
@pytest.mark.ministack
@pytest.mark.timeout(900)
async def test_four_workers_race_over_one_queue_without_double_claims(
    app_env: dict[str, str], producer: DynamoDBBackend, workers: Workers
) -> None:
    total = int(os.environ.get("E2E_RACE_JOBS", "2000"))
    # 500 low-priority jobs wait, then one high-priority job is enqueued behind them.
    low = [Job(TASK + "work", [f"low{i}"], {}, priority=9) for i in range(500)]
    await producer.bulk_enqueue(QUEUE, [job.to_dict() for job in low])
    high = await Queue(QUEUE, backend=producer).add(TASK + "work", args=["high"], priority=1)
    rest = [Job(TASK + "work", [f"m{i}"], {}) for i in range(total - len(low) - 1)]
    await producer.bulk_enqueue(QUEUE, [job.to_dict() for job in rest])
    # The emulator applies DynamoDB writes one at a time: spare it the per-job heartbeat write
    # and most of AsyncMQ's per-second scheduler calls (neither is what this test is about).
    for _ in range(4):
        workers.start(E2E_STALLED_CHECK="0", E2E_SCAN_INTERVAL="5")
    ids = [job.id for job in low + rest] + [high]
    await wait_states(producer, ids, "completed", 600, workers)

    markers = [f"low{i}" for i in range(500)] + [f"m{i}" for i in range(len(rest))] + ["high"]
    starts = {m: sum(1 for line in runs(app_env, m) if line.startswith("start")) for m in markers}
    assert [m for m, n in starts.items() if n != 1] == [], "every job started exactly once (no double claim)"
    order = start_order(app_env)
    assert len(order) == total
    low_before_high = sum(1 for m in order[: order.index("high")] if m.startswith("low"))
    # Every receive offers the shard's best-ranked job: the high-priority one goes in the
    # first receives of the four workers (4 x concurrency 4), never behind the 500.
    assert low_before_high < 16, f"{low_before_high} low-priority jobs started before the high-priority one"
    print(f"\n{total} jobs over 4 workers: 0 double claims; {low_before_high} low-priority job(s) started first")
