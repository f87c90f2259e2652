"""Direct ``SendMessage`` (transports/_sqs_direct.py) on real SQS servers (ElasticMQ, moto, LocalStack,
MiniStack): what it sends arrives intact, once; a refused or unanswered direct request is sent through
botocore, whose error is the one raised; a producer's adds go directly and a worker runs them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiobotocore.session import get_session
from asyncmq.queues import Queue
from botocore.credentials import Credentials

from asyncmq_cloud import observe
from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.transports._sqs_direct import DirectSend, send_message
from tests import tasks
from tests.plugins.backend_sqs import REGION, redis_stores, run_until_completed, sqs_backend
from tests.plugins.services import _unavailable, services
from tests.support.tcp_proxy import proxied

T = "tests.tasks."


class Calls(observe.BaseObserver):
    """SQS ``SendMessage`` calls reported to the observe hook, by outcome."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        if (service, operation) == ("sqs", "SendMessage"):
            self.outcomes[outcome] += 1


@asynccontextmanager
async def queue_on(endpoint: str, fifo: bool = False) -> AsyncIterator[tuple[Any, str]]:
    """An SQS client and a fresh queue on ``endpoint`` (deleted afterwards)."""
    async with AwsClients(endpoint_url=endpoint, region_name=REGION) as clients:
        sqs = await clients.sqs()
        name = f"direct-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        attributes = {"FifoQueue": "true"} if fifo else {}
        url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        try:
            yield sqs, url
        finally:
            await sqs.delete_queue(QueueUrl=url)


