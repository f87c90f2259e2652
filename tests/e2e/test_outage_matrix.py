"""Outages while jobs run, under real worker processes (issue 16).

AsyncMQ 0.10.1's ``handle_job`` catches nothing around the backend calls it makes while a
job runs. Before the backend rode out transient errors, a Redis store away for 5 s under
Kafka workers ended every worker and ran finished jobs twice, and a DynamoDB store away
under SQS workers recorded successful jobs ``failed``. Each cell here: 90 jobs of 0.2-1 s
on three workers, the service cut (``tests/support/tcp_proxy.py``) for 5 s once a quarter
of the jobs started, then restored: no worker exits, no job is lost, runs twice or is
recorded failed. Each cell runs under one of the two worker commands — AsyncMQ's own
``asyncmq worker start`` (the backend-side fix alone) or ``asyncmq-cloud worker``;
``benchmarks/outage_matrix.py`` runs the full matrix (both commands, more jobs, 5 s and
20 s outages).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.helpers import ASYNCMQ, QUEUE, Workers
from tests.e2e.outage import Services, cell_env, proxied_target, run_cell
from tests.plugins.backend_kafka import drop_topics
from tests.plugins.backend_sqs import drop_queues
from tests.plugins.store_dynamodb import drop_tables
from tests.plugins.store_redis import drop_prefix
from tests.support.tcp_proxy import proxied

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ASYNCMQ_CLOUD = str(Path(ASYNCMQ).parent / "asyncmq-cloud")
COMMANDS = {
    "asyncmq": [ASYNCMQ, "worker", "start", QUEUE, "--concurrency", "4"],
    "asyncmq-cloud": [ASYNCMQ_CLOUD, "worker", QUEUE, "--concurrency", "4"],
}
SQS = [pytest.mark.elasticmq]
CELLS = [
    pytest.param(("redis-store/kafka", "asyncmq-cloud"), marks=pytest.mark.kafka, id="redis-store-kafka-cloud"),
    pytest.param(("dynamodb-store/sqs", "asyncmq"), marks=[*SQS, pytest.mark.moto], id="dynamodb-store-sqs-asyncmq"),
    pytest.param(("sqs-broker/redis", "asyncmq-cloud"), marks=SQS, id="sqs-broker-redis-cloud"),
]


def _services(request: pytest.FixtureRequest, cell: str) -> Services:
    found = Services(redis_url=str(request.getfixturevalue("redis_url")))
    if "kafka" in cell:
        found.kafka = str(request.getfixturevalue("kafka_bootstrap"))
    if "sqs" in cell:
        found.elasticmq = str(request.getfixturevalue("elasticmq_endpoint"))
    if "dynamodb" in cell:
        found.moto = str(request.getfixturevalue("moto_endpoint"))
    return found


async def _clean_up(env: dict[str, str], services: Services) -> None:
    prefix = env["E2E_STORE"].rsplit("prefix=", 1)[-1] if "prefix=" in env["E2E_STORE"] else ""
    if prefix:
        await drop_prefix(services.redis_url, prefix)
    if "E2E_TOPIC_PREFIX" in env:
        await drop_topics(services.kafka, env["E2E_TOPIC_PREFIX"])
    if "E2E_QUEUE_PREFIX" in env:
        await drop_queues(services.elasticmq, env["E2E_QUEUE_PREFIX"])
    if env["E2E_STORE"].startswith("dynamodb://"):
        tables = [env[key].removeprefix("dynamodb://") for key in ("E2E_STORE", "E2E_DELAY_STORE")]
        await drop_tables(services.moto, *tables)


@pytest.fixture
async def matrix_cell(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str, Services, Path]]:
    cell, runner = request.param
    yield cell, runner, _services(request, cell), tmp_path


@pytest.mark.parametrize("matrix_cell", CELLS, indirect=True)
@pytest.mark.timeout(400)
async def test_a_service_outage_mid_run_loses_repeats_and_fails_nothing(
    matrix_cell: tuple[str, str, Services, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cell, runner, services, tmp_path = matrix_cell
    logs = tmp_path / "runs"
    logs.mkdir()
    target = proxied_target(cell, services)
    assert target is not None
    with proxied(*target) as proxy:
        env, producer_env, factory = cell_env(cell, services, proxy, logs)
        for key, value in producer_env.items():
            monkeypatch.setenv(key, value)
        workers = Workers({**os.environ, **env}, tmp_path, COMMANDS[runner])
        producer = factory()
        try:
            await producer.provision([QUEUE])
            result = await run_cell(
                cell, producer, workers, logs, cut=proxy.cut, restore=proxy.restore, jobs=90, outage=5.0
            )
        finally:
            workers.stop_all()
            with contextlib.suppress(Exception):
                await producer.close()
            await _clean_up(env, services)
    print(f"\n{result}")
    assert proxy.accepted > 0, "the workers never went through the proxy: the outage proved nothing"
    assert result.started_before_cut < result.jobs, "the run ended before the outage: it proved nothing"
    assert result.worker_exits == 0, workers.logs()
    assert (result.lost, result.run_twice, result.recorded_failed) == (0, 0, 0), workers.logs()
