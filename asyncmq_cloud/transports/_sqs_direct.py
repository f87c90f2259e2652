"""``SendMessage`` straight to the endpoint: a lone producer's send without botocore's call machinery.

A lone producer's ``Queue.add`` is one store write and one ``SendMessage``, and most of
the add's CPU is botocore's per-request work around that send (events, parameter
validation and serialization, endpoint rules, retry bookkeeping, response parsing:
about 1.7-2.4 ms of CPU per call here against about 0.9-1.2 ms for the same request
built, signed and sent as below; decision 80). :class:`DirectSend` sends the request
itself, through the same client's HTTP session (its connection pool, TLS, proxy and
timeout settings) and signed with the same client's credentials:

* **What it sends is what botocore sent.** The first ``SendMessage`` of a client goes
  through botocore; a ``before-send`` handler keeps its URL, protocol headers
  (``X-Amz-Target``, ``Content-Type``, ``x-amzn-query-mode``, ``User-Agent``) and the
  signing region and service of its ``AWS4-HMAC-SHA256`` signature. A later send is that
  request with another JSON body, signed with SigV4 as ``botocore.auth.SigV4Auth`` signs
  it (written out for this one request shape, the derived key kept per day). A client
  whose first request is not SQS's JSON protocol signed with SigV4 at the endpoint's root
  never sends directly; nor one whose later SDK sends go to another URL.
* **It steps aside for anything that hooks the call.** A handler on one of a
  ``SendMessage``'s events that is not botocore's, aiobotocore's or this package's call
  reporting (a test's recorder, ``botocore.stub``, a user's header injector, the demo's
  call ledger), a patched ``_make_api_call`` or ``send_message`` (on the client or its
  class): every send then goes through botocore, while it stays so; so does a body that
  is not plain JSON (a binary attribute) and a process in AWS Lambda (botocore adds its
  recursion-detection header there). moto's stubber, which sits on ``before-send`` of
  every client of a process that imported moto, counts only while a mock runs.
* **Any failure is botocore's to handle.** An error answer or a connection error is
  followed by the same send through botocore: its retries with backoff, its error
  shapes, what the caller translates. That is what botocore's own retry does on such an
  error (a standard queue may then hold the reference twice; the claim drops a duplicate).
  Three sends in a row that failed directly with a client error (4xx, not throttling)
  and then succeeded through botocore turn direct sends off for the client (logged once):
  the request built here is then what is wrong.
* **It is observed like the SDK's.** Each direct request is reported to
  :mod:`asyncmq_cloud.observe` as an SQS ``SendMessage`` call with its outcome.

``SQSTransportConfig.direct_send=False`` sends every ``SendMessage`` through botocore.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import time
import types
import uuid
import weakref
from typing import Any

from botocore.awsrequest import AWSPreparedRequest

from asyncmq_cloud import observe
from asyncmq_cloud._aws_observe import classify_code
from asyncmq_cloud.transports._sqs_request import OPERATION, Template, sigv4_headers, template_of

logger = logging.getLogger("asyncmq_cloud.transports.sqs")

#: The events of a botocore call: a handler on one of them that is not ours or botocore's means "go through botocore".
WATCHED_EVENTS = (
    "provide-client-params",
    "before-parameter-build",
    "before-endpoint-resolution",
    "before-call",
    "request-created",
    "choose-signer",
    "before-sign",
    "before-send",
    "needs-retry",
    "response-received",
    "before-parse",
    "after-call",
    "after-call-error",
)
#: Modules whose handlers a direct send stands in for (their work is done here or not needed):
#: botocore's and aiobotocore's own, and this package's call reporting, which a direct send
#: reports itself. Any other handler of this package (the demo's call ledger) is a foreign one.
OWN_MODULES = ("botocore.", "aiobotocore.")
OWN_HANDLER_MODULES = frozenset({"asyncmq_cloud._aws_observe"})
#: The in-process mock that sits on ``before-send`` of every client once imported, and answers
#: only while switched on: moto's (module, class).
DORMANT_MOCKS = frozenset({("moto.core.botocore_stubber", "BotocoreStubber")})
_clients: weakref.WeakKeyDictionary[Any, DirectSend] = weakref.WeakKeyDictionary()


def _private(obj: Any, *path: str) -> Any:
    """``obj.<path>`` (botocore's internals, absent in other versions), or None."""
    for name in path:
        obj = getattr(obj, name, None)
    return obj


def _module(handler: Any) -> str:
    target = _private(handler, "func") or handler  # functools.partial
    return str(_private(target, "__module__") or type(target).__module__)


class DirectSend:
    """Direct ``SendMessage`` calls of one aiobotocore SQS client (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        # weakly: this object is the value of a weak-keyed map and a handler on the client's own
        # emitter; a strong reference would keep every closed client (and its HTTP session) alive
        self._client_ref = weakref.ref(client)
        self._client_type = type(client)
        self.template: Template | None = None
        self.off: str | None = None  # why this client never sends directly
        self.sent = 0  # direct requests made (tests and benchmarks read it)
        self.strikes = 0  # direct requests refused in a row where botocore's were accepted
        self._clean: object = None  # the emitter's lookup cache last found free of foreign handlers
        self._switches: tuple[Any, ...] = ()  # dormant in-process mocks on before-send (moto's, imported)
        self._plain_call = self._make_api_call()
        self._plain_method = _private(self._client_type, OPERATION_METHOD)
        service_id = client.meta.service_model.service_id.hyphenize()
        self._events = tuple(f"{event}.{service_id}.{OPERATION}" for event in WATCHED_EVENTS)
        self._emitter = _private(client, "meta", "events", "_emitter")
        self._session = _private(client, "_endpoint", "http_session")
        self._credentials = _private(client, "_request_signer", "_credentials")
        plain = self._plain_call
        if not isinstance(plain, types.FunctionType) or not str(plain.__module__).startswith("aiobotocore."):
            self.off = "the client's API call is wrapped (an instrumentation or a mock)"
        elif self._emitter is None or self._session is None or self._credentials is None:
            self.off = "the client's internals differ from the botocore this package knows"
        client.meta.events.register(f"before-send.{service_id}.{OPERATION}", self._capture)

    @classmethod
    def of(cls, client: Any) -> DirectSend:
        """The direct sender of ``client`` (created, and its capture registered, on first use)."""
        direct = _clients.get(client)
        if direct is None:
            direct = _clients[client] = cls(client)
        return direct

    def _make_api_call(self) -> Any:
        return _private(self._client_type, "_make_api_call")

    # -- the SDK's first send ------------------------------------------------------------------
    def _capture(self, request: Any, **_: Any) -> None:
        if self.off is not None:
            return
        if self.template is None:
            found = template_of(request)
            if isinstance(found, str):
                self._turn_off(found)
            else:
                self.template = found
        elif str(request.url) != self.template.url:
            self._turn_off(f"the SDK sent {OPERATION} to another URL")

    def _turn_off(self, reason: str) -> None:
        if self.off is None:
            self.off = reason
            logger.info("SQS %s through botocore only: %s", OPERATION, reason)

    # -- may this send go directly? -------------------------------------------------------------
    def usable(self) -> bool:
        """True when a send may go directly now (checked per send; cheap while nothing changed)."""
        if self.off is not None or self.template is None:
            return False
        client = self._client_ref()
        if client is None:
            return False
        if "_make_api_call" in vars(client) or OPERATION_METHOD in vars(client):
            return False
        if self._make_api_call() is not self._plain_call:
            return False
        if _private(self._client_type, OPERATION_METHOD) is not self._plain_method:  # patched on the class
            return False
        if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:
            return False
        emitter: Any = self._emitter
        cache = emitter._lookup_cache  # replaced by a new dict on every register/unregister
        if cache is not self._clean:
            if not self._hooks_ours(emitter):
                return False
            self._clean = cache
        return not any(switch.enabled is not False for switch in self._switches)

    def _hooks_ours(self, emitter: Any) -> bool:
        switches = []
        for event in self._events:
            for handler in emitter._handlers.prefix_search(event):
                if event.startswith("before-send."):
                    if handler == self._capture:
                        continue
                    # moto's stubber sits on every client of a process that imported moto; it answers
                    # only while a mock runs (``enabled``), which is checked on every send
                    kind = type(handler)
                    if (kind.__module__, kind.__qualname__) not in DORMANT_MOCKS:
                        return False
                    switches.append(handler)
                    continue
                module = _module(handler)
                ours = module.startswith(OWN_MODULES) or module in OWN_HANDLER_MODULES
                if not ours or module.endswith(".stub"):
                    return False
        self._switches = tuple(switches)
        return True

    # -- the send --------------------------------------------------------------------------------
    async def send(self, params: dict[str, Any]) -> None:
        """One ``SendMessage`` of ``params`` (``QueueUrl``, ``MessageBody``, ...): direct when
        :meth:`usable`, else (and after a direct failure) through botocore, whose error is raised."""
        body = self._body(params) if self.usable() else None
        if body is None:
            await self._sdk_send(params)
            return
        began = time.monotonic()
        failure: str | None = None  # the direct request's outcome when not ok
        client_error = False
        try:
            status, code = await self._post(body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection errors, timeouts, expired credentials that cannot refresh
            failure = "transient"
            logger.debug("direct SQS %s failed (%s); sending through botocore", OPERATION, type(exc).__name__)
        else:
            if status == 200:
                self.sent += 1
                self.strikes = 0
                self._report("ok", began)
                return
            failure = answer_outcome(status, code)
            client_error = failure == "permanent" and 400 <= status < 500
            logger.debug("direct SQS %s answered %s %s; sending through botocore", OPERATION, status, code)
        self._report(failure, began)
        try:
            await self._sdk_send(params)
        except BaseException:
            self.strikes = 0  # botocore was refused too: the direct request was not what was wrong
            raise
        if not client_error:
            self.strikes = 0
        else:
            self.strikes += 1
            if self.strikes >= STRIKES:
                self._turn_off(f"{STRIKES} direct {OPERATION} requests in a row were refused where botocore's were not")

    async def _sdk_send(self, params: dict[str, Any]) -> None:
        client = self._client_ref()
        if client is None:  # pragma: no cover - a caller holds the client it sends with
            raise RuntimeError("the SQS client was closed and collected")
        await client.send_message(**params)

    @staticmethod
    def _body(params: dict[str, Any]) -> bytes | None:
        try:
            return json.dumps(params).encode("utf-8")  # as botocore's JSON serializer writes it
        except (TypeError, ValueError):  # bytes (binary attributes): botocore encodes them
            return None

    async def _post(self, body: bytes) -> tuple[int, str | None]:
        template = self.template
        assert template is not None
        frozen = self._credentials.get_frozen_credentials()
        if inspect.isawaitable(frozen):  # aiobotocore's refresh: STS, web identity, SSO
            frozen = await frozen
        headers = sigv4_headers(template, body, frozen)
        headers["amz-sdk-invocation-id"] = str(uuid.uuid4())  # botocore's, added after signing
        headers["amz-sdk-request"] = "attempt=1"
        response = await self._session.send(AWSPreparedRequest("POST", template.url, headers, body, False))  # type: ignore[arg-type]
        content = await response.content
        if response.status_code == 200:
            return 200, None
        return response.status_code, error_code(response.headers, content)

    def _report(self, outcome: str, began: float) -> None:
        if observe.active():
            observe.backend_call("sqs", OPERATION, outcome, time.monotonic() - began)


#: Direct requests refused in a row (a client error botocore's same send did not get) that turn
#: direct sends off for the client: one could be a fluke (a credential rotated in between).
STRIKES = 3


def answer_outcome(status: int, code: str | None) -> str:
    """The outcome of a direct request's error answer: its code's, else its status's."""
    if status == 429:
        return "throttled"
    outcome = classify_code(code) if code else "permanent"
    return "transient" if outcome == "permanent" and status >= 500 else outcome


#: The client method a caller may have replaced (a test's fault injection): then botocore it is.
OPERATION_METHOD = "send_message"


def error_code(headers: Any, content: bytes) -> str | None:
    """The error code of an SQS JSON error answer: the query-compatible header, else ``__type``."""
    query = headers.get("x-amzn-query-error")
    if query:
        return str(query).split(";", 1)[0]
    try:
        kind = json.loads(content or b"{}").get("__type")
    except (ValueError, AttributeError):
        return None
    return str(kind).rsplit("#", 1)[-1] if kind else None


async def send_message(client: Any, params: dict[str, Any], direct: bool = True) -> None:
    """``SendMessage`` of ``params`` on ``client``: directly where it may (``direct``), else botocore."""
    if direct:
        await DirectSend.of(client).send(params)
    else:
        await client.send_message(**params)
