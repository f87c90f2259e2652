"""``DynamoDBBackend``: AsyncMQ with DynamoDB as both the queue and the job store.

::

    from asyncmq.conf.global_settings import Settings as Base
    from asyncmq_cloud import DynamoDBBackend

    class Settings(Base):
        backend = DynamoDBBackend(table="asyncmq-jobs")

No broker: the jobs table (:mod:`asyncmq_cloud.stores.dynamodb`, the layout and
IAM) is the queue through its sparse ``ready`` index
(:mod:`asyncmq_cloud.transports.dynamodb`, the operator's manual: claims,
ordering, shards, leases, idle polling, costs). Delayed jobs, retries with backoff
and ``delay_until`` wait in the DynamoDB delay table
(:mod:`asyncmq_cloud.delays.dynamodb`) until a scanner hands them over.
Completed, failed, expired and cancelled jobs get a TTL attribute ``retention``
seconds after they end (TTL only cleans up; DynamoDB deletes expired items
"typically within two days").

Nothing is created implicitly in production: ``await backend.provision()`` or
``asyncmq-cloud provision`` creates both tables for local development,
``create_missing=True`` does it on first use, ``terraform/`` in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig

from asyncmq_cloud.aws import AwsClients, AwsOptions, RetryMode
from asyncmq_cloud.backends._preset import PresetBackend
from asyncmq_cloud.backends._urls import build_delay_store
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.protocols import DelayStore, StateStore
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.redact import masked_repr
from asyncmq_cloud.resources import DELAY_TABLE_NAME, JOBS_TABLE_NAME
from asyncmq_cloud.stores.dynamodb import DEFAULT_MAX_PAYLOAD_BYTES, DynamoDBStateStore
from asyncmq_cloud.stores.offload import S3Offload, with_offload
from asyncmq_cloud.transports.dynamodb import DynamoDBTransport

#: Default retention of finished jobs before TTL may delete them: 7 days.
DEFAULT_RETENTION_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class DynamoDBSettings:
    """The settings of a :class:`DynamoDBBackend` besides the AWS client keywords (see its arguments)."""

    table: str = JOBS_TABLE_NAME
    delay_store: str | DelayStore = f"dynamodb://{DELAY_TABLE_NAME}"
    shards: int = 1
    retention: float | None = DEFAULT_RETENTION_SECONDS
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    spread: int = 3
    idle_poll: float = 0.05
    idle_poll_max: float = 4.0
    lease_check_interval: float = 30.0
    create_missing: bool = False
    offload: S3Offload | None = None

    def __repr__(self) -> str:
        return masked_repr(self)  # store URLs and secret options masked


class DynamoDBBackend(PresetBackend):
    """An AsyncMQ backend on DynamoDB alone, built from keywords.

    Args:
        table: the jobs table (the queue and the job records).
        delay_store: ``dynamodb://TABLE`` (default ``dynamodb://asyncmq-delays``), another
            store URL (``redis://...``) or a :class:`DelayStore`.
        shards: ready-index shards per queue (1..64; see "Shards" in the transport docs).
        retention: seconds a finished job is kept before TTL may delete it (``None`` = forever).
        max_payload_bytes: largest encoded job item accepted (≤ 400 KB item limit).
        spread: / idle_poll: / idle_poll_max: / lease_check_interval: see
            :class:`~asyncmq_cloud.transports.dynamodb.DynamoDBTransport`.
        create_missing: create missing tables on first use (development).
        offload: ``s3://BUCKET/PREFIX`` or an :class:`~asyncmq_cloud.stores.offload.S3Offload`:
            payloads and results above its threshold live in S3 (the claim check); ``None`` = off.
        endpoint_url: / region_name: the AWS endpoint (``AWS_ENDPOINT_URL_DYNAMODB`` works too).
        config: lifecycle knobs (:class:`LifecycleConfig`; ``lease_timeout`` is the lease).
        clients: a shared, caller-owned :class:`AwsClients`.
        retry_mode: / max_attempts: / aio_config: / client_kwargs: for the clients the backend creates.
    """

    _loop_bound_args = ("delay_store", "clients")

    def __init__(
        self,
        *,
        table: str = JOBS_TABLE_NAME,
        delay_store: str | DelayStore = f"dynamodb://{DELAY_TABLE_NAME}",
        shards: int = 1,
        retention: float | None = DEFAULT_RETENTION_SECONDS,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        spread: int = 3,
        idle_poll: float = 0.05,
        idle_poll_max: float = 4.0,
        lease_check_interval: float = 30.0,
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
    ) -> None:
        if not 1 <= shards <= 64:
            raise ConfigurationError(f"shards must be in 1..64, not {shards}")
        self.settings = DynamoDBSettings(
            table, delay_store, shards, retention, max_payload_bytes, spread, idle_poll, idle_poll_max,
            lease_check_interval, create_missing, None if offload is None else S3Offload.parse(offload),
        )  # fmt: skip
        aws = AwsOptions(endpoint_url, region_name, retry_mode, max_attempts, aio_config, client_kwargs)
        self._use_aws(aws, clients, create_missing=create_missing)
        config = config or LifecycleConfig()
        store, transport, delays = self._build(config)
        super().__init__(store, transport, delays, config=config)
        self.transport: DynamoDBTransport = transport
        self._provisioned = False

    def _build(self, config: LifecycleConfig) -> tuple[StateStore, DynamoDBTransport, DelayStore]:
        s = self.settings
        store = DynamoDBStateStore(
            s.table,
            clients=self.clients,
            completed_ttl=s.retention,
            max_payload_bytes=s.max_payload_bytes,
            ready_shards=s.shards,
        )
        transport = DynamoDBTransport(
            store,
            spread=s.spread,
            idle_poll=s.idle_poll,
            idle_poll_max=s.idle_poll_max,
            lease_check_interval=s.lease_check_interval,
            config=config,
        )
        delays = build_delay_store(s.delay_store, store=store, clients=self.clients)
        return with_offload(store, s.offload, clients=self.clients), transport, delays

    async def provision(self, queues: Sequence[str] = ()) -> None:
        """Create the jobs and delay tables (idempotent); queues need nothing of their own."""
        await super().provision(queues)


__all__ = ["DEFAULT_RETENTION_SECONDS", "DynamoDBBackend", "DynamoDBSettings"]
