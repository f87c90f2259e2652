"""``asyncmq-cloud dlq``: list, show, redrive and purge dead letters, on real services.

* AsyncMQ's failed jobs (``--source jobs``) on ``SQSBackend`` with the Redis store;
* the SQS dead-letter queue (``--source broker``): 500 dead letters redriven on ElasticMQ
  by SQS's message move task, the command SIGKILLed at a random point and run again: the
  totals match (500 in the queue, each once, none left in the DLQ); the loop where the
  endpoint has no move task (MiniStack), killed and rerun: none lost, duplicates bounded
  by one batch per kill; list and show hide nothing; purge asks for ``--yes``;
* the Kafka dead-letter topic: a redrive keeps its place, a rerun redrives nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from aiokafka import AIOKafkaProducer
from asyncmq.queues import Queue
from asyncmq.runners import run_worker

from asyncmq_cloud.transports._envelope import decode_envelope, encode_envelope
from tests.plugins.backend_sqs import drop_queues, random_prefix, redis_stores, sqs_backend
from tests.tasks import fail_always

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "dlq"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


def dlq_command(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "asyncmq_cloud.cli", "--settings", env.pop("SETTINGS"), "dlq", *args]
    full = {**os.environ, "PYTHONPATH": str(ROOT), **{k: v for k, v in CREDENTIALS.items() if k != "region_name"}}
    full |= {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", **env}
    return subprocess.Popen(command, env=full, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def sqs_env(endpoint: str, prefix: str) -> dict[str, str]:
    return {
        "SETTINGS": "tests.e2e.app.settings.Settings",
        "AWS_ENDPOINT_URL": endpoint,
        "E2E_QUEUE_PREFIX": prefix,
        "E2E_STORE": "memory://",
    }


class SqsQueues:
    """The queue and its DLQ, read and written with a plain client."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    async def urls(self) -> tuple[str, str]:
        queue = (await self.client.get_queue_url(QueueName=f"{self.prefix}{QUEUE}"))["QueueUrl"]
        dlq = (await self.client.get_queue_url(QueueName=f"{self.prefix}{QUEUE}-dlq"))["QueueUrl"]
        return queue, dlq

    async def fill_dlq(self, count: int) -> list[str]:
        _, dlq = await self.urls()
        ids = [f"job-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
        for start in range(0, count, 10):
            entries = [
                {"Id": str(i), "MessageBody": encode_envelope(QUEUE, j)} for i, j in enumerate(ids[start : start + 10])
            ]
            await self.client.send_message_batch(QueueUrl=dlq, Entries=entries)
        return ids

    async def drain(self, url: str, settle: float = 3.0) -> Counter[str]:
        """Every job id on ``url`` (received and deleted) until it stays empty ``settle`` seconds."""
        found: Counter[str] = Counter()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            reply = await self.client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = reply.get("Messages", [])
            if messages:
                quiet_since = time.monotonic()
            for message in messages:
                found[decode_envelope(message["Body"], QUEUE)] += 1
            if messages:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                await self.client.delete_message_batch(QueueUrl=url, Entries=entries)
        return found


async def _provisioned(endpoint: str, prefix: str) -> None:
    """The queue and its DLQ as ``provision`` makes them (the redrive policy included)."""
    async with get_session().create_client("sqs", endpoint_url=endpoint, **CREDENTIALS) as client:
        dlq = (await client.create_queue(QueueName=f"{prefix}{QUEUE}-dlq"))["QueueUrl"]
        arn = (await client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
        await client.create_queue(QueueName=f"{prefix}{QUEUE}", Attributes={"RedrivePolicy": policy})


async def _redrive_killed_and_rerun(
    endpoint: str, count: int, extra: tuple[str, ...]
) -> tuple[Counter[str], list[str], str]:
    prefix = random_prefix()
    await _provisioned(endpoint, prefix)
    try:
        async with get_session().create_client("sqs", endpoint_url=endpoint, **CREDENTIALS) as client:
            queues = SqsQueues(client, prefix)
            ids = await queues.fill_dlq(count)
            args = ("redrive", "--queue", QUEUE, "--source", "broker", *extra)
            first = dlq_command(*args, env=sqs_env(endpoint, prefix))
            await asyncio.sleep(random.uniform(1.0, 3.0))  # a random point: starting, moving, or done
            first.send_signal(signal.SIGKILL)
            finish(first)
            code, _, err = finish(dlq_command(*args, env=sqs_env(endpoint, prefix)))
            assert code == 0, err
            queue, dlq = await queues.urls()
            assert sum((await queues.drain(dlq, settle=1.0)).values()) == 0, "nothing is left in the DLQ"
            return await queues.drain(queue), ids, err
    finally:
        await drop_queues(endpoint, prefix)


async def test_500_dead_letters_redriven_by_the_move_task_survive_a_kill(elasticmq_endpoint: str) -> None:
    found, ids, err = await _redrive_killed_and_rerun(elasticmq_endpoint, 500, ("--rate", "100"))
    assert sorted(found) == sorted(ids), "every dead letter is back in the queue"
    assert set(found.values()) == {1}, "each once: the move task is SQS's, a kill does not repeat it"
    assert "redrive:" in err


async def test_the_loop_redrive_survives_a_kill_with_at_most_a_batch_repeated(ministack_endpoint: str) -> None:
    found, ids, err = await _redrive_killed_and_rerun(ministack_endpoint, 200, ("--rate", "50"))
    assert "no message move task" in err, err
    assert sorted(found) == sorted(ids), "none lost"
    assert sum(found.values()) - len(ids) <= 10, "a kill repeats at most the batch between its send and delete"


async def test_list_and_show_hide_nothing_and_purge_needs_yes(elasticmq_endpoint: str) -> None:
    prefix = random_prefix()
    await _provisioned(elasticmq_endpoint, prefix)
    env = sqs_env(elasticmq_endpoint, prefix)
    try:
        async with get_session().create_client("sqs", endpoint_url=elasticmq_endpoint, **CREDENTIALS) as client:
            queues = SqsQueues(client, prefix)
            ids = await queues.fill_dlq(12)
            code, out, err = finish(dlq_command("list", "--queue", QUEUE, "--source", "broker", env=dict(env)))
            assert code == 0, err
            lines = out.splitlines()
            assert len(lines) == 12 and {line.split("job=")[1].split()[0] for line in lines} == set(ids)
            message_id = lines[0].split()[0]
            code, out, _ = finish(
                dlq_command("show", message_id, "--queue", QUEUE, "--source", "broker", env=dict(env))
            )
            assert code == 0 and json.loads(out)["MessageId"] == message_id
            missing = finish(dlq_command("show", "nope", "--queue", QUEUE, "--source", "broker", env=dict(env)))
            assert missing[0] == 1 and "no message 'nope'" in missing[2]
            refused = finish(dlq_command("purge", "--queue", QUEUE, "--source", "broker", env=dict(env)))
            assert refused[0] == 1 and "add --yes" in refused[2]
            args = ("purge", "--queue", QUEUE, "--source", "broker", "--limit", "5", "--yes")
            code, _, err = finish(dlq_command(*args, env=dict(env)))
            assert code == 0 and "5 purged" in err, err
            _, dlq = await queues.urls()
            assert sum((await queues.drain(dlq, settle=1.0)).values()) == 7, "listing hid nothing; purge took 5"
    finally:
        await drop_queues(elasticmq_endpoint, prefix)


async def test_failed_jobs_are_listed_redriven_and_purged(elasticmq_endpoint: str, redis_url: str) -> None:
    from asyncmq_cloud.commands.dlq import jobs
    from asyncmq_cloud.commands.dlq._run import Run

    async with (
        redis_stores(redis_url) as store,
        sqs_backend(elasticmq_endpoint, store=store, create_missing=True) as backend,
    ):
        await backend.provision([QUEUE])
        queue = Queue(QUEUE, backend=backend)
        failed = [await queue.add(fail_always.task_id, args=[f"dlq-{i}"]) for i in range(6)]
        worker = asyncio.create_task(run_worker(QUEUE, backend, concurrency=3, scan_interval=0.2))
        try:
            deadline = time.monotonic() + 30
            while (await backend.get_job_counts(QUEUE, "failed"))["failed"] < 6:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        listed, total = await jobs.failed_jobs(backend, QUEUE, None)
        assert total == 6 and sorted(j["id"] for j in listed) == sorted(failed)
        assert "always fails" in jobs.describe(listed[0])
        dry = Run("redrive")
        await jobs.act_on_failed(backend, QUEUE, None, dry, dry_run=True)
        assert dry.counts == {"would be redriven": 6}
        assert (await backend.get_job_counts(QUEUE, "failed"))["failed"] == 6, "a dry run changes nothing"
        redrive = Run("redrive", rate=100)
        await jobs.act_on_failed(backend, QUEUE, 4, redrive, dry_run=False)
        assert redrive.counts == {"redriven": 4}
        counts = await backend.get_job_counts(QUEUE, "failed", "waiting")
        assert (counts["failed"], counts["waiting"]) == (2, 4)
        purge = Run("purge")
        await jobs.act_on_failed(backend, QUEUE, None, purge, dry_run=False)
        assert purge.counts == {"purged": 2}
        counts = await backend.get_job_counts(QUEUE, "failed", "waiting")
        assert (counts["failed"], counts["waiting"]) == (0, 4)


@pytest.mark.kafka
async def test_kafka_redrive_keeps_its_place(kafka_bootstrap: str, redis_url: str) -> None:
    from asyncmq_cloud import KafkaBackend
    from asyncmq_cloud.commands.dlq import kafka
    from asyncmq_cloud.commands.dlq._run import Run
    from tests.plugins.backend_kafka import drop_topics
    from tests.test_transport_kafka import read_topic

    prefix = f"k{uuid.uuid4().hex[:6]}-"
    async with redis_stores(redis_url) as store:
        backend = KafkaBackend(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, store=store, create_missing=True)
        try:
            await backend.provision([QUEUE])
            transport = backend.transport
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            ids = [f"job-{i}" for i in range(30)]
            try:
                for job_id in ids:
                    await producer.send_and_wait(
                        transport.config.dlq_topic(QUEUE), value=encode_envelope(QUEUE, job_id).encode(),
                        key=job_id.encode(), headers=[("asyncmq-error", b"poison for the test")],
                    )  # fmt: skip
            finally:
                await producer.stop()
            first = Run("redrive")
            await kafka.redrive(transport, QUEUE, 20, first, dry_run=False)
            assert first.counts == {"redriven": 20}
            second = Run("redrive")
            await kafka.redrive(transport, QUEUE, None, second, dry_run=False)
            assert second.counts == {"redriven": 10}, "the rerun starts where the first stopped"
            third = Run("redrive")
            await kafka.redrive(transport, QUEUE, None, third, dry_run=False)
            assert third.counts == {}, "nothing is redriven twice"
            records = await read_topic(kafka_bootstrap, transport.topic(QUEUE), 31, timeout=5.0)  # one more: none
            assert sorted(decode_envelope(r.value.decode(), QUEUE) for r in records) == sorted(ids)
            with pytest.raises(Exception, match="retention"):
                kafka.purge()
        finally:
            await backend.close()
            await drop_topics(kafka_bootstrap, prefix)


async def test_the_loop_moves_only_what_was_there_at_the_start(ministack_endpoint: str) -> None:
    from asyncmq_cloud.commands.dlq import sqs
    from asyncmq_cloud.commands.dlq._run import Run

    prefix = random_prefix()
    await _provisioned(ministack_endpoint, prefix)
    async with (
        sqs_backend(ministack_endpoint, store="memory://", queue_prefix=prefix) as backend,
        get_session().create_client("sqs", endpoint_url=ministack_endpoint, **CREDENTIALS) as client,
    ):
        queues = SqsQueues(client, prefix)
        await queues.fill_dlq(20)
        letters = await sqs.DeadLetters.of(backend.transport, QUEUE)  # type: ignore[arg-type]
        run = Run("redrive", rate=20, every=float("inf"))
        moving = asyncio.create_task(sqs.redrive(letters, None, run, "loop"))
        deadline = time.monotonic() + 30
        while not run.counts and not moving.done():  # the loop has measured the DLQ and moved a batch
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await queues.fill_dlq(5)  # dead-lettered meanwhile (a poison message coming back): the next run's
        await moving
        assert run.counts == {"redriven": 20}
        queue, dlq = await queues.urls()
        assert sum((await queues.drain(dlq, settle=1.0)).values()) == 5
        assert sum((await queues.drain(queue, settle=1.0)).values()) == 20
