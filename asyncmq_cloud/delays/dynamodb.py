"""DynamoDB :class:`~asyncmq_cloud.core.protocols.DelayStore`: a table with a due-time index.

Operator's manual
=================

**Layout.** One item per delayed job, in a table of its own (described once in
:func:`asyncmq_cloud.resources.delay_table`; create it with ``await store.provision()``
or ``terraform/``):

==============  ====  ==============================================================
attribute       type  value
==============  ====  ==============================================================
``pk``          S     ``Q#{queue}#S#{shard}``, ``shard = crc32(job_id) % shards``
``sk``          S     the job id
``run_at``      N     due time, epoch seconds (round-trips the float exactly)
``due_pk``      S     ``{queue}#{bucket}``, ``bucket = floor(t / bucket_seconds)``,
                      ``t = max(run_at, time of the write)``
``expires_at``  N     ``run_at + orphan_ttl_seconds``: the table's TTL attribute
==============  ====  ==============================================================

The ``due`` GSI (``KEYS_ONLY``) has partition ``due_pk`` and sort key ``run_at``.
``schedule`` is one ``PutItem`` (re-scheduling replaces ``run_at``), ``cancel`` one
``DeleteItem``, ``list``/``count`` one ``Query`` per shard, run concurrently.

**Why shards.** The table key must find one job (cancel, re-schedule) and every
job of a queue (``list``) without a Scan; one partition per queue would cap
``schedule``/``cancel`` at a partition's ~1,000 writes/s. ``shards`` is part of
the layout: never change it on a table in use (a re-schedule would write a second
entry under the new shard, and ``cancel`` would miss the old one).

**Why time buckets.** A Query needs an equality on the index partition key, so
"everything due by now" cannot be one range over all time. Filing entries by due
time keeps index partitions bounded, and a claim reads only the buckets between
its *cursor* and ``now``. An entry whose ``run_at`` has already passed when it is
written is filed under the current bucket, where running scanners still look. One
bucket of one queue is one index partition: more than ~1,000 entries/s due in the
same bucket of the same queue throttle the index (and with it the table's writes).

**Exactly once.** ``claim_due`` queries the ``due`` index (``run_at <= now``,
oldest first) for candidates, then removes each with a conditional ``DeleteItem``
(``attribute_exists(pk) AND run_at = :seen``, ``ReturnValues=ALL_OLD``), 16 at a
time. DynamoDB applies the writes to one item one at a time, so with any number
of scanners each entry is deleted — and returned — by exactly one caller; the
others get ``ConditionalCheckFailed`` and skip it, as they skip an entry
re-scheduled or cancelled between the query and the delete. Candidates lost to a
rival are replaced by querying again (at most 3 rounds per call); while rivals are
seen, a call reads 4 x ``limit`` candidates and tries a random ``limit`` of them,
so racing scanners mostly try different entries (oldest-first is then only
approximate). The index is eventually consistent: it may still show an entry that
is gone (its delete fails) or not yet show a new one (a later call finds it).

**The cursor.** Each store instance keeps, per queue, the first bucket it still
queries: initially ``bucket(now - lookback_seconds)``, and never older than that.
It moves past a bucket only when the bucket ended more than
``CURSOR_SETTLE_SECONDS`` ago by the wall clock (index propagation, small clock
skew) and its Query came back empty. A scanner's first claim on a queue costs
``lookback_seconds / bucket_seconds + 1`` Queries (61 with the defaults, 8 at a
time); later claims one, or two during ``CURSOR_SETTLE_SECONDS`` after a boundary.

**Lookback and the repair pass.** Entries filed more than ``lookback_seconds``
before a scanner starts (every scanner was down that long, or a writer's clock
lagged by more than ``CURSOR_SETTLE_SECONDS``) are not claimed by it. Nothing is
lost: the job is still ``delayed`` in the state store, and the lifecycle's repair
pass (``CloudBackend.promote_due_delayed`` -> ``_stranded_delayed``, every
``repair_interval``) promotes delayed jobs more than ``repair_grace`` past due.
The entry left behind is an orphan (``list``/``count`` still show it) until TTL
removes it.

**TTL is never the timer.** ``expires_at`` only cleans up such orphans,
``orphan_ttl_seconds`` (default 7 days) after they were due. AWS deletes expired
items "typically within two days" and they stay readable until then; moto never
deletes them. When a job is due is decided by ``claim_due``'s query alone.

**Calls and capacity** (on-demand units; an entry is < 1 KB: 1 WCU per write,
+1 WCU on the index when its entry is written or removed, +2 when it moves bucket):

* ``schedule``: 1 ``PutItem`` (1 WCU + 1-2 index WCU).
* ``cancel``: 1 ``DeleteItem`` (1 WCU, + 1 index WCU if the entry existed).
* ``claim_due``: 1 ``Query`` per bucket from the cursor to ``now`` (eventually
  consistent: 0.5 RCU per started 4 KB, ~40 candidates), then 1 conditional
  ``DeleteItem`` per candidate (1 WCU + 1 index WCU when it wins). A failed
  condition still costs 1 WCU: 4 scanners draining one queue made ~1.6 delete
  attempts per entry in our tests.
* ``list``: ``shards`` consistent ``Query`` (1 RCU per 4 KB); ``count``: the same
  with ``Select=COUNT`` (billed as reading the entries).

IAM actions: ``dynamodb:PutItem``, ``DeleteItem`` and ``Query`` on the table and
on ``table/NAME/index/due``; ``provision`` also needs ``CreateTable``,
``DescribeTable``, ``DescribeTimeToLive`` and ``UpdateTimeToLive``. With a
customer-managed KMS key: ``kms:Decrypt``, ``kms:GenerateDataKey``.

**Clocks.** ``now`` is the caller's clock: a scanner whose clock runs ahead
promotes early by that much, as with Redis. Keep writers and scanners within
``CURSOR_SETTLE_SECONDS`` of each other (NTP keeps them within milliseconds);
beyond that a past-due entry from a lagging writer may land in a bucket the cursor
has passed, and the repair pass promotes its job instead.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.core.validation import validate_queue_name, validate_run_at
from asyncmq_cloud.delays._dynamodb_claim import (
    CLAIM_ROUNDS,
    CONTENTION_SPREAD,
    CURSOR_SETTLE_SECONDS,
    DELETE_CONCURRENCY,
    QUERY_CONCURRENCY,
    DueIndexMixin,
    _Entries,
    _Items,
)
from asyncmq_cloud.errors import ConfigurationError, InvalidNameError
from asyncmq_cloud.resources import (
    DELAY_TABLE_NAME,
    DUE_PK,
    DUE_SK,
    PK,
    SK,
    TTL_ATTRIBUTE,
    delay_table,
    provision_table,
    validate_table_name,
)
from asyncmq_cloud.stores._dynamodb_codec import num, ttl_num

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec

#: A scanner's first claim on a queue issues one Query per bucket of the lookback.
MAX_LOOKBACK_BUCKETS = 1440
#: ``list``/``count`` issue one Query per shard.
MAX_SHARDS = 256
#: DynamoDB's limit for a string range key: 1,024 bytes (UTF-8).
#: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-partition-sort-keys
MAX_SORT_KEY_BYTES = 1024


class DynamoDBDelayStore(DueIndexMixin):
    """Delayed job ids in a DynamoDB table with a due-time index (see the module docstring).

    Args:
        table_name: the delay table (3 to 255 of ``[A-Za-z0-9_.-]``).
        bucket_seconds: width of one due-time bucket of the ``due`` index.
        shards: table partitions per queue (part of the layout: keep it fixed).
        lookback_seconds: how far back a scanner's first claim looks.
        orphan_ttl_seconds: ``expires_at = run_at + this``; clean-up only.
        endpoint_url: / region_name: passed to a private :class:`AwsClients`.
        clients: a shared, caller-owned :class:`AwsClients` (not closed by ``close()``).
    """

    def __init__(
        self,
        table_name: str = DELAY_TABLE_NAME,
        *,
        bucket_seconds: float = 60,
        shards: int = 16,
        lookback_seconds: float = 3600,
        orphan_ttl_seconds: float = 7 * 86400,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        clients: AwsClients | None = None,
    ) -> None:
        self.table_name = validate_table_name(table_name)
        _check_layout(bucket_seconds, shards, lookback_seconds, orphan_ttl_seconds)
        super().__init__()
        self._use_clients(clients, endpoint_url=endpoint_url, region_name=region_name, what="store")
        self.bucket_seconds = float(bucket_seconds)
        self.shards = shards
        self.lookback_seconds = float(lookback_seconds)
        self.orphan_ttl_seconds = float(orphan_ttl_seconds)
        self.spec = delay_table(self.table_name)
        self._aws_resource = f"DynamoDB table {self.table_name!r}"
        self._cursors: dict[str, int] = {}
        self._contended: set[str] = set()

    async def provision(self) -> None:
        """Create the table, its ``due`` index and TTL on ``expires_at`` (idempotent)."""
        await provision_table(await self._dynamodb(), self.spec)

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """The delay table (the same for every queue)."""
        return [self.spec]

    # -- layout ----------------------------------------------------------------------
    def _key(self, queue: str, job_id: str) -> dict[str, Any]:
        if not isinstance(job_id, str) or not job_id or len(job_id.encode("utf-8")) > MAX_SORT_KEY_BYTES:
            raise InvalidNameError(
                f"job id {job_id!r:.60} must be a non-empty string of at most {MAX_SORT_KEY_BYTES} UTF-8 bytes"
            )
        return {PK: self._pk(queue, zlib.crc32(job_id.encode("utf-8")) % self.shards), SK: {"S": job_id}}

    def _pk(self, queue: str, shard: int) -> dict[str, str]:
        return {"S": f"Q#{queue}#S#{shard}"}

    # -- the DelayStore protocol -------------------------------------------------------
    async def schedule(self, queue: str, job_id: str, run_at: float) -> None:
        run_at = validate_run_at(run_at)
        key = self._key(validate_queue_name(queue), job_id)
        item = {
            **key,
            DUE_SK: num(run_at),
            DUE_PK: self._due_pk(queue, self.bucket(max(run_at, time.time()))),
            TTL_ATTRIBUTE: ttl_num(run_at + self.orphan_ttl_seconds),
        }
        client = await self._dynamodb()
        await self._call(client.put_item(TableName=self.table_name, Item=item))

    async def cancel(self, queue: str, job_id: str) -> bool:
        key = self._key(validate_queue_name(queue), job_id)
        client = await self._dynamodb()
        response = await self._call(client.delete_item(TableName=self.table_name, Key=key, ReturnValues="ALL_OLD"))
        return bool(response.get("Attributes"))

    async def list(self, queue: str) -> _Entries:
        validate_queue_name(queue)
        pages = await asyncio.gather(*(self._shard_query(queue, shard) for shard in range(self.shards)))
        entries = [
            (str(item[SK]["S"]), float(item[DUE_SK]["N"]))
            for shard_pages in pages
            for page in shard_pages
            for item in page.get("Items", [])
        ]
        return sorted(entries, key=lambda entry: (entry[1], entry[0]))

    async def count(self, queue: str) -> int:
        validate_queue_name(queue)
        pages = await asyncio.gather(*(self._shard_query(queue, shard, Select="COUNT") for shard in range(self.shards)))
        return sum(int(page.get("Count", 0)) for shard_pages in pages for page in shard_pages)

    async def _shard_query(self, queue: str, shard: int, **extra: Any) -> _Items:
        """Every page of one shard's entries (consistent: a just-written entry is seen)."""
        names = {"#pk": PK}
        if "Select" not in extra:
            extra["ProjectionExpression"] = "#sk, #run_at"
            names.update({"#sk": SK, "#run_at": DUE_SK})
        return await self._query_pages(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":pk": self._pk(queue, shard)},
            ConsistentRead=True,
            **extra,
        )


