"""DynamoDB as the queue: the jobs table's sparse ``ready`` index is the broker.

Operator's manual
=================

``DynamoDBBackend`` keeps jobs and their queue in one table (the jobs table of
:class:`~asyncmq_cloud.stores.dynamodb.DynamoDBStateStore`, created with
``ready_shards >= 1``). There is no message to send, ack or lose:

* a job is *ready* while its record is ``waiting``: every write that makes it
  ``waiting`` (create, promotion of a delayed job, retry, release of a flow
  child, stalled recovery) also sets the ``ready`` index keys
  ``rdy_pk = "{queue}#R#{shard}"``, ``rdy_sk = priority * 10^11 + ready time``;
* **receive** = one ``Query`` of one shard of that index (``KEYS_ONLY``, oldest
  and highest priority first) for a window of candidates;
* **claim** = the state store's conditional ``UpdateItem``
  (``waiting -> active``, owner token) that also REMOVEs the index keys and returns
  the whole item: the payload costs no extra read. Two workers that pick the same
  candidate race on the condition; the loser's claim fails and it moves on;
* ``send`` / ``ack`` / ``release`` / ``extend`` are no-ops: the record's state is
  the only truth, so nothing can get out of step with it.

Ordering guarantee (exact)
    Within one shard, a receive returns candidates in ``(priority, ready time)``
    order (AsyncMQ: lower number first) and its batch always contains the shard's
    head — the highest-ranked ready job — plus a random sample of the next
    ``window - 1`` (``window = max(n * spread, 8)``, at most 100, for a receive of
    ``n``), so that concurrent workers spread over different jobs instead
    of all racing for the same ones. Hence: the best-ranked ready job of a shard is
    offered to every receive of that shard, and a job ranked more than ``window``
    places behind another is never offered before it. Under contention (a claim of
    the queue lost to another worker in the last 5 s) a receive reads a window four
    times wider and offers a random sample of it, the head included only by chance:
    workers that race are out of order anyway, and forcing the head on every one of
    them cost a lost claim per rival (decision 73). A lone worker keeps the exact order,
    unless one of its claims fails on a job cancelled or removed meanwhile (for 5 s). Across shards there is no
    order: receives rotate over the shards. ``shards=1`` (the default) makes the
    guarantee hold for the whole queue. Ready index reads are eventually
    consistent: a job written a few hundred ms ago may be missed by one receive
    (never lost: the next one sees it).

Shards are the lever against hot partitions: each shard is one index partition
(~1,000 writes/s of index changes). Raise ``shards`` for queues beyond that; each
receive still reads one shard, but an idle poll of the whole queue then needs
``shards`` Queries (see below).

Leases and stalled jobs
    An active job carries the ``active`` index keys (heartbeat as sort key). Every
    ``lease_check_interval`` seconds a receive also queries that index (4 shards)
    for jobs of its queue whose heartbeat is older than ``lease_timeout`` and
    offers them: the claim's ``stale_before`` condition takes over a job whose
    worker died. Never a table Scan.

Idle polling
    An empty receive backs off per queue (``idle_poll`` doubling up to
    ``idle_poll_max``, default 4 s), across receives: an idle worker makes at most
    one ready-index Query per ``idle_poll_max`` per shard. AsyncMQ's own periodic
    loops (delayed-job scanner, repeatable scheduler lock, paused flag) add their
    calls; see ``benchmarks/dynamodb_cost.py``.

Costs per job (steady state, see ``benchmarks/dynamodb_cost.py``): create 1
``UpdateItem``, receive ``1/batch`` ``Query``, claim 1 ``UpdateItem`` (returns
the payload), completion 1 ``UpdateItem``, plus claims lost to a rival worker
(conditional-check failures: the benchmark reports their rate).

Throttling (``ProvisionedThroughputExceededException``, ``ThrottlingException``)
is retried by botocore's standard/adaptive retry mode (``AwsClients(retry_mode=...)``).

IAM: those of the state store (``Query`` on ``table/NAME/index/*`` covers ``ready``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asyncmq_cloud._component import Component
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.records import Delivery, TransportCapabilities
from asyncmq_cloud.core.validation import validate_queue_name
from asyncmq_cloud.errors import ClosedError, ConfigurationError

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec
    from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore

logger = logging.getLogger("asyncmq_cloud.transports.dynamodb")

#: Most candidates one receive reads from the index (one Query page).
MAX_WINDOW = 100
#: Fewest candidates one receive reads, so that workers asking for one job each
#: still spread over several.
MIN_WINDOW = 8
#: Seconds a lost claim of a queue counts as contention (decision 73) ...
CONTENTION_SECONDS = 5.0
#: ... during which a receive reads this many times the usual window and offers a random
#: sample of it, the head not forced (racing workers are out of order anyway).
CONTENDED_SPREAD = 4


class DynamoDBTransport(Component):
    """Receives ready jobs from the ``ready`` index of a :class:`DynamoDBStateStore`.

    Args:
        store: the state store whose table is the queue (``ready_shards >= 1``).
        spread: a receive of ``n`` reads ``max(n * spread, 8)`` candidates (≤ 100)
            and offers the head plus a random sample of the rest (see "Ordering").
        idle_poll: first back-off (s) after an empty receive.
        idle_poll_max: longest back-off (s) between Queries of an idle queue.
        config: the lifecycle knobs of the backend this transport serves: an ``active``
            job whose heartbeat is older than its ``lease_timeout`` is offered again
            (0 = never; the claim's ``stale_before`` decides). Default: ``LifecycleConfig()``.
        lease_check_interval: seconds between two stale-lease Queries per queue.
    """

    #: Nothing to redeliver (an unclaimable candidate is simply skipped); no native delay.
    capabilities = TransportCapabilities(max_native_delay=0.0, redelivers=False)

    def __init__(
        self,
        store: DynamoDBStateStore,
        *,
        spread: int = 3,
        idle_poll: float = 0.05,
        idle_poll_max: float = 4.0,
        lease_check_interval: float = 30.0,
        config: LifecycleConfig | None = None,
    ) -> None:
        super().__init__()
        if store.ready_shards < 1:
            raise ConfigurationError(
                "DynamoDBTransport needs a DynamoDBStateStore with ready_shards >= 1 (the table is the queue)"
            )
        if not 1 <= spread <= 10:
            raise ConfigurationError(f"spread must be in 1..10, not {spread}")
        if not 0 < idle_poll <= idle_poll_max <= 20:
            raise ConfigurationError(
                f"need 0 < idle_poll <= idle_poll_max <= 20 s, not idle_poll={idle_poll}, idle_poll_max={idle_poll_max}"
            )
        if lease_check_interval <= 0:
            raise ConfigurationError(f"lease_check_interval must be > 0 seconds, not {lease_check_interval}")
        self.store = store
        self.spread = spread
        self.idle_poll = idle_poll
        self.idle_poll_max = idle_poll_max
        self.config = config or LifecycleConfig()
        self.lease_check_interval = lease_check_interval
        self._next_shard: dict[str, int] = {}
        self._idle: dict[str, tuple[float, float]] = {}  # queue -> (back-off, earliest next Query)
        self._lease_checked: dict[str, float] = {}

    @property
    def shards(self) -> int:
        return self.store.ready_shards

    async def provision(self, queue: str) -> None:
        validate_queue_name(queue)  # the table is provisioned by the store

    def check_queue(self, queue: str) -> None:
        """Raise ``InvalidNameError`` if ``queue`` cannot be carried (no I/O)."""
        return None  # the queue is a key in the jobs table: any AsyncMQ queue name fits

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing of its own: the queue is the store's jobs table."""
        return []

    async def send(
        self, queue: str, job_ids: Sequence[str], delay: float = 0.0, priorities: Any = None, groups: Any = None
    ) -> None:
        """Nothing to send: the ``waiting`` write that preceded this call indexed the job."""
        if self._closed:
            raise ClosedError("DynamoDBTransport is closed")
        if delay > 0:  # max_native_delay is 0: the lifecycle never asks for this
            raise ConfigurationError("DynamoDBTransport holds no delays; delayed jobs go to the delay store")

    async def receive(self, queue: str, max_messages: int, wait: float) -> list[Delivery]:
        """Up to ``max_messages`` candidates; polls (with the idle back-off) for at most ``wait`` seconds."""
        if self._closed:
            raise ClosedError("DynamoDBTransport is closed")
        if max_messages <= 0:
            return []
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            stale = await self._stale_leases(queue, max_messages)
            if stale:
                return stale
            backoff, not_before = self._idle.get(queue, (0.0, 0.0))
            now = time.monotonic()
            if now < not_before:
                if not_before > deadline:
                    await asyncio.sleep(max(0.0, deadline - now))
                    return []
                await asyncio.sleep(not_before - now)
            found = await self._ready(queue, max_messages)
            if found:
                self._idle.pop(queue, None)
                return found
            backoff = min(self.idle_poll_max, max(self.idle_poll, backoff * 2))
            self._idle[queue] = (backoff, time.monotonic() + backoff)
            if time.monotonic() + backoff > deadline:
                return []

    async def _ready(self, queue: str, want: int) -> list[Delivery]:
        """Candidates from the next shards in turn: the first non-empty one wins."""
        start = self._next_shard.get(queue, random.randrange(self.shards))
        for step in range(self.shards):
            shard = (start + step) % self.shards
            lost_at = self.store.claim_lost_at.get(queue)
            contended = lost_at is not None and time.monotonic() - lost_at < CONTENTION_SECONDS
            window = want * self.spread * (CONTENDED_SPREAD if contended else 1)
            keys = await self.store.ready_keys(queue, shard, min(MAX_WINDOW, max(window, MIN_WINDOW)))
            if keys:
                self._next_shard[queue] = (shard + 1) % self.shards
                head = [] if contended else keys[:1]
                rest = random.sample(keys[len(head) :], min(want, len(keys)) - len(head))
                picked = head + sorted(rest, key=keys.index)
                return [Delivery(queue, job_id, receipt=None, receive_count=1) for job_id in picked]
        return []

    async def _stale_leases(self, queue: str, want: int) -> list[Delivery]:
        lease_timeout = self.config.lease_timeout
        if lease_timeout <= 0:
            return []
        now = time.monotonic()
        if now - self._lease_checked.setdefault(queue, now) < self.lease_check_interval:
            return []
        self._lease_checked[queue] = now
        stale = await self.store.stale_active_ids(queue, time.time() - lease_timeout, want)
        if stale:
            logger.warning("offering %d job(s) of %r whose worker stopped heartbeating", len(stale), queue)
        return [Delivery(queue, job_id, receipt=None, receive_count=2) for job_id in stale]

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to ack: the claim removed the job from the ready index."""

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        """Nothing to extend: the lease is the job's heartbeat in the store."""

    async def release(self, delivery: Delivery, delay: float = 0.0) -> None:
        """Nothing to put back: an unclaimed candidate is still ``waiting`` and indexed."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """There are no foreign messages here: every candidate is a job record."""

    async def depth(self, queue: str) -> int:
        """Waiting jobs (the ``by_state`` index count)."""
        return (await self.store.count_jobs(queue)).get("waiting", 0)

    async def stats(self, queue: str) -> dict[str, int]:
        """No breakdown beyond ``depth`` (``capabilities.has_stats`` is False)."""
        return {}

    async def purge(self, queue: str) -> None:
        """Nothing to purge besides the records, which the state store owns."""


__all__ = ["DynamoDBTransport"]
