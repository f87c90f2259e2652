"""A WSGI middleware around the embedded endpoint that bills every request it serves.

It sees each request's body and answer, so it counts calls by operation and works out
what AWS would bill (:mod:`asyncmq_cloud.commands.cost.units`). For a DynamoDB write it
reads the items the write addresses before and after it, through the same app (in
process, not counted), so the units follow the items' real sizes and the indexes the
write really changed. DynamoDB requests reach it one at a time (the embedded endpoint
serializes them), so the before and after reads see only that write.

Requests outside the scope given to :meth:`Meter.reset`, and requests signed with the
access key :data:`QUIET_KEY`, are served and not counted: the command watches the workload
through the latter.
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from asyncmq_cloud.commands.cost import units as u
from asyncmq_cloud.commands.demo._moto import WsgiApp

QUIET_KEY = "cost-quiet"
DYNAMODB, SQS = "DynamoDB_20120810.", "AmazonSQS."
_WRITES = ("PutItem", "UpdateItem", "DeleteItem")
#: SQS actions billed at the FIFO rate on a FIFO queue; every other action is billed as standard.
MESSAGE_ACTIONS = frozenset(
    {
        "SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
        "ChangeMessageVisibility", "ChangeMessageVisibilityBatch",
    }
)  # fmt: skip


class Meter:
    """Calls and billed units since the last :meth:`reset` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shapes: dict[str, u.TableShape] = {}
        self._sizes: dict[str, tuple[int, int]] = {}  # bytes and items returned whole, per table/index
        self.reset()

    def reset(self, scope: str = "") -> None:
        """Start counting again; with ``scope``, only requests whose body names it (a run's prefix:
        a long poll of an earlier run, still served, is not this run's)."""
        with self._lock:
            self._scope = scope.encode()
            self.calls: Counter[str] = Counter()  # "service.Operation"
            self.billed: Counter[str] = Counter()  # sqs_requests, sqs_other_requests, wru_table, wru_index, rru

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            return Counter(self.calls), Counter(self.billed)

    def _add(self, call: str, **billed: float) -> None:
        with self._lock:
            self.calls[call] += 1
            for name, value in billed.items():
                self.billed[name] += value  # type: ignore[assignment]

    # -- the middleware -------------------------------------------------------------------
    def wrap(self, app: WsgiApp) -> WsgiApp:
        def metered(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            quiet = f"Credential={QUIET_KEY}/" in environ.get("HTTP_AUTHORIZATION", "")
            if quiet or not target.startswith((DYNAMODB, SQS)):
                return app(environ, start_response)
            body = _read_body(environ)
            if self._scope not in body:
                return _served(app, environ, body, start_response)
            operation = target.split(".", 1)[1]
            if target.startswith(SQS):
                _, answer = _call(app, environ, body, start_response)
                self._bill_sqs(operation, body, answer)
                return [answer]
            return [self._dynamodb(app, environ, operation, body, start_response)]

        return metered

    # -- SQS ------------------------------------------------------------------------------
    def _bill_sqs(self, operation: str, body: bytes, answer: bytes) -> None:
        request, reply = _json(body), _json(answer)
        messages = request.get("Entries") if operation == "SendMessageBatch" else [request]
        if operation == "ReceiveMessage":
            messages = reply.get("Messages", [])
        payload = sum(u.sqs_message_size(m) for m in messages or ()) if "Message" in operation else 0
        kind = "sqs_requests" if operation in MESSAGE_ACTIONS else "sqs_other_requests"
        self._add(f"sqs.{operation}", **{kind: u.sqs_request_units(payload)})

    # -- DynamoDB -------------------------------------------------------------------------
    def _dynamodb(
        self, app: WsgiApp, environ: dict[str, Any], operation: str, body: bytes, start_response: Callable[..., Any]
    ) -> bytes:
        request = _json(body)
        addressed = self._addressed(app, environ, operation, request)
        before = [self._get(app, environ, table, key) for table, key, _ in addressed]
        status, answer = _call(app, environ, body, start_response)
        wru_table = wru_index = 0
        for (table, key, transactional), old in zip(addressed, before, strict=True):
            new = self._get(app, environ, table, key)
            table_units, index_units = u.write_units(self._shape(app, environ, table), old, new, transactional)
            wru_table, wru_index = wru_table + table_units, wru_index + index_units
        rru = self._read_units(operation, request, _json(answer)) if status.startswith("200") else 0.0
        self._add(f"dynamodb.{operation}", wru_table=wru_table, wru_index=wru_index, rru=rru)
        return answer

    def _addressed(
        self, app: WsgiApp, environ: dict[str, Any], operation: str, request: Mapping[str, Any]
    ) -> list[tuple[str, dict[str, Any], bool]]:
        """(table, key, transactional) of every item a write addresses."""
        if operation in _WRITES:
            table = request.get("TableName", "")
            key = request.get("Key") or self._shape(app, environ, table).key_of(request.get("Item", {}))
            return [(table, key, False)]
        if operation == "TransactWriteItems":
            entries = [next(iter(entry.values())) for entry in request.get("TransactItems", [])]
            return [(e["TableName"], self._key(app, environ, e), True) for e in entries]
        if operation == "BatchWriteItem":
            return [
                (table, self._key(app, environ, {"TableName": table, **next(iter(entry.values()))}), False)
                for table, entries in request.get("RequestItems", {}).items()
                for entry in entries
            ]
        return []

    def _key(self, app: WsgiApp, environ: dict[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
        if "Key" in entry:
            return dict(entry["Key"])
        return self._shape(app, environ, entry["TableName"]).key_of(entry.get("Item", {}))

    def _read_units(self, operation: str, request: Mapping[str, Any], reply: Mapping[str, Any]) -> float:
        consistent = bool(request.get("ConsistentRead"))
        if operation == "GetItem":
            return u.read_units([u.item_size(reply.get("Item"))], consistent)
        if operation in ("Query", "Scan"):
            return self._query_units(request, reply, consistent)
        if operation == "BatchGetItem":
            return sum(
                u.read_units([u.item_size(item)], bool(request["RequestItems"].get(table, {}).get("ConsistentRead")))
                for table, items in reply.get("Responses", {}).items()
                for item in items
            )
        if operation == "TransactGetItems":
            return sum(u.read_units([u.item_size(r.get("Item"))], True, True) for r in reply.get("Responses", []))
        return 0.0

    def _query_units(self, request: Mapping[str, Any], reply: Mapping[str, Any], consistent: bool) -> float:
        """A ``Query``/``Scan`` pays for every item it evaluated (``ScannedCount``), returned or
        not (``Select=COUNT``, a filter, a projection): at the average size of the items that
        table or index has returned whole so far."""
        sizes = [u.item_size(item) for item in reply.get("Items", [])]
        where = f"{request.get('TableName')}/{request.get('IndexName', '')}"
        if sizes and not request.get("ProjectionExpression"):
            seen, count = self._sizes.get(where, (0, 0))
            self._sizes[where] = (seen + sum(sizes), count + len(sizes))
        seen, count = self._sizes.get(where, (0, 0))
        average = seen / count if count else 0.0
        evaluated = int(reply.get("ScannedCount", len(sizes)))
        return u.read_units([max(sum(sizes), int(average * evaluated))], consistent)

    def _get(self, app: WsgiApp, environ: dict[str, Any], table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        request = {"TableName": table, "Key": key, "ConsistentRead": True}
        _, answer = _call(app, environ, json.dumps(request).encode(), None, f"{DYNAMODB}GetItem")
        return _json(answer).get("Item")

    def _shape(self, app: WsgiApp, environ: dict[str, Any], table: str) -> u.TableShape:
        if table not in self._shapes:
            request = json.dumps({"TableName": table}).encode()
            _, answer = _call(app, environ, request, None, f"{DYNAMODB}DescribeTable")
            self._shapes[table] = u.shape_of(_json(answer)["Table"])
        return self._shapes[table]


def _served(app: WsgiApp, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]) -> list[bytes]:
    return [_call(app, environ, body, start_response)[1]]


def _json(data: bytes) -> dict[str, Any]:
    try:
        loaded = json.loads(data or b"{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _call(
    app: WsgiApp,
    environ: dict[str, Any],
    body: bytes,
    start_response: Callable[..., Any] | None,
    target: str | None = None,
) -> tuple[str, bytes]:
    """Serve ``body`` (as ``target``, default the request's own) through ``app``: (status, answer).

    With ``start_response`` the answer's status and headers go to the client; without, the
    call is the meter's own and nothing is sent.
    """
    statuses: list[str] = []

    def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
        statuses.append(status)
        if start_response is not None:
            return start_response(status, headers, exc_info)  # type: ignore[no-any-return]
        return lambda data: None

    inner = dict(environ, **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    if target is not None:
        inner["HTTP_X_AMZ_TARGET"] = target
        inner["REQUEST_METHOD"] = "POST"
    answer = b"".join(app(inner, respond))
    return (statuses[0] if statuses else "500"), answer
