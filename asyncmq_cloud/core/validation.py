"""Input validation shared by every store, transport and backend.

Queue names end up inside SQS queue names, Kafka topic names, DynamoDB keys and
Redis keys, so one conservative rule serves them all; each transport adds its own
length limit once the configured prefix is known.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from asyncmq import monkay

from asyncmq_cloud.errors import ConfigurationError, InvalidNameError, UnencodableError

#: ``[A-Za-z0-9_.-]``: valid in SQS (without the dot), Kafka topics, DynamoDB
#: keys and Redis keys; ``#`` and ``:`` are reserved as key separators.
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
MAX_QUEUE_NAME_LENGTH = 128


def validate_queue_name(name: str) -> str:
    """Return ``name`` or raise :class:`InvalidNameError` naming the broken rule."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError("queue name must be a non-empty string")
    if len(name) > MAX_QUEUE_NAME_LENGTH:
        raise InvalidNameError(
            f"queue name {name[:40]!r}... is {len(name)} characters; the limit is {MAX_QUEUE_NAME_LENGTH}"
        )
    if not QUEUE_NAME_RE.match(name):
        raise InvalidNameError(
            f"queue name {name!r} may only contain letters, digits, '_', '-' and '.' (rule: {QUEUE_NAME_RE.pattern})"
        )
    return name


#: Longest job id accepted, in UTF-8 bytes. It ends up in DynamoDB keys (2,048 bytes with the
#: queue name), SQS message bodies and attributes, Kafka record values and Redis keys; AsyncMQ's
#: own ids are 36-character UUIDs.
MAX_JOB_ID_BYTES = 512


def validate_job_id(job_id: object) -> str:
    """``job_id`` as a string, or :class:`InvalidNameError` for an empty or oversized one (nothing written)."""
    text = str(job_id)
    size = len(text.encode("utf-8"))
    if not text or size > MAX_JOB_ID_BYTES:
        raise InvalidNameError(f"job id of {size} bytes: it must be 1 to {MAX_JOB_ID_BYTES} bytes of UTF-8")
    return text


def encode_payload(payload: dict[str, Any]) -> str:
    """The one JSON encoding of payloads in every store: AsyncMQ's configured ``json_dumps``
    (read at each call, as ``BaseBackend._json_serializer``); with the default, compact UTF-8.

    Raises:
        UnencodableError: (a ``TypeError``) a value the encoder cannot encode; never a silent ``str()``.
    """
    settings = monkay.settings
    try:
        if _plain(settings.json_dumps) is json.dumps:
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        text = settings.json_serializer.to_json(payload)
    except (TypeError, ValueError) as exc:  # ValueError: a circular reference or NaN refused
        raise UnencodableError(f"the job payload cannot be encoded as JSON: {exc}") from exc
    return text.decode("utf-8") if isinstance(text, bytes) else str(text)


def _plain(function: object) -> object:
    """The function behind a settings attribute (AsyncMQ's settings bind the default ``json.dumps``)."""
    return getattr(function, "__func__", function)


def decode_payload(text: str | bytes) -> Any:
    """The inverse of :func:`encode_payload`: AsyncMQ's configured ``json_loads``."""
    settings = monkay.settings
    if _plain(settings.json_loads) is json.loads:
        return json.loads(text)
    return settings.json_serializer.to_dict(text.decode("utf-8") if isinstance(text, bytes) else text)


def encoded_size(payload: dict[str, Any]) -> int:
    """Size in bytes of :func:`encode_payload`'s output."""
    return len(encode_payload(payload).encode("utf-8"))


#: The latest ``run_at`` accepted: 9999-12-31T23:59:59Z. Every store holds it exactly
#: (DynamoDB numbers stop near 1e126, a far larger delay would not round-trip anywhere).
MAX_RUN_AT = 253_402_300_799.0


def validate_run_at(run_at: float) -> float:
    """A finite epoch timestamp up to :data:`MAX_RUN_AT`, or :class:`ConfigurationError` (nothing is written)."""
    try:
        value = float(run_at)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"run_at must be an epoch timestamp in seconds, got {run_at!r}") from exc
    if not math.isfinite(value):
        raise ConfigurationError(f"run_at must be a finite epoch timestamp, got {run_at!r}")
    if value > MAX_RUN_AT:
        raise ConfigurationError(f"run_at {value:.6g} is after 9999-12-31 (epoch {MAX_RUN_AT:.0f}): too long a delay")
    return value
