"""Index reads of the DynamoDB store: ``list_jobs``, ``count_jobs``, ``list_stalled``.

Both indexes are ``KEYS_ONLY`` and eventually consistent: every key found is
re-read with a consistent ``BatchGetItem`` and the record re-checked, so what is
returned is exact (a write of the last moments may be missing). Never a Scan.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from asyncmq_cloud.core import states
from asyncmq_cloud.core.protocols import JobRecord, StateSummary
from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores._dynamodb_base import DynamoDBBase

#: Claims a store remembers, to tell a rival's win from its own earlier one (:meth:`QueryMixin.note_claim`).
CLAIMS_REMEMBERED = 1_000


class QueryMixin(DynamoDBBase):
    """Listing and counting through the ``by_state`` and ``active`` indexes."""

    #: When a claim of each queue last lost to another worker (``time.monotonic()``).
    claim_lost_at: dict[str, float]
    #: Jobs this store claimed lately (at most :data:`CLAIMS_REMEMBERED`).
    _claimed_here: OrderedDict[tuple[str, str], None]

    def note_claim(self, queue: str, job_id: str, *, won: bool) -> None:
        """Count a claim's outcome: the transport spreads its receives while claims collide
        (decision 73). A lost claim of a job this store claimed itself (a ready-index read
        older than the claim: the index is eventually consistent) is no rival's."""
        key = (queue, job_id)
        if won:
            self._claimed_here[key] = None
            while len(self._claimed_here) > CLAIMS_REMEMBERED:
                self._claimed_here.popitem(last=False)
        elif key not in self._claimed_here:
            self.claim_lost_at[queue] = time.monotonic()

    async def list_jobs(self, queue: str, state: str) -> list[JobRecord]:
        keys = await self._query_keys(**self._by_state(queue, state))
        # The index is eventually consistent: keep only records still in ``state``.
        return [r for r in await self._batch_get(keys) if r.state == state]

    async def count_jobs(self, queue: str) -> dict[str, int]:
        counts = await asyncio.gather(*(self._count_state(queue, state) for state in codec.KNOWN_STATES))
        return {state: n for state, n in zip(codec.KNOWN_STATES, counts, strict=True) if n}

    async def summarize(self, queue: str, states: Sequence[str], newest: int) -> dict[str, StateSummary]:
        found = await asyncio.gather(*(self._summarize_state(queue, state, newest) for state in states))
        return dict(zip(states, found, strict=True))

    async def _summarize_state(self, queue: str, state: str, newest: int) -> StateSummary:
        """One ``Query`` of the state's index keys, newest first (more pages only past 1 MB)."""
        if newest <= 0:
            return StateSummary(await self._count_state(queue, state))
        count, latest = 0, list[tuple[str, float]]()
        async for page in self._query_pages(**self._by_state(queue, state), ScanIndexForward=False):
            count += int(page.get("Count", 0))
            for item in page.get("Items", [])[: newest - len(latest)]:
                latest.append((codec.job_id_from_pk(item[codec.PK]["S"], queue), float(item[codec.BY_STATE_SK]["N"])))
        return StateSummary(count, latest)

    async def list_page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        if limit <= 0:
            return []
        wanted, keys = max(offset, 0) + limit, []
        query = self._by_state(queue, state)
        async for page in self._query_pages(**query, ScanIndexForward=not newest_first, Limit=min(wanted, 1000)):
            keys += [{codec.PK: i[codec.PK], codec.SK: i[codec.SK]} for i in page.get("Items", [])]
            if len(keys) >= wanted:
                break
        return [r for r in await self._batch_get(keys[max(offset, 0) : wanted]) if r.state == state]

    @staticmethod
    def _by_state(queue: str, state: str) -> dict[str, Any]:
        return {
            "IndexName": codec.BY_STATE_INDEX,
            "KeyConditionExpression": "#g1pk = :g1pk",
            "ExpressionAttributeNames": {"#g1pk": codec.BY_STATE_PK},
            "ExpressionAttributeValues": {":g1pk": {"S": codec.state_partition(queue, state)}},
        }

    async def _count_state(self, queue: str, state: str) -> int:
        pages = self._query_pages(**self._by_state(queue, state), Select="COUNT")
        return sum([int(page.get("Count", 0)) async for page in pages])

    async def list_stalled(self, older_than: float) -> list[JobRecord]:
        shards = [f"ACTIVE#{n}" for n in range(codec.ACTIVE_SHARDS)]
        found = await asyncio.gather(
            *(
                self._query_keys(
                    IndexName=codec.ACTIVE_INDEX,
                    KeyConditionExpression="#apk = :apk AND #ask < :t",
                    ExpressionAttributeNames={"#apk": codec.ACTIVE_PK, "#ask": codec.ACTIVE_SK},
                    ExpressionAttributeValues={":apk": {"S": shard}, ":t": codec.num(older_than)},
                )
                for shard in shards
            )
        )
        records = await self._batch_get([k for keys in found for k in keys])
        return [r for r in records if states.stalled(r, older_than)]

    async def ready_keys(self, queue: str, shard: int, limit: int) -> list[str]:
        """Ids of up to ``limit`` ready jobs of one shard, best-ranked first (one ``Query`` page)."""
        client = await self._client()
        response = await self._call(
            client.query(
                TableName=self.table_name,
                IndexName=codec.READY_INDEX,
                KeyConditionExpression="#rpk = :rpk",
                ExpressionAttributeNames={"#rpk": codec.READY_PK},
                ExpressionAttributeValues={":rpk": {"S": f"{queue}#R#{shard}"}},
                Limit=limit,
            )
        )
        return [codec.job_id_from_pk(item[codec.PK]["S"], queue) for item in response.get("Items", [])]

    async def stale_active_ids(self, queue: str, older_than: float, limit: int) -> list[str]:
        """Ids of up to ``limit`` active jobs of ``queue`` whose heartbeat is older than ``older_than``.

        The ``active`` index spans every queue: hits of other queues are skipped.
        """
        prefix = f"Q#{queue}#J#"
        found = await asyncio.gather(
            *(
                self._query_keys(
                    IndexName=codec.ACTIVE_INDEX,
                    KeyConditionExpression="#apk = :apk AND #ask < :t",
                    ExpressionAttributeNames={"#apk": codec.ACTIVE_PK, "#ask": codec.ACTIVE_SK},
                    ExpressionAttributeValues={":apk": {"S": f"ACTIVE#{n}"}, ":t": codec.num(older_than)},
                )
                for n in range(codec.ACTIVE_SHARDS)
            )
        )
        pks = [k[codec.PK]["S"] for keys in found for k in keys]
        return [codec.job_id_from_pk(pk, queue) for pk in pks if pk.startswith(prefix)][:limit]

    async def _query_keys(self, **query: Any) -> list[dict[str, Any]]:
        """Every table key an index query returns, in index order."""
        return [{codec.PK: i[codec.PK], codec.SK: i[codec.SK]} for i in await self._query_items(**query)]

    async def _batch_get(self, keys: Sequence[Mapping[str, Any]]) -> list[JobRecord]:
        """Consistent reads of job ``keys`` (≤ 100 per call), returned in the order of ``keys``."""
        items = await self._batch_get_items(keys)
        return [codec.record_from_item(items[k[codec.PK]["S"]]) for k in keys if k[codec.PK]["S"] in items]

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        """The queues' ``META`` items in one ``BatchGetItem`` per 100 queues."""
        items = await self._batch_get_items([codec.queue_meta_key(queue) for queue in dict.fromkeys(queues)])
        return {
            q for q in queues if items.get(codec.queue_meta_key(q)[codec.PK]["S"], {}).get("paused", {}).get("BOOL")
        }

    async def _batch_get_items(self, keys: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Consistent reads of ``keys`` (≤ 100 per call): the items found, by partition key."""
        client = await self._client()
        items: dict[str, dict[str, Any]] = {}
        for first in range(0, len(keys), codec.BATCH_GET_MAX_KEYS):
            batch = list(keys[first : first + codec.BATCH_GET_MAX_KEYS])
            pending = {self.table_name: {"Keys": batch, "ConsistentRead": True}}
            async for response in self._until_processed(
                client.batch_get_item, pending, "BatchGetItem", "UnprocessedKeys"
            ):
                for item in response.get("Responses", {}).get(self.table_name, []):
                    items[item[codec.PK]["S"]] = dict(item)
        return items
