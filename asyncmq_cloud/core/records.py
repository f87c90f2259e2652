"""The plain records the protocols of :mod:`asyncmq_cloud.core.protocols` pass around.

:class:`JobRecord`, :class:`RepeatableRecord` and :class:`WorkerRecord` are what a
:class:`~asyncmq_cloud.core.protocols.StateStore` holds; :class:`Delivery` and
:class:`TransportCapabilities` are what a :class:`~asyncmq_cloud.core.protocols.Transport`
hands out and declares. The rules every implementation follows are in the protocols'
module docstring. :mod:`asyncmq_cloud.core.protocols` re-exports every name here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncmq.core.enums import State

from asyncmq_cloud.core.validation import validate_job_id

#: Store-internal state of a job whose parents have not all completed. AsyncMQ
#: itself shows such jobs as ``waiting`` with a non-empty ``depends_on``.
WAITING_CHILDREN = "waiting-children"
#: Terminal state set by ``cancel_job``.
CANCELLED = "cancelled"


#: Payload keys the backend keeps through a run: AsyncMQ's ``Job`` drops unknown keys, so the
#: payload it hands back at the end of a run lacks them (the trace context: ``tracing.py``).
TRACE_KEY = "_asyncmq_trace"
#: The S3 claim check's body prefix token of a record (``stores/_offload_plan.py``).
BODIES_KEY = "_asyncmq_bodies"
KEPT_KEYS: tuple[str, ...] = (TRACE_KEY, BODIES_KEY)


@dataclass
class JobRecord:
    """One job as held by a :class:`StateStore`.

    Attributes:
        queue: the AsyncMQ queue name.
        id: the job id (unique within the queue).
        state: one of AsyncMQ's states, ``waiting-children`` or ``cancelled``.
        payload: the AsyncMQ job dict (result and progress live inside it).
        run_at: when a ``delayed`` job becomes due (epoch seconds), else ``None``.
        owner: the claim token of the worker that holds an ``active`` job.
        heartbeat: last heartbeat of an ``active`` job (epoch seconds).
        updated_at: last write (epoch seconds).
        has_children: whether other jobs still wait for this one. Stores report it
            on ``transition`` results (True when unknown): a job completed with
            none lets the lifecycle skip AsyncMQ's follow-up ``resolve_dependency``.
    """

    queue: str
    id: str
    state: str
    payload: dict[str, Any]
    run_at: float | None = None
    owner: str | None = None
    heartbeat: float | None = None
    updated_at: float = 0.0
    has_children: bool = True

    def job(self) -> dict[str, Any]:
        """The AsyncMQ job dict with ``status`` taken from the authoritative state."""
        status = "waiting" if self.state == WAITING_CHILDREN else self.state
        return {**self.payload, "id": self.id, "status": status}

    def kept(self) -> dict[str, Any]:
        """The payload keys of the backend's own (:data:`KEPT_KEYS`) this record has."""
        return {key: self.payload[key] for key in KEPT_KEYS if key in self.payload}


@dataclass
class RepeatableRecord:
    """A durable repeatable (cron / every) definition."""

    key: str
    job_def: dict[str, Any]
    next_run: float
    paused: bool = False


@dataclass
class WorkerRecord:
    """A worker registry entry (AsyncMQ's ``WorkerInfo`` plus an expiry)."""

    id: str
    queue: str
    concurrency: int
    heartbeat: float


@dataclass
class StateSummary:
    """One state of one queue as the overview shows it: how many jobs are in it and the
    ``(job id, created_at)`` of the most recently created ones, newest first."""

    count: int
    newest: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Delivery:
    """One received job reference.

    Attributes:
        queue: the AsyncMQ queue name.
        job_id: the referenced job.
        receipt: the transport's own handle for the message, opaque to everything else
            (SQS: an ``SQSReceipt`` with the receipt handle and queue URL; Kafka: a
            ``Receipt`` with partition, offset and assignment epoch; memory: the message
            id; DynamoDB: ``None``). Only the transport that made the delivery reads it.
        receive_count: how many times the transport has delivered this message (1 = first).
        received_at: ``time.monotonic()`` when the transport received the message.
        lease_until: ``time.monotonic()`` when the broker's own lease on the message ends
            and the message becomes visible to other workers unless extended (SQS
            visibility timeout, memory transport); ``None`` when the broker holds the
            message for as long as this process lives (Kafka, DynamoDB). The transport
            moves it on ``extend``/``release``; the lifecycle's lease keeper renews
            leases that end soon.
    """

    queue: str
    job_id: str
    receipt: Any = None
    receive_count: int = 1
    received_at: float = field(default_factory=time.monotonic)
    lease_until: float | None = None