async def receive_all(sqs: Any, url: str, expected: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(messages) < expected and time.monotonic() < deadline:
        reply = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        for message in reply.get("Messages", []):
            messages.append(message)
            await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


@pytest.fixture
def calls() -> Any:
    observer = Calls()
    observe.subscribe(observer)
    yield observer
    observe.unsubscribe(observer)


async def test_sends_go_directly_and_arrive_intact(sqs_endpoint: str, calls: Calls) -> None:
    async with queue_on(sqs_endpoint) as (sqs, url):
        direct = DirectSend.of(sqs)
        bodies = [f'{{"v":1,"q":"d","id":"job-{i}","text":"é ✓ {i}"}}' for i in range(6)]
        for i, body in enumerate(bodies):
            attributes = {
                "n": {"DataType": "Number", "StringValue": str(i)},
                "s": {"DataType": "String", "StringValue": "é"},
            }
            await send_message(sqs, {"QueueUrl": url, "MessageBody": body, "MessageAttributes": attributes})
        assert direct.off is None, direct.off
        assert direct.sent == len(bodies) - 1, "every send but the first (botocore's, the template) went directly"
        assert calls.outcomes == {"ok": len(bodies)}, "direct sends are observed like botocore's"
        messages = await receive_all(sqs, url, len(bodies))
        assert sorted(m["Body"] for m in messages) == sorted(bodies), "each arrived once, intact"
        for message in messages:
            assert message["MD5OfBody"] == hashlib.md5(message["Body"].encode()).hexdigest()
            index = int(message["MessageAttributes"]["n"]["StringValue"])
            assert message["Body"] == bodies[index]
            assert message["MessageAttributes"]["s"]["StringValue"] == "é"


async def test_a_delayed_and_a_fifo_send(sqs_endpoint: str) -> None:
    async with queue_on(sqs_endpoint) as (sqs, url):
        await send_message(sqs, {"QueueUrl": url, "MessageBody": "warm"})
        await send_message(sqs, {"QueueUrl": url, "MessageBody": "later", "DelaySeconds": 2})
        assert DirectSend.of(sqs).sent == 1
        early = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        assert [m["Body"] for m in early.get("Messages", [])] == ["warm"], "the delay was sent with it"
    async with queue_on(sqs_endpoint, fifo=True) as (sqs, url):
        for i in range(4):
            await send_message(
                sqs,
                {"QueueUrl": url, "MessageBody": f"m{i}", "MessageGroupId": "g", "MessageDeduplicationId": f"d{i}"},
            )
        assert DirectSend.of(sqs).sent == 3
        messages = await receive_all(sqs, url, 4)
        assert [m["Body"] for m in messages] == ["m0", "m1", "m2", "m3"], "in order, once each"


async def test_a_refused_direct_send_raises_botocores_error(sqs_endpoint: str, calls: Calls) -> None:
    async with queue_on(sqs_endpoint) as (sqs, url):
        await send_message(sqs, {"QueueUrl": url, "MessageBody": "warm"})
        direct = DirectSend.of(sqs)
        missing = url.rsplit("/", 1)[0] + f"/missing-{uuid.uuid4().hex[:8]}"
        calls.outcomes.clear()
        with pytest.raises(Exception) as raised:
            await send_message(sqs, {"QueueUrl": missing, "MessageBody": "nowhere"})
        assert "NonExistentQueue" in str(raised.value) or "QueueDoesNotExist" in str(raised.value), raised.value
        assert calls.outcomes["permanent"] == 2, f"the direct request and botocore's: {calls.outcomes}"
        assert direct.off is None, "botocore was refused too: the direct request was not what was wrong"
        await send_message(sqs, {"QueueUrl": url, "MessageBody": "after"})
        assert direct.sent == 1


async def test_an_unanswered_direct_send_goes_through_botocore(sqs_endpoint: str, calls: Calls) -> None:
    """The SQS server unreachable (a proxy in front of it cut) when a direct send goes, reachable again
    right after: botocore's send (its retries) delivers the message, once."""
    target = urlsplit(sqs_endpoint)
    with proxied(str(target.hostname), int(target.port or 80)) as proxy:
        async with queue_on(f"http://127.0.0.1:{proxy.port}") as (sqs, url):
            await send_message(sqs, {"QueueUrl": url, "MessageBody": "warm"})
            direct = DirectSend.of(sqs)
            calls.outcomes.clear()
            proxy.cut()
            sending = asyncio.create_task(send_message(sqs, {"QueueUrl": url, "MessageBody": "once"}))
            deadline = time.monotonic() + 10
            while not calls.outcomes["transient"]:  # the direct request failed: botocore's send is on its way
                assert time.monotonic() < deadline and not sending.done(), (calls.outcomes, sending)
                await asyncio.sleep(0.001)
            proxy.restore()
            await sending
            assert calls.outcomes == {"transient": 1, "ok": 1}, calls.outcomes
            assert direct.off is None, "a connection error is no reason to stop"
            await send_message(sqs, {"QueueUrl": url, "MessageBody": "direct again"})
            assert direct.sent == 1
            assert sorted(m["Body"] for m in await receive_all(sqs, url, 3)) == ["direct again", "once", "warm"]


@pytest.mark.redis
@pytest.mark.parametrize("direct_send", [True, False])
async def test_a_producers_adds_go_directly_and_a_worker_runs_each_once(
    sqs_endpoint: str, redis_url: str, direct_send: bool
) -> None:
    jobs = 12
    async with (
        redis_stores(redis_url) as store,
        sqs_backend(sqs_endpoint, store=store, create_missing=True, receive_wait=1, direct_send=direct_send) as backend,
    ):
        queue, run = "directq", uuid.uuid4().hex[:8]
        keys = [f"ds-{run}-{i}" for i in range(jobs)]
        for key in keys:
            await Queue(queue, backend=backend).add(T + "record", args=[key])
        sqs = await backend.transport._clients.sqs()
        sent = DirectSend.of(sqs).sent
        assert sent == (jobs - 1 if direct_send else 0), f"{sent} direct sends of {jobs} adds"
        await run_until_completed(backend, queue, jobs, 4)
        assert all(tasks.CALLS[key] == 1 for key in keys), "every job ran exactly once"


@pytest.fixture
def signature_checking_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server of this test's own that checks every request's SigV4 signature after the first
    three (``INITIAL_NO_AUTH_ACTION_COUNT``): the IAM user, its key and its policy are those three."""
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", str(SETUP_ACTIONS))
    try:
        service = services.start("moto")
    except (services.ServiceError, OSError) as exc:
        _unavailable("moto (checking signatures)", exc)
    monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
    try:
        yield service.url
    finally:
        service.stop()


SETUP_ACTIONS = 3


async def test_a_server_that_checks_signatures_accepts_direct_sends_and_refuses_a_wrong_one(
    signature_checking_moto: str,
) -> None:
    endpoint = signature_checking_moto
    bootstrap = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "x",
        "aws_secret_access_key": "x",
    }
    session = get_session()
    async with session.create_client("iam", **bootstrap) as iam:  # the three unchecked actions
        await iam.create_user(UserName="producer")
        key = (await iam.create_access_key(UserName="producer"))["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}
        await iam.put_user_policy(UserName="producer", PolicyName="sqs", PolicyDocument=json.dumps(policy))
    signed = {**bootstrap, "aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    async with session.create_client("sqs", **{**signed, "aws_secret_access_key": "wrong"}) as forged:
        with pytest.raises(Exception, match=r"403|Signature|InvalidClientTokenId"):
            await forged.create_queue(QueueName="never")  # the server does check signatures
    async with session.create_client("sqs", **signed) as sqs:
        url = (await sqs.create_queue(QueueName=f"signed-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
        for i in range(4):
            await send_message(sqs, {"QueueUrl": url, "MessageBody": f"m{i}", "DelaySeconds": 0})
        direct = DirectSend.of(sqs)
        assert (direct.sent, direct.strikes, direct.off) == (3, 0, None), "the signed direct sends were accepted"
        # the same direct path with a wrong secret: refused by the server, delivered by botocore
        direct._credentials = Credentials(key["AccessKeyId"], "wrong")
        await send_message(sqs, {"QueueUrl": url, "MessageBody": "m4"})
        assert (direct.sent, direct.strikes) == (3, 1), "a wrong signature is refused: the check is real"
        assert sorted(m["Body"] for m in await receive_all(sqs, url, 5)) == [f"m{i}" for i in range(5)]
