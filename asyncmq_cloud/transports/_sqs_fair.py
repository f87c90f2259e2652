"""SQS fair queues: each job's tenant as the ``MessageGroupId`` of its reference.

SQS fair queues (2025) work on *standard* queues: when messages carry a
``MessageGroupId``, SQS keeps one group with a backlog (a noisy tenant) from raising
the dwell time of the other groups' messages. Nothing is configured on the queue; the
producer sets the group. ``SQSTransportConfig.fair_key`` names it per job:

* a dotted path into the AsyncMQ job payload (``"kwargs.tenant_id"``, ``"args.0"``,
  ``"task"``): mappings by key, lists by index; a missing step gives no group;
* or a callable that takes the payload (a dict) and returns the group (``None``: none).

A group is sent as is when SQS accepts it (1 to 128 of ``!`` .. ``~``), else as
``h-`` + 40 hex digits of its SHA-256 (a tenant named ``Acme Corp`` still gets a stable
group of its own). A callable that raises is logged and the job goes without a group:
a key function must never strand a job. On a FIFO queue the group is also the ordering
group (per-tenant order instead of queue-wide); a job without one uses ``fifo_group``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

logger = logging.getLogger("asyncmq_cloud.sqs")

#: What ``fair_key`` accepts: a dotted path into the payload, or a function of the payload.
FairKey = str | Callable[[Mapping[str, Any]], object]
#: A ``fair_key`` path: dot-separated steps of ``[A-Za-z0-9_-]``.
FAIR_KEY_PATH = r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*"
_GROUP = re.compile(r"^[!-~]{1,128}$")


def group_id(value: object) -> str | None:
    """The ``MessageGroupId`` of a key ``value`` (``None``: no group)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if _GROUP.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _dig(payload: Mapping[str, Any], steps: Sequence[str]) -> object:
    value: object = payload
    for step in steps:
        if isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(value, (list, tuple)) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value


def fair_key_function(spec: FairKey | None) -> Callable[[Mapping[str, Any]], str | None] | None:
    """The function that gives a job's group from its payload (``None``: fair queues off)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        steps = spec.split(".")

        def by_path(payload: Mapping[str, Any]) -> str | None:
            return group_id(_dig(payload, steps))

        return by_path
    user = spec

    def by_function(payload: Mapping[str, Any]) -> str | None:
        try:
            return group_id(user(payload))
        except Exception as exc:  # a tenant key must never strand a job
            logger.warning(
                "fair_key failed on job %s (%s); sent without a group", payload.get("id"), type(exc).__name__
            )
            return None

    return by_function


def with_groups(entries: list[dict[str, Any]], groups: Sequence[str | None]) -> list[dict[str, Any]]:
    """``entries`` (one per job, in order) with each job's group as ``MessageGroupId`` when it has one."""
    for entry, group in zip(entries, groups, strict=True):
        if group is not None:
            entry["MessageGroupId"] = group
    return entries


__all__ = ["FAIR_KEY_PATH", "FairKey", "fair_key_function", "group_id", "with_groups"]
