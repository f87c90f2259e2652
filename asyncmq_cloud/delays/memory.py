"""In-process reference :class:`~asyncmq_cloud.core.protocols.DelayStore`.

A dict per queue of ``job_id -> run_at``. ``claim_due`` removes what it returns
in one synchronous step, so concurrent coroutines never receive the same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from asyncmq_cloud._component import Component
from asyncmq_cloud.core.validation import validate_queue_name, validate_run_at

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec


class MemoryDelayStore(Component):
    """Delayed job ids held in process memory (tests and reference runs only)."""

    _closed_hint = ""

    def __init__(self) -> None:
        super().__init__()
        self._due: dict[str, dict[str, float]] = {}

    async def provision(self) -> None:
        return None

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing: it lives in process memory."""
        return []

    async def schedule(self, queue: str, job_id: str, run_at: float) -> None:
        self._due.setdefault(validate_queue_name(queue), {})[job_id] = validate_run_at(run_at)

    async def claim_due(self, queue: str, now: float, limit: int) -> list[tuple[str, float]]:
        entries = self._due.get(queue, {})
        due = sorted(((run_at, job_id) for job_id, run_at in entries.items() if run_at <= now))[:limit]
        for _, job_id in due:
            del entries[job_id]
        return [(job_id, run_at) for run_at, job_id in due]

    async def cancel(self, queue: str, job_id: str) -> bool:
        return self._due.get(queue, {}).pop(job_id, None) is not None

    async def list(self, queue: str) -> list[tuple[str, float]]:
        return sorted(self._due.get(queue, {}).items(), key=lambda item: item[1])

    async def count(self, queue: str) -> int:
        return len(self._due.get(queue, {}))
