"""Direct ``SendMessage`` (transports/_sqs_direct.py) without a server: the request it signs is botocore's,
byte for byte and header for header; it steps aside for whatever hooks the call."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import botocore.auth
import pytest
from aiobotocore.session import get_session
from botocore.credentials import ReadOnlyCredentials

from asyncmq_cloud.transports import _sqs_direct, _sqs_request
from asyncmq_cloud.transports._sqs_direct import DirectSend, error_code
from asyncmq_cloud.transports._sqs_request import sigv4_headers, template_of

QUEUE_URL = "http://127.0.0.1:9/000000000000/direct"
CLIENT = {
    "region_name": "eu-west-3",
    "endpoint_url": "http://127.0.0.1:9",  # never called: every request is caught before it is sent
    "aws_access_key_id": "AKIDUNIT",
    "aws_secret_access_key": "unit-secret",
    "aws_session_token": "unit-token",
}
PARAMS: dict[str, Any] = {
    "QueueUrl": QUEUE_URL,
    "MessageBody": '{"v":1,"q":"direct","id":"job-1"}',
    "DelaySeconds": 3,
    "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "ref"}},
}


class Caught(Exception):
    """Raised by the test's ``before-send`` handler: the request was built and signed, and is not sent."""

    def __init__(self, request: Any) -> None:
        super().__init__("caught")
        self.request = request


@asynccontextmanager
async def client() -> AsyncIterator[Any]:
    async with get_session().create_client("sqs", **CLIENT) as sqs:
        yield sqs


async def sdk_request(sqs: Any, params: dict[str, Any]) -> Any:
    """The request botocore signs for ``SendMessage(**params)``, caught before it is sent."""

    def catch(request: Any, **_: Any) -> None:
        raise Caught(request)

    sqs.meta.events.register_last("before-send.sqs.SendMessage", catch)  # after the capture
    try:
        with pytest.raises(Caught) as caught:
            await sqs.send_message(**params)
    finally:
        sqs.meta.events.unregister("before-send.sqs.SendMessage", catch)
    return caught.value.request


def headers(request: Any) -> dict[str, str]:
    return {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}


MOMENT = datetime.datetime(2026, 12, 7, 12, 0, 0)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's signing clock stopped at MOMENT (ours is given MOMENT)."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: MOMENT)


async def test_the_signed_request_is_botocores(frozen_clock: None) -> None:
    async with client() as sqs:
        direct = DirectSend.of(sqs)
        sdk = await sdk_request(sqs, PARAMS)  # the first send: the direct sender keeps its template
        assert direct.template is not None and direct.off is None
        assert (direct.template.region, direct.template.service) == ("eu-west-3", "sqs")
        body = direct._body(PARAMS)
        assert body == sdk.body, "the body is botocore's JSON, byte for byte"
        credentials = ReadOnlyCredentials("AKIDUNIT", "unit-secret", "unit-token")
        ours = lowered(sigv4_headers(direct.template, body, credentials, MOMENT))
        theirs = headers(sdk)
        for name in ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-target", "content-type"):
            assert ours[name] == theirs[name], name
        assert direct.template.url == sdk.url
        # another body: another signature (the test would pass with a constant header otherwise)
        other = direct._body({**PARAMS, "MessageBody": "other"})
        assert (
            lowered(sigv4_headers(direct.template, other, credentials, MOMENT))["authorization"]
            != theirs["authorization"]
        )


def lowered(mapping: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in mapping.items()}


