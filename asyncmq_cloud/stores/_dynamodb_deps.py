"""Dependency edges of the DynamoDB store (flows): one ``DEPS`` item per job.

The item ``pk=Q#{queue}#J#{job}``, ``sk=DEPS`` holds two string sets:
``pending`` (parents the job still waits for) and ``children`` (jobs waiting for
it). Resolving a parent deletes it from each child's ``pending`` set with the
condition ``contains(pending, :parent)``: of any number of concurrent resolvers
exactly one succeeds per edge, and the one whose delete empties the set (DynamoDB
drops an empty set attribute) reports the child as ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from asyncmq_cloud.core.protocols import JobRecord
from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores._dynamodb_base import DynamoDBBase

_NAMES = {"#pending": "pending", "#children": "children"}


class DependencyMixin(DynamoDBBase):
    """``add_dependencies``, ``resolve_dependency``, ``pending_parents``."""

    async def add_dependencies(self, queue: str, child_id: str, parent_ids: Collection[str]) -> None:
        """Add ``child_id -> parent_ids`` edges: one ``UpdateItem``, or one transaction for several items."""
        parents = set(parent_ids)
        if not parents:
            return
        await self._flag_parents(queue, parents)
        updates = codec.deps_updates(queue, {child_id: parents})
        if len(updates) == 1:
            only = updates[0]
            await self._update(
                only["Key"], only["UpdateExpression"], ExpressionAttributeValues=only["ExpressionAttributeValues"]
            )
            return
        await self._transact(updates, sum(codec.update_size(u) for u in updates))

    async def _flag_parents(self, queue: str, parent_ids: Collection[str]) -> None:
        """Mark existing parent job items ``has_children`` BEFORE their edges are written.

        Flag first: a parent completing between the flag and the edge sees the flag
        and lets AsyncMQ call ``resolve_dependency`` (a no-op then); one completing
        before the flag is seen as completed by the child's own re-check
        (``CloudBackend._recheck_parents``). A missing parent is not created.
        """
        await asyncio.gather(
            *(
                self._update(
                    codec.job_key(queue, parent),
                    f"SET {codec.HAS_CHILDREN} = :t",
                    ConditionExpression="attribute_exists(#pk)",
                    ExpressionAttributeNames={"#pk": codec.PK},
                    ExpressionAttributeValues={":t": {"BOOL": True}},
                )
                for parent in sorted(parent_ids)
            )
        )

    async def resolve_dependency(self, queue: str, parent_id: str) -> list[str]:
        item = await self._get_item(codec.deps_key(queue, parent_id))
        children = sorted(codec.get_set(item or {}, "children"))
        if not children:
            return []
        ready = await asyncio.gather(*(self._resolve_edge(queue, child, parent_id) for child in children))
        await self._drop_children(queue, parent_id, set(children))
        return [child for child, is_ready in zip(children, ready, strict=True) if is_ready]

    async def _resolve_edge(self, queue: str, child_id: str, parent_id: str) -> bool:
        """Remove ``parent_id`` from the child's pending set; True if this call emptied it."""
        response = await self._update(
            codec.deps_key(queue, child_id),
            "DELETE #pending :p",
            ConditionExpression="contains(#pending, :ps)",
            ExpressionAttributeNames={"#pending": "pending"},
            ExpressionAttributeValues={":p": {"SS": [parent_id]}, ":ps": {"S": parent_id}},
            ReturnValues="ALL_NEW",
        )
        if response is None:  # another caller resolved this edge first
            return False
        attributes = response.get("Attributes") or {}
        if "pending" in attributes:
            return False
        if "children" not in attributes:
            await self._delete_empty(queue, child_id)
        return True

    async def delete(self, queue: str, job_id: str, expect_state: str | None = None) -> JobRecord | None:
        """Remove the job, then its edges item; with ``expect_state`` only a job in that state."""
        condition: dict[str, Any] = {}
        if expect_state is not None:
            expression, values = codec.state_in([expect_state], "expect")
            names = {"#state": codec.NAMES["#state"]}
            condition = {"ConditionExpression": expression, "ExpressionAttributeNames": names}
            condition["ExpressionAttributeValues"] = values
        removed = await self._delete_item(codec.job_key(queue, job_id), **condition)
        if removed is None and expect_state is not None:  # in another state (or gone): left alone, edges too
            return None
        deps = await self._delete_item(codec.deps_key(queue, job_id))
        # Children still waiting for this job keep it in their pending set (as in the memory store).
        parents = codec.get_set(deps or {}, "pending")
        await asyncio.gather(*(self._drop_children(queue, parent, {job_id}) for parent in parents))
        return codec.record_from_item(removed) if removed else None

    async def _drop_children(self, queue: str, parent_id: str, children: set[str]) -> None:
        """Forget resolved (or deleted) children of ``parent_id``; drop the item once empty."""
        response = await self._update(
            codec.deps_key(queue, parent_id),
            "DELETE #children :c",
            ConditionExpression="attribute_exists(#pk)",  # never create an empty item
            ExpressionAttributeNames={"#children": "children", "#pk": codec.PK},
            ExpressionAttributeValues={":c": {"SS": sorted(children)}},
            ReturnValues="ALL_NEW",
        )
        attributes = (response or {}).get("Attributes") or {}
        if response is not None and "pending" not in attributes and "children" not in attributes:
            await self._delete_empty(queue, parent_id)

    async def _delete_empty(self, queue: str, job_id: str) -> None:
        # Conditional: a concurrent add_dependencies may have refilled the item.
        await self._delete_item(
            codec.deps_key(queue, job_id),
            ConditionExpression="attribute_not_exists(#pending) AND attribute_not_exists(#children)",
            ExpressionAttributeNames=_NAMES,
        )

    async def pending_parents(self, queue: str, child_id: str) -> set[str]:
        item = await self._get_item(codec.deps_key(queue, child_id))
        return codec.get_set(item or {}, "pending")
