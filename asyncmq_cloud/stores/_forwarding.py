"""A :class:`StateStore` that forwards every call to another one (the base of store wrappers)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.core.records import JobRecord, RepeatableRecord, StateSummary, WorkerRecord

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec, StateStore


class ForwardingStore:
    """Forwards the whole :class:`StateStore` protocol to ``inner``; subclasses override what they change."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.max_payload_bytes = inner.max_payload_bytes

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def provision(self) -> None:
        await self.inner.provision()

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        return self.inner.resources(queues)

    async def create(
        self,
        records: Sequence[JobRecord],
        deps: Mapping[str, Collection[str]] | None = None,
        *,
        unsent: bool = False,
        atomic: bool = True,
    ) -> None:
        await self.inner.create(records, deps, unsent=unsent, atomic=atomic)

    async def get(self, queue: str, job_id: str) -> JobRecord | None:
        return await self.inner.get(queue, job_id)

    async def claim(
        self, queue: str, job_id: str, token: str, now: float, *, stale_before: float | None = None
    ) -> JobRecord | None:
        return await self.inner.claim(queue, job_id, token, now, stale_before=stale_before)

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
        return await self.inner.transition(
            queue, job_id, to_state, expect_states=expect_states, expect_owner=expect_owner, payload=payload,
            run_at=run_at, unsent=unsent,
        )  # fmt: skip

    async def promote(self, queue: str, job_ids: Sequence[str]) -> list[str]:
        return await self.inner.promote(queue, job_ids)

    async def update_payload(self, queue: str, job_id: str, payload: dict[str, Any]) -> bool:
        return await self.inner.update_payload(queue, job_id, payload)

    async def set_state(self, queue: str, job_id: str, state: str) -> bool:
        return await self.inner.set_state(queue, job_id, state)

    async def heartbeat(self, queue: str, job_id: str, now: float, token: str | None = None) -> bool:
        return await self.inner.heartbeat(queue, job_id, now, token)

    async def delete(self, queue: str, job_id: str, expect_state: str | None = None) -> JobRecord | None:
        return await self.inner.delete(queue, job_id, expect_state)

    async def list_jobs(self, queue: str, state: str) -> list[JobRecord]:
        return await self.inner.list_jobs(queue, state)

    async def count_jobs(self, queue: str) -> dict[str, int]:
        return await self.inner.count_jobs(queue)

    async def summarize(self, queue: str, states: Sequence[str], newest: int) -> dict[str, StateSummary]:
        return await self.inner.summarize(queue, states, newest)

    async def list_page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        return await self.inner.list_page(queue, state, offset, limit, newest_first)

    async def list_unsent(self, queue: str, older_than: float, limit: int) -> list[str]:
        return await self.inner.list_unsent(queue, older_than, limit)

    async def clear_unsent(self, queue: str, job_ids: Sequence[str]) -> None:
        await self.inner.clear_unsent(queue, job_ids)

    async def list_stalled(self, older_than: float) -> list[JobRecord]:
        return await self.inner.list_stalled(older_than)

    async def list_queues(self) -> list[str]:
        return await self.inner.list_queues()

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self.inner.set_paused(queue, paused)

    async def is_paused(self, queue: str) -> bool:
        return await self.inner.is_paused(queue)

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        return await self.inner.paused_queues(queues)

    async def add_dependencies(self, queue: str, child_id: str, parent_ids: Collection[str]) -> None:
        await self.inner.add_dependencies(queue, child_id, parent_ids)

    async def resolve_dependency(self, queue: str, parent_id: str) -> list[str]:
        return await self.inner.resolve_dependency(queue, parent_id)

    async def pending_parents(self, queue: str, child_id: str) -> set[str]:
        return await self.inner.pending_parents(queue, child_id)

    async def put_repeatable(self, queue: str, record: RepeatableRecord) -> None:
        await self.inner.put_repeatable(queue, record)

    async def get_repeatable(self, queue: str, key: str) -> RepeatableRecord | None:
        return await self.inner.get_repeatable(queue, key)

    async def list_repeatables(self, queue: str) -> list[RepeatableRecord]:
        return await self.inner.list_repeatables(queue)

    async def delete_repeatable(self, queue: str, key: str) -> bool:
        return await self.inner.delete_repeatable(queue, key)

    async def advance_repeatable(self, queue: str, key: str, next_run: float) -> bool:
        return await self.inner.advance_repeatable(queue, key, next_run)

    async def register_worker(self, record: WorkerRecord, ttl: float) -> None:
        await self.inner.register_worker(record, ttl)

    async def deregister_worker(self, worker_id: str) -> None:
        await self.inner.deregister_worker(worker_id)

    async def list_workers(self) -> list[WorkerRecord]:
        return await self.inner.list_workers()

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        return await self.inner.acquire_lock(key, token, ttl)

    async def release_lock(self, key: str, token: str) -> bool:
        return await self.inner.release_lock(key, token)


__all__ = ["ForwardingStore"]
