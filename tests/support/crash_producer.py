"""A producer that dies between the record write and the send (issue 17 item 13).

Run as ``python -m tests.support.crash_producer '<json>'`` with ``{"kind": "sqs"|"kafka",
"kwargs": {...backend arguments...}, "queue": ..., "job_id": ..., "key": ...}``. It builds
the backend, makes every reference send of this process kill the process (``SIGKILL``, as
an OOM kill or a power cut would: no ``finally``, no flush), and adds one
``tests.tasks.record`` job. The store write happens; the send never does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from asyncmq.queues import Queue

from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.backends.sqs import SQSBackend


async def _die(*_: Any, **__: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(spec: dict[str, Any]) -> None:
    backend_class = SQSBackend if spec["kind"] == "sqs" else KafkaBackend
    backend: Any = backend_class(**spec["kwargs"])
    await backend.start()
    await backend.provision([spec["queue"]])
    type(backend.transport).send = _die  # every send of this process: the process dies
    await Queue(spec["queue"], backend=backend).add("tests.tasks.record", args=[spec["key"]], job_id=spec["job_id"])
    print("the send returned: the producer was not killed", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