@pytest.mark.parametrize(
    "endpoint", [None, "https://sqs.eu-west-3.amazonaws.com:8443", "http://[::1]:9"], ids=["aws", "port", "ipv6"]
)
async def test_the_signature_is_botocores_without_a_token_and_on_other_endpoints(
    frozen_clock: None, endpoint: str | None
) -> None:
    """AWS's own endpoint (https, the default port: no port in ``host``), another port, an IPv6 host."""
    settings = {k: v for k, v in CLIENT.items() if k not in ("aws_session_token", "endpoint_url")}
    if endpoint is not None:
        settings["endpoint_url"] = endpoint
    async with get_session().create_client("sqs", **settings) as sqs:
        direct = DirectSend.of(sqs)
        sdk = await sdk_request(sqs, {**PARAMS, "MessageBody": "to AWS"})
        assert direct.template is not None, direct.off
        body = direct._body({**PARAMS, "MessageBody": "to AWS"})
        ours = lowered(
            sigv4_headers(direct.template, body, ReadOnlyCredentials("AKIDUNIT", "unit-secret", None), MOMENT)
        )
        assert "x-amz-security-token" not in ours
        assert ours["authorization"] == headers(sdk)["authorization"]


async def test_it_steps_aside_for_what_hooks_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client() as sqs:
        direct = DirectSend.of(sqs)
        assert DirectSend.of(sqs) is direct, "one per client"
        assert not direct.usable(), "no template before the SDK's first send"
        await sdk_request(sqs, PARAMS)
        assert direct.usable()

        def recorder(**_: Any) -> None: ...

        sqs.meta.events.register("before-parameter-build.sqs.SendMessage", recorder)
        assert not direct.usable(), "a foreign handler on the call's events"
        sqs.meta.events.unregister("before-parameter-build.sqs.SendMessage", recorder)
        assert direct.usable(), "usable again once it is gone"
        sqs.meta.events.register("before-call.sqs", recorder)  # a service-wide handler covers SendMessage too
        assert not direct.usable()
        sqs.meta.events.unregister("before-call.sqs", recorder)
        sqs.meta.events.register("before-call.sqs.ReceiveMessage", recorder)  # another operation: no matter
        assert direct.usable()

        monkeypatch.setattr(sqs, "send_message", recorder)  # a test's fault injection on the client
        assert not direct.usable()
        monkeypatch.undo()
        assert direct.usable()
        monkeypatch.setattr(type(sqs), "send_message", recorder)  # ... or on its class
        assert not direct.usable()
        monkeypatch.undo()
        assert direct.usable()
        sqs.meta.events.register("before-parse.sqs.SendMessage", recorder)
        assert not direct.usable(), "a hook on the answer's parsing"
        sqs.meta.events.unregister("before-parse.sqs.SendMessage", recorder)
        from asyncmq_cloud.commands.demo.ledger import CallLedger

        ledger = CallLedger()
        sqs.meta.events.register("before-parameter-build", ledger._record)
        assert not direct.usable(), "this package's own call ledger counts calls: it must see every send"
        sqs.meta.events.unregister("before-parameter-build", ledger._record)
        assert direct.usable()
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")  # botocore's recursion-detection header
        assert not direct.usable()


async def test_a_stub_or_another_url_turns_it_off() -> None:
    from botocore.stub import Stubber

    async with client() as sqs:
        direct = DirectSend.of(sqs)
        await sdk_request(sqs, PARAMS)
        with Stubber(sqs):
            assert not direct.usable(), "botocore.stub's handlers are not botocore's own work"
        assert direct.usable()
        direct._capture(type("Request", (), {"url": "http://127.0.0.1:10/", "headers": {}, "method": "POST"})())
        assert direct.off is not None and "another URL" in direct.off
        assert not direct.usable()


def fake_request(**headers: str) -> Any:
    return type("Request", (), {"url": "http://127.0.0.1:9/", "headers": headers, "method": "POST"})()


