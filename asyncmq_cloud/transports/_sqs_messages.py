"""What :class:`~asyncmq_cloud.transports.sqs.SQSTransport` puts in an SQS message, and reads back.

The body is the shared job-reference envelope (:mod:`asyncmq_cloud.transports._envelope`);
anything else on the queue is a poison message, which :func:`read_messages` moves to the
dead-letter queue (:func:`quarantine`, :func:`to_dlq`). FIFO messages get a group id and a
fresh deduplication id per logical send (see :func:`fifo_ids` for why not the job id).
:func:`capped_visibility` keeps visibility changes under SQS's 12-hour cap.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.aws import translated
from asyncmq_cloud.core.records import Delivery
from asyncmq_cloud.errors import CloudBackendError, PermanentError
from asyncmq_cloud.transports._envelope import MAX_REASON, PoisonMessage, decode_envelope, encode_envelope
from asyncmq_cloud.transports._sqs_config import MAX_MESSAGE_BYTES, MAX_VISIBILITY_SECONDS, VISIBILITY_CAP_MARGIN

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

    from asyncmq_cloud.transports.sqs import SQSTransport

logger = logging.getLogger("asyncmq_cloud.transports.sqs")

#: ``fifo_group`` value meaning "one message group per job" (no ordering, full parallelism).
GROUP_PER_JOB = "job"
#: Message system attributes each receive asks for.
RECEIVE_ATTRIBUTES: Any = ["ApproximateReceiveCount"]
#: Message attribute names on a dead-lettered poison message.
ERROR_ATTRIBUTE = "asyncmq-error"
SOURCE_ATTRIBUTE = "asyncmq-source-queue"
COUNT_ATTRIBUTE = "asyncmq-receive-count"
#: SQS group / deduplication ids: 1..128 printable ASCII characters except space.
_ID_CHARS = re.compile(r"[^!-~]")
_MAX_ID = 128


@dataclass
class SQSReceipt:
    """``Delivery.receipt`` of an SQS message: what ack, extend and release need.

    Attributes:
        handle: the ``ReceiptHandle`` of this receive.
        url: the queue URL the message was received from.
        cap_warned: the 12-hour visibility cap warning was logged for this delivery.
    """

    handle: str
    url: str
    cap_warned: bool = False


def _sqs_id(text: str, limit: int = _MAX_ID) -> str:
    return (_ID_CHARS.sub("_", text) or "_")[:limit]


def fifo_ids(queue: str, job_id: str, group: str | None) -> dict[str, str]:
    """``MessageGroupId`` and ``MessageDeduplicationId`` of one FIFO send.

    The deduplication id is fresh per logical send: a retried, re-promoted or
    recovered job is sent again with the same job id, often within the 5-minute
    deduplication window, and SQS would drop that send *silently*. SDK retries
    of one request reuse the entry (and id), so they are still deduplicated.
    """
    group_id = job_id if group == GROUP_PER_JOB else (group or queue)
    return {
        "MessageGroupId": _sqs_id(group_id),
        "MessageDeduplicationId": f"{_sqs_id(job_id, 95)}:{uuid.uuid4().hex}",
    }


def send_entries(
    queue: str, job_ids: Sequence[str], extra: dict[str, Any], fifo: bool, group: str | None
) -> list[dict[str, Any]]:
    """One ``SendMessageBatch`` entry (without ``Id``) per job id; ``extra`` goes on each."""
    entries = []
    for job_id in job_ids:
        body = encode_envelope(queue, job_id)
        if len(body.encode("utf-8")) > MAX_MESSAGE_BYTES:  # pragma: no cover - ids are small
            raise PermanentError(f"job id of {len(body)} bytes does not fit an SQS message")
        entry = {"MessageBody": body, **extra}
        if fifo:
            entry.update(fifo_ids(queue, job_id, group))
        entries.append(entry)
    return entries


def poison_attributes(reason: str, source: str, receive_count: int) -> dict[str, Any]:
    """Message attributes recording why a message was dead-lettered."""
    return {
        ERROR_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:MAX_REASON] or "unknown"},
        SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": source},
        COUNT_ATTRIBUTE: {"DataType": "Number", "StringValue": str(receive_count)},
    }


async def read_messages(
    transport: SQSTransport, queue: str, url: str, messages: Sequence[MessageTypeDef], started: float
) -> list[Delivery]:
    """The deliveries of one ReceiveMessage reply; poison messages go to the DLQ instead."""
    deliveries: list[Delivery] = []
    for message in messages:
        attributes = message.get("Attributes", {})
        count = int(attributes.get("ApproximateReceiveCount", "1"))
        try:
            job_id = decode_envelope(message.get("Body", ""), queue)
        except PoisonMessage as poison:
            await quarantine(transport, queue, url, dict(message), str(poison), count)
            continue
        deliveries.append(
            Delivery(
                queue,
                job_id,
                SQSReceipt(message["ReceiptHandle"], url),
                count,
                received_at=started,
                lease_until=started + transport.config.visibility_timeout,
            )
        )
    return deliveries


async def quarantine(
    transport: SQSTransport, queue: str, url: str, message: dict[str, Any], reason: str, count: int
) -> None:
    """Move a poison message to the DLQ; on failure log and leave it to native redrive."""
    logger.warning("poison message on %s: %s; moving it to the dead-letter queue", transport._resource(queue), reason)
    try:
        await to_dlq(transport, queue, message.get("Body", "") or "<empty>", reason, count)
        client = await transport._client()
        with transport._translated(queue):
            await client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    except CloudBackendError:
        logger.error("could not dead-letter a poison message of %s", transport._resource(queue), exc_info=True)


async def to_dlq(transport: SQSTransport, queue: str, body: str, reason: str, count: int) -> None:
    """Send ``body`` to the queue's DLQ with the reason in its message attributes."""
    dlq = await dlq_url(transport, queue)
    client = await transport._client()
    extra: dict[str, Any] = {}
    if transport.fifo:
        extra = {"MessageGroupId": "asyncmq-dead-letters", "MessageDeduplicationId": uuid.uuid4().hex}
    with translated(f"SQS dead-letter queue of AsyncMQ queue {queue!r}"):
        await client.send_message(
            QueueUrl=dlq,
            MessageBody=body,
            MessageAttributes=poison_attributes(reason, transport.queue_name(queue), count),
            **extra,
        )


