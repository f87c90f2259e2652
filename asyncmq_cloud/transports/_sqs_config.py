"""Settings and SQS limits of :class:`~asyncmq_cloud.transports.sqs.SQSTransport`.

:class:`SQSTransportConfig` declares every knob (the module docstring of
``transports/sqs.py`` explains each one); the constants are the SQS quotas the
transport checks against.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from asyncmq_cloud.config import _Model
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.transports._sqs_fair import FAIR_KEY_PATH

# Limits: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
# and the API reference of each action named below.
#: Largest message body (1 MiB since 2025; 262,144 bytes on older emulators, the value checked).
MAX_MESSAGE_BYTES = 262_144
#: ``DelaySeconds`` range (SendMessage); not settable per message on FIFO queues.
MAX_DELAY_SECONDS = 900
#: ``VisibilityTimeout`` maximum, counted from the *first receipt* (ChangeMessageVisibility).
MAX_VISIBILITY_SECONDS = 43_200
#: Entries per SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch.
MAX_BATCH_ENTRIES = 10
#: ``MaxNumberOfMessages`` of ReceiveMessage.
MAX_RECEIVE_MESSAGES = 10
#: ``WaitTimeSeconds`` maximum of ReceiveMessage (long polling).
MAX_WAIT_SECONDS = 20
#: FIFO ``MessageDeduplicationId`` window: a repeated id within it is silently dropped.
FIFO_DEDUP_WINDOW_SECONDS = 300
#: Most priority lanes (SQS queues) per AsyncMQ queue.
MAX_LANES = 10
#: Margin (s) kept under the 12-hour cap: receipt time is measured at the request's start.
VISIBILITY_CAP_MARGIN = 5.0


class SQSTransportConfig(_Model):
    """Settings of :class:`SQSTransport` (see the module docstring for each).

    Attributes:
        queue_prefix: prepended to every AsyncMQ queue name (``[A-Za-z0-9_-]``).
        fifo: use ``.fifo`` queues.
        fifo_group: FIFO ``MessageGroupId``; ``None`` = the AsyncMQ queue name,
            ``"job"`` = the job id.
        visibility_timeout: seconds a received message stays invisible.
        max_receive_count: receives before SQS redrives a message to the DLQ.
        retention_seconds: message retention of the queue (``None`` = SQS's 4 days).
        kms_key_id: KMS key id/alias/ARN for SSE-KMS (provision only).
        kms_data_key_reuse_seconds: data key reuse period (provision only).
        queue_attributes: further ``CreateQueue`` attributes (provision only).
        linger: seconds a send batch opened while no send of its queue is in
            flight waits for more entries (the sender waits too). 0 (default): it
            goes in the next turn of the event loop, with what was submitted in
            that turn, so a lone sequential producer never waits.
        busy_linger: the longest a send batch opened while a send call of the
            same queue is in flight waits (concurrent producers); it goes as soon
            as no send of the queue is in flight any more, or when full.
        direct_send: a lone ``SendMessage`` (one job sent alone, what a sequential
            producer sends) is built, signed and sent by this package through the
            client's HTTP session instead of botocore's call machinery (about half its
            CPU; ``transports/_sqs_direct.py``); it goes through botocore whenever a
            handler other than botocore's or this package's call reporting hooks the
            call, and after any failure. ``False``: every call through botocore.
        ack_linger: seconds a delete batch waits for more entries (nobody waits).
        receive_pacing: after a receive that returned some but fewer messages
            than asked for (a trickle), the next receive of that queue starts no
            sooner than this many seconds after it, so it collects a batch.
        create_missing: create a missing queue on first use instead of raising.
        extend_threshold: ``extend`` calls SQS only when less than this fraction
            of the requested extension remains on the message.
        priority_lanes: SQS queues per AsyncMQ queue, one per band of AsyncMQ
            priorities (``transports/_sqs_lanes.py``); 1 = one queue, today's cost.
        lane_bounds: the highest priority number of each lane but the last
            (ascending, ``priority_lanes - 1`` of them); ``None`` = spread over 1 .. 10.
        fair_key: SQS fair queues: each job's group (tenant), sent as ``MessageGroupId``;
            a dotted path into the job payload (``"kwargs.tenant_id"``) or a function of
            the payload (``transports/_sqs_fair.py``); ``None`` = off.
    """

    queue_prefix: str = Field("", max_length=70, pattern=r"^[A-Za-z0-9_\-]*$")
    fifo: bool = False
    fifo_group: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[!-~]+$")
    visibility_timeout: int = Field(30, ge=0, le=MAX_VISIBILITY_SECONDS)
    max_receive_count: int = Field(5, ge=1, le=1000)
    retention_seconds: int | None = Field(None, ge=60, le=1_209_600)
    kms_key_id: str | None = Field(None, min_length=1)
    kms_data_key_reuse_seconds: int | None = Field(None, ge=60, le=86_400)
    queue_attributes: dict[str, str] = Field(default_factory=dict)
    linger: float = Field(0.0, ge=0, le=1)
    busy_linger: float = Field(0.02, ge=0, le=1)
    ack_linger: float = Field(0.5, ge=0, le=5)
    direct_send: bool = True
    receive_pacing: float = Field(0.2, ge=0, le=5)
    create_missing: bool = False
    extend_threshold: float = Field(0.5, ge=0, le=1)
    priority_lanes: int = Field(1, ge=1, le=MAX_LANES)
    lane_bounds: tuple[int, ...] | None = None
    fair_key: str | Callable[[Mapping[str, Any]], object] | None = None

    @field_validator("fair_key")
    @classmethod
    def _fair_key(cls, value: object) -> object:
        if isinstance(value, str) and not re.fullmatch(FAIR_KEY_PATH, value):
            raise ValueError(
                f"fair_key {value[:60]!r} must be a dotted path into the job payload "
                "(like 'kwargs.tenant_id' or 'args.0') or a function of the payload"
            )
        return value

    @model_validator(mode="after")
    def _lanes(self) -> SQSTransportConfig:
        if self.priority_lanes > 1 and self.fifo:
            raise ValueError("priority_lanes needs standard queues: a FIFO queue keeps its own order")
        bounds = self.lane_bounds
        if bounds is not None and (len(bounds) != self.priority_lanes - 1 or list(bounds) != sorted(set(bounds))):
            raise ValueError(f"lane_bounds must be {self.priority_lanes - 1} strictly ascending priorities")
        return self

    def bounds(self) -> tuple[int, ...]:
        """The highest priority number of each lane but the last (lane 0 is the most urgent)."""
        if self.lane_bounds is not None:
            return self.lane_bounds
        n = self.priority_lanes
        return tuple(i * 10 // n - 1 for i in range(1, n))  # the Terraform module computes the same


def delay_attributes(delay: float, fifo: bool) -> dict[str, Any]:
    """The ``DelaySeconds`` of a send delayed by ``delay`` s (none for 0); FIFO queues take no delay."""
    extra: dict[str, Any] = {}
    if delay > 0:
        if fifo:
            raise ConfigurationError("SQS FIFO queues have no per-message delay; use the delay store")
        if delay > MAX_DELAY_SECONDS:
            raise ConfigurationError(f"delay {delay:.0f} s exceeds SQS's {MAX_DELAY_SECONDS} s maximum")
        extra["DelaySeconds"] = min(MAX_DELAY_SECONDS, math.ceil(delay))  # never before the due time
    return extra


__all__ = [
    "FIFO_DEDUP_WINDOW_SECONDS",
    "MAX_BATCH_ENTRIES",
    "MAX_DELAY_SECONDS",
    "MAX_LANES",
    "MAX_MESSAGE_BYTES",
    "MAX_RECEIVE_MESSAGES",
    "MAX_VISIBILITY_SECONDS",
    "MAX_WAIT_SECONDS",
    "VISIBILITY_CAP_MARGIN",
    "SQSTransportConfig",
    "delay_attributes",
]
