"""In-process reference :class:`~asyncmq_cloud.core.protocols.StateStore`.

This is the executable specification of the StateStore contract: the Redis and
DynamoDB stores must behave exactly like it (the store contract suite runs the
same tests against all three). It is also what unit tests of the lifecycle use.
Every method runs without awaiting while it mutates, so each is atomic with
respect to other coroutines of the same event loop. Nothing survives the
process: never use it in production.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asyncmq_cloud._component import Component
from asyncmq_cloud.core import states
from asyncmq_cloud.core.protocols import JobRecord, RepeatableRecord, StateSummary, WorkerRecord
from asyncmq_cloud.core.validation import decode_payload, encode_payload, encoded_size, validate_queue_name
from asyncmq_cloud.errors import ConfigurationError, PayloadTooLargeError

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec

#: Default payload limit of the memory and the Redis store (defined once, here); DynamoDB's is lower.
DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024


class MemoryStateStore(Component):
    """A dict-backed StateStore (single process, no persistence)."""

    _closed_hint = ""

    def __init__(self, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        super().__init__()
        self.max_payload_bytes = max_payload_bytes
        self._jobs: dict[tuple[str, str], JobRecord] = {}
        self._created: dict[tuple[str, str], float] = {}
        #: Jobs marked unsent (``create(unsent=True)``) -> when; cleared by any state change.
        self._unsent: dict[tuple[str, str], float] = {}
        self._seq = 0.0
        self._paused: set[str] = set()
        self._queues: set[str] = set()
        self._pending: dict[tuple[str, str], set[str]] = {}
        self._children: dict[tuple[str, str], set[str]] = {}
        self._repeatables: dict[str, dict[str, RepeatableRecord]] = {}
        self._workers: dict[str, tuple[WorkerRecord, float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    async def provision(self) -> None:
        return None

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing: it lives in process memory."""
        return []

    # -- job records -----------------------------------------------------------
    async def create(
        self,
        records: Sequence[JobRecord],
        deps: Mapping[str, Collection[str]] | None = None,
        *,
        unsent: bool = False,
        atomic: bool = True,
    ) -> None:
        ids = {record.id for record in records}
        for child in deps or {}:
            if child not in ids:
                raise ConfigurationError(f"dependency child {child!r} is not one of the records being created")
        for record in records:
            validate_queue_name(record.queue)
            size = encoded_size(record.payload)
            if size > self.max_payload_bytes:
                raise PayloadTooLargeError(
                    f"job {record.id!r} encodes to {size} bytes; the memory store accepts {self.max_payload_bytes}",
                    size=size,
                    limit=self.max_payload_bytes,
                )
        now = time.time()
        for record in records:
            key = (record.queue, record.id)
            stored = _copy(record)
            stored.updated_at = now
            self._jobs[key] = stored
            self._unsent.pop(key, None)
            if unsent and record.state == states.WAITING:
                self._unsent[key] = now
            if key not in self._created:
                self._seq += 1
                self._created[key] = self._seq
            self._queues.add(record.queue)
        for child, parents in (deps or {}).items():
            queue = next(r.queue for r in records if r.id == child)
            await self.add_dependencies(queue, child, parents)

    async def get(self, queue: str, job_id: str) -> JobRecord | None:
        record = self._jobs.get((queue, job_id))
        return _copy(record) if record else None

    async def claim(
        self, queue: str, job_id: str, token: str, now: float, *, stale_before: float | None = None
    ) -> JobRecord | None:
        record = self._jobs.get((queue, job_id))
        if record is None or not states.claimable(record, now, stale_before):
            return None
        self._unsent.pop((queue, job_id), None)
        record.state = states.CLAIMED
        record.owner = token
        record.heartbeat = now
        record.run_at = None
        record.updated_at = now
        return _copy(record)

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
        record = self._jobs.get((queue, job_id))
        if record is None or not states.transition_allowed(record, expect_states, expect_owner):
            return None
        if payload is not None:
            size = encoded_size(payload)
            if size > self.max_payload_bytes:
                raise PayloadTooLargeError(
                    f"job {job_id!r} encodes to {size} bytes", size=size, limit=self.max_payload_bytes
                )
            record.payload = copy.deepcopy(payload)
        self._unsent.pop((queue, job_id), None)
        record.state = to_state
        record.owner = None
        record.heartbeat = None
        record.run_at = run_at
        record.updated_at = time.time()
        if unsent and to_state == states.WAITING:
            self._unsent[(queue, job_id)] = record.updated_at
        result = _copy(record)
        result.has_children = bool(self._children.get((queue, job_id)))
        return result

    async def promote(self, queue: str, job_ids: Sequence[str]) -> list[str]:
        moved = []
        now = time.time()
        for job_id in job_ids:
            record = self._jobs.get((queue, job_id))
            if record is not None and record.state in states.PROMOTABLE:
                record.state, record.run_at, record.owner, record.heartbeat = states.WAITING, None, None, None
                record.updated_at = now
                moved.append(job_id)
        return moved

    async def update_payload(self, queue: str, job_id: str, payload: dict[str, Any]) -> bool:
        record = self._jobs.get((queue, job_id))
        if record is None:
            return False
        size = encoded_size(payload)
        if size > self.max_payload_bytes:
            raise PayloadTooLargeError(
                f"job {job_id!r} encodes to {size} bytes", size=size, limit=self.max_payload_bytes
            )
        record.payload = copy.deepcopy(payload)
        record.updated_at = time.time()
        return True

    async def set_state(self, queue: str, job_id: str, state: str) -> bool:
        record = self._jobs.get((queue, job_id))
        if record is None:
            return False
        self._unsent.pop((queue, job_id), None)
        record.state = state
        record.updated_at = time.time()
        return True

    async def heartbeat(self, queue: str, job_id: str, now: float, token: str | None = None) -> bool:
        record = self._jobs.get((queue, job_id))
        if record is None or not states.heartbeat_allowed(record, token):
            return False
        record.heartbeat = now
        return True

    async def delete(self, queue: str, job_id: str, expect_state: str | None = None) -> JobRecord | None:
        key = (queue, job_id)
        current = self._jobs.get(key)
        if expect_state is not None and (current is None or current.state != expect_state):
            return None
        record = self._jobs.pop(key, None)
        self._created.pop(key, None)
        self._unsent.pop(key, None)
        for parent in self._pending.pop(key, set()):
            self._children.get((queue, parent), set()).discard(job_id)
        self._children.pop(key, None)
        return record

    async def list_jobs(self, queue: str, state: str) -> list[JobRecord]:
        found = [(self._created[k], r) for k, r in self._jobs.items() if k[0] == queue and r.state == state]
        return [_copy(r) for _, r in sorted(found, key=lambda item: item[0])]

    async def summarize(self, queue: str, states: Sequence[str], newest: int) -> dict[str, StateSummary]:
        out: dict[str, StateSummary] = {}
        for state in states:
            records = await self.list_jobs(queue, state)
            latest = [(r.id, float(r.payload.get("created_at") or r.updated_at)) for r in reversed(records)]
            out[state] = StateSummary(count=len(records), newest=latest[: max(newest, 0)])
        return out

    async def list_page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        records = await self.list_jobs(queue, state)
        ordered = records[::-1] if newest_first else records
        return ordered[max(offset, 0) : max(offset, 0) + max(limit, 0)]

    async def count_jobs(self, queue: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (job_queue, _), record in self._jobs.items():
            if job_queue == queue:
                counts[record.state] = counts.get(record.state, 0) + 1
        return counts

    async def list_unsent(self, queue: str, older_than: float, limit: int) -> list[str]:
        found = sorted((t, k[1]) for k, t in self._unsent.items() if k[0] == queue and t < older_than)
        return [job_id for _, job_id in found[:limit]]

    async def clear_unsent(self, queue: str, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            self._unsent.pop((queue, job_id), None)

    async def list_stalled(self, older_than: float) -> list[JobRecord]:
        return [_copy(r) for r in self._jobs.values() if states.stalled(r, older_than)]

    async def list_queues(self) -> list[str]:
        return sorted(self._queues | self._paused | set(self._repeatables))

    # -- queue flags -------------------------------------------------------------
    async def set_paused(self, queue: str, paused: bool) -> None:
        validate_queue_name(queue)
        (self._paused.add if paused else self._paused.discard)(queue)

    async def is_paused(self, queue: str) -> bool:
        return queue in self._paused

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        return set(queues) & self._paused

    # -- dependencies ----------------------------------------------------------
    async def add_dependencies(self, queue: str, child_id: str, parent_ids: Collection[str]) -> None:
        self._pending.setdefault((queue, child_id), set()).update(parent_ids)
        for parent in parent_ids:
            self._children.setdefault((queue, parent), set()).add(child_id)

    async def resolve_dependency(self, queue: str, parent_id: str) -> list[str]:
        ready: list[str] = []
        for child in sorted(self._children.pop((queue, parent_id), set())):
            pending = self._pending.get((queue, child))
            if pending is None or parent_id not in pending:
                continue
            pending.discard(parent_id)
            if not pending:
                del self._pending[(queue, child)]
                ready.append(child)
        return ready

    async def pending_parents(self, queue: str, child_id: str) -> set[str]:
        return set(self._pending.get((queue, child_id), set()))

    # -- repeatables -------------------------------------------------------------
    async def put_repeatable(self, queue: str, record: RepeatableRecord) -> None:
        validate_queue_name(queue)
        self._repeatables.setdefault(queue, {})[record.key] = copy.deepcopy(record)

    async def get_repeatable(self, queue: str, key: str) -> RepeatableRecord | None:
        record = self._repeatables.get(queue, {}).get(key)
        return copy.deepcopy(record) if record else None

    async def list_repeatables(self, queue: str) -> list[RepeatableRecord]:
        records = [copy.deepcopy(r) for r in self._repeatables.get(queue, {}).values()]
        return sorted(records, key=lambda r: r.next_run)

    async def delete_repeatable(self, queue: str, key: str) -> bool:
        return self._repeatables.get(queue, {}).pop(key, None) is not None

    async def advance_repeatable(self, queue: str, key: str, next_run: float) -> bool:
        record = self._repeatables.get(queue, {}).get(key)
        if record is None or record.paused:
            return False
        record.next_run = next_run
        return True

    # -- workers -------------------------------------------------------------------
    async def register_worker(self, record: WorkerRecord, ttl: float) -> None:
        self._workers[record.id] = (copy.copy(record), record.heartbeat + ttl)

    async def deregister_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def list_workers(self) -> list[WorkerRecord]:
        now = time.time()
        return [copy.copy(w) for w, expires in self._workers.values() if expires >= now]

    # -- locks -----------------------------------------------------------------------
    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        now = time.time()
        holder = self._locks.get(key)
        if holder is not None and holder[1] > now and holder[0] != token:
            return False
        self._locks[key] = (token, now + ttl)
        return True

    async def release_lock(self, key: str, token: str) -> bool:
        holder = self._locks.get(key)
        if holder is None or holder[0] != token or holder[1] <= time.time():
            return False
        del self._locks[key]
        return True


def _copy(record: JobRecord) -> JobRecord:
    return JobRecord(
        queue=record.queue,
        id=record.id,
        state=record.state,
        payload=decode_payload(encode_payload(record.payload)),
        run_at=record.run_at,
        owner=record.owner,
        heartbeat=record.heartbeat,
        updated_at=record.updated_at,
    )
