"""``asyncmq-cloud demo`` end to end, as a subprocess with a clean environment.

The outcome is read from ``--json`` (states, attempts, checks, calls), never from the
wording of the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from asyncmq_cloud.commands.demo.ledger import CallLedger

ROOT = Path(__file__).resolve().parents[1]
FLOW = ("ingest", "transform-a", "transform-b", "aggregate")


def run_demo(*args: str, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    """Run the demo the way a new user does: no AWS, Kafka or AsyncMQ settings in the environment."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "KAFKA_", "ASYNCMQ_")) and key != "REDIS_URL"
    }
    out = tmp_path / "demo.json"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "asyncmq_cloud.cli", "demo", "--json", str(out), *args],
        env={**clean, "AWS_EC2_METADATA_DISABLED": "true", **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert time.monotonic() - began < 120, "the demo must end within two minutes"
    outcome = json.loads(out.read_text()) if out.exists() else {}
    return done.returncode, outcome, done.stdout + done.stderr


def assert_expected_outcome(outcome: dict[str, Any]) -> None:
    rows = {row["label"]: row for row in outcome["rows"]}
    assert outcome["ok"] is True and outcome["timed_out"] is False
    assert all(outcome["checks"].values()), outcome["checks"]
    for label in (*FLOW, "delayed"):
        assert rows[label]["state"] == "completed", rows[label]
        assert rows[label]["attempts"] == 1, rows[label]
    assert rows["failing"]["state"] == "failed" and rows["failing"]["attempts"] == 3
    ticks = [row for row in outcome["rows"] if row["task"] == "tick"]
    assert len(ticks) >= 3 and all(row["state"] == "completed" for row in ticks)
    assert outcome["details"]["aggregate_result"] == 25250
    gaps = outcome["details"]["retry_gaps"]
    assert len(gaps) == 2 and gaps[0] >= 1.5 - 0.05 and gaps[1] >= 2.25 - 0.05  # AsyncMQ: backoff ** retries
    assert rows["aggregate"]["started"] >= max(rows["transform-a"]["finished"], rows["transform-b"]["finished"])
    assert outcome["scanner_promoted"] >= 1
    # every job cost API calls that named it, and the total is the sum of its parts
    assert all(row["calls"] > 0 for row in outcome["rows"])
    named = sum(row["calls"] for row in outcome["rows"])
    assert abs(named + outcome["calls_background"] - outcome["calls_total"]) < 0.5 + 0.05 * len(outcome["rows"])


@pytest.mark.parametrize("backend", ["sqs", "dynamodb"])
def test_demo_on_the_embedded_endpoint(backend: str, tmp_path: Path) -> None:
    code, outcome, output = run_demo("--backend", backend, tmp_path=tmp_path)
    assert code == 0, output
    assert outcome["backend"] == backend
    assert_expected_outcome(outcome)
    operations = outcome["by_operation"]
    if backend == "sqs":
        assert operations.get("sqs.SendMessageBatch", 0) + operations.get("sqs.SendMessage", 0) >= 1
        assert operations.get("sqs.ReceiveMessage", 0) >= 1
    else:
        assert not any(name.startswith("sqs.") for name in operations)
    assert operations.get("dynamodb.TransactWriteItems", 0) >= 1  # the flow: one atomic write


@pytest.mark.parametrize("timeout", ["2", "0.05"])  # cut short while running, and while still submitting
def test_demo_that_times_out_says_so_and_fails(timeout: str, tmp_path: Path) -> None:
    """A run cut short is reported as such: exit 1, not every job there or where it should be."""
    code, outcome, output = run_demo("--timeout", timeout, tmp_path=tmp_path)
    assert code == 1, output
    assert outcome["ok"] is False and outcome["timed_out"] is True
    rows = outcome["rows"]
    assert len(rows) < 9 or any(row["state"] != row["expected"] for row in rows)


@pytest.mark.moto
def test_demo_against_an_external_endpoint_cleans_up(moto_endpoint: str, tmp_path: Path) -> None:
    code, outcome, output = run_demo("--endpoint", moto_endpoint, tmp_path=tmp_path)
    assert code == 0, output
    assert_expected_outcome(outcome)
    prefix = outcome["prefix"]

    async def leftovers() -> list[str]:
        session = aioboto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        async with (
            session.client("dynamodb", endpoint_url=moto_endpoint) as ddb,
            session.client("sqs", endpoint_url=moto_endpoint) as sqs,
        ):
            tables = (await ddb.list_tables())["TableNames"]
            queues = (await sqs.list_queues(QueueNamePrefix=prefix)).get("QueueUrls", [])
        return [name for name in tables if name.startswith(prefix)] + queues

    import asyncio

    assert asyncio.run(leftovers()) == []


@pytest.mark.kafka
async def test_demo_on_kafka_deletes_its_topics(kafka_bootstrap: str, tmp_path: Path) -> None:
    import asyncio

    code, outcome, output = await asyncio.to_thread(
        run_demo, "--backend", "kafka", "--endpoint", kafka_bootstrap, tmp_path=tmp_path
    )
    assert code == 0, output
    assert_expected_outcome(outcome)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        for _ in range(50):  # the broker finishes a topic deletion asynchronously
            left = [topic for topic in await admin.list_topics() if topic.startswith(outcome["prefix"])]
            if not left:
                break
            await asyncio.sleep(0.2)
        assert left == []
    finally:
        await admin.close()


def test_demo_on_kafka_without_a_broker_says_what_to_set(tmp_path: Path) -> None:
    code, outcome, output = run_demo("--backend", "kafka", tmp_path=tmp_path)
    assert code == 1 and outcome == {}
    assert "KAFKA_BOOTSTRAP_SERVERS" in output and "--endpoint" in output


def test_call_ledger_attributes_batch_calls_and_ignores_quiet_ones() -> None:
    ledger = CallLedger()
    ledger._record(event_name="before-parameter-build.sqs.SendMessageBatch", params={"Entries": ["job-a", "job-b"]})
    ledger._record(event_name="before-parameter-build.dynamodb.UpdateItem", params={"Key": "job-a"})
    ledger._record(event_name="before-parameter-build.sqs.ReceiveMessage", params={"QueueUrl": "q"})
    with ledger.quiet():
        ledger._record(event_name="before-parameter-build.dynamodb.GetItem", params={"Key": "job-b"})
    per_job, background = ledger.attribute(["job-a", "job-b", "job-c"])
    assert per_job == {"job-a": 1.5, "job-b": 0.5, "job-c": 0.0} and background == 1
    assert ledger.by_operation() == {"sqs.SendMessageBatch": 1, "dynamodb.UpdateItem": 1, "sqs.ReceiveMessage": 1}
