"""moto's server with DynamoDB requests, and SQS sends and deletes, applied one at a time.

moto serves requests on threads and its DynamoDB backend takes no lock, so two
concurrent conditional ``UpdateItem`` calls on one item can both pass their
condition. Real DynamoDB applies every write to an item atomically, and the
backends rely on exactly that: a scanner's ``delayed -> waiting`` promotion racing
a worker's claim of the same due job must leave one winner. On plain moto both
can win and the job ends ``waiting`` with its run's completion refused.
moto's SQS queue keeps its messages in a list that ``DeleteMessage`` rebuilds
without a lock: two concurrent ``DeleteMessageBatch`` calls on one queue can undo
each other's deletes (a CI run left 5 of 25 acked messages in the queue), and a
send appended during the rebuild is dropped. Real SQS does neither.
:func:`serialized_writes` wraps moto's WSGI app so DynamoDB requests run one at a
time, and SQS sends, deletes and purges one at a time under a second lock;
``ReceiveMessage`` (a long poll) and everything else stay concurrent, so a long poll
never blocks a send or DynamoDB. Used by the demo's embedded endpoint and by
``scripts/moto_atomic.py`` (the test bed's moto servers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


#: SQS actions (JSON protocol, ``X-Amz-Target: AmazonSQS.<action>``) that rewrite a queue's message list.
SQS_LIST_WRITES = frozenset(
    f"AmazonSQS.{action}"
    for action in ("SendMessage", "SendMessageBatch", "DeleteMessage", "DeleteMessageBatch", "PurgeQueue")
)


def serialized_writes(app: WsgiApp) -> WsgiApp:
    """``app`` with every DynamoDB request (``X-Amz-Target: DynamoDB...``) run under one lock,
    and every SQS send, delete and purge under another."""
    dynamodb, sqs = threading.Lock(), threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        lock = dynamodb if target.startswith("DynamoDB") else sqs if target in SQS_LIST_WRITES else None
        if lock is None:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serialized


def moto_app(wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> WsgiApp:
    """moto's own WSGI app (every service), DynamoDB and SQS list writes serialized; ``wrap`` goes between the two
    (``asyncmq-cloud cost`` meters there, one DynamoDB request at a time)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: WsgiApp = DomainDispatcherApplication(create_backend_app)
    return serialized_writes(wrap(app) if wrap else app)


@contextmanager
def threaded_moto(
    host: str = "127.0.0.1", port: int = 0, wrap: Callable[[WsgiApp], WsgiApp] | None = None
) -> Iterator[str]:
    """:func:`moto_app` served on a thread of this process (``port`` 0: the OS picks); yields its URL."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    server = make_server(host, port, moto_app(wrap), threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="embedded-moto", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
