"""``SQSBackend``: AsyncMQ on Amazon SQS, by changing one settings line.

::

    from asyncmq.conf.global_settings import Settings as Base
    from asyncmq_cloud import SQSBackend

    class Settings(Base):
        backend = SQSBackend(queue_prefix="myapp-", store="dynamodb://asyncmq-jobs")

Job references travel on SQS (:mod:`asyncmq_cloud.transports.sqs`, whose module
docstring is the operator's manual: visibility, delays, FIFO, costs, IAM, KMS);
jobs live in the state store (DynamoDB by default, or Redis); delays longer than
SQS holds (900 s, none on FIFO) wait in the delay store (``dynamodb://asyncmq-delays``
with a DynamoDB store, the same Redis with a Redis store).

Nothing is created implicitly in production: ``await backend.provision(["default"])``
or ``asyncmq-cloud provision --queue default`` creates tables and queues for local
development, ``create_missing=True`` does it on first use, and the Terraform module
in ``terraform/`` is the production path.
"""

from __future__ import annotations

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
from asyncmq_cloud.transports.sqs import SQSTransport


@dataclass(frozen=True)
class SQSSettings:
    """The settings of an :class:`SQSBackend` besides the AWS client keywords (see its arguments)."""

    queue_prefix: str = ""
    store: str | StateStore = f"dynamodb://{JOBS_TABLE_NAME}"
    delay_store: str | DelayStore | None = None
    fifo: bool = False
    create_missing: bool = False
    visibility_timeout: int = 30
    max_receive_count: int = 5
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    offload: S3Offload | None = None

    def __repr__(self) -> str:
        return masked_repr(self)  # store URLs and secret options masked


class SQSBackend(PresetBackend):
    """An AsyncMQ backend on SQS + a state store + a delay store, built from keywords.

    Args:
        queue_prefix: prepended to every SQS queue name (``[A-Za-z0-9_-]``).
        store: ``dynamodb://TABLE``, ``redis://HOST:PORT/DB[?prefix=P]``, ``rediss://...``,
            ``memory://`` or a :class:`StateStore` instance.
        delay_store: a URL of the same forms, a :class:`DelayStore`, or ``None``
            for the one that matches ``store``.
        fifo: use SQS FIFO queues (every delay then goes through the delay store).
        create_missing: create missing tables and queues on first use (development).
        endpoint_url: AWS endpoint for SQS and DynamoDB (LocalStack, ElasticMQ, moto);
            ``AWS_ENDPOINT_URL_SQS``/``AWS_ENDPOINT_URL_DYNAMODB`` work too.
        region_name: AWS region (else ``AWS_DEFAULT_REGION``/``AWS_REGION``/profile).
        visibility_timeout: seconds a received message stays invisible.
        max_receive_count: receives before SQS moves a message to the DLQ.
        config: lifecycle knobs (:class:`LifecycleConfig`).
        offload: ``s3://BUCKET/PREFIX`` or an :class:`~asyncmq_cloud.stores.offload.S3Offload`:
            payloads and results above its threshold live in S3 (the claim check); ``None`` = off.
        clients: a shared, caller-owned :class:`AwsClients` (then no endpoint/region/retry args).
        retry_mode: / max_attempts: / aio_config: / client_kwargs: passed to the
            :class:`AwsClients` the backend creates (and closes).
        **transport_options: further :class:`~asyncmq_cloud.transports.sqs.SQSTransportConfig`
            fields (``fifo_group``, ``kms_key_id``, ``kms_data_key_reuse_seconds``,
            ``queue_attributes``, ``retention_seconds``, ``linger``, ``busy_linger``, ``ack_linger``,
            ``receive_pacing``, ``extend_threshold``).
    """

    _loop_bound_args = ("store", "delay_store", "clients")

    def __init__(
        self,
        *,
        queue_prefix: str = "",
        store: str | StateStore = f"dynamodb://{JOBS_TABLE_NAME}",
        delay_store: str | DelayStore | None = None,
        fifo: bool = False,
        create_missing: bool = False,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        visibility_timeout: int = 30,
        max_receive_count: int = 5,
        config: LifecycleConfig | None = None,
        clients: AwsClients | None = None,
        retry_mode: RetryMode = "standard",
        max_attempts: int | None = None,
        aio_config: AioConfig | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        offload: str | S3Offload | None = None,
        **transport_options: Any,
    ) -> None:
        self.settings = SQSSettings(
            queue_prefix, store, delay_store, fifo, create_missing, visibility_timeout, max_receive_count,
            dict(transport_options), None if offload is None else S3Offload.parse(offload),
        )  # fmt: skip
        aws = AwsOptions(endpoint_url, region_name, retry_mode, max_attempts, aio_config, client_kwargs)
        self._use_aws(aws, clients, create_missing=create_missing)
        state_store, transport, delays = self._build(config or LifecycleConfig())
        super().__init__(state_store, transport, delays, config=config)
        self.transport: SQSTransport = transport
        self._provisioned = False

    def _build(self, config: LifecycleConfig) -> tuple[StateStore, SQSTransport, DelayStore]:
        s = self.settings
        state_store = build_state_store(s.store, clients=self.clients)
        transport = SQSTransport(
            clients=self.clients,
            queue_prefix=s.queue_prefix,
            fifo=s.fifo,
            create_missing=s.create_missing,
            visibility_timeout=s.visibility_timeout,
            max_receive_count=s.max_receive_count,
            **s.transport_options,
        )
        delays = build_delay_store(s.delay_store, store=state_store, clients=self.clients)
        return with_offload(state_store, s.offload, clients=self.clients), transport, delays

    async def provision(self, queues: Sequence[str] = ()) -> None:
        """Create the tables and, for each of ``queues``, the SQS queue and its DLQ (idempotent)."""
        await super().provision(queues)


__all__ = ["SQSBackend", "SQSSettings"]
