"""The three small protocols the job lifecycle is written against.

``CloudBackend`` (``core/lifecycle.py``) implements every AsyncMQ ``BaseBackend``
method once, over:

* :class:`StateStore` — the source of truth for every job record and for the
  queue-level metadata (paused flags, dependencies, repeatables, workers, locks);
* :class:`Transport` — moves job *references* (queue + job id) from producers to
  workers (SQS, Kafka, DynamoDB, memory);
* :class:`DelayStore` — holds job ids until they are due (Redis sorted set,
  DynamoDB due-time index, memory).

These protocols are the whole contract: a transport declares what it can do in
:class:`TransportCapabilities` and carries what it needs per message in the typed
fields of :class:`Delivery`; the core never probes an implementation for optional
attributes. :class:`Components` is the read-only view of a backend its
collaborators work with. The plain records (:class:`JobRecord`, :class:`Delivery`,
...) live in :mod:`asyncmq_cloud.core.records`; this module re-exports them.

Rules every implementation follows (the contract tests check them):

* The record's ``state`` attribute is authoritative. ``JobRecord.payload`` is the
  AsyncMQ job dict as last written; :meth:`JobRecord.job` returns it with
  ``status`` set from ``state`` so a store never has to rewrite the payload just
  to change state.
* Conditional methods (``claim``, ``transition``, ``heartbeat``,
  ``resolve_dependency``, ``acquire_lock``, ``DelayStore.claim_due``) are atomic
  in the store: with any number of concurrent callers each condition holds for
  exactly one winner. A failed condition returns ``None``/``False``; it is not an
  error.
* ``create`` checks every record's encoded size against ``max_payload_bytes``
  before writing anything and raises ``PayloadTooLargeError``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from asyncmq_cloud.core.records import (
    CANCELLED,
    WAITING_CHILDREN,
    Delivery,
    JobRecord,
    RepeatableRecord,
    StateSummary,
    TransportCapabilities,
    WorkerRecord,
)

if TYPE_CHECKING:
    from asyncmq_cloud.config import LifecycleConfig
    from asyncmq_cloud.resources import KafkaTopicSpec, SqsQueueSpec, TableSpec
    from asyncmq_cloud.resources.s3 import S3BucketSpec

    #: A table, queue or topic a component needs (``provision`` creates it; ``doctor`` checks it).
    ResourceSpec: TypeAlias = TableSpec | SqsQueueSpec | KafkaTopicSpec | S3BucketSpec


@runtime_checkable
class StateStore(Protocol):
    """Durable job records and queue metadata. See the module docstring for the rules."""

    #: Largest encoded record (payload JSON + attributes) the store accepts.
    max_payload_bytes: int

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def provision(self) -> None:
        """Create the tables/keys the store needs (idempotent)."""
        ...

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """The specs of every table the store needs for ``queues`` (no I/O; ``[]`` when none)."""
        ...

    # -- job records -----------------------------------------------------------
    async def create(
        self,
        records: Sequence[JobRecord],
        deps: Mapping[str, Collection[str]] | None = None,
        *,
        unsent: bool = False,
        atomic: bool = True,
    ) -> None:
        """Write (insert or overwrite) job records and their pending parents.

        ``deps`` maps a child id (one of ``records``, same queue) to the parent ids
        it still waits for. All records of one call belong to one queue. The write
        is atomic where the store allows it (DynamoDB transaction up to 100
        actions, one Redis script); a store that cannot write them atomically
        raises ``FlowTooLargeError`` before writing anything.

        ``atomic=False`` (a bulk add of independent jobs, no ``deps``): the store may write
        them in several steps (DynamoDB: ``BatchWriteItem``, decision 71); after a failure
        part-way, the records already written stay, each whole.

        With ``unsent``, every record written ``waiting`` is also marked *unsent*,
        timed now, in the same write (:meth:`list_unsent`). Any later state change
        (the claim first of all), ``delete`` or an overwrite without ``unsent``
        clears the mark in its own write.
        """
        ...

    async def get(self, queue: str, job_id: str) -> JobRecord | None: ...

    async def claim(
        self, queue: str, job_id: str, token: str, now: float, *, stale_before: float | None = None
    ) -> JobRecord | None:
        """``waiting`` (or ``delayed`` with ``run_at <= now``) -> ``active``.

        With ``stale_before``, an ``active`` job whose heartbeat (or, without one,
        last write) is older than it is claimable too: its holder's lease expired.
        Sets ``owner=token``, ``heartbeat=now``, clears ``run_at`` and returns the
        new record in the same call; ``None`` when the job is not claimable.
        """
        ...

    async def transition(
        self,
        queue: str,
        job_id: str,
        to_state: str,
        *,
        expect_states: Collection[str] | None = None,
        expect_owner: str | None = None,
        payload: dict[str, Any] | None = None,
        run_at: float | None = None,
        unsent: bool = False,
    ) -> JobRecord | None:
        """Conditionally move a job to ``to_state`` and return the new record.

        Conditions: the job exists; its state is in ``expect_states`` (when
        given); its owner equals ``expect_owner`` (when given). On success the
        owner and heartbeat are cleared, ``run_at`` is set to the given value
        (``None`` clears it) and the payload replaced when given; the unsent mark
        is cleared, or set (timed now) with ``unsent`` when ``to_state`` is
        ``waiting``. Returns ``None`` when a condition fails.
        """
        ...

    async def promote(self, queue: str, job_ids: Sequence[str]) -> list[str]:
        """``delayed -> waiting`` for each id still ``delayed`` (clears ``run_at``).

        Each id is conditional on its own; returns the ids that moved. One round
        trip where the store allows it: this is the delayed-job hand-off's hot path.
        """
        ...

    async def update_payload(self, queue: str, job_id: str, payload: dict[str, Any]) -> bool:
        """Replace the payload of an existing job, keeping state/owner. False if missing."""
        ...

    async def set_state(self, queue: str, job_id: str, state: str) -> bool:
        """Unconditionally set the state of an existing job (AsyncMQ's ``update_job_state``)."""
        ...

    async def heartbeat(self, queue: str, job_id: str, now: float, token: str | None = None) -> bool:
        """Record a heartbeat on an ``active`` job (owned by ``token`` when given)."""
        ...

    async def delete(self, queue: str, job_id: str, expect_state: str | None = None) -> JobRecord | None:
        """Remove a job and its dependency edges; return what was removed. With ``expect_state``,
        only a job in that state is removed, in one atomic step (else nothing changes: ``None``)."""
        ...

    async def list_jobs(self, queue: str, state: str) -> list[JobRecord]:
        """Jobs of a queue in one state (``waiting-children`` included), oldest first."""
        ...

    async def count_jobs(self, queue: str) -> dict[str, int]:
        """Number of jobs per state for a queue (states with none may be absent)."""
        ...

    async def summarize(self, queue: str, states: Sequence[str], newest: int) -> dict[str, StateSummary]:
        """For each of ``states``: its job count and the ``newest`` most recently created jobs.

        Reads the state indexes, never the job records (DynamoDB: one ``Query`` of index keys
        per state, a page more per MB of keys; Redis: one script for all ``states``, which reads
        only the ``created_at`` field of each newest job); the counts are those of the index,
        which may lag the last writes by a moment.
        """
        ...

    async def list_page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        """Up to ``limit`` jobs of ``queue`` in ``state`` after skipping ``offset``, in creation
        order (newest first when asked). Reads the index keys up to ``offset + limit`` and
        only the returned records."""
        ...

    async def list_unsent(self, queue: str, older_than: float, limit: int) -> list[str]:
        """Ids of up to ``limit`` jobs of ``queue`` marked unsent before ``older_than``, oldest first.

        One index read (never a scan of the queue's backlog); it may lag the last
        writes by a moment (an id just claimed may still be listed).
        """
        ...

    async def clear_unsent(self, queue: str, job_ids: Sequence[str]) -> None:
        """Remove the unsent mark of ``job_ids`` (missing or unmarked ids are ignored)."""
        ...

    async def list_stalled(self, older_than: float) -> list[JobRecord]:
        """``active`` jobs of every queue whose heartbeat is older than ``older_than``."""
        ...

    async def list_queues(self) -> list[str]:
        """Every queue that has held a job, a flag or a repeatable."""
        ...

    # -- queue flags -------------------------------------------------------------
    async def set_paused(self, queue: str, paused: bool) -> None: ...
    async def is_paused(self, queue: str) -> bool: ...

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        """Those of ``queues`` that are paused, in one read (DynamoDB: one ``BatchGetItem`` per
        100 queues; Redis: one command)."""
        ...

    # -- dependencies ----------------------------------------------------------
    async def add_dependencies(self, queue: str, child_id: str, parent_ids: Collection[str]) -> None:
        """Record that ``child_id`` waits for ``parent_ids`` (adds to any existing set)."""
        ...

    async def resolve_dependency(self, queue: str, parent_id: str) -> list[str]:
        """Remove ``parent_id`` from the pending set of each of its children.

        Returns the children whose pending set became empty *by this call*, so
        that with concurrent callers each ready child is returned exactly once.
        """
        ...

    async def pending_parents(self, queue: str, child_id: str) -> set[str]:
        """The parents ``child_id`` still waits for."""
        ...

    # -- repeatables -------------------------------------------------------------
    async def put_repeatable(self, queue: str, record: RepeatableRecord) -> None: ...
    async def get_repeatable(self, queue: str, key: str) -> RepeatableRecord | None: ...
    async def list_repeatables(self, queue: str) -> list[RepeatableRecord]: ...
    async def delete_repeatable(self, queue: str, key: str) -> bool: ...
    async def advance_repeatable(self, queue: str, key: str, next_run: float) -> bool:
        """Set ``next_run`` of a stored, unpaused repeatable, atomically; False (and no write)
        when it was removed or paused meanwhile, so a scheduler pass never writes it back."""
        ...

    # -- workers -------------------------------------------------------------------
    async def register_worker(self, record: WorkerRecord, ttl: float) -> None:
        """Upsert a worker entry that expires ``ttl`` seconds after its heartbeat."""
        ...

    async def deregister_worker(self, worker_id: str) -> None: ...

    async def list_workers(self) -> list[WorkerRecord]:
        """All registered workers (callers filter by heartbeat age)."""
        ...

    # -- locks -----------------------------------------------------------------------
    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        """Take ``key`` for ``ttl`` seconds unless someone else holds an unexpired lock."""
        ...

    async def release_lock(self, key: str, token: str) -> bool:
        """Release ``key`` if ``token`` holds it."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Moves job references from producers to workers (at-least-once)."""

    #: What this transport can do (native delays, redelivery, FIFO, stats).
    capabilities: TransportCapabilities

    async def start(self) -> None: ...
    async def close(self) -> None:
        """Flush pending acks/sends and return un-started prefetched messages."""
        ...

    async def provision(self, queue: str) -> None:
        """Create the queue/topic (and its dead-letter queue) if missing."""
        ...

    def check_queue(self, queue: str) -> None:
        """Raise :class:`~asyncmq_cloud.errors.InvalidNameError` if the broker cannot carry ``queue``.

        No I/O. The lifecycle calls it before it writes anything for a new job, so a name the
        broker refuses (an SQS queue name over 80 characters, a bad Kafka topic) writes nothing.
        """
        ...

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """The specs of the queue/topic of each of ``queues`` (no I/O; ``[]`` when the broker needs none)."""
        ...

    async def send(
        self,
        queue: str,
        job_ids: Sequence[str],
        delay: float = 0.0,
        priorities: Sequence[object] | None = None,
        groups: Sequence[str | None] | None = None,
    ) -> None:
        """Publish references; raises on failure (never silently drops).

        ``delay`` is at most ``capabilities.max_native_delay`` (the lifecycle sends
        longer delays through the delay store). ``priorities`` (AsyncMQ's, one per id) is
        given only to a transport with ``capabilities.priority_lanes > 1``; ``groups``
        (each job's fair-queue group, ``capabilities.fair_key`` of its payload) only to
        a transport that declares ``fair_key``.
        """
        ...

    async def receive(self, queue: str, max_messages: int, wait: float) -> list[Delivery]:
        """Up to ``max_messages`` deliveries, waiting at most ``wait`` seconds.

        Messages that are not a valid job reference are dead-lettered by the
        transport itself (with the reason) and never returned.
        """
        ...

    async def ack(self, deliveries: Sequence[Delivery]) -> None: ...
    async def extend(self, delivery: Delivery, seconds: float) -> None:
        """Keep the broker's lease on the message for about ``seconds`` more (updates ``lease_until``)."""
        ...

    async def release(self, delivery: Delivery, delay: float = 0.0) -> None:
        """Make the message deliverable again after ``delay`` seconds."""
        ...

    async def dead_letter(self, delivery: Delivery, reason: str) -> None: ...
    async def depth(self, queue: str) -> int: ...
    async def stats(self, queue: str) -> dict[str, int]:
        """The broker's counts by kind (``capabilities.has_stats``), else ``{}``."""
        ...

    async def purge(self, queue: str) -> None: ...


@runtime_checkable
class DelayStore(Protocol):
    """Holds job ids until due. ``claim_due`` hands each id to exactly one caller."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def provision(self) -> None: ...

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """The specs of every table the delay store needs for ``queues`` (no I/O; ``[]`` when none)."""
        ...

    async def schedule(self, queue: str, job_id: str, run_at: float) -> None:
        """Hold ``job_id`` until ``run_at`` (re-scheduling replaces the time)."""
        ...

    async def claim_due(self, queue: str, now: float, limit: int) -> list[tuple[str, float]]:
        """Atomically remove and return up to ``limit`` ``(job_id, run_at)`` with ``run_at <= now``."""
        ...

    async def cancel(self, queue: str, job_id: str) -> bool: ...
    async def list(self, queue: str) -> list[tuple[str, float]]: ...
    async def count(self, queue: str) -> int: ...


class Components(Protocol):
    """The parts of a backend its collaborators (lease keeper, hand-over, admin helpers) work with.

    Collaborators read these at call time, never keep copies: a preset backend rebuilds
    its store, transport and delay store when AsyncMQ's CLI calls it from a new event
    loop, and a replaced ``config`` takes effect at once.
    """

    @property
    def store(self) -> StateStore: ...
    @property
    def transport(self) -> Transport: ...
    @property
    def delay_store(self) -> DelayStore: ...
    @property
    def config(self) -> LifecycleConfig: ...


__all__ = [
    "CANCELLED",
    "WAITING_CHILDREN",
    "Components",
    "DelayStore",
    "Delivery",
    "JobRecord",
    "RepeatableRecord",
    "StateStore",
    "StateSummary",
    "Transport",
    "TransportCapabilities",
    "WorkerRecord",
]
