"""The write clauses of :class:`~asyncmq_cloud.stores.dynamodb.DynamoDBStateStore`.

A state change is one conditional ``UpdateItem``; :meth:`WriteMixin._state_change`
builds its SET/REMOVE clauses (index keys, TTL, ``updated_at``) in one place.
"""

from __future__ import annotations

from typing import Any

from asyncmq_cloud.core import states
from asyncmq_cloud.core.protocols import JobRecord
from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores._dynamodb_base import DynamoDBBase


class WriteMixin(DynamoDBBase):
    """Clauses and the conditional update of a job item."""

    ready_shards: int
    completed_ttl: float | None

    def _expires(self, state: str, now: float) -> float | None:
        if self.completed_ttl is not None and state in codec.TERMINAL_STATES:
            return now + self.completed_ttl
        return None

    def _state_change(
        self, queue: str, job_id: str, state: str, now: float, *, heartbeat: str | None
    ) -> tuple[list[str], list[str], dict[str, Any]]:
        """SET/REMOVE clauses for a new state: index keys, TTL, ``updated_at``."""
        sets = ["#state = :state", "#upd = :now", "#g1pk = :g1pk"]
        removes: list[str] = []
        values: dict[str, Any] = {
            ":state": {"S": state},
            ":now": codec.num(now),
            ":g1pk": {"S": codec.state_partition(queue, state)},
        }
        if state == states.CLAIMED:
            sets += ["#apk = :apk", f"#ask = {heartbeat or ':now'}"]
            values[":apk"] = {"S": codec.active_shard(queue, job_id)}
        else:
            removes += ["#apk", "#ask"]
        if self.ready_shards and state in states.CLAIMABLE:
            # Back in the ready index, ranked by priority and the time it became ready.
            sets += ["#rpk = :rpk", "#rsk = if_not_exists(#prio, :prio0) + :now"]
            values[":rpk"] = {"S": codec.ready_shard(queue, job_id, self.ready_shards)}
            values[":prio0"] = {"N": format(codec.DEFAULT_PRIORITY * codec.PRIORITY_SCALE, "f")}
        elif self.ready_shards:
            removes += ["#rpk", "#rsk"]
        expires = self._expires(state, now)
        if expires is None:
            removes.append("#exp")
        else:
            sets.append("#exp = :exp")
            values[":exp"] = codec.ttl_num(expires)
        return sets, removes, values

    async def _update_job(
        self, queue: str, job_id: str, expression: str, condition: str, values: dict[str, Any]
    ) -> JobRecord | None:
        """One conditional ``UpdateItem`` returning the new record (``None``: condition failed)."""
        names = {n: v for n, v in codec.NAMES.items() if n in expression or n in condition}
        response = await self._update(
            codec.job_key(queue, job_id),
            expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return codec.record_from_item(response["Attributes"]) if response is not None else None