async def dlq_url(transport: SQSTransport, queue: str) -> str:
    """The URL of the queue's DLQ, resolved once per transport."""
    key = f"\0dlq:{queue}"
    if key not in transport._urls:
        client = await transport._client()
        name = transport.spec(queue).dlq_name
        with translated(f"SQS dead-letter queue {name!r} of AsyncMQ queue {queue!r}"):
            transport._urls[key] = (await client.get_queue_url(QueueName=name))["QueueUrl"]
    return transport._urls[key]


def capped_visibility(delivery: Delivery, seconds: float, now: float) -> int:
    """``seconds`` rounded up, capped at what is left of the 12 hours from receipt (warns once)."""
    receipt: SQSReceipt = delivery.receipt
    received = delivery.received_at
    left = MAX_VISIBILITY_SECONDS - (now - received) - VISIBILITY_CAP_MARGIN
    wanted = math.ceil(seconds)
    if wanted > left and not receipt.cap_warned:
        receipt.cap_warned = True
        logger.warning(
            "job %s/%s has held its SQS message for %.0f s; SQS allows %d s of visibility from receipt. "
            "The message will reappear; while this job's heartbeat is fresh the next worker's claim puts it "
            "back, so the job keeps running here and runs once.",
            delivery.queue,
            delivery.job_id,
            now - received,
            MAX_VISIBILITY_SECONDS,
        )
    return max(0, min(wanted, math.floor(left)))


__all__ = [
    "PoisonMessage",
    "capped_visibility",
    "decode_envelope",
    "dlq_url",
    "encode_envelope",
    "fifo_ids",
    "poison_attributes",
    "quarantine",
    "read_messages",
    "send_entries",
    "to_dlq",
]
