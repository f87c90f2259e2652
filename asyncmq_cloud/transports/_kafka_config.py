"""Settings of :class:`~asyncmq_cloud.transports.kafka.KafkaTransport` and the aiokafka keywords they make.

Every knob is documented on :class:`KafkaTransportConfig`; the security settings
(TLS, SASL PLAIN/SCRAM, Amazon MSK IAM) become the keyword arguments that
aiokafka's producer, consumer and admin client share (:func:`client_kwargs`);
:func:`consumer_kwargs` adds a queue's group settings.
Anything aiokafka accepts that is not declared here goes through
``producer_options`` / ``consumer_options`` unchanged.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from asyncmq_cloud.config import _Model
from asyncmq_cloud.errors import ConfigurationError, InvalidNameError

# Limits: https://kafka.apache.org/documentation/ (topic names: kafka.common.internals.Topic;
# message.max.bytes / max.request.size broker and producer defaults).
#: Longest topic name Kafka accepts.
MAX_TOPIC_NAME_LENGTH = 249
#: Characters of a legal topic name.
TOPIC_NAME_RE = re.compile(r"^[A-Za-z0-9._\-]+$")
#: Default broker ``message.max.bytes`` / producer ``max.request.size`` (about 1 MB). Only job
#: references (about 70 bytes) travel on Kafka, so payload size is the state store's limit.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
#: Suffix of each queue's dead-letter topic.
DLQ_SUFFIX = "-dlq"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class KafkaTransportConfig(_Model):
    """Settings of the Kafka transport (the module docstring of ``transports/kafka.py`` explains each).

    Attributes:
        bootstrap_servers: ``host:port[,host:port...]`` of the cluster.
        topic_prefix: prepended to every AsyncMQ queue name to make its topic
            (``asyncmq-emails``); the dead-letter topic adds ``-dlq``.
        group_prefix: prepended to the queue name to make its consumer group
            (``None`` = ``topic_prefix``).
        client_id: client id the broker logs and quotas see.
        partitions: partitions of each topic created by ``provision`` /
            ``create_missing``: the most workers that run one queue in parallel.
        queue_partitions: partitions of the topics of named queues, overriding
            ``partitions`` (``{"billing": 1}``: one partition, so that queue's jobs start
            in the order they were added, as on AsyncMQ's own backends).
        replication_factor: replicas of each created topic (3 on a production
            cluster / MSK; 1 for one local broker).
        topic_config: further topic configs for created topics (``retention.ms`` ...).
        create_missing: create a missing topic (and its DLQ) on first use instead of
            raising :class:`~asyncmq_cloud.errors.ResourceMissingError` (development).
        linger_ms: producer batching window; 0 still batches the sends that pile up while a
            produce request is in flight, and costs an awaited ``Queue.add`` nothing.
        max_batch_size: producer batch size in bytes per partition.
        compression_type: producer compression (``None``, gzip, snappy, lz4, zstd).
        request_timeout_ms: how long a send may wait for the broker's ``acks=all``
            answer (idempotent retries included) before the caller gets an error.
        max_in_flight_per_partition: most records of one partition fetched and not
            yet finished; the partition's fetching pauses at this bound.
        commit_interval: seconds between offset commits (also on rebalance and close).
        revoke_timeout: longest wait, on a rebalance, for the jobs of revoked
            partitions to finish before their offsets are committed.
        session_timeout_ms: consumer group liveness: a SIGKILLed worker's partitions move
            to the other members after this long.
        heartbeat_interval_ms: consumer group liveness: how often the consumer heartbeats.
        max_poll_interval_ms: consumer group liveness: longest gap between two polls
            before the member leaves the group.
        fetch_max_wait_ms: how long the broker holds an empty fetch (an idle consumer polls this
            often; a record that arrives is answered at once, so it is not pick-up latency).
            Must be below ``request_timeout_ms``; left unset, it is at most half of it.
        security_protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
        sasl_mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
        sasl_username: SASL PLAIN/SCRAM user name.
        sasl_password: SASL PLAIN/SCRAM password.
        ssl_cafile: TLS CA file that verifies the broker.
        ssl_certfile: TLS client certificate (mutual TLS).
        ssl_keyfile: TLS client key (mutual TLS).
        ssl_password: password of ``ssl_keyfile``.
        ssl_check_hostname: verify the broker's host name against its certificate.
        msk_iam: Amazon MSK IAM authentication (SASL_SSL + OAUTHBEARER with tokens signed by
            the AWS credential chain; needs ``pip install "asyncmq-cloud[msk]"``).
        msk_region: AWS region of the MSK cluster (``None`` = ``AWS_REGION``/``AWS_DEFAULT_REGION``).
        producer_options: further ``AIOKafkaProducer`` keywords, passed through.
        consumer_options: further ``AIOKafkaConsumer`` keywords, passed through.
    """

    bootstrap_servers: str = Field("localhost:9092", min_length=1)
    topic_prefix: str = Field("asyncmq-", max_length=100, pattern=r"^[A-Za-z0-9._\-]*$")
    group_prefix: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9._\-]*$")
    client_id: str = Field("asyncmq-cloud", min_length=1)
    partitions: int = Field(4, ge=1, le=10_000)
    queue_partitions: dict[str, Annotated[int, Field(ge=1, le=10_000)]] = Field(default_factory=dict)
    replication_factor: int = Field(1, ge=1, le=32)
    topic_config: dict[str, str] = Field(default_factory=dict)
    create_missing: bool = False
    linger_ms: int = Field(0, ge=0, le=10_000)
    max_batch_size: int = Field(16_384, ge=1024, le=DEFAULT_MAX_MESSAGE_BYTES)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    request_timeout_ms: int = Field(30_000, ge=1000, le=900_000)
    max_in_flight_per_partition: int = Field(200, ge=1, le=100_000)
    commit_interval: float = Field(1.0, gt=0, le=60)
    revoke_timeout: float = Field(20.0, ge=0, le=600)
    session_timeout_ms: int = Field(15_000, ge=1000, le=1_800_000)
    heartbeat_interval_ms: int = Field(5_000, ge=100, le=600_000)
    max_poll_interval_ms: int = Field(300_000, ge=1000, le=3_600_000)
    fetch_max_wait_ms: int = Field(5000, ge=0, le=30_000)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    msk_iam: bool = False
    msk_region: str | None = None
    producer_options: dict[str, Any] = Field(default_factory=dict)
    consumer_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        if "@" in value:  # never echoed: the text before '@' would be a user name and password
            raise ValueError(
                "bootstrap_servers must be HOST[:PORT][,HOST[:PORT]...] without credentials "
                "(give them as sasl_username/sasl_password)"
            )
        for server in (part.strip() for part in value.split(",")):
            host, colon, port = server.rpartition(":")
            if (server.startswith("[") and server.endswith("]")) or (server and not colon):
                continue  # a host alone: aiokafka's default port 9092
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bootstrap_servers must be HOST[:PORT][,HOST[:PORT]...], not {server!r}")
        return value

    @model_validator(mode="after")
    def _fetch_wait_below_request_timeout(self) -> KafkaTransportConfig:
        # Unset, the wait follows a short request_timeout_ms (consumer_kwargs); set, it must fit.
        if "fetch_max_wait_ms" in self.model_fields_set and self.fetch_max_wait_ms >= self.request_timeout_ms:
            raise ValueError(
                "fetch_max_wait_ms must be lower than request_timeout_ms: the broker holds an empty fetch "
                "that long, and a request that outlives request_timeout_ms fails"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> KafkaTransportConfig:
        if "heartbeat_interval_ms" in self.model_fields_set and self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be lower than session_timeout_ms")
        if self.msk_iam:
            if self.security_protocol != "SASL_SSL" or self.sasl_mechanism not in (None, "OAUTHBEARER"):
                raise ValueError("msk_iam needs security_protocol='SASL_SSL' (and no other sasl_mechanism)")
            if self.sasl_username or self.sasl_password:
                raise ValueError("msk_iam signs with AWS credentials; do not set sasl_username/sasl_password")
            return self
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol={self.security_protocol} needs a sasl_mechanism")
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL, not {self.security_protocol}"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(f"sasl_mechanism={self.sasl_mechanism} needs sasl_username and sasl_password")
        if self.sasl_mechanism == "OAUTHBEARER" and not all(
            "sasl_oauth_token_provider" in options for options in (self.producer_options, self.consumer_options)
        ):
            raise ValueError(
                "sasl_mechanism=OAUTHBEARER without msk_iam needs sasl_oauth_token_provider in both "
                "producer_options and consumer_options"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("mutual TLS needs both ssl_certfile and ssl_keyfile")
        return self

    @property
    def groups(self) -> str:
        return self.topic_prefix if self.group_prefix is None else self.group_prefix

    def topic(self, queue: str) -> str:
        """The topic of AsyncMQ queue ``queue``; :class:`InvalidNameError` says which rule it breaks."""
        return _topic_name(f"{self.topic_prefix}{queue}", queue)

    def partitions_of(self, queue: str) -> int:
        """Partitions of the topic ``provision`` / ``create_missing`` creates for ``queue``."""
        return self.queue_partitions.get(queue, self.partitions)

    def dlq_topic(self, queue: str) -> str:
        """The dead-letter topic of ``queue``."""
        return _topic_name(f"{self.topic_prefix}{queue}{DLQ_SUFFIX}", queue)

    def group(self, queue: str) -> str:
        """The consumer group that runs ``queue``."""
        return f"{self.groups}{queue}"


def _topic_name(name: str, queue: str) -> str:
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidNameError(
            f"Kafka topic {name[:40]!r}... for queue {queue!r} is {len(name)} characters; "
            f"the limit is {MAX_TOPIC_NAME_LENGTH} (topic_prefix + queue + {DLQ_SUFFIX!r})"
        )
    if not TOPIC_NAME_RE.match(name) or name in (".", ".."):
        raise InvalidNameError(f"Kafka topic {name!r} may only contain letters, digits, '.', '_' and '-'")
    return name


def msk_token_provider(region: str | None) -> Any:
    """An aiokafka OAUTHBEARER token provider that signs Amazon MSK IAM tokens with the AWS credential chain.

    Tokens come from ``aws-msk-iam-sasl-signer-python`` (the AWS library, extra ``msk``) and
    are reused until 60 s before they expire; signing runs in a thread (it is synchronous
    and may fetch credentials over the network).
    """
    try:
        from aiokafka.abc import AbstractTokenProvider
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError as exc:
        raise ConfigurationError(
            'msk_iam=True needs aws-msk-iam-sasl-signer-python: pip install "asyncmq-cloud[msk]"'
        ) from exc
    signing_region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not signing_region:
        raise ConfigurationError("msk_iam=True needs msk_region or AWS_REGION/AWS_DEFAULT_REGION")

    class MSKTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
        region = signing_region
        _cached: tuple[str, float] | None = None

        async def token(self) -> str:
            if self._cached is None or self._cached[1] - 60.0 < time.time():
                token, expiry_ms = await asyncio.to_thread(MSKAuthTokenProvider.generate_auth_token, self.region)
                self._cached = (str(token), float(expiry_ms) / 1000.0)
            return self._cached[0]

    return MSKTokenProvider()


def client_kwargs(config: KafkaTransportConfig) -> dict[str, Any]:
    """Connection and security keywords shared by aiokafka's producer, consumer and admin client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap_servers,
        "client_id": config.client_id,
        "request_timeout_ms": config.request_timeout_ms,
        "security_protocol": config.security_protocol,
    }
    if config.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        context = create_ssl_context(
            cafile=config.ssl_cafile,
            certfile=config.ssl_certfile,
            keyfile=config.ssl_keyfile,
            password=config.ssl_password.get_secret_value() if config.ssl_password else None,
        )
        context.check_hostname = config.ssl_check_hostname
        kwargs["ssl_context"] = context
    if config.msk_iam:
        kwargs["sasl_mechanism"] = "OAUTHBEARER"
        kwargs["sasl_oauth_token_provider"] = msk_token_provider(config.msk_region)
    elif config.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = config.sasl_mechanism
        kwargs["sasl_plain_username"] = config.sasl_username
        kwargs["sasl_plain_password"] = config.sasl_password.get_secret_value() if config.sasl_password else None
        if config.sasl_mechanism == "OAUTHBEARER":  # the caller's provider, for the admin client too
            kwargs["sasl_oauth_token_provider"] = config.producer_options["sasl_oauth_token_provider"]
    return kwargs


def consumer_kwargs(config: KafkaTransportConfig, common: dict[str, Any], queue: str) -> dict[str, Any]:
    """Keywords of the consumer of ``queue``'s group: ``common`` plus the group and poll settings."""
    c = config
    return {
        **common,
        "group_id": c.group(queue),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": c.session_timeout_ms,
        # the default (5 s) drops to a third of a shorter session_timeout_ms (decision 72)
        "heartbeat_interval_ms": c.heartbeat_interval_ms
        if "heartbeat_interval_ms" in c.model_fields_set
        else min(c.heartbeat_interval_ms, c.session_timeout_ms // 3),
        "max_poll_interval_ms": c.max_poll_interval_ms,
        # the default wait (5 s) halves below a shorter request_timeout_ms: a held fetch must not time out
        "fetch_max_wait_ms": min(c.fetch_max_wait_ms, c.request_timeout_ms // 2),
        **c.consumer_options,
    }
