"""The due-time index side of :class:`~asyncmq_cloud.delays.dynamodb.DynamoDBDelayStore`.

Buckets, the cursor and the claim (query candidates, then delete each conditionally);
the module docstring of :mod:`asyncmq_cloud.delays.dynamodb` explains why it is exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Sequence
from typing import Any

from asyncmq_cloud.aws import AwsComponent, is_conditional_failure, translate_error
from asyncmq_cloud.core.validation import validate_queue_name, validate_run_at
from asyncmq_cloud.resources import DUE_INDEX, DUE_PK, DUE_SK, PK, SK
from asyncmq_cloud.stores._dynamodb_codec import num

#: ``list`` is also a method name of the store; keep the builtin for annotations.
_Entries = list[tuple[str, float]]
_Items = list[dict[str, Any]]

#: A bucket older than this (wall clock, past its end) whose Query came back
#: empty is skipped by the cursor: covers GSI propagation and writer clock skew.
CURSOR_SETTLE_SECONDS = 10.0
#: Bucket Queries in flight at once (a scanner's first call reads the whole lookback).
QUERY_CONCURRENCY = 8
#: Conditional deletes in flight at once per ``claim_due`` call.
DELETE_CONCURRENCY = 16
#: Query-then-delete rounds per ``claim_due`` call when rivals took candidates.
CLAIM_ROUNDS = 3
#: After a claim lost candidates to a rival, the next ones read this many times
#: ``limit`` candidates and try a random ``limit`` of them, so racing scanners
#: mostly try different entries (a failed conditional delete still costs 1 WCU).
CONTENTION_SPREAD = 4
logger = logging.getLogger("asyncmq_cloud.delays.dynamodb")


class DueIndexMixin(AwsComponent):
    """Bucketing, paged Queries and ``claim_due`` over the ``due`` index."""

    table_name: str
    bucket_seconds: float
    lookback_seconds: float
    _cursors: dict[str, int]
    _contended: set[str]

    def bucket(self, t: float) -> int:
        """The due-time bucket of epoch time ``t``."""
        return math.floor(t / self.bucket_seconds)

    def _due_pk(self, queue: str, bucket: int) -> dict[str, str]:
        return {"S": f"{queue}#{bucket}"}

    async def _query_pages(self, want: int | None = None, **query: Any) -> _Items:
        """Pages of a ``Query`` until exhausted or ``want`` items were seen."""
        client = await self._dynamodb()
        pages: _Items = []
        seen, start = 0, None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            if want is not None:
                extra["Limit"] = want - seen
            page: dict[str, Any] = dict(await self._call(client.query(TableName=self.table_name, **query, **extra)))
            pages.append(page)
            seen += int(page.get("Count", 0))
            start = page.get("LastEvaluatedKey")
            if not start or (want is not None and seen >= want):
                return pages

    async def claim_due(self, queue: str, now: float, limit: int) -> _Entries:
        """Remove and return up to ``limit`` due entries, oldest first (see "Exactly once")."""
        validate_queue_name(queue)
        now = validate_run_at(now)
        if limit <= 0:
            return []
        claimed: _Entries = []
        for _ in range(CLAIM_ROUNDS):
            want = limit - len(claimed)
            spread = CONTENTION_SPREAD if queue in self._contended else 1
            candidates = await self._candidates(queue, now, want * spread)
            if not candidates:
                break
            if len(candidates) > want:  # rivals seen lately: try a random sample of a wider window
                picked = sorted(random.sample(range(len(candidates)), want))
                candidates = [candidates[i] for i in picked]
            won, error = await self._take(candidates)
            claimed.extend(won)
            if error is not None:
                if not claimed:
                    raise error
                # What was won is removed already: return it, or those jobs would wait for the repair pass.
                logger.warning("claim of %r kept %d entries after a failed delete: %s", queue, len(claimed), error)
                break
            if len(won) < len(candidates):
                self._contended.add(queue)
            else:
                self._contended.discard(queue)
            if len(claimed) >= limit or len(won) == len(candidates):
                break  # enough, or no rival took anything: the index had no more due entries
        return claimed

    async def _candidates(self, queue: str, now: float, want: int) -> _Items:
        """Due index entries from the cursor's bucket up to ``bucket(now)``, oldest first; advances the cursor."""
        lowest = self.bucket(now - self.lookback_seconds)
        cursor = max(self._cursors.get(queue, lowest), lowest)
        self._cursors[queue] = cursor
        # A bucket is closed when no writer can still file an entry under it and
        # every entry in it is due: its end is past both ``now`` and the settle margin.
        closed_before = min(now, time.time() - CURSOR_SETTLE_SECONDS)
        found: _Items = []
        skipping = True
        last = self.bucket(now)
        for first in range(cursor, last + 1, QUERY_CONCURRENCY):
            chunk = range(first, min(first + QUERY_CONCURRENCY, last + 1))
            results = await asyncio.gather(*(self._bucket_query(queue, b, now, want - len(found)) for b in chunk))
            for bucket, items in zip(chunk, results, strict=True):
                if skipping and not items and (bucket + 1) * self.bucket_seconds <= closed_before:
                    self._cursors[queue] = max(self._cursors.get(queue, bucket + 1), bucket + 1)
                else:
                    skipping = False
                found.extend(items)
            if len(found) >= want:
                break
        return found[:want]

    async def _bucket_query(self, queue: str, bucket: int, now: float, want: int) -> _Items:
        pages = await self._query_pages(
            want,
            IndexName=DUE_INDEX,
            KeyConditionExpression="#due = :due AND #run_at <= :now",
            ExpressionAttributeNames={"#due": DUE_PK, "#run_at": DUE_SK},
            ExpressionAttributeValues={":due": self._due_pk(queue, bucket), ":now": num(now)},
            ScanIndexForward=True,
        )
        return [dict(item) for page in pages for item in page.get("Items", [])]

    async def _take(self, candidates: Sequence[dict[str, Any]]) -> tuple[_Entries, Exception | None]:
        """Conditionally delete each candidate: the entries this caller won (in order) and the first error."""
        client = await self._dynamodb()
        limit = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def take(item: dict[str, Any]) -> tuple[str, float] | None:
            async with limit:
                try:
                    response = await client.delete_item(
                        TableName=self.table_name,
                        Key={PK: item[PK], SK: item[SK]},
                        ConditionExpression="attribute_exists(#pk) AND #run_at = :seen",
                        ExpressionAttributeNames={"#pk": PK, "#run_at": DUE_SK},
                        ExpressionAttributeValues={":seen": item[DUE_SK]},
                        ReturnValues="ALL_OLD",
                    )
                except Exception as exc:
                    if is_conditional_failure(exc):
                        return None  # a rival claimed it, or it was cancelled or re-scheduled
                    raise translate_error(exc, resource=self._aws_resource) from exc
            old = response.get("Attributes")
            return (str(old[SK]["S"]), float(old[DUE_SK]["N"])) if old else None

        results = await asyncio.gather(*(take(item) for item in candidates), return_exceptions=True)
        fatal = [r for r in results if isinstance(r, BaseException) and not isinstance(r, Exception)]
        if fatal:
            raise fatal[0]  # cancelled: what was won is left to the repair pass
        errors = [r for r in results if isinstance(r, Exception)]
        return [r for r in results if isinstance(r, tuple)], errors[0] if errors else None
