"""``KafkaBackend``: AsyncMQ on Apache Kafka (or Amazon MSK), by changing one settings line.

::

    from asyncmq.conf.global_settings import Settings as Base
    from asyncmq_cloud import KafkaBackend

    class Settings(Base):
        backend = KafkaBackend(bootstrap_servers="broker-1:9092,broker-2:9092", store="redis://redis:6379/0")

Job references travel on a topic per queue (:mod:`asyncmq_cloud.transports.kafka`,
whose module docstring is the operator's manual: partitions vs concurrency,
ordering, what "ack" means on a log, rebalances, security); jobs live in the state
store (Redis or DynamoDB); every delay (Kafka has none) waits in the delay store
(the same Redis with a Redis store, ``dynamodb://asyncmq-delays`` with a DynamoDB one).

Nothing is created implicitly in production: ``await backend.provision(["default"])``
or ``asyncmq-cloud provision --queue default`` creates the topics (``partitions``,
``replication_factor``) and tables for local development; ``create_missing=True``
does it on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.config import AioConfig

from asyncmq_cloud.aws import AwsClients, AwsOptions, RetryMode
from asyncmq_cloud.backends._preset import PresetBackend
from asyncmq_cloud.backends._urls import build_delay_store, build_state_store
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.protocols import DelayStore, StateStore
from asyncmq_cloud.redact import masked_repr
from asyncmq_cloud.resources import JOBS_TABLE_NAME
from asyncmq_cloud.stores.offload import S3Offload, with_offload
from asyncmq_cloud.transports.kafka import KafkaTransport

#: Environment variable read when ``bootstrap_servers`` is not given.
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class KafkaSettings:
    """The settings of a :class:`KafkaBackend` besides the AWS client keywords (see its arguments)."""

    bootstrap_servers: str | None = None
    topic_prefix: str = "asyncmq-"
    store: str | StateStore = f"dynamodb://{JOBS_TABLE_NAME}"
    delay_store: str | DelayStore | None = None
    partitions: int = 4
    replication_factor: int = 1
    create_missing: bool = False
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    offload: S3Offload | None = None

    def __repr__(self) -> str:
        return masked_repr(self)  # store URLs and secret options masked


class KafkaBackend(PresetBackend):
    """An AsyncMQ backend on Kafka + a state store + a delay store, built from keywords.

    Args:
        bootstrap_servers: ``host:port[,...]`` (default ``$KAFKA_BOOTSTRAP_SERVERS`` or
            ``localhost:9092``).
        topic_prefix: prepended to each queue name to make its topic (default ``asyncmq-``).
        store: ``redis://HOST:PORT/DB[?prefix=P]``, ``rediss://...``, ``dynamodb://TABLE``,
            ``memory://`` or a :class:`StateStore` instance.
        delay_store: a URL of the same forms, a :class:`DelayStore`, or ``None`` for the one
            that matches ``store``.
        partitions: / replication_factor: of the topics ``provision`` creates.
        create_missing: create missing topics and tables on first use (development).
        endpoint_url: / region_name: the AWS endpoint and region of a DynamoDB store.
        config: lifecycle knobs (:class:`LifecycleConfig`; ``lease_timeout`` decides when a
            replayed record may take over a job whose worker died).
        clients: a shared, caller-owned :class:`AwsClients` for a DynamoDB store.
        offload: ``s3://BUCKET/PREFIX`` or an :class:`~asyncmq_cloud.stores.offload.S3Offload`:
            payloads and results above its threshold live in S3 (the claim check); ``None`` = off.
        retry_mode: / max_attempts: / aio_config: / client_kwargs: for the AWS clients the
            backend creates.
        **transport_options: further
            :class:`~asyncmq_cloud.transports.kafka.KafkaTransportConfig` fields
            (``group_prefix``, ``client_id``, ``topic_config``, ``linger_ms``, ``max_batch_size``,
            ``compression_type``, ``request_timeout_ms``, ``max_in_flight_per_partition``,
            ``commit_interval``, ``revoke_timeout``, ``session_timeout_ms``,
            ``heartbeat_interval_ms``, ``max_poll_interval_ms``, ``fetch_max_wait_ms``, the
            security settings ``security_protocol``, ``sasl_mechanism``, ``sasl_username``,
            ``sasl_password``, ``ssl_*``, ``msk_iam``, ``msk_region``, and
            ``producer_options``/``consumer_options`` passed to aiokafka).
    """

    _loop_bound_args = ("store", "delay_store", "clients")

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        topic_prefix: str = "asyncmq-",
        store: str | StateStore = f"dynamodb://{JOBS_TABLE_NAME}",
        delay_store: str | DelayStore | None = None,
        partitions: int = 4,
        replication_factor: int = 1,
        create_missing: bool = False,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        config: LifecycleConfig | None = None,
        clients: AwsClients | None = None,
        retry_mode: RetryMode = "standard",
        max_attempts: int | None = None,
        aio_config: AioConfig | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        offload: str | S3Offload | None = None,
        **transport_options: Any,
    ) -> None:
        self.settings = KafkaSettings(
            bootstrap_servers, topic_prefix, store, delay_store, partitions, replication_factor, create_missing,
            dict(transport_options), None if offload is None else S3Offload.parse(offload),
        )  # fmt: skip
        aws = AwsOptions(endpoint_url, region_name, retry_mode, max_attempts, aio_config, client_kwargs)
        self._use_aws(aws, clients, create_missing=create_missing)
        state_store, transport, delays = self._build(config or LifecycleConfig())
        super().__init__(state_store, transport, delays, config=config)
        self.transport: KafkaTransport = transport
        self._provisioned = False

    async def _close_transport_at_loop_end(self) -> None:
        await self.transport.abandon()  # no broker round trip: the loop's tasks are cancelled

    def _build(self, config: LifecycleConfig) -> tuple[StateStore, KafkaTransport, DelayStore]:
        s = self.settings
        transport = KafkaTransport(
            bootstrap_servers=_servers(s.bootstrap_servers),
            topic_prefix=s.topic_prefix,
            partitions=s.partitions,
            replication_factor=s.replication_factor,
            create_missing=s.create_missing,
            **s.transport_options,
        )
        state_store = build_state_store(s.store, clients=self.clients)
        delays = build_delay_store(s.delay_store, store=state_store, clients=self.clients)
        return with_offload(state_store, s.offload, clients=self.clients), transport, delays

    async def provision(self, queues: Sequence[str] = ()) -> None:
        """Create the tables and, for each of ``queues``, the topic and its dead-letter topic (idempotent)."""
        await super().provision(queues)


__all__ = ["KafkaBackend", "KafkaSettings"]


def _servers(given: str | None) -> str:
    """``given``; only when it is not given (``None``) ``$KAFKA_BOOTSTRAP_SERVERS``, else ``localhost:9092``.

    An empty string is a mistake to report (the config says so), not a request for the default.
    """
    if given is not None:
        return given
    return os.environ.get(BOOTSTRAP_ENV) or "localhost:9092"