@dataclass(frozen=True)
class TransportCapabilities:
    """What a transport can do, declared once; the lifecycle reads it instead of probing the object.

    Attributes:
        max_native_delay: longest delay (s) the broker holds a message itself; 0 = none
            (every delay goes through the delay store).
        redelivers: a released reference comes back later (SQS, Kafka, memory). False when
            the transport has nothing to put back (DynamoDB: the index is the queue), so an
            unclaimable candidate is skipped without the read that decides a release.
        supports_fifo: the transport can keep messages in order per group (SQS FIFO queues).
        has_stats: ``stats()`` breaks the broker's depth down by kind (SQS: visible,
            in flight, delayed; Kafka: the lag of each partition, ``partition-N``);
            without it ``stats()`` returns ``{}`` and only ``depth()`` counts.
        priority_lanes: more than 1: ``send`` takes ``priorities`` (each job's AsyncMQ
            priority) and routes each reference to its lane (SQS ``priority_lanes``).
        fair_key: a job's fair-queue group from its payload (``None``: no group); when set,
            ``send`` takes ``groups``, one per id (SQS ``fair_key``).
        read_ahead: a queue's next receive may start while the last references of the
            previous one are claimed (``core/read_ahead.py``): a receive is a broker round
            trip whose results nobody else races for (SQS).
    """

    max_native_delay: float = 0.0
    redelivers: bool = True
    supports_fifo: bool = False
    has_stats: bool = False
    priority_lanes: int = 1
    fair_key: Callable[[Mapping[str, Any]], str | None] | None = None
    read_ahead: bool = False


def new_job_record(queue: str, payload: dict[str, Any], pending: Sequence[str]) -> JobRecord:
    """The record of a job being added: ``waiting``, or ``waiting-children`` while ``pending`` parents run."""
    body = {**payload, "id": validate_job_id(payload["id"]), "updated_at": time.time()}
    body.setdefault("created_at", body["updated_at"])
    if pending:
        body["depends_on"] = list(pending)
    else:
        body.pop("depends_on", None)
    state = WAITING_CHILDREN if pending else State.WAITING
    return JobRecord(queue=queue, id=body["id"], state=state, payload=body)


__all__ = [
    "CANCELLED",
    "WAITING_CHILDREN",
    "Delivery",
    "JobRecord",
    "Lease",
    "RepeatableRecord",
    "StateSummary",
    "TransportCapabilities",
    "WorkerRecord",
    "new_job_record",
]


@dataclass
class Lease:
    """What this process holds for a job it claimed.

    Attributes:
        delivery: the transport's delivery of the job's reference (acked at the end of the run).
        token: the claim token; every end of the run is conditional on it.
        claimed_at: when the claim was written (epoch seconds).
        renewed_at: last heartbeat attempted for the job (by AsyncMQ or by the lease keeper).
        confirmed_at: the lease time the store last accepted (the claim, then each heartbeat
            written): another worker may take the job over ``lease_timeout`` after it.
        kept: the record's :data:`KEPT_KEYS`, written back with the end of the run.
    """

    delivery: Delivery
    token: str
    claimed_at: float
    renewed_at: float = 0.0
    confirmed_at: float = 0.0
    kept: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.renewed_at = self.renewed_at or self.claimed_at
        self.confirmed_at = self.confirmed_at or self.claimed_at


#: Seconds between two log lines about references to jobs that do not exist.
UNKNOWN_LOG_INTERVAL = 60.0


class UnknownReferences:
    """References dropped because no job with their id exists (removed, or never written): counted,
    and logged at most once per :data:`UNKNOWN_LOG_INTERVAL` (with the count since the last line)."""

    def __init__(self) -> None:
        self.total = 0
        self._logged_at: float | None = None
        self._since_log = 0

    def count(self, delivery: Delivery) -> None:
        self.total += 1
        self._since_log += 1
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= UNKNOWN_LOG_INTERVAL:
            logging.getLogger("asyncmq_cloud.lifecycle").warning(
                "dropped %d reference(s) to jobs that do not exist (last: %s/%s; removed, or never written)",
                self._since_log,
                delivery.queue,
                delivery.job_id,
            )
            self._logged_at, self._since_log = now, 0
