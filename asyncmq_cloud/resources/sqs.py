"""SQS resources: queue naming rules and :class:`SqsQueueSpec` (queue, DLQ, redrive, KMS)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from asyncmq_cloud.errors import InvalidNameError

#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
#: "A queue name can have up to 80 characters. Valid values: alphanumeric characters,
#: hyphens (-), and underscores (_)"; a FIFO queue name ends in ``.fifo`` (counted in the 80).
SQS_QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
SQS_QUEUE_NAME_MAX = 80
SQS_FIFO_SUFFIX = ".fifo"
#: The dead-letter queue of ``NAME`` is ``NAME-dlq`` (``NAME-dlq.fifo`` for FIFO).
SQS_DLQ_SUFFIX = "-dlq"
#: A DLQ keeps messages for the longest retention SQS allows (14 days) so they can be inspected.
SQS_MAX_RETENTION_SECONDS = 1_209_600


def validate_sqs_queue_name(name: str, *, fifo: bool = False) -> str:
    """Return ``name`` (with ``.fifo`` when ``fifo``) or raise :class:`InvalidNameError` naming the rule.

    The name must leave room for the ``-dlq`` suffix of its dead-letter queue.
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError("SQS queue name must be a non-empty string")
    base = name.removesuffix(SQS_FIFO_SUFFIX) if fifo else name
    if fifo and not name.endswith(SQS_FIFO_SUFFIX):
        raise InvalidNameError(f"SQS FIFO queue name {name!r} must end with {SQS_FIFO_SUFFIX!r}")
    if not base or not SQS_QUEUE_NAME_RE.match(base):
        raise InvalidNameError(
            f"SQS queue name {name!r} may only contain letters, digits, '-' and '_'"
            f"{' before the .fifo suffix' if fifo else ''} (rule: {SQS_QUEUE_NAME_RE.pattern}); "
            "AsyncMQ queue names may contain '.', which SQS forbids: rename the queue or the prefix"
        )
    longest = len(base) + len(SQS_DLQ_SUFFIX) + (len(SQS_FIFO_SUFFIX) if fifo else 0)
    if longest > SQS_QUEUE_NAME_MAX:
        raise InvalidNameError(
            f"SQS queue name {name[:60]!r} is too long: its dead-letter queue name would be {longest} "
            f"characters and SQS allows {SQS_QUEUE_NAME_MAX} (prefix + queue name + {SQS_DLQ_SUFFIX!r}"
            f"{' + .fifo' if fifo else ''}); shorten the queue name or the queue_prefix"
        )
    return name


@dataclass(frozen=True)
class SqsQueueSpec:
    """An SQS queue and its dead-letter queue, as ``provision`` creates them.

    Attributes:
        name: the queue name (``.fifo`` included for FIFO).
        fifo: a FIFO queue (its DLQ is FIFO too, as SQS requires).
        visibility_timeout: the queue's default visibility timeout (s).
        max_receive_count: receives after which SQS moves a message to the DLQ.
        retention_seconds: message retention of the queue (``None`` = SQS default, 4 days).
        kms_key_id: KMS key for server-side encryption (``None`` = SQS-managed SSE).
        kms_data_key_reuse_seconds: how long SQS reuses a data key (fewer KMS calls).
        attributes: further ``CreateQueue`` attributes, passed through.
        lanes: the queues of the other priority lanes (SQS ``priority_lanes``), created
            like the queue and redriving to the same dead-letter queue.
    """

    name: str
    fifo: bool = False
    visibility_timeout: int = 30
    max_receive_count: int = 5
    retention_seconds: int | None = None
    kms_key_id: str | None = None
    kms_data_key_reuse_seconds: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    lanes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_sqs_queue_name(self.name, fifo=self.fifo)
        for lane in self.lanes:
            validate_sqs_queue_name(lane, fifo=self.fifo)

    @property
    def dlq_name(self) -> str:
        base = self.name.removesuffix(SQS_FIFO_SUFFIX) if self.fifo else self.name
        return base + SQS_DLQ_SUFFIX + (SQS_FIFO_SUFFIX if self.fifo else "")

    def _common(self) -> dict[str, str]:
        attrs: dict[str, str] = {}
        if self.fifo:
            attrs["FifoQueue"] = "true"
        if self.kms_key_id:
            attrs["KmsMasterKeyId"] = self.kms_key_id
            if self.kms_data_key_reuse_seconds is not None:
                attrs["KmsDataKeyReusePeriodSeconds"] = str(self.kms_data_key_reuse_seconds)
        return attrs

    def dlq_attributes(self) -> dict[str, str]:
        """``CreateQueue`` attributes of the dead-letter queue (longest retention)."""
        return {**self._common(), "MessageRetentionPeriod": str(SQS_MAX_RETENTION_SECONDS)}

    def queue_attributes(self, dlq_arn: str) -> dict[str, str]:
        """``CreateQueue`` attributes of the queue, redriving to ``dlq_arn``."""
        attrs = {
            **self._common(),
            "VisibilityTimeout": str(self.visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.max_receive_count}),
        }
        if self.retention_seconds is not None:
            attrs["MessageRetentionPeriod"] = str(self.retention_seconds)
        attrs.update(dict(self.attributes))
        return attrs
