"""One consumer-group member per AsyncMQ queue: fetching, per-job acks over cumulative offsets, rebalances.

Kafka commits are cumulative per partition (offset ``n``: every record before ``n`` is
done). Jobs of one partition finish out of order, so each partition's
:class:`PartitionTracker` keeps the offsets fetched and not yet finished; the commit
advances over the contiguous prefix of finished ones. A crash replays the rest, and the
state-store claim drops the replays of jobs that already ran.

:class:`QueueConsumer` runs two background tasks per queue: a fetch loop that keeps
a local buffer of decoded references (pausing a partition whose unfinished
records reach ``max_in_flight_per_partition``, which also keeps the group member
polling while every worker slot is busy) and a commit loop (every
``commit_interval``). It is the group's rebalance listener: on revocation it
drops the buffered references of the revoked partitions (the next owner reads them
again), waits up to ``revoke_timeout`` for those partitions' jobs running here, and commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from asyncmq_cloud import observe
from asyncmq_cloud.core.records import Delivery
from asyncmq_cloud.transports._envelope import PoisonMessage, decode_envelope
from asyncmq_cloud.transports._kafka_errors import classify_kafka_error

logger = logging.getLogger("asyncmq_cloud.transports.kafka")

#: Longest wait of one ``getmany`` (the fetch loop's poll period while nothing arrives).
POLL_TIMEOUT_MS = 500
#: Backoff bounds (s) of the fetch loop after a consumer error (broker away).
ERROR_BACKOFF = (0.2, 5.0)

#: Sends one undecodable record to the dead-letter topic: (value, key, reason, partition, offset).
DeadLetter = Callable[[bytes | None, bytes | None, str, int, int], Awaitable[None]]


@dataclass(frozen=True)
class Receipt:
    """Where a delivered reference came from: the partition, its offset and the assignment epoch."""

    tp: TopicPartition
    offset: int
    epoch: int


class PartitionTracker:
    """The fetched, unfinished offsets of one assigned partition and what may be committed.

    Args:
        epoch: the assignment this tracker belongs to; receipts of other epochs
            (before a rebalance) no longer move it.
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self._pending: deque[int] = deque()
        self._open: set[int] = set()
        self._done: set[int] = set()
        #: Offsets handed to a worker and not finished or released.
        self.started: set[int] = set()
        self._commit_to: int | None = None
        self._committed: int | None = None

    @property
    def in_flight(self) -> int:
        """The uncommitted window: from the oldest unfinished record to the newest fetched one.

        Finished records behind a slow one count too: the bound is on what a crash replays.
        """
        return len(self._pending)

    def fetched(self, offset: int) -> bool:
        """Track ``offset``; False for an offset already seen in this assignment (a re-fetch)."""
        if (self._pending and offset <= self._pending[-1]) or (
            self._commit_to is not None and offset < self._commit_to
        ):
            return False
        self._pending.append(offset)
        self._open.add(offset)
        return True

    def finish(self, offset: int) -> None:
        """Mark ``offset`` done and advance the committable offset over the finished prefix."""
        self.started.discard(offset)
        if offset not in self._open:
            return
        self._open.discard(offset)
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            first = self._pending.popleft()
            self._done.discard(first)
            self._commit_to = first + 1

    def to_commit(self) -> int | None:
        """The offset to commit now (next unfinished record), or None if already committed."""
        return self._commit_to if self._commit_to != self._committed else None

    def committed(self, offset: int) -> None:
        self._committed = offset


class QueueConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    """The group member of one queue (see the module docstring).

    Args:
        queue: the AsyncMQ queue name (references name it; others are poison).
        topic: its topic.
        group: its consumer group.
        consumer_kwargs: keywords of ``AIOKafkaConsumer`` (connection, security, liveness).
        max_in_flight: per-partition bound on fetched, unfinished records.
        commit_interval: see :class:`KafkaTransportConfig`.
        revoke_timeout: see :class:`KafkaTransportConfig`.
        dead_letter: sends a poison record to the dead-letter topic.
    """

    def __init__(
        self,
        queue: str,
        topic: str,
        group: str,
        consumer_kwargs: dict[str, Any],
        *,
        max_in_flight: int,
        commit_interval: float,
        revoke_timeout: float,
        dead_letter: DeadLetter,
    ) -> None:
        self.queue, self.topic, self.group = queue, topic, group
        self._kwargs = consumer_kwargs
        self.max_in_flight = max_in_flight
        self.commit_interval = commit_interval
        self.revoke_timeout = revoke_timeout
        self._dead_letter = dead_letter
        self._consumer: AIOKafkaConsumer | None = None
        self._trackers: dict[TopicPartition, PartitionTracker] = {}
        self._ready: deque[Delivery] = deque()
        self._held: list[tuple[float, int, Delivery]] = []
        self._poison: list[tuple[TopicPartition, int, Any]] = []
        self._seq = itertools.count()
        self._epochs = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()
        self._paused: set[TopicPartition] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**self._kwargs)
        consumer.subscribe([self.topic], listener=self)
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name=f"asyncmq-cloud kafka fetch {self.queue}"),
            asyncio.create_task(self._commit_loop(), name=f"asyncmq-cloud kafka commit {self.queue}"),
        ]

    async def _stop_tasks(self) -> bool:
        """Stop fetching and committing; False if the consumer was already closing."""
        if self._closing:
            return False
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return True

    async def close(self) -> None:
        """Stop fetching, commit the finished prefix of every partition, leave the group."""
        if await self._stop_tasks() and self._consumer is not None:
            await self._commit(self._trackers)
            await self._consumer.stop()

    async def abandon(self) -> None:
        """Close with no broker round trip (the loop is ending, its reply readers are cancelled):
        no commit (claims drop the redelivered), no LeaveGroup (the session timeout rebalances)."""
        if await self._stop_tasks() and self._consumer is not None:
            coordinator = self._consumer._coordinator  # aiokafka: a member of generation 0 sends no LeaveGroup
            if coordinator is not None:
                coordinator.reset_generation()
            await self._consumer.stop()

    # -- what the transport calls -------------------------------------------------------
    async def take(self, max_messages: int, wait: float) -> list[Delivery]:
        """Up to ``max_messages`` references, waiting at most ``wait`` seconds for the first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            self._release_due(loop.time())
            out: list[Delivery] = []
            while self._ready and len(out) < max_messages:
                delivery = self._ready.popleft()
                tracker = self._current(delivery)
                if tracker is not None:  # else its partition was revoked: the new owner reads it again
                    tracker.started.add(delivery.receipt.offset)
                    out.append(delivery)
            if out:
                return out
            now = loop.time()
            if now >= deadline:
                return []
            timeout = deadline - now
            if self._held:
                timeout = min(timeout, max(0.0, self._held[0][0] - now))
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def finish(self, delivery: Delivery) -> None:
        """The job of ``delivery`` is over here: its offset may be committed."""
        tracker = self._current(delivery)
        if tracker is not None:
            tracker.finish(delivery.receipt.offset)
            self._progress.set()

    def hold(self, delivery: Delivery, delay: float) -> None:
        """Deliver ``delivery`` again after ``delay`` seconds; its offset stays uncommitted."""
        tracker = self._current(delivery)
        if tracker is None:
            return
        tracker.started.discard(delivery.receipt.offset)
        self._progress.set()
        if delay <= 0:
            self._ready.appendleft(delivery)
            self._wakeup.set()
        else:
            due = asyncio.get_running_loop().time() + delay
            heapq.heappush(self._held, (due, next(self._seq), delivery))

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        return self._consumer

    def _current(self, delivery: Delivery) -> PartitionTracker | None:
        receipt = delivery.receipt
        tracker = self._trackers.get(receipt.tp)
        return tracker if tracker is not None and tracker.epoch == receipt.epoch else None

    def _release_due(self, now: float) -> None:
        while self._held and self._held[0][0] <= now:
            self._ready.append(heapq.heappop(self._held)[2])

    # -- rebalance listener ----------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = set(revoked) & set(self._trackers)
        if not revoked:
            return
        self._ready = deque(d for d in self._ready if d.receipt.tp not in revoked)
        self._held = [h for h in self._held if h[2].receipt.tp not in revoked]
        heapq.heapify(self._held)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.revoke_timeout
        while (running := sum(len(self._trackers[tp].started) for tp in revoked)) and loop.time() < deadline:
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), deadline - loop.time())
        if running:
            logger.warning(
                "%s: %d job(s) of revoked partitions still running after %.0fs; their records are read again "
                "by the new owner, whose claim waits for them to finish here",
                self.queue,
                running,
                self.revoke_timeout,
            )
        await self._commit({tp: self._trackers[tp] for tp in revoked})
        for tp in revoked:
            self._trackers.pop(tp, None)
            self._paused.discard(tp)
        logger.info("%s: partitions %s revoked", self.queue, sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        for tp in assigned:
            if tp not in self._trackers:
                self._trackers[tp] = PartitionTracker(next(self._epochs))
        logger.info("%s: partitions %s assigned", self.queue, sorted(tp.partition for tp in self._trackers))

    # -- background work -------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        assert self._consumer is not None
        failures = 0
        while not self._closing:
            try:
                await self._retry_poison()
                self._flow_control()
                # getmany returns every prefetched record unless told otherwise: never more than the
                # fullest fetching partition may still take, so no partition passes max_in_flight.
                room = min(
                    (self.max_in_flight - t.in_flight for tp, t in self._trackers.items() if tp not in self._paused),
                    default=self.max_in_flight,
                )
                with observe.timed_call("kafka", "Fetch", classify_kafka_error):
                    batch = await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=max(1, room))
                failures = 0
            except ConsumerStoppedError:
                return
            except Exception as exc:  # broker away, coordinator errors: never let fetching stop for good
                failures += 1
                pause = min(ERROR_BACKOFF[1], ERROR_BACKOFF[0] * 2 ** min(failures, 8))
                logger.warning("%s: fetch failed (%s); retrying in %.1fs", self.queue, exc, pause)
                await asyncio.sleep(pause)
                continue
            for tp, records in batch.items():
                for record in records:
                    await self._accept(tp, record)
            if self._ready:
                self._wakeup.set()

    def _flow_control(self) -> None:
        assert self._consumer is not None
        for tp, tracker in self._trackers.items():
            full = tracker.in_flight >= self.max_in_flight
            if full and tp not in self._paused:
                self._consumer.pause(tp)
                self._paused.add(tp)
            elif not full and tp in self._paused:
                self._consumer.resume(tp)
                self._paused.discard(tp)

    async def _accept(self, tp: TopicPartition, record: Any) -> None:
        tracker = self._trackers.get(tp)
        if tracker is None or not tracker.fetched(record.offset):
            return
        try:
            if not isinstance(record.value, bytes):
                raise PoisonMessage("record has no value")
            try:
                text = record.value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PoisonMessage(f"value is not UTF-8 ({exc})") from exc
            job_id = decode_envelope(text, self.queue)
        except PoisonMessage as poison:
            self._poison.append((tp, tracker.epoch, (record, str(poison))))
            await self._retry_poison()
            return
        receipt = Receipt(tp, record.offset, tracker.epoch)
        self._ready.append(Delivery(self.queue, job_id, receipt, received_at=time.monotonic(), lease_until=None))

    async def _retry_poison(self) -> None:
        """Dead-letter undecodable records; one that cannot be sent yet is retried (its offset stays open)."""
        waiting, self._poison = self._poison, []
        for tp, epoch, (record, reason) in waiting:
            tracker = self._trackers.get(tp)
            if tracker is None or tracker.epoch != epoch:
                continue  # revoked: the new owner dead-letters it
            try:
                await self._dead_letter(record.value, record.key, reason, tp.partition, record.offset)
            except Exception as exc:
                logger.warning(
                    "%s: could not dead-letter offset %s/%s yet: %s", self.queue, tp.partition, record.offset, exc
                )
                self._poison.append((tp, epoch, (record, reason)))
                continue
            logger.warning(
                "%s: record %s/%s is not a job reference (%s): moved to the dead-letter topic",
                self.queue,
                tp.partition,
                record.offset,
                reason,
            )
            tracker.finish(record.offset)

    async def _commit_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.commit_interval)
            await self._commit(self._trackers)

    async def _commit(self, trackers: dict[TopicPartition, PartitionTracker]) -> None:
        if self._consumer is None:
            return
        offsets = {tp: offset for tp, t in list(trackers.items()) if (offset := t.to_commit()) is not None}
        if not offsets:
            return
        try:
            with observe.timed_call("kafka", "OffsetCommit", classify_kafka_error):
                await self._consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # Rebalance under way or broker away: the next commit (or the next owner's replay,
            # which the claim drops) covers it.
            logger.info("%s: offset commit %s failed: %s", self.queue, offsets, exc)
            return
        for tp, offset in offsets.items():
            if (tracker := trackers.get(tp)) is not None:
                tracker.committed(offset)
