"""Job dependencies: which parents a job still waits for, and releasing children when a parent completes.

A job with pending parents is stored ``waiting-children`` with its edges and gets
no reference; when the last of its parents completes, ``resolve`` moves it to
``waiting`` (conditionally, so each child is released once) and hands its
reference over. A parent that completes between the check and the edge write is
caught by :meth:`Dependencies.recheck`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from asyncmq.core.enums import State

from asyncmq_cloud.core.bodies import metadata_of, metadata_only
from asyncmq_cloud.core.handover import HandOver
from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.records import WAITING_CHILDREN, JobRecord


class Dependencies:
    """Dependency edges over the state store.

    Args:
        parts: the backend's components (the store is read at call time).
        handover: sends the references of released children.
    """

    def __init__(self, parts: Components, handover: HandOver) -> None:
        self._parts = parts
        self._handover = handover

    async def pending(self, queue: str, parents: Sequence[Any]) -> list[str]:
        """The ``parents`` not completed yet, sorted, without duplicates."""
        pending = []
        for parent in parents:
            with metadata_only():  # a parent's state, never its body
                record = await self._parts.store.get(queue, str(parent))
            if record is None or record.state != State.COMPLETED:
                pending.append(str(parent))
        return sorted(set(pending))

    async def recheck(self, queue: str, parents: Sequence[str]) -> None:
        """Close the race where a parent completed between our check and the edge write."""
        for parent in parents:
            with metadata_only():
                record = await self._parts.store.get(queue, parent)
            if record is not None and record.state == State.COMPLETED:
                await self.resolve(queue, parent)

    async def add(self, queue: str, job_dict: dict[str, Any]) -> None:
        """Make an existing (or missing) job wait for the parents its ``depends_on`` names."""
        store = self._parts.store
        child = str(job_dict["id"])
        pending = await self.pending(queue, job_dict.get("depends_on") or [])
        if not pending:
            return
        await store.add_dependencies(queue, child, pending)
        record = await metadata_of(store.get(queue, child))  # written back whole: its pointers carried
        if record is None:
            body = {**job_dict, "id": child, "depends_on": pending}
            await store.create([JobRecord(queue, child, WAITING_CHILDREN, body)])
        elif record.state == State.WAITING:
            body = {**record.payload, "depends_on": pending}
            await store.transition(queue, child, WAITING_CHILDREN, expect_states={State.WAITING}, payload=body)
        await self.recheck(queue, pending)

    async def resolve(self, queue: str, parent_id: str) -> None:
        """``parent_id`` completed: release (``waiting``, reference sent) each child it was the last parent of."""
        store = self._parts.store
        released: list[str] = []
        for child in await store.resolve_dependency(queue, parent_id):
            record = await metadata_of(store.get(queue, child))
            if record is None or record.state != WAITING_CHILDREN:
                continue
            body = {k: v for k, v in record.payload.items() if k != "depends_on"}
            body["updated_at"] = time.time()
            # Marked unsent in the same write: a crash before the hand-over is repaired (HandOver.resend_unsent).
            unsent = self._handover.marks_unsent
            if await store.transition(
                queue, child, State.WAITING, expect_states={WAITING_CHILDREN}, payload=body, unsent=unsent
            ):
                released.append(child)
        await self._handover.hand_over(queue, released)
