"""The job reference every broker transport carries: a versioned JSON envelope.

``{"v": 1, "q": "<queue>", "id": "<job id>"}`` (about 70 bytes). The job itself
lives in the state store. Anything else read from a queue or topic is a *poison*
message: :func:`decode_envelope` raises :class:`PoisonMessage` with the reason and
the transport dead-letters it (SQS: the DLQ with message attributes; Kafka: the
dead-letter topic with headers).
"""

from __future__ import annotations

import json

#: Envelope version; a reader refuses other versions as poison (never guesses).
ENVELOPE_VERSION = 1
#: Longest reason kept when a poison message is dead-lettered.
MAX_REASON = 1000


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
