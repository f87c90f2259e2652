"""The claim check's rules without I/O: which parts of a payload go to S3, under which keys, and
how a record's payload is put back together (:mod:`asyncmq_cloud.stores.offload` does the I/O).

A record that keeps parts in S3 holds, besides its metadata:

* ``_asyncmq_offload`` (:data:`MARKER`): ``{part: S3 key}`` of each part in S3;
* ``_asyncmq_bodies`` (:data:`~asyncmq_cloud.core.records.BODIES_KEY`): the record's body
  prefix, a random token drawn when the job's first part goes to S3. Every later body of the
  job goes under it, and deleting the job deletes that prefix only, so the bodies of a job
  re-created with the same id (a new token) survive a delete of the old one that overlaps it.
  It is one of the keys the backend keeps through a run (``KEPT_KEYS``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asyncmq_cloud.core.records import BODIES_KEY
from asyncmq_cloud.core.validation import decode_payload, encode_payload
from asyncmq_cloud.errors import PayloadTooLargeError

#: The payload key that holds ``{part: S3 key}`` of a record's offloaded parts.
MARKER = "_asyncmq_offload"
#: The parts of an AsyncMQ job dict that may be offloaded, and their fields.
PARTS: dict[str, tuple[str, ...]] = {
    "args": ("args", "kwargs"),
    "result": ("result",),
    "error": ("last_error", "error_traceback"),
}
_TOKEN = re.compile(r"^[0-9a-f]{8,32}$")

#: ``(queue, job id, body token, part, bytes) -> key`` (``S3Bodies.key``).
KeyOf = Callable[[str, str, str, str, bytes], str]


@dataclass(frozen=True)
class Plan:
    """A payload as the record will hold it, and the ``(part, key, bytes)`` to put first."""

    payload: dict[str, Any]
    writes: list[tuple[str, str, bytes]]


def size_of(payload: Mapping[str, Any]) -> int:
    return len(encode_payload(dict(payload)).encode("utf-8"))


def body_token(payload: Mapping[str, Any]) -> str | None:
    """The record's body prefix token, if it has a well-formed one."""
    token = payload.get(BODIES_KEY)
    return token if isinstance(token, str) and _TOKEN.match(token) else None


def plan(
    queue: str, job_id: str, payload: dict[str, Any], *, threshold: int, limits: tuple[int, int], key_of: KeyOf
) -> Plan:
    """What to write for ``payload``; refuses what cannot fit before any I/O.

    Args:
        threshold: a payload encoding to more bytes keeps its bulky parts in S3.
        limits: (the hard limit of a payload, the state store's limit of a record).
        key_of: the S3 key of a body.
    """
    hard, store = limits
    size = size_of(payload)
    if size > hard:
        raise PayloadTooLargeError(
            f"job {job_id!r} encodes to {size} bytes; with the S3 claim check at most {hard} are accepted "
            "(offload max_payload_bytes)",
            size=size,
            limit=hard,
        )
    if size <= threshold and MARKER not in payload:
        return Plan(payload, [])  # the common case: one encoding, nothing to do
    body = {key: value for key, value in payload.items() if key != MARKER}
    # A part written whole inline again (a new result) replaces its body; a part with a field
    # missing keeps its pointer (its body fills what is missing, the inline fields win).
    carried = {p: k for p, k in dict(payload.get(MARKER) or {}).items() if not _whole(p, body)}
    token = body_token(body) or uuid.uuid4().hex[:16]
    writes: list[tuple[str, str, bytes]] = []
    for part, data in sorted(_chunks(body, carried), key=lambda chunk: len(chunk[1]), reverse=True):
        if size_of({**body, MARKER: carried}) <= threshold:
            break
        carried[part] = key = key_of(queue, job_id, token, part, data)
        writes.append((part, key, data))
        body = {k: v for k, v in body.items() if k not in PARTS[part]}
    packed = {**body, MARKER: carried, BODIES_KEY: token} if carried else body
    rest = size_of(packed)
    if rest > store:
        raise PayloadTooLargeError(
            f"job {job_id!r} still encodes to {rest} bytes with its arguments, result and error in S3; "
            f"the state store accepts {store}",
            size=rest,
            limit=store,
        )
    return Plan(packed, writes)


def joined(payload: Mapping[str, Any], bodies: list[tuple[str, str, bytes | None]]) -> dict[str, Any]:
    """``payload`` with each ``(part, key, bytes)`` read back (inline fields win); the parts whose
    body is gone (``None``) stay in the marker."""
    joined_payload = {key: value for key, value in payload.items() if key != MARKER}
    missing = {}
    for part, key, data in bodies:
        if data is None:
            missing[part] = key
            continue
        for field, value in dict(decode_payload(data)).items():
            joined_payload.setdefault(field, value)
    if missing:
        joined_payload[MARKER] = missing
    return joined_payload


def failed_payload(payload: Mapping[str, Any], reason: str, now: float) -> dict[str, Any]:
    """A claimed record's (packed) payload, failed with ``reason``: its ``error`` body no longer applies."""
    marker = {p: k for p, k in dict(payload.get(MARKER) or {}).items() if p != "error"}
    failed = {k: v for k, v in payload.items() if k != MARKER}
    failed |= {"status": "failed", "last_error": reason, "error_traceback": None, "updated_at": now}
    return {**failed, MARKER: marker} if marker else failed


def _whole(part: str, body: Mapping[str, Any]) -> bool:
    return all(field in body for field in PARTS.get(part, ()))


def _chunks(body: Mapping[str, Any], carried: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Each part not carried with a non-empty value in ``body``, encoded (AsyncMQ's JSON settings)."""
    chunks = []
    for part, fields in PARTS.items():
        values = {field: body[field] for field in fields if field in body}
        if part not in carried and any(value not in (None, "", [], {}) for value in values.values()):
            chunks.append((part, encode_payload(values).encode("utf-8")))
    return chunks


__all__ = ["MARKER", "PARTS", "KeyOf", "Plan", "body_token", "failed_payload", "joined", "plan", "size_of"]
