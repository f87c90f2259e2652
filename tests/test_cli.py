"""``asyncmq-cloud provision --dry-run`` and ``asyncmq-cloud health``, as subprocesses.

The app's settings modules (``tests/e2e/app``) name the backend, exactly as in production.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from asyncmq_cloud.errors import CloudBackendError

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "asyncmq_cloud.cli", *args]
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        **env,
    }
    return subprocess.run(command, env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_provision_dry_run_prints_the_plan_and_contacts_nothing() -> None:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens, any call would fail
    done = run_cli(
        "--settings",
        "tests.e2e.app.settings.Settings",
        "provision",
        "--queue",
        "emails",
        "--dry-run",
        env={
            "AWS_ENDPOINT_URL": closed,
            "E2E_QUEUE_PREFIX": "app-",
            "E2E_STORE": "dynamodb://app-jobs",
            "E2E_DELAY_STORE": "dynamodb://app-delays",
        },
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("DynamoDB table app-jobs" in line and "ready(rdy_pk, rdy_sk)" in line for line in lines), lines
    assert any("DynamoDB table app-delays" in line and "TTL expires_at" in line for line in lines), lines
    assert any("SQS queue app-emails " in line and "dead-letter queue app-emails-dlq" in line for line in lines)


@pytest.mark.moto
def test_health_is_zero_when_the_backend_answers_and_one_when_not(moto_endpoint: str) -> None:
    run = uuid.uuid4().hex[:8]
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
        "E2E_TABLE": f"health-jobs-{run}",
        "E2E_DELAY_STORE": f"dynamodb://health-delays-{run}",
    }
    settings = ("--settings", "tests.e2e.app.settings_dynamodb.Settings")
    missing = run_cli(*settings, "health", "--timeout", "10", env=env)
    assert missing.returncode == 1 and "unhealthy" in missing.stderr and env["E2E_TABLE"] in missing.stderr

    provisioned = run_cli(*settings, "provision", env=env)
    assert provisioned.returncode == 0, provisioned.stderr
    healthy = run_cli(*settings, "health", "--queue", "default", env=env)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.strip() == "healthy"

    began = time.monotonic()
    down = run_cli(
        *settings, "health", "--timeout", "2", env={**env, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}
    )
    assert down.returncode == 1 and "unhealthy" in down.stderr
    assert time.monotonic() - began < 60, "a probe must give up within its timeout"


@pytest.mark.kafka
@pytest.mark.redis
async def test_kafka_provision_plan_provision_and_health(kafka_bootstrap: str, redis_url: str) -> None:
    from tests.plugins.backend_kafka import drop_topics
    from tests.plugins.store_redis import drop_prefix

    run = uuid.uuid4().hex[:8]
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "E2E_TOPIC_PREFIX": f"cli{run}-"}
    env["E2E_STORE"] = f"{redis_url}?prefix=cli-{run}"
    settings = ("--settings", "tests.e2e.app.settings_kafka.Settings")
    try:
        plan = run_cli(*settings, "provision", "--queue", "emails", "--dry-run", env=env)
        assert plan.returncode == 0, plan.stderr
        assert f"Kafka topic cli{run}-emails and dead-letter topic cli{run}-emails-dlq (4 partitions" in plan.stdout
        missing = run_cli(*settings, "health", "--queue", "emails", "--timeout", "20", env=env)
        assert missing.returncode == 1 and f"cli{run}-emails" in missing.stderr and "provision" in missing.stderr
        assert run_cli(*settings, "provision", "--queue", "emails", env=env).returncode == 0
        healthy = run_cli(*settings, "health", "--queue", "emails", env=env)
        assert healthy.returncode == 0 and healthy.stdout.strip() == "healthy", healthy.stderr
    finally:
        await drop_topics(kafka_bootstrap, f"cli{run}-")
        await drop_prefix(redis_url, f"cli-{run}")


@pytest.mark.localstack
@pytest.mark.redis
async def test_sqs_provision_on_localstack_serves_a_backend_that_creates_nothing(
    localstack_endpoint: str, redis_url: str
) -> None:
    """``provision --queue`` with the SQS app's settings creates the queues a backend with
    ``create_missing=False`` then uses (the contract suite's provisioned variant provisions in
    process, through the same ``CloudBackend.provision``)."""
    from asyncmq.queues import Queue

    from tests.plugins.backend_sqs import drop_queues, random_prefix, redis_stores, sqs_backend

    prefix = random_prefix()
    async with redis_stores(redis_url) as store:
        env = {"AWS_ENDPOINT_URL_SQS": localstack_endpoint, "E2E_QUEUE_PREFIX": prefix, "E2E_STORE": store}
        env["E2E_DELAY_STORE"] = store
        try:
            done = run_cli("--settings", "tests.e2e.app.settings.Settings", "provision", "--queue", "emails", env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            provisioned = sqs_backend(localstack_endpoint, store=store, queue_prefix=prefix, create_missing=False)
            async with provisioned as backend:
                job_id = await Queue("emails", backend=backend).add("tests.tasks.add", args=[1, 2])
                claimed = await backend.dequeue("emails")
                assert claimed is not None and claimed["id"] == job_id
        finally:
            await drop_queues(localstack_endpoint, prefix)


def test_backend_resources_are_what_the_components_declare_each_once() -> None:
    """``CloudBackend.resources``: tables of both stores, then each queue's queue or topic (no I/O)."""
    from asyncmq_cloud.backends.dynamodb import DynamoDBBackend
    from asyncmq_cloud.backends.kafka import KafkaBackend
    from asyncmq_cloud.backends.sqs import SQSBackend
    from asyncmq_cloud.commands.provision import plan
    from asyncmq_cloud.resources import KafkaTopicSpec, SqsQueueSpec, TableSpec

    sqs = SQSBackend(queue_prefix="app-", store="dynamodb://app-jobs", delay_store="dynamodb://app-delays")
    specs = sqs.resources(["emails", "sms", "emails"])
    assert [type(s) for s in specs] == [TableSpec, TableSpec, SqsQueueSpec, SqsQueueSpec]
    assert [s.name for s in specs] == ["app-jobs", "app-delays", "app-emails", "app-sms"]
    assert sqs.resources([]) == specs[:2]

    dynamodb = DynamoDBBackend(table="app-jobs", delay_store="redis://127.0.0.1:9/0")
    assert [s.name for s in dynamodb.resources(["emails"])] == ["app-jobs"]  # the table is the queue

    kafka = KafkaBackend(bootstrap_servers="127.0.0.1:9", topic_prefix="t-", store="memory://")
    (topic,) = kafka.resources(["emails"])
    assert isinstance(topic, KafkaTopicSpec) and (topic.name, topic.dlq_name) == ("t-emails", "t-emails-dlq")
    assert plan(kafka, []) == [
        "nothing to create: MemoryStateStore, MemoryDelayStore, KafkaTransport need no table, queue or topic"
    ]
    with pytest.raises(CloudBackendError):
        sqs.resources(["bad name"])