def test_a_request_it_cannot_repeat_gives_no_template() -> None:
    scope = "AWS4-HMAC-SHA256 Credential=AK/20261207/us-east-1/sqs/aws4_request"
    signed = f"{scope}, SignedHeaders=host;x-amz-date;x-amz-target, Signature=ab"
    assert "JSON protocol" in str(template_of(fake_request(**{"Content-Type": "application/x-www-form-urlencoded"})))
    target = {"X-Amz-Target": "AmazonSQS.SendMessage"}
    assert "AWS4-HMAC-SHA256" in str(template_of(fake_request(**target)))  # unsigned
    sigv4a = {**target, "Authorization": signed.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")}
    assert "AWS4-HMAC-SHA256" in str(template_of(fake_request(**sigv4a)))
    template = template_of(fake_request(**target, Authorization=signed, **{"User-Agent": "ua", "X-Amz-Date": "x"}))
    assert not isinstance(template, str)
    assert template.headers == {"x-amz-target": "AmazonSQS.SendMessage", "user-agent": "ua"}
    # botocore signed a header that would not be repeated: no template
    more = signed.replace("host;x-amz-date;x-amz-target", "host;x-amz-date;x-amz-target;x-new-header")
    assert "does not repeat" in str(template_of(fake_request(**target, Authorization=more)))


def test_bodies_and_error_codes() -> None:
    assert (
        DirectSend._body({"MessageBody": "x", "DelaySeconds": 2})
        == json.dumps({"MessageBody": "x", "DelaySeconds": 2}).encode()
    )
    binary = {"MessageAttributes": {"b": {"DataType": "Binary", "BinaryValue": b"\x00"}}}
    assert DirectSend._body(binary) is None, "bytes are botocore's to encode"
    query = {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"}
    assert error_code(query, b"{}") == "AWS.SimpleQueueService.NonExistentQueue"
    assert error_code({}, b'{"__type":"com.amazonaws.sqs#QueueDoesNotExist"}') == "QueueDoesNotExist"
    assert error_code({}, b"<html>") is None
    assert _sqs_direct.answer_outcome(429, None) == "throttled", "a throttle never turns direct sends off"
    assert _sqs_direct.answer_outcome(503, None) == "transient"
    assert _sqs_direct.answer_outcome(500, "InternalError") == "transient"
    assert _sqs_direct.answer_outcome(400, "AWS.SimpleQueueService.NonExistentQueue") == "permanent"
    assert _sqs_direct.answer_outcome(400, "ThrottlingException") == "throttled"
    assert _sqs_direct.answer_outcome(403, None) == "permanent"


async def test_the_switch_sends_through_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client() as sqs:
        sent: list[dict[str, Any]] = []

        async def recorded(**params: Any) -> None:
            sent.append(params)

        monkeypatch.setattr(sqs, "send_message", recorded)
        await _sqs_direct.send_message(sqs, PARAMS, direct=False)
        assert sent == [PARAMS]
        assert sqs not in _sqs_direct._clients, "direct=False never makes a direct sender"


async def test_a_direct_request_refused_where_botocores_is_not_turns_direct_sends_off() -> None:
    """A local HTTP server refuses (403) the requests marked as direct and answers the others: the send
    is delivered through botocore, and the client sends through botocore from then on."""
    import hashlib

    from aiohttp import web

    seen: list[str] = []

    async def sqs(request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("x-direct-marker"):
            seen.append("direct")
            return web.json_response(
                {"__type": "com.amazon.coral.service#SignatureDoesNotMatch", "message": "no"},
                status=403,
                headers={"x-amzn-query-error": "SignatureDoesNotMatch;Sender"},
            )
        seen.append("botocore")
        md5 = hashlib.md5(body["MessageBody"].encode()).hexdigest()
        return web.json_response({"MessageId": f"m{len(seen)}", "MD5OfMessageBody": md5})

    app = web.Application()
    app.router.add_post("/", sqs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with get_session().create_client("sqs", **{**CLIENT, "endpoint_url": f"http://127.0.0.1:{port}"}) as sqs:
            params = {**PARAMS, "QueueUrl": f"http://127.0.0.1:{port}/000000000000/direct"}
            await _sqs_direct.send_message(sqs, params)
            direct = DirectSend.of(sqs)
            assert direct.template is not None and direct.usable()
            await _sqs_direct.send_message(sqs, params)  # direct: accepted
            assert direct.sent == 1
            direct.template.headers["x-direct-marker"] = "1"
            for strike in range(1, _sqs_direct.STRIKES + 1):
                assert direct.off is None, f"off after {strike - 1} refusal(s): one could be a fluke"
                await _sqs_direct.send_message(sqs, params)  # refused directly, delivered by botocore
                assert direct.strikes == strike
            assert direct.off is not None and "refused" in direct.off
            await _sqs_direct.send_message(sqs, params)
            # (the server tells the marked requests only: the accepted direct one counts as "botocore")
            assert seen == ["botocore", "botocore"] + ["direct", "botocore"] * _sqs_direct.STRIKES + ["botocore"]
            assert direct.sent == 1
    finally:
        await runner.cleanup()


async def test_a_dormant_moto_stubber_allows_direct_sends_and_a_running_one_does_not() -> None:
    """Importing moto puts its stubber on ``before-send`` of every client; it answers only while a mock runs."""
    from moto.core.models import botocore_stubber

    async with client() as sqs:
        direct = DirectSend.of(sqs)
        await sdk_request(sqs, PARAMS)
        assert direct.usable(), "moto imported, no mock running"
        botocore_stubber.enabled = True
        try:
            assert not direct.usable(), "a running mock must see every send"
        finally:
            botocore_stubber.enabled = False
        assert direct.usable()

        class Interceptor:  # a before-send handler, with a switch of its own but not moto's: foreign
            enabled = False

            def __call__(self, **_: Any) -> None: ...

        interceptor = Interceptor()
        sqs.meta.events.register("before-send.sqs", interceptor)
        assert not direct.usable()
        sqs.meta.events.unregister("before-send.sqs", interceptor)
        assert direct.usable()


async def test_closed_clients_are_not_kept_alive() -> None:
    """The direct sender of a client is the value of a weak-keyed map: it must not keep its client alive."""
    import gc

    gc.collect()  # earlier tests' clients
    before = len(_sqs_direct._clients)
    for _ in range(3):
        async with client() as sqs:
            DirectSend.of(sqs)
            await sdk_request(sqs, PARAMS)
            assert DirectSend.of(sqs).usable()
        del sqs
    gc.collect()
    assert len(_sqs_direct._clients) == before, "closed clients are collected, and their direct senders with them"


class Answer:
    status_code = 200
    headers: dict[str, str] = {}

    @property
    def content(self) -> Any:
        async def read() -> bytes:
            return b'{"MessageId": "m"}'

        return read()


class Session:
    """An HTTP session that keeps what it is asked to send and answers 200."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, request: Any) -> Answer:
        self.sent.append(request)
        return Answer()


async def test_what_a_direct_send_sends_is_signed_as_botocore_signs_it(
    frozen_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request as sent (the clock the module reads, the client's credentials, the send path),
    not only the signing function: its signature is botocore's for the same body and time."""
    monkeypatch.setattr(_sqs_request, "utcnow", lambda: MOMENT.replace(tzinfo=datetime.UTC))
    async with client() as sqs:
        direct = DirectSend.of(sqs)
        sdk = await sdk_request(sqs, PARAMS)
        session = Session()
        direct._session = session
        await direct.send(PARAMS)
        assert direct.sent == 1 and len(session.sent) == 1
        request = session.sent[0]
        assert request.body == sdk.body and request.url == sdk.url
        ours, theirs = lowered(dict(request.headers)), headers(sdk)
        for name in ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-target", "user-agent"):
            assert ours[name] == theirs[name], name
        assert ours["amz-sdk-request"] == "attempt=1" and ours["amz-sdk-invocation-id"]


def test_a_time_of_another_zone_is_signed_in_utc() -> None:
    template = template_of(
        fake_request(
            **{
                "X-Amz-Target": "AmazonSQS.SendMessage",
                "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20261207/us-east-1/sqs/aws4_request, "
                "SignedHeaders=host;x-amz-date;x-amz-target, Signature=ab",
            }
        )
    )
    assert not isinstance(template, str)
    credentials = ReadOnlyCredentials("AK", "secret", None)
    utc = datetime.datetime(2025, 12, 31, 23, 0, tzinfo=datetime.UTC)
    paris = utc.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert sigv4_headers(template, b"{}", credentials, paris) == sigv4_headers(template, b"{}", credentials, utc)
    assert sigv4_headers(template, b"{}", credentials, utc)["X-Amz-Date"] == "20251231T230000Z"