def _check_layout(bucket_seconds: float, shards: int, lookback_seconds: float, orphan_ttl_seconds: float) -> None:
    """Raise :class:`ConfigurationError` naming the first knob that breaks its rule."""
    if not (isinstance(bucket_seconds, int | float) and math.isfinite(bucket_seconds) and bucket_seconds > 0):
        raise ConfigurationError(f"bucket_seconds must be a finite number > 0, not {bucket_seconds!r}")
    if not (isinstance(shards, int) and 1 <= shards <= MAX_SHARDS):
        raise ConfigurationError(f"shards must be an integer in 1..{MAX_SHARDS}, not {shards!r}")
    if not (math.isfinite(lookback_seconds) and lookback_seconds >= 0):
        raise ConfigurationError(f"lookback_seconds must be a finite number >= 0, not {lookback_seconds!r}")
    if lookback_seconds / bucket_seconds > MAX_LOOKBACK_BUCKETS:
        raise ConfigurationError(
            f"lookback_seconds / bucket_seconds is {lookback_seconds / bucket_seconds:.0f}: a scanner's first "
            f"claim would issue that many Queries (limit {MAX_LOOKBACK_BUCKETS}); widen the buckets"
        )
    if not (math.isfinite(orphan_ttl_seconds) and orphan_ttl_seconds >= max(lookback_seconds, 1)):
        raise ConfigurationError(
            f"orphan_ttl_seconds must be >= lookback_seconds ({lookback_seconds}) and >= 1 "
            f"(TTL must never remove an entry a scanner may still claim), not {orphan_ttl_seconds!r}"
        )


__all__ = [
    "CLAIM_ROUNDS",
    "CONTENTION_SPREAD",
    "CURSOR_SETTLE_SECONDS",
    "DELETE_CONCURRENCY",
    "QUERY_CONCURRENCY",
    "DynamoDBDelayStore",
]
