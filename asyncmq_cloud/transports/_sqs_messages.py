"""What :class:`~asyncmq_cloud.transports.sqs.SQSTransport` puts in an SQS message.

The body is a versioned JSON envelope naming the queue and the job id; anything
else on the queue is a poison message. FIFO messages get a group id and a fresh
deduplication id per logical send (see :func:`fifo_ids` for why not the job id).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

#: ``fifo_group`` value meaning "one message group per job" (no ordering, full parallelism).
GROUP_PER_JOB = "job"
#: Envelope version; a reader refuses other versions as poison (never guesses).
ENVELOPE_VERSION = 1
#: Message system attributes each receive asks for.
RECEIVE_ATTRIBUTES: Any = ["ApproximateReceiveCount"]
#: Message attribute names on a dead-lettered poison message.
ERROR_ATTRIBUTE = "asyncmq-error"
SOURCE_ATTRIBUTE = "asyncmq-source-queue"
COUNT_ATTRIBUTE = "asyncmq-receive-count"
#: SQS group / deduplication ids: 1..128 printable ASCII characters except space.
_ID_CHARS = re.compile(r"[^!-~]")
_MAX_ID = 128
#: Longest reason kept in the ``asyncmq-error`` attribute.
_MAX_REASON = 1000


class PoisonMessage(ValueError):
    """A message body that is not a job reference of this queue; the text is the reason."""


def encode_envelope(queue: str, job_id: str) -> str:
    """The message body for one job reference."""
    return json.dumps({"v": ENVELOPE_VERSION, "q": queue, "id": job_id}, separators=(",", ":"))


def decode_envelope(body: str, queue: str) -> str:
    """The job id of ``body`` received on ``queue``, or :class:`PoisonMessage` saying why not."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise PoisonMessage(f"body is not JSON ({exc})") from exc
    if not isinstance(data, dict) or "v" not in data or "id" not in data:
        raise PoisonMessage('body is not an asyncmq-cloud envelope {"v", "q", "id"}')
    if data["v"] != ENVELOPE_VERSION:
        raise PoisonMessage(f"envelope version {data['v']!r} is not supported (expected {ENVELOPE_VERSION})")
    if data.get("q") != queue:
        raise PoisonMessage(f"envelope is for queue {data.get('q')!r}, received on queue {queue!r}")
    job_id = data["id"]
    if not isinstance(job_id, str) or not job_id:
        raise PoisonMessage(f"envelope job id {job_id!r} is not a non-empty string")
    return job_id


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
        ERROR_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:_MAX_REASON] or "unknown"},
        SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": source},
        COUNT_ATTRIBUTE: {"DataType": "Number", "StringValue": str(receive_count)},
    }
