"""What :class:`~asyncmq_cloud.transports.sqs.SQSTransport` puts in an SQS message.

The body is the shared job-reference envelope (:mod:`asyncmq_cloud.transports._envelope`);
anything else on the queue is a poison message. FIFO messages get a group id and a fresh
deduplication id per logical send (see :func:`fifo_ids` for why not the job id).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from asyncmq_cloud.transports._envelope import MAX_REASON, PoisonMessage, decode_envelope, encode_envelope

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


def poison_attributes(reason: str, source: str, receive_count: int) -> dict[str, Any]:
    """Message attributes recording why a message was dead-lettered."""
    return {
        ERROR_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:MAX_REASON] or "unknown"},
        SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": source},
        COUNT_ATTRIBUTE: {"DataType": "Number", "StringValue": str(receive_count)},
    }


__all__ = ["PoisonMessage", "decode_envelope", "encode_envelope", "fifo_ids", "poison_attributes"]
