"""The unsent marks of :class:`~asyncmq_cloud.stores.dynamodb.DynamoDBStateStore`.

A job made ``waiting`` by ``create``/``transition`` with ``unsent`` may have no reference
on the broker yet (its writer may die before the send). The mark reuses the sparse
``active`` index instead of a new one, so existing tables need no migration: a
marked job carries ``act_pk = "UNSENT#{queue}"`` and ``act_sk =`` the time of the
write. The claim overwrites both keys with its active shard and heartbeat, and every
other state change removes them (``WriteMixin._state_change``): the mark ends in the
write that ends it, at no extra call. ``list_stalled`` reads only the ``ACTIVE#n``
partitions and never sees a mark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores._dynamodb_base import DynamoDBBase

#: ``act_pk`` prefix of an unsent mark (the ``ACTIVE#n`` partitions hold active jobs).
UNSENT_PREFIX = "UNSENT#"
_NAMES = {"#apk": codec.ACTIVE_PK, "#ask": codec.ACTIVE_SK}


def unsent_partition(queue: str) -> str:
    """The ``active`` index partition of ``queue``'s unsent marks."""
    return f"{UNSENT_PREFIX}{queue}"


def mark_unsent(update: codec.Item, queue: str, at: float) -> codec.Item:
    """A :func:`~asyncmq_cloud.stores._dynamodb_codec.job_upsert` of a ``waiting`` job that also marks it unsent.

    Args:
        update: the ``UpdateItem`` arguments of the upsert (not changed).
        queue: the job's queue.
        at: the mark's time (its sort key in the index).
    """
    sets, _, removes = update["UpdateExpression"].partition(" REMOVE ")
    kept = [name for name in removes.split(", ") if name and name not in _NAMES]
    expression = f"{sets}, #apk = :unsent_pk, #ask = :unsent_at" + (" REMOVE " + ", ".join(kept) if kept else "")
    values = {
        **update["ExpressionAttributeValues"],
        ":unsent_pk": {"S": unsent_partition(queue)},
        ":unsent_at": codec.num(at),
    }
    names = {**update["ExpressionAttributeNames"], **_NAMES}
    return {
        **update,
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def mark_unsent_item(item: codec.Item, queue: str, at: float) -> codec.Item:
    """A full job item (:func:`~asyncmq_cloud.stores._dynamodb_codec.job_item`) of a ``waiting`` job, marked unsent."""
    return {**item, codec.ACTIVE_PK: {"S": unsent_partition(queue)}, codec.ACTIVE_SK: codec.num(at)}


def mark_unsent_clauses(sets: list[str], removes: list[str], values: dict[str, Any], queue: str) -> None:
    """Turn the clauses of a state change to ``waiting`` (``WriteMixin._state_change``) into a marking one.

    Args:
        sets: the SET clauses (extended in place).
        removes: the REMOVE clauses (the index keys are taken out, in place).
        values: the expression values (``:now`` is the mark's time; extended in place).
        queue: the job's queue.
    """
    removes[:] = [name for name in removes if name not in _NAMES]
    sets += ["#apk = :unsent_pk", "#ask = :now"]
    values[":unsent_pk"] = {"S": unsent_partition(queue)}


class UnsentMixin(DynamoDBBase):
    """``list_unsent`` (one ``Query`` page) and ``clear_unsent`` (one conditional ``UpdateItem`` per id)."""

    async def list_unsent(self, queue: str, older_than: float, limit: int) -> list[str]:
        client = await self._client()
        response = await self._call(
            client.query(
                TableName=self.table_name,
                IndexName=codec.ACTIVE_INDEX,
                KeyConditionExpression="#apk = :apk AND #ask < :t",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":apk": {"S": unsent_partition(queue)}, ":t": codec.num(older_than)},
                Limit=limit,
            )
        )
        return [codec.job_id_from_pk(item[codec.PK]["S"], queue) for item in response.get("Items", [])]

    async def clear_unsent(self, queue: str, job_ids: Sequence[str]) -> None:
        limit = asyncio.Semaphore(codec.PROMOTE_CONCURRENCY)
        values: dict[str, Any] = {":apk": {"S": unsent_partition(queue)}}

        async def clear(job_id: str) -> None:
            async with limit:  # only while still marked: a claim meanwhile made the keys its own
                await self._update(
                    codec.job_key(queue, job_id),
                    "REMOVE #apk, #ask",
                    ConditionExpression="#apk = :apk",
                    ExpressionAttributeNames=_NAMES,
                    ExpressionAttributeValues=values,
                )

        await asyncio.gather(*(clear(job_id) for job_id in dict.fromkeys(job_ids)))
