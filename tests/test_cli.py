"""``asyncmq-cloud provision --dry-run`` and ``asyncmq-cloud health``, as subprocesses.

The app's settings modules (``tests/e2e/app``) name the backend, exactly as in production.
"""

from __future__ import annotations

import json
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


def _print_iam(settings: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    closed = "http://127.0.0.1:9"  # nothing listens: --print-iam contacts nothing
    return run_cli(
        "--settings", settings, "provision", "--print-iam", *args,
        env={"AWS_ENDPOINT_URL": closed, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", **env},
    )  # fmt: skip


def test_print_iam_prints_the_runtime_and_provisioning_policies_of_the_configured_backend() -> None:
    done = _print_iam(
        "tests.e2e.app.settings.Settings", "--queue", "emails", "--region", "eu-west-1",
        "--account-id", "123456789012",
        E2E_QUEUE_PREFIX="app-", E2E_STORE="dynamodb://app-jobs", E2E_PRIORITY_LANES="3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    documents = json.loads(done.stdout)
    runtime = {s["Sid"]: s for s in documents["runtime"]["Statement"]}
    arn = "arn:aws:sqs:eu-west-1:123456789012:app-emails"
    assert len(runtime["ConsumeJobs"]["Resource"]) == 3 and arn in runtime["ConsumeJobs"]["Resource"]
    assert runtime["DeadLetterPoisonMessages"]["Resource"] == [arn + "-dlq"]
    assert "arn:aws:dynamodb:eu-west-1:123456789012:table/app-jobs/index/*" in runtime["JobRecords"]["Resource"]
    runtime_actions = {a for s in runtime.values() for a in s["Action"]}
    assert not [a for a in runtime_actions if "Create" in a or a.endswith(("SetQueueAttributes", "ListQueues"))]
    provisioning = {a for s in documents["provisioning"]["Statement"] for a in s["Action"]}
    assert {"sqs:CreateQueue", "sqs:SetQueueAttributes", "dynamodb:CreateTable"} <= provisioning
    assert "note:" not in done.stderr, done.stderr


def test_print_iam_says_what_it_left_out() -> None:
    kafka = "tests.e2e.app.settings_kafka.Settings"
    done = _print_iam(kafka, "--queue", "emails", E2E_TOPIC_PREFIX="app.", E2E_STORE="dynamodb://app-jobs")
    assert done.returncode == 0, done.stderr
    assert "kafka-cluster" not in done.stdout
    assert "note: Kafka topics left out: pass --msk-cluster-arn" in done.stderr
    assert "note: ARNs match any region or account" in done.stderr
    cluster = "arn:aws:kafka:eu-west-1:123456789012:cluster/jobs/0000aaaa-1111-2222-3333-444455556666-2"
    done = _print_iam(
        kafka, "--queue", "emails", "--msk-cluster-arn", cluster,
        E2E_TOPIC_PREFIX="app.", E2E_STORE="dynamodb://app-jobs",
    )  # fmt: skip
    topics = next(s for s in json.loads(done.stdout)["runtime"]["Statement"] if s["Sid"] == "KafkaTopics")
    assert topics["Resource"][0].endswith(":topic/jobs/0000aaaa-1111-2222-3333-444455556666-2/app.emails")
    nothing = _print_iam("tests.e2e.app.settings_dynamodb.Settings")
    assert nothing.returncode == 0 and "note: no --queue: only the tables are covered" in nothing.stderr


def test_print_iam_refuses_bad_scope_values() -> None:
    settings = "tests.e2e.app.settings.Settings"
    bad_account = _print_iam(settings, "--account-id", "12345")
    assert bad_account.returncode == 2 and "is not a 12-digit AWS account id" in bad_account.stderr
    bad_region = _print_iam(settings, "--region", "Europe")
    assert bad_region.returncode == 2 and "is not an AWS region" in bad_region.stderr
    both = run_cli("--settings", settings, "provision", "--dry-run", "--print-iam", env={})
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    from_env = _print_iam(settings, AWS_REGION="moon-base-1x")
    assert from_env.returncode == 1 and "ConfigurationError: $AWS_REGION" in from_env.stderr
    assert "Traceback" not in from_env.stderr
