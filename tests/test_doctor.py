"""``asyncmq-cloud doctor`` as a subprocess against real services (moto server, Kafka broker).

Each problem test breaks ONE thing and asserts doctor's own check id for it (``FAIL [id]``),
that its ``fix:`` line names the remedy, that nothing cascades, and the exit code. The
settings are the app's own (``tests/e2e/app``); endpoints come from the AWS environment.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.resources import delay_table, jobs_table, provision_table
from tests.plugins.backend_sqs import drop_queues, random_prefix
from tests.plugins.store_dynamodb import drop_tables

ROOT = Path(__file__).resolve().parents[1]
SQS_SETTINGS = ("--settings", "tests.e2e.app.settings.Settings")
DYNAMODB_SETTINGS = ("--settings", "tests.e2e.app.settings_dynamodb.Settings")
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "ASYNCMQ_SETTINGS_MODULE",
)


def run(*args: str, env: dict[str, str], credentials: bool = True) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    if credentials:
        base |= {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    full = {**base, "PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1", **env}
    command = [sys.executable, "-m", "asyncmq_cloud.cli", *args]
    return subprocess.run(command, env=full, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def lines(done: subprocess.CompletedProcess[str], level: str, check: str) -> list[str]:
    """The report lines of ``check`` at ``level`` (``ok  ``, ``FAIL``, ``warn``, ``skip``)."""
    return [line for line in done.stdout.splitlines() if line.startswith(f"{level} [{check}]")]


def fix_after(done: subprocess.CompletedProcess[str], line: str) -> str:
    """The ``fix:`` line printed right after ``line``."""
    out = done.stdout.splitlines()
    following = out[out.index(line) + 1]
    assert following.startswith("     fix: "), out
    return following


def test_no_settings_says_which_variable_to_set() -> None:
    done = run("doctor", env={})
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = lines(done, "FAIL", "config-settings")
    assert "ASYNCMQ_SETTINGS_MODULE" in fix_after(done, line)


def test_a_backend_that_is_not_asyncmq_cloud_is_named() -> None:
    done = run("--settings", "asyncmq.conf.global_settings.Settings", "doctor", env={})
    assert done.returncode == 1
    [line] = lines(done, "FAIL", "config-backend")
    assert "RedisBackend" in line and "SQSBackend" in fix_after(done, line)


def test_no_credentials_names_the_chain_and_makes_no_aws_call(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "BOTO_CONFIG": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": CLOSED,  # would fail if doctor went on to call it
    }
    began = time.monotonic()
    done = run(*SQS_SETTINGS, "doctor", "--queue", "emails", "--timeout", "5", env=env, credentials=False)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = lines(done, "FAIL", "aws-credentials")
    fix = fix_after(done, line)
    assert "AWS_ACCESS_KEY_ID" in fix and "AWS_SECRET_ACCESS_KEY" in fix and "AWS_PROFILE" in fix and "IRSA" in fix
    assert lines(done, "ok  ", "aws-region"), done.stdout
    assert not lines(done, "FAIL", "endpoint-unreachable"), "no cascade after missing credentials"
    assert time.monotonic() - began < 30


def test_unreachable_endpoint_names_url_and_variable_and_reports_no_resource() -> None:
    began = time.monotonic()
    done = run(*DYNAMODB_SETTINGS, "doctor", "--timeout", "2", env={"AWS_ENDPOINT_URL_DYNAMODB": CLOSED})
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = lines(done, "FAIL", "endpoint-unreachable")
    assert CLOSED in line and "DynamoDB" in line
    assert "AWS_ENDPOINT_URL_DYNAMODB" in fix_after(done, line)
    assert not lines(done, "FAIL", "table-missing"), "an unreachable endpoint must not also report tables missing"
    assert time.monotonic() - began < 30, "doctor's probes must not sit in botocore retries"


@pytest.mark.moto
async def test_missing_table_is_its_own_failure(moto_endpoint: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
        "E2E_TABLE": f"doc-jobs-{run_id}",
        "E2E_DELAY_STORE": f"dynamodb://doc-delays-{run_id}",
    }
    done = run(*DYNAMODB_SETTINGS, "doctor", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines(done, "ok  ", "endpoint"), done.stdout
    missing = lines(done, "FAIL", "table-missing")
    assert len(missing) == 2, done.stdout
    assert f"doc-jobs-{run_id}" in missing[0] and f"doc-delays-{run_id}" in missing[1]
    assert "asyncmq-cloud provision" in fix_after(done, missing[0])
    assert not lines(done, "FAIL", "index-missing"), "a missing table must not also report its indexes"


@pytest.mark.moto
async def test_missing_index_names_index_table_and_command(moto_endpoint: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    jobs, delays = jobs_table(f"doc-jobs-{run_id}"), delay_table(f"doc-delays-{run_id}")
    kwargs = jobs.create_table_kwargs()
    kwargs["GlobalSecondaryIndexes"] = [i for i in kwargs["GlobalSecondaryIndexes"] if i["IndexName"] != "ready"]
    kwargs["AttributeDefinitions"] = [
        a for a in kwargs["AttributeDefinitions"] if not a["AttributeName"].startswith("rdy")
    ]
    clients = AwsClients(endpoint_url=moto_endpoint, region_name="us-east-1")
    try:
        client = await clients.dynamodb()
        await client.create_table(**kwargs)
        await provision_table(client, delays)
        env = {
            "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
            "E2E_TABLE": jobs.name,
            "E2E_DELAY_STORE": f"dynamodb://{delays.name}",
        }
        done = run(*DYNAMODB_SETTINGS, "doctor", env=env)
    finally:
        await clients.close()
        await drop_tables(moto_endpoint, jobs.name, delays.name)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = lines(done, "FAIL", "index-missing")
    assert "'ready'" in line and jobs.name in line
    fix = fix_after(done, line)
    assert "aws dynamodb update-table" in fix and jobs.name in fix and '"IndexName":"ready"' in fix
    assert len(lines(done, "ok  ", "index")) == 3, "by-state and active of the jobs table, due of the delays table"
    assert not lines(done, "FAIL", "table-missing")
    # The jobs table has no TTL (created by hand): a warning, not a failure of its own.
    assert len(lines(done, "warn", "ttl-disabled")) == 1


def sqs_app(moto_endpoint: str) -> tuple[str, str, str, dict[str, str]]:
    """Unique table names and queue prefix for the SQS settings module, and its environment."""
    run_id, prefix = uuid.uuid4().hex[:8], random_prefix()
    jobs, delays = f"doc-jobs-{run_id}", f"doc-delays-{run_id}"
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "E2E_QUEUE_PREFIX": prefix,
        "E2E_STORE": f"dynamodb://{jobs}",
        "E2E_DELAY_STORE": f"dynamodb://{delays}",
    }
    return jobs, delays, prefix, env


@pytest.mark.moto
async def test_missing_queue_and_dead_letter_queue(moto_endpoint: str) -> None:
    jobs, delays, prefix, env = sqs_app(moto_endpoint)
    try:
        provisioned = run(*SQS_SETTINGS, "provision", env=env)  # the tables only, no queue
        assert provisioned.returncode == 0, provisioned.stderr
        done = run(*SQS_SETTINGS, "doctor", "--queue", "emails", env=env)
    finally:
        await drop_tables(moto_endpoint, jobs, delays)
        await drop_queues(moto_endpoint, prefix)
    assert done.returncode == 1, done.stdout + done.stderr
    [queue] = lines(done, "FAIL", "queue-missing")
    [dlq] = lines(done, "FAIL", "dlq-missing")
    assert f"'{prefix}emails'" in queue and f"'{prefix}emails-dlq'" in dlq
    assert "asyncmq-cloud provision --queue emails" in fix_after(done, queue)
    assert not lines(done, "FAIL", "table-missing") and len(lines(done, "ok  ", "table")) == 2


@pytest.mark.moto
async def test_priority_lanes_are_provisioned_and_checked(moto_endpoint: str) -> None:
    jobs, delays, prefix, env = sqs_app(moto_endpoint)
    env["E2E_PRIORITY_LANES"] = "3"
    try:
        provisioned = run(*SQS_SETTINGS, "provision", "--queue", "emails", env=env)
        assert provisioned.returncode == 0, provisioned.stderr
        healthy = run(*SQS_SETTINGS, "doctor", "--queue", "emails", env=env)
        clients = AwsClients(endpoint_url=moto_endpoint, region_name="us-east-1")
        try:
            sqs = await clients.sqs()
            url = (await sqs.get_queue_url(QueueName=f"{prefix}emails-p2"))["QueueUrl"]
            await sqs.delete_queue(QueueUrl=url)
        finally:
            await clients.close()
        broken = run(*SQS_SETTINGS, "doctor", "--queue", "emails", env=env)
    finally:
        await drop_tables(moto_endpoint, jobs, delays)
        await drop_queues(moto_endpoint, prefix)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert len(lines(healthy, "ok  ", "queue")) == 4  # the queue, its DLQ and its two other lanes
    assert broken.returncode == 1, broken.stdout + broken.stderr
    [line] = lines(broken, "FAIL", "lane-missing")
    assert f"'{prefix}emails-p2'" in line and "asyncmq-cloud provision --queue emails" in fix_after(broken, line)


@pytest.mark.moto
async def test_healthy_after_provision_exits_zero(moto_endpoint: str) -> None:
    jobs, delays, prefix, env = sqs_app(moto_endpoint)
    try:
        provisioned = run(*SQS_SETTINGS, "provision", "--queue", "emails", "--queue", "reports", env=env)
        assert provisioned.returncode == 0, provisioned.stderr
        done = run(*SQS_SETTINGS, "doctor", "--queue", "emails", "--queue", "reports", env=env)
    finally:
        await drop_tables(moto_endpoint, jobs, delays)
        await drop_queues(moto_endpoint, prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert not [line for line in out if line.startswith(("FAIL", "warn"))], out
    assert len(lines(done, "ok  ", "endpoint")) == 2  # DynamoDB and SQS
    assert len(lines(done, "ok  ", "table")) == 2 and len(lines(done, "ok  ", "index")) == 4
    assert len(lines(done, "ok  ", "ttl")) == 2
    assert len(lines(done, "ok  ", "queue")) == 4  # two queues and their DLQs
    assert len(lines(done, "ok  ", "queue-redrive")) == 2
    assert out[-1].startswith("doctor: all checks passed")


@pytest.mark.kafka
async def test_kafka_missing_topic_then_healthy(kafka_bootstrap: str) -> None:
    from tests.plugins.backend_kafka import drop_topics

    prefix = f"doc{uuid.uuid4().hex[:8]}-"
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "E2E_TOPIC_PREFIX": prefix, "E2E_STORE": "memory://"}
    settings = ("--settings", "tests.e2e.app.settings_kafka.Settings")
    try:
        missing = run(*settings, "doctor", "--queue", "emails", "--timeout", "20", env=env)
        assert missing.returncode == 1, missing.stdout + missing.stderr
        assert lines(missing, "ok  ", "kafka")
        topic, dlq = lines(missing, "FAIL", "topic-missing")
        assert f"'{prefix}emails'" in topic and f"'{prefix}emails-dlq'" in dlq
        assert "asyncmq-cloud provision --queue emails" in fix_after(missing, topic)
        assert run(*settings, "provision", "--queue", "emails", env=env).returncode == 0
        healthy = run(*settings, "doctor", "--queue", "emails", "--timeout", "20", env=env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    finally:
        await drop_topics(kafka_bootstrap, prefix)
    down = run(*settings, "doctor", "--queue", "emails", env={**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert down.returncode == 1
    [line] = lines(down, "FAIL", "kafka-unreachable")
    assert "127.0.0.1:9" in line and "KAFKA_BOOTSTRAP_SERVERS" in fix_after(down, line)
    assert not lines(down, "FAIL", "topic-missing")


@pytest.mark.parametrize(
    ("store", "shown"),
    [
        ("redis://app:s3cret@127.0.0.1:9/0?prefix=doc", "redis://app:***@127.0.0.1:9/0"),
        ("redis://127.0.0.1:9/0?password=s3cret&prefix=doc", "redis://127.0.0.1:9/0?password=***"),
    ],
)
def test_unreachable_redis_store_is_named_without_its_password(store: str, shown: str) -> None:
    env = {"AWS_ENDPOINT_URL": CLOSED, "E2E_STORE": store}
    done = run(*SQS_SETTINGS, "doctor", "--timeout", "2", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = lines(done, "FAIL", "redis-unreachable")  # store and delay store share one URL: one line
    assert shown in line and "s3cret" not in done.stdout + done.stderr
    assert "store=" in fix_after(done, line)


@pytest.mark.moto
@pytest.mark.redis
async def test_healthy_sqs_with_a_redis_store(moto_endpoint: str, redis_url: str) -> None:
    from tests.plugins.store_redis import drop_prefix

    prefix, key_prefix = random_prefix(), f"doc-{uuid.uuid4().hex[:8]}"
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "E2E_QUEUE_PREFIX": prefix,
        "E2E_STORE": f"{redis_url}?prefix={key_prefix}",
    }
    try:
        assert run(*SQS_SETTINGS, "provision", "--queue", "emails", env=env).returncode == 0
        done = run(*SQS_SETTINGS, "doctor", "--queue", "emails", env=env)
    finally:
        await drop_queues(moto_endpoint, prefix)
        await drop_prefix(redis_url, key_prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines(done, "ok  ", "redis")) == 1 and len(lines(done, "ok  ", "queue-redrive")) == 1
    assert not lines(done, "ok  ", "table"), "a Redis store needs no DynamoDB table"


async def test_the_offload_bucket_missing_then_healthy(moto_endpoint: str, redis_url: str) -> None:
    from tests.plugins.store_redis import drop_prefix

    prefix, key_prefix, bucket = random_prefix(), f"doc-{uuid.uuid4().hex[:8]}", f"doc-bodies-{uuid.uuid4().hex[:8]}"
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "E2E_QUEUE_PREFIX": prefix,
        "E2E_STORE": f"{redis_url}?prefix={key_prefix}",
        "E2E_OFFLOAD": f"s3://{bucket}/jobs/",
    }
    clients = AwsClients(endpoint_url=moto_endpoint, region_name="us-east-1")
    try:
        missing = run(*SQS_SETTINGS, "doctor", "--queue", "emails", env=env)
        assert run(*SQS_SETTINGS, "provision", "--queue", "emails", env=env).returncode == 0
        done = run(*SQS_SETTINGS, "doctor", "--queue", "emails", env=env)
        s3 = await clients.client("s3")
        left = (await s3.list_objects_v2(Bucket=bucket)).get("Contents", [])
    finally:
        await drop_queues(moto_endpoint, prefix)
        await drop_prefix(redis_url, key_prefix)
        with contextlib.suppress(Exception):
            await (await clients.client("s3")).delete_bucket(Bucket=bucket)
        await clients.close()
    assert missing.returncode == 1, missing.stdout
    (line,) = lines(missing, "FAIL", "offload-bucket-missing")
    assert bucket in line and "asyncmq-cloud provision" in fix_after(missing, line)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines(done, "ok  ", "offload-bucket")) == 1 and len(lines(done, "ok  ", "offload-lifecycle")) == 1
    assert left == [], "the probe body is deleted"
