"""A script that uses a backend and never closes it, on two event loops (as AsyncMQ's CLI does).

``python -m tests.support.never_closed sqs|dynamodb|kafka``; the backend's settings come from
``NC_PREFIX``, ``NC_STORE`` and the standard endpoint variables. Prints one line per add.
"""

from __future__ import annotations

import asyncio
import os
import sys

from asyncmq.queues import Queue

from asyncmq_cloud import DynamoDBBackend, KafkaBackend, SQSBackend
from asyncmq_cloud.core.lifecycle import CloudBackend


def backend(kind: str) -> CloudBackend:
    prefix, store = os.environ["NC_PREFIX"], os.environ.get("NC_STORE", "")
    if kind == "sqs":
        return SQSBackend(queue_prefix=prefix, store=store, delay_store=store, create_missing=True)
    if kind == "kafka":
        return KafkaBackend(topic_prefix=prefix, store=store, create_missing=True)
    return DynamoDBBackend(table=f"{prefix}jobs", delay_store=f"dynamodb://{prefix}delays", create_missing=True)


async def add(chosen: CloudBackend) -> None:
    job_id = await Queue("q", backend=chosen).add("tests.tasks.add", args=[1, 2])
    print("added", job_id, await chosen.get_job_state("q", job_id), flush=True)


if __name__ == "__main__":
    used = backend(sys.argv[1])
    asyncio.run(add(used))
    asyncio.run(add(used))  # the same backend on a second loop: it starts again there
