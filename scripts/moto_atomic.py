"""moto's server with DynamoDB requests applied one at a time (the test bed's moto).

``moto_server`` serves requests on threads and its DynamoDB backend takes no
lock, so two concurrent conditional ``UpdateItem`` calls on one item can both
pass their condition (seen here: a claim race with 100 callers had two winners
in one run of three). Real DynamoDB applies every write to an item atomically,
and the race tests exist to prove our claims rely on exactly that. This serves
moto's own WSGI app behind the middleware in
``asyncmq_cloud/commands/demo/_moto.py``, which serializes DynamoDB requests and,
under a second lock, SQS sends and deletes (moto's delete rebuilds the message list
unlocked); receives and everything else stay concurrent, so SQS long polls never
block anything.

Usage: ``python scripts/moto_atomic.py HOST PORT`` (the project's interpreter:
it needs ``moto[server]`` and the project installed).
"""

from __future__ import annotations

import os
import sys

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import run_simple

from asyncmq_cloud.commands.demo._moto import moto_app


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ["MOTO_PORT"] = str(port)
    run_simple(host, port, moto_app(), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
