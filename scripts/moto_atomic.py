"""moto's server with DynamoDB requests applied one at a time.

``moto_server`` serves requests on threads and its DynamoDB backend takes no
lock, so two concurrent conditional ``UpdateItem`` calls on one item can both
pass their condition (seen here: a claim race with 100 callers had two winners
in one run of three). Real DynamoDB applies every write to an item atomically,
and the race tests exist to prove our claims rely on exactly that. This runs
moto's own WSGI app behind a middleware that serializes DynamoDB requests; SQS
and everything else stay concurrent, so SQS long polls never block DynamoDB.

Usage: ``python scripts/moto_atomic.py HOST PORT`` (the interpreter must have
``moto[server]``).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ["MOTO_PORT"] = str(port)
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
