"""Apache Kafka transport (aiokafka): job references on a topic per AsyncMQ queue.

Operator's manual
=================

Topics and groups
    AsyncMQ queue ``emails`` lives on topic ``{topic_prefix}emails`` (default prefix
    ``asyncmq-``), is consumed by the consumer group ``{group_prefix}emails``
    (``group_prefix`` defaults to ``topic_prefix``) and has a dead-letter topic
    ``{topic_prefix}emails-dlq``. Names are at most 249 characters of
    ``[A-Za-z0-9._-]`` (:class:`~asyncmq_cloud.errors.InvalidNameError` says which
    rule broke). A missing topic raises :class:`~asyncmq_cloud.errors.ResourceMissingError`
    naming it (never the broker's ``auto.create.topics.enable``): create topics with
    ``asyncmq-cloud provision --queue emails`` (``partitions``, ``replication_factor``,
    ``topic_config``), your topic tooling (production), or ``create_missing=True``.

Partitions vs worker concurrency
    A partition is read by one worker process at a time, so ``partitions`` is the
    most *processes* that share a queue; inside a process every job of its
    partitions runs concurrently up to AsyncMQ's ``--concurrency``. Give a queue at
    least as many partitions as worker processes you will scale to (KEDA's kafka
    scaler never scales beyond the partition count). Each partition holds at most
    ``max_in_flight_per_partition`` (200) records that are fetched and not finished;
    at that bound its fetching pauses.

Ordering
    Jobs start in offset order per partition (``queue_partitions={"q": 1}``: in add order);
    a job id is the record key, so references spread over partitions. Concurrency, retries and delays reorder
    completions: Kafka gives AsyncMQ no stronger ordering than SQS standard queues.
    AsyncMQ priorities are not honoured (a log has no priority).

What "ack" means here
    Kafka commits are cumulative per partition. A finished job (completed, failed,
    retried, cancelled, or a reference the claim dropped) marks its offset done; the
    committed offset advances over the contiguous prefix of done offsets every
    ``commit_interval`` (1 s), on a rebalance and on ``close()``. After a crash the
    records behind the committed offset are read again: the state-store claim drops
    every reference whose job already ran, so delivery is at-least-once and
    completion effectively once. A reference to a job that runs on another, live
    worker (its lease is fresh) is held back in this process and offered again when
    that lease would expire; its offset stays uncommitted meanwhile.

Rebalances
    aiokafka's group protocol revokes every partition of every member when one
    joins or leaves. On revocation the references buffered but not started are
    dropped (the next owner reads them again); jobs of the revoked partitions that
    run here are waited for up to ``revoke_timeout`` (20 s) and their offsets
    committed. A job that outlasts the wait keeps running; the new owner's claim
    finds it active with a fresh lease and waits for it, so a job on a live worker
    never runs twice. A SIGKILLed worker's partitions move after
    ``session_timeout_ms`` (15 s); its running jobs are taken over once their lease
    (``LifecycleConfig.lease_timeout``) expires.

Delays
    Kafka has none (``max_native_delay = 0``): delayed jobs, retries with backoff and
    ``delay_until`` wait in the delay store (Redis sorted set or DynamoDB table) and
    are sent when due by ``promote_due_delayed`` / ``asyncmq-cloud scanner run``.

Producer
    ``acks=all`` and idempotence are always on; concurrent sends share batches
    (records pile up while a produce request is in flight; ``linger_ms``, default 0,
    waits longer; ``max_batch_size``; ``compression_type``). Every
    send awaits the broker's acknowledgement: a failed send raises
    :class:`~asyncmq_cloud.errors.TransientError` (broker away, timeout after
    ``request_timeout_ms``) or another typed error to the caller, never a silent loss.

Poison records
    A record whose value is not a job reference of its queue (another producer,
    corruption) is copied to the dead-letter topic with the headers ``asyncmq-error``
    (the reason), ``asyncmq-source-topic``, ``asyncmq-source-partition`` and
    ``asyncmq-source-offset``; then its offset is done and the worker goes on. If the
    dead-letter send fails it is retried and the offset stays uncommitted; a copy too
    large for the producer (``MessageSizeTooLargeError``, not retriable) is sent with the
    first 64 KiB of the value and ``asyncmq-truncated-from`` (the original size) instead.

Security
    ``security_protocol`` PLAINTEXT / SSL / SASL_PLAINTEXT / SASL_SSL; TLS with
    ``ssl_cafile`` (and ``ssl_certfile``/``ssl_keyfile`` for mutual TLS); SASL PLAIN and
    SCRAM-SHA-256/512 with ``sasl_username``/``sasl_password``; Amazon MSK IAM with
    ``msk_iam=True`` (SASL_SSL + OAUTHBEARER, tokens signed from the AWS credential
    chain by ``aws-msk-iam-sasl-signer-python``, extra ``msk``). The test suite runs
    PLAINTEXT and SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against a
    real broker (a wrong password is :class:`~asyncmq_cloud.errors.AccessDeniedError`,
    not a retriable outage); TLS is checked as configuration (the SSL context and its CA)
    and the MSK IAM token is signed offline in a unit test: no TLS listener or MSK here.

Costs (what a broker sees per job)
    One produce record (batched with concurrent sends), one fetched record (fetches
    return many), and a share of one offset commit per partition per second. An
    idle worker makes one fetch per ``fetch_max_wait_ms`` per partition leader plus
    group heartbeats (``heartbeat_interval_ms``). ``benchmarks/kafka_cost.py``
    counts them.

ACLs / MSK IAM actions
    Producers: ``Write`` and ``Describe`` on the topics (MSK: ``kafka-cluster:Connect``,
    ``WriteData``, ``DescribeTopic``). Workers: also ``Read`` on the topics and the
    group (``ReadData``, ``AlterGroup``, ``DescribeGroup``) and ``Write`` on the
    dead-letter topic. ``provision``/``create_missing`` need ``Create``
    (``CreateTopic``); ``purge`` needs ``Delete`` (``DeleteData``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError

from asyncmq_cloud._component import Component
from asyncmq_cloud.core.records import Delivery, TransportCapabilities
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.resources import KafkaTopicSpec
from asyncmq_cloud.transports._envelope import MAX_REASON, encode_envelope
from asyncmq_cloud.transports._kafka_admin import (
    TOPIC_ALREADY_EXISTS,
    create_topics,
    ensure_topic,
    purge_topic,
    topic_lags,
)
from asyncmq_cloud.transports._kafka_config import KafkaTransportConfig, client_kwargs, consumer_kwargs
from asyncmq_cloud.transports._kafka_consumer import QueueConsumer
from asyncmq_cloud.transports._kafka_errors import kafka_errors, start_client, translate_kafka_error

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec

logger = logging.getLogger("asyncmq_cloud.transports.kafka")

#: Header names on a dead-lettered record.
ERROR_HEADER = "asyncmq-error"
SOURCE_TOPIC_HEADER = "asyncmq-source-topic"
SOURCE_PARTITION_HEADER = "asyncmq-source-partition"
SOURCE_OFFSET_HEADER = "asyncmq-source-offset"
TRUNCATED_HEADER = "asyncmq-truncated-from"  #: on a dead-letter copy cut to fit: the original size
DLQ_TRUNCATED_BYTES = 64 * 1024  #: bytes of the value such a copy keeps (the source record has all)


class KafkaTransport(Component):
    """Job references on Apache Kafka (see the module docstring).

    Args:
        config: settings; keyword ``options`` override or replace it.
        **options: fields of :class:`KafkaTransportConfig`.
    """

    #: No native delay; records behind the committed offset come back after a crash or rebalance.
    capabilities = TransportCapabilities(max_native_delay=0.0, redelivers=True, has_stats=True)

    def __init__(self, config: KafkaTransportConfig | None = None, **options: Any) -> None:
        super().__init__()
        base = config.model_dump() if config is not None else {}
        self.config = KafkaTransportConfig.build(**{**base, **options})
        self._common = client_kwargs(self.config)
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._consumers: dict[str, QueueConsumer] = {}
        self._topics_ok: set[str] = set()
        self._lock = asyncio.Lock()
        #: Records produced, by topic kind ("jobs", "dlq"); for benchmarks and logs.
        self.produced: dict[str, int] = {"jobs": 0, "dlq": 0}

    # -- lifecycle ---------------------------------------------------------------------
    async def _open(self, stack: AsyncExitStack) -> None:
        """Connect the producer now: an unreachable cluster fails at ``start()``, not at the first job."""
        producer = AIOKafkaProducer(
            **self._common,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.config.linger_ms,
            max_batch_size=self.config.max_batch_size,
            compression_type=self.config.compression_type,
            **self.config.producer_options,
        )
        await start_client(producer, self._common, f"Kafka cluster {self.config.bootstrap_servers}")
        self._producer = producer

    async def _shutdown(self) -> None:
        """Commit finished offsets, leave the groups, flush the producer (``close()``, idempotent)."""
        consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            try:
                await consumer.close()
            except Exception:  # pragma: no cover - keep closing the rest
                logger.warning("closing the consumer of %s failed", consumer.queue, exc_info=True)
        if self._producer is not None:
            await self._producer.stop()
        if self._admin is not None:
            await self._admin.close()
        if self._offsets is not None:
            await self._offsets.stop()

    async def abandon(self) -> None:
        """Close at the end of a loop whose tasks were cancelled (consumers: ``QueueConsumer.abandon``)."""
        for consumer in list(self._consumers.values()):
            await consumer.abandon()
        await self.close()

    async def _ready(self) -> AIOKafkaProducer:
        await self._ensure_started()
        assert self._producer is not None
        return self._producer

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self._common)
            await start_client(admin, self._common, f"Kafka cluster {self.config.bootstrap_servers}")
            self._admin = admin
        return self._admin

    async def open_admin(self, *, request_timeout: float | None = None) -> AIOKafkaAdminClient:
        """A started admin client with this transport's connection settings; the caller closes it.

        Args:
            request_timeout: seconds for each request (default: aiokafka's).

        Raises:
            CloudBackendError: the typed error (``AccessDeniedError`` for a refused login), the client closed.
        """
        extra = {} if request_timeout is None else {"request_timeout_ms": int(request_timeout * 1000)}
        kwargs = {**self._common, **extra}
        admin = AIOKafkaAdminClient(**kwargs)
        await start_client(admin, kwargs, f"Kafka cluster {self.config.bootstrap_servers}")
        return admin

    # -- topics ------------------------------------------------------------------------
    def topic(self, queue: str) -> str:
        return self.config.topic(queue)

    def spec(self, queue: str) -> KafkaTopicSpec:
        """The topic + dead-letter topic ``provision`` creates for ``queue``."""
        c = self.config
        return KafkaTopicSpec(
            name=c.topic(queue),
            dlq_name=c.dlq_topic(queue),
            group=c.group(queue),
            partitions=c.partitions_of(queue),
            replication_factor=c.replication_factor,
            config=tuple(sorted(c.topic_config.items())),
        )

    def _resource(self, queue: str) -> str:
        return f"Kafka topic {self.topic(queue)!r} of AsyncMQ queue {queue!r}"

    def check_queue(self, queue: str) -> None:
        """Raise ``InvalidNameError`` if ``queue`` cannot be carried (no I/O)."""
        self.spec(queue)  # builds and validates the topic and dead-letter topic names

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """The topic (and its dead-letter topic) of each of ``queues``."""
        return [self.spec(queue) for queue in queues]

    async def provision(self, queue: str) -> None:
        """Create the queue's topic and dead-letter topic if missing (idempotent)."""
        admin = await self._admin_client()
        self._topics_ok.update(await create_topics(admin, self.spec(queue), self._resource(queue)))

    # -- send --------------------------------------------------------------------------
    async def send(
        self, queue: str, job_ids: Sequence[str], delay: float = 0.0, priorities: Any = None, groups: Any = None
    ) -> None:
        """Publish one reference per job id and wait for ``acks=all``; raise if any record failed."""
        if not job_ids:
            return
        if delay > 0:
            raise ConfigurationError("Kafka has no per-message delay; delayed jobs go through the delay store")
        producer = await self._ready()
        topic = await ensure_topic(self, queue)
        with kafka_errors(self._resource(queue), "Produce"):
            pending = [
                await producer.send(topic, value=encode_envelope(queue, job_id).encode(), key=job_id.encode())
                for job_id in job_ids
            ]
            results = await asyncio.gather(*pending, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]  # inside: the call is observed failed
            self.produced["jobs"] += len(results) - len(failed)
            if failed:
                raise translate_kafka_error(failed[0], self._resource(queue)) from failed[0]

    # -- receive / ack -------------------------------------------------------------------
    async def _consumer(self, queue: str) -> QueueConsumer:
        consumer = self._consumers.get(queue)
        if consumer is not None:
            return consumer
        await self._ready()
        topic = await ensure_topic(self, queue)
        async with self._lock:
            if queue in self._consumers:
                return self._consumers[queue]
            c = self.config
            kwargs = consumer_kwargs(c, self._common, queue)
            consumer = QueueConsumer(
                queue,
                topic,
                c.group(queue),
                kwargs,
                max_in_flight=c.max_in_flight_per_partition,
                commit_interval=c.commit_interval,
                revoke_timeout=c.revoke_timeout,
                dead_letter=lambda value, key, reason, partition, offset: self._dead_letter_record(
                    queue, value, key, reason, partition, offset
                ),
            )
            with kafka_errors(self._resource(queue), "JoinGroup"):
                await consumer.start()
            self._consumers[queue] = consumer
            return consumer

    async def receive(self, queue: str, max_messages: int, wait: float) -> list[Delivery]:
        """Up to ``max_messages`` references of the partitions this process owns, waiting at most ``wait``."""
        if max_messages <= 0:
            return []
        consumer = await self._consumer(queue)
        return await consumer.take(max_messages, wait)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark the offsets done; the next commit covers them once every earlier offset is done too."""
        for delivery in deliveries:
            consumer = self._consumers.get(delivery.queue)
            if consumer is not None:
                consumer.finish(delivery)

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        """Nothing to do: a record stays owned while the group member lives (the store lease does the rest)."""

    async def release(self, delivery: Delivery, delay: float = 0.0) -> None:
        """Offer the reference again in ``delay`` seconds (its offset stays uncommitted)."""
        consumer = self._consumers.get(delivery.queue)
        if consumer is not None and not self._closed:
            consumer.hold(delivery, delay)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Copy the reference to the dead-letter topic with ``reason``, then mark its offset done."""
        receipt = delivery.receipt
        value = encode_envelope(delivery.queue, delivery.job_id).encode()
        await self._dead_letter_record(
            delivery.queue, value, delivery.job_id.encode(), reason, receipt.tp.partition, receipt.offset
        )
        await self.ack([delivery])

    async def _dead_letter_record(
        self, queue: str, value: bytes | None, key: bytes | None, reason: str, partition: int, offset: int
    ) -> None:
        producer = await self._ready()
        headers = [
            (ERROR_HEADER, (reason[:MAX_REASON] or "unknown").encode()),
            (SOURCE_TOPIC_HEADER, self.topic(queue).encode()),
            (SOURCE_PARTITION_HEADER, str(partition).encode()),
            (SOURCE_OFFSET_HEADER, str(offset).encode()),
        ]
        dlq = self.config.dlq_topic(queue)
        with kafka_errors(f"Kafka dead-letter topic {dlq!r} of AsyncMQ queue {queue!r}", "Produce"):
            try:
                await producer.send_and_wait(dlq, value=value, key=key, headers=headers)
            except MessageSizeTooLargeError:  # not retriable: a retry loop would hold the commit back for good
                size, where = len(value or b""), f"{queue}: offset {partition}/{offset}"
                logger.warning("%s: dead-letter copy too large (%d bytes): truncated", where, size)
                headers.append((TRUNCATED_HEADER, str(size).encode()))
                await producer.send_and_wait(dlq, value=(value or b"")[:DLQ_TRUNCATED_BYTES], key=key, headers=headers)
        self.produced["dlq"] += 1

    # -- depth / purge -------------------------------------------------------------------
    async def _offsets_client(self) -> AIOKafkaConsumer:
        """A consumer outside every group, for offset lookups: joining a group would rebalance the workers."""
        if self._offsets is None:
            offsets = AIOKafkaConsumer(**self._common, group_id=None, enable_auto_commit=False)
            await start_client(offsets, self._common, f"Kafka cluster {self.config.bootstrap_servers}")
            self._offsets = offsets
        return self._offsets

    async def depth(self, queue: str) -> int:
        """Records not yet committed by the queue's group (its lag), over every partition."""
        return sum((await topic_lags(self, queue)).values())

    async def stats(self, queue: str) -> dict[str, int]:
        """The group's lag on each partition, as ``partition-N`` (their sum is ``depth``)."""
        return {f"partition-{n}": lag for n, lag in sorted((await topic_lags(self, queue)).items())}

    async def purge(self, queue: str) -> None:
        """Delete every record of the queue's topic (Kafka ``DeleteRecords`` up to the end offsets)."""
        await purge_topic(self, queue)


__all__ = [
    "ERROR_HEADER",
    "SOURCE_OFFSET_HEADER",
    "SOURCE_PARTITION_HEADER",
    "SOURCE_TOPIC_HEADER",
    "TOPIC_ALREADY_EXISTS",
    "TRUNCATED_HEADER",
    "KafkaTransport",
    "KafkaTransportConfig",
]
