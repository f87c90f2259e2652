"""Typed configuration (pydantic) shared by every backend.

Every knob has a default that suits a production worker; each can be given in
code or through the environment with the ``ASYNCMQ_CLOUD_`` prefix
(``LifecycleConfig.from_env()``), e.g. ``ASYNCMQ_CLOUD_RECEIVE_WAIT=2``.
Invalid values raise :class:`~asyncmq_cloud.errors.ConfigurationError` naming the
field and the rule it breaks.
"""

from __future__ import annotations

import os
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from asyncmq_cloud.errors import ConfigurationError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **values: Any) -> None:
        """Validate ``values``; raise :class:`ConfigurationError` (not pydantic's error) on bad input.

        The message names each field and rule, never the value given: a bad value may be a
        secret (``sasl_password``), and pydantic's own text (``input_value=...``) is neither chained
        nor kept as ``__context__`` (the error is raised after the ``except`` block).
        """
        try:
            super().__init__(**values)
            return
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
            )
        raise ConfigurationError(f"invalid {type(self).__name__}: {problems}")

    @classmethod
    def build(cls, **values: Any) -> Self:
        """Validate ``values``; raise :class:`ConfigurationError` on bad input."""
        return cls(**values)

    @classmethod
    def from_env(cls, prefix: str = "ASYNCMQ_CLOUD_", **overrides: Any) -> Self:
        """Read every field from ``{prefix}{FIELD}`` environment variables, then ``overrides``."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = os.environ.get(f"{prefix}{name.upper()}")
            if raw is not None:
                values[name] = raw
        values.update(overrides)
        return cls.build(**values)


class LifecycleConfig(_Model):
    """Knobs of the job lifecycle that every backend shares.

    Attributes:
        receive_wait: longest wait (s) of one transport receive (an SQS long poll, a
            Kafka buffer wait, DynamoDB's idle polling); a message arriving ends it at
            once, and a draining worker ends it at once (``core/receives.py``). 20 s: an
            idle SQS worker makes one receive per 20 s.
        prefetch: most references one receive takes; the rest of a receive is
            buffered for the next ``dequeue`` calls of the same worker. A receive
            never takes more than the free capacity of the workers registered
            through this backend (their concurrency minus the jobs they run), so
            nothing is hidden from other workers. 1 = no prefetch (use it with
            AsyncMQ's ``rate_limit``: a rate-limited worker would hold its buffer).
        visibility_extension: seconds each heartbeat extends the broker lease by.
        promote_batch: most delayed jobs one ``promote_due_delayed`` call moves.
        repair_interval: seconds between repair passes that re-promote delayed
            jobs stranded by a crash between the delay store and the transport.
        repair_grace: a delayed job is stranded when its ``run_at`` is this many
            seconds in the past and it is still ``delayed``.
        resend_grace: a job made ``waiting`` (an add, a dependency release, a stalled
            re-enqueue, ``retry_job``) and not claimed this many seconds later
            gets its reference sent once more by the repair pass (a producer may have
            died between the record write and the send; a duplicate is dropped by the
            claim). Keep it above the usual time a job waits in the queue.
        pause_cache_ttl: seconds a paused/resumed flag read is reused by the
            worker loop (AsyncMQ asks on every iteration).
        cancel_cache_ttl: right after a claim, the claim's snapshot answers
            ``is_job_cancelled`` for this many seconds instead of a store read.
        deregister_timeout: bound (s) on the shielded worker deregistration.
        worker_ttl: seconds a worker entry outlives its last heartbeat (0 =
            AsyncMQ's ``heartbeat_ttl``).
        lease_timeout: a redelivered reference takes over an ``active`` job whose
            heartbeat is older than this (its worker died); a younger one is put
            back on the broker until the lease runs out. 0 = never take over
            (only AsyncMQ's stalled-job checker recovers such jobs).
        delay_scan_interval: seconds between two delay-store reads of a queue by
            ``promote_due_delayed`` (AsyncMQ's scanner calls it every ``scan_interval``;
            the calls in between answer without a read). A job delayed or retried
            through this backend wakes the scan at its due time; one delayed by another
            process is handed over at most this late. 0 = read on every call (None: 5 s).
        repeatables_refresh: seconds a read that found no repeatable on a queue answers
            AsyncMQ's repeatable scheduler (its lock and both reads, every
            ``scan_interval``) without a store call. A change through this backend ends
            it at once; a repeatable added through another process to a queue that had
            none is first seen at most this late. 0 = read on every pass.
    """

    receive_wait: float = Field(20.0, ge=0, le=20)
    prefetch: int = Field(10, ge=1, le=10)
    visibility_extension: float = Field(60.0, gt=0, le=43_200)
    promote_batch: int = Field(100, ge=1, le=10_000)
    repair_interval: float = Field(30.0, gt=0)
    repair_grace: float = Field(30.0, ge=0)
    resend_grace: float = Field(300.0, ge=0)
    pause_cache_ttl: float = Field(1.0, ge=0, le=60)
    cancel_cache_ttl: float = Field(1.0, ge=0, le=60)
    deregister_timeout: float = Field(2.0, gt=0, le=30)
    worker_ttl: float = Field(0.0, ge=0)
    lease_timeout: float = Field(60.0, ge=0)
    delay_scan_interval: float = Field(5.0, ge=0, le=60)
    repeatables_refresh: float = Field(10.0, ge=0, le=300)

    @field_validator("delay_scan_interval", mode="before")
    @classmethod
    def _default_scan(cls, value: Any) -> Any:
        return 5.0 if value is None else value  # None was the documented default before decision 72
