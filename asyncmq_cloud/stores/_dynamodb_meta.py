"""Queue flags, repeatables, the worker registry and locks of the DynamoDB store.

Every method is one small call on a small item. Workers and locks keep their
exact expiry in ``until`` (checked on every read/acquire) and a whole-second copy
in the table's TTL attribute, which only cleans up: DynamoDB deletes expired items
"typically within two days".
"""

from __future__ import annotations

import json
import time
from typing import Any

from asyncmq_cloud.core.protocols import RepeatableRecord, WorkerRecord
from asyncmq_cloud.core.validation import encode_payload, validate_queue_name
from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores._dynamodb_base import DynamoDBBase


class MetaMixin(DynamoDBBase):
    """Flags, repeatables, workers, locks."""

    # -- queue flags -------------------------------------------------------------------
    async def set_paused(self, queue: str, paused: bool) -> None:
        validate_queue_name(queue)
        await self._register_queues({queue})
        await self._update(
            codec.queue_meta_key(queue),
            "SET #paused = :p",
            ExpressionAttributeNames={"#paused": "paused"},
            ExpressionAttributeValues={":p": {"BOOL": paused}},
        )

    async def is_paused(self, queue: str) -> bool:
        item = await self._get_item(codec.queue_meta_key(queue))
        return bool(item and item.get("paused", {}).get("BOOL"))

    # -- repeatables -------------------------------------------------------------------
    async def put_repeatable(self, queue: str, record: RepeatableRecord) -> None:
        validate_queue_name(queue)
        await self._register_queues({queue})
        client = await self._client()
        item = {
            **codec.repeatable_key(queue, record.key),
            "rep_key": {"S": record.key},
            "job_def": {"S": encode_payload(record.job_def)},
            "next_run": codec.num(record.next_run),
            "paused": {"BOOL": record.paused},
        }
        await self._call(client.put_item(TableName=self.table_name, Item=item))

    async def get_repeatable(self, queue: str, key: str) -> RepeatableRecord | None:
        item = await self._get_item(codec.repeatable_key(queue, key))
        return _repeatable(item) if item else None

    async def list_repeatables(self, queue: str) -> list[RepeatableRecord]:
        items = await self._query_items(
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :rep)",
            ExpressionAttributeNames={"#pk": codec.PK, "#sk": codec.SK},
            ExpressionAttributeValues={":pk": {"S": f"Q#{queue}"}, ":rep": {"S": codec.REP_PREFIX}},
            ConsistentRead=True,
        )
        return sorted((_repeatable(i) for i in items), key=lambda r: r.next_run)

    async def delete_repeatable(self, queue: str, key: str) -> bool:
        return bool(await self._delete_item(codec.repeatable_key(queue, key)))

    async def advance_repeatable(self, queue: str, key: str, next_run: float) -> bool:
        client = await self._client()
        response = await self._conditional(
            client.update_item(
                TableName=self.table_name,
                Key=codec.repeatable_key(queue, key),
                UpdateExpression="SET #next = :next",
                ConditionExpression="attribute_exists(#rep) AND #paused = :false",
                ExpressionAttributeNames={"#next": "next_run", "#rep": "rep_key", "#paused": "paused"},
                ExpressionAttributeValues={":next": codec.num(next_run), ":false": {"BOOL": False}},
            )
        )
        return response is not None

    # -- workers -----------------------------------------------------------------------
    async def register_worker(self, record: WorkerRecord, ttl: float) -> None:
        until = record.heartbeat + ttl
        item = {
            **codec.worker_key(record.id),
            "worker_id": {"S": record.id},
            "queue": {"S": record.queue},
            "concurrency": codec.num(record.concurrency),
            "heartbeat": codec.num(record.heartbeat),
            "until": codec.num(until),
            codec.TTL_ATTRIBUTE: codec.ttl_num(until),
        }
        client = await self._client()
        await self._call(client.put_item(TableName=self.table_name, Item=item))

    async def deregister_worker(self, worker_id: str) -> None:
        await self._delete_item(codec.worker_key(worker_id))

    async def list_workers(self) -> list[WorkerRecord]:
        items = await self._query_items(
            KeyConditionExpression="#pk = :pk",
            FilterExpression="#until >= :now",
            ExpressionAttributeNames={"#pk": codec.PK, "#until": "until"},
            ExpressionAttributeValues={":pk": {"S": codec.WORKERS_PK}, ":now": codec.num(time.time())},
            ConsistentRead=True,
        )
        return [
            WorkerRecord(
                id=str(i["worker_id"]["S"]),
                queue=str(i["queue"]["S"]),
                concurrency=int(float(i["concurrency"]["N"])),
                heartbeat=float(i["heartbeat"]["N"]),
            )
            for i in items
        ]

    # -- locks -------------------------------------------------------------------------
    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        """Conditional ``PutItem``: free, expired, or already ours (then refreshed)."""
        now = time.time()
        item = {
            **codec.lock_key(key),
            "token": {"S": token},
            "until": codec.num(now + ttl),
            codec.TTL_ATTRIBUTE: codec.ttl_num(now + ttl),
        }
        client = await self._client()
        response = await self._conditional(
            client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk) OR #until <= :now OR #token = :token",
                ExpressionAttributeNames={"#pk": codec.PK, "#until": "until", "#token": "token"},
                ExpressionAttributeValues={":now": codec.num(now), ":token": {"S": token}},
            )
        )
        return response is not None

    async def release_lock(self, key: str, token: str) -> bool:
        deleted = await self._delete_item(
            codec.lock_key(key),
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={":token": {"S": token}},
        )
        return deleted is not None


def _repeatable(item: dict[str, Any]) -> RepeatableRecord:
    return RepeatableRecord(
        key=str(item["rep_key"]["S"]),
        job_def=json.loads(item["job_def"]["S"]),
        next_run=float(item["next_run"]["N"]),
        paused=bool(item["paused"]["BOOL"]),
    )
