"""The one description of every AWS resource the code expects.

``provision`` (development), the tests and the Terraform drift test all read the
specs below; nothing else spells a table, index or TTL attribute name.

Resources described here:

* the DynamoDB **jobs table** (:func:`jobs_table`, used by
  :class:`~asyncmq_cloud.stores.dynamodb.DynamoDBStateStore`): single-table
  design with string keys ``pk``/``sk``, the ``by_state`` GSI
  (``{queue}#{state}`` / created time, keys only) and the sparse ``active``
  GSI (``ACTIVE#{shard}`` / heartbeat, keys only); TTL attribute ``expires_at``;
  on-demand billing.
* the DynamoDB **delay table** (:func:`delay_table`, used by
  :class:`~asyncmq_cloud.delays.dynamodb.DynamoDBDelayStore`): string keys
  ``pk`` (``Q#{queue}#S#{shard}``) / ``sk`` (job id), the ``due`` GSI
  (``due_pk = "{queue}#{bucket}"`` / ``run_at`` as a number, keys only); TTL
  attribute ``expires_at`` for clean-up of orphans only, never as the timer;
  on-demand billing.

* an **SQS queue** per AsyncMQ queue and its dead-letter queue
  (:class:`SqsQueueSpec`, used by :class:`~asyncmq_cloud.transports.sqs.SQSTransport`):
  ``{prefix}{queue}`` (+ ``.fifo``) and ``{prefix}{queue}-dlq`` (+ ``.fifo``), both
  ≤ 80 of ``[A-Za-z0-9_-]``; the queue's ``RedrivePolicy`` points at the DLQ with
  ``maxReceiveCount``; visibility timeout, retention and optional KMS.

* a **Kafka topic** per AsyncMQ queue and its dead-letter topic (:class:`KafkaTopicSpec`,
  used by :class:`~asyncmq_cloud.transports.kafka.KafkaTransport`): ``{prefix}{queue}`` and
  ``{prefix}{queue}-dlq``, ≤ 249 of ``[A-Za-z0-9._-]``, with the configured partitions,
  replication factor and topic configs; consumer group ``{group_prefix}{queue}``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from asyncmq_cloud.aws import error_code, translated
from asyncmq_cloud.errors import ConfigurationError, InvalidNameError, TransientError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

AttrType = Literal["S", "N", "B"]
Projection = Literal["KEYS_ONLY", "ALL", "INCLUDE"]

#: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
TABLE_NAME_MIN = 3
TABLE_NAME_MAX = 255

#: Names inside the jobs table (the store's codec imports these).
JOBS_TABLE_NAME = "asyncmq-jobs"
PK = "pk"
SK = "sk"
BY_STATE_INDEX = "by_state"
BY_STATE_PK = "gsi1pk"
BY_STATE_SK = "gsi1sk"
ACTIVE_INDEX = "active"
ACTIVE_PK = "act_pk"
ACTIVE_SK = "act_sk"
#: Sparse index of claimable jobs (only ``DynamoDBBackend`` writes its keys).
READY_INDEX = "ready"
READY_PK = "rdy_pk"
READY_SK = "rdy_sk"
TTL_ATTRIBUTE = "expires_at"

#: Names inside the delay table (``delays/dynamodb.py`` imports these); its
#: keys and TTL attribute reuse ``PK``, ``SK`` and ``TTL_ATTRIBUTE``.
DELAY_TABLE_NAME = "asyncmq-delays"
DUE_INDEX = "due"
DUE_PK = "due_pk"
DUE_SK = "run_at"


def validate_table_name(name: str) -> str:
    """Return ``name`` or raise :class:`InvalidNameError` naming the broken rule."""
    if not isinstance(name, str):
        raise InvalidNameError(f"DynamoDB table name must be a string, not {type(name).__name__}")
    if not TABLE_NAME_MIN <= len(name) <= TABLE_NAME_MAX:
        raise InvalidNameError(
            f"DynamoDB table name {name[:60]!r} is {len(name)} characters; "
            f"the rule is {TABLE_NAME_MIN} to {TABLE_NAME_MAX} characters"
        )
    if not TABLE_NAME_RE.match(name):
        raise InvalidNameError(
            f"DynamoDB table name {name!r} may only contain letters, digits, '_', '-' and '.' "
            f"(rule: {TABLE_NAME_RE.pattern})"
        )
    return name


@dataclass(frozen=True)
class KeyAttribute:
    """A key attribute (table or index) and its scalar type."""

    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index (on-demand tables give it no throughput settings)."""

    name: str
    hash_key: KeyAttribute
    range_key: KeyAttribute | None = None
    projection: Projection = "KEYS_ONLY"
    non_key_attributes: tuple[str, ...] = ()

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.hash_key, self.range_key)

    def to_api(self) -> dict[str, Any]:
        projection: dict[str, Any] = {"ProjectionType": self.projection}
        if self.projection == "INCLUDE":
            projection["NonKeyAttributes"] = list(self.non_key_attributes)
        return {"IndexName": self.name, "KeySchema": self.key_schema(), "Projection": projection}


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table: keys, GSIs, TTL attribute and billing mode."""

    name: str
    hash_key: KeyAttribute
    range_key: KeyAttribute | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    billing_mode: Literal["PAY_PER_REQUEST"] = "PAY_PER_REQUEST"
    tags: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        validate_table_name(self.name)

    def with_name(self, name: str) -> TableSpec:
        """The same layout under another (validated) name."""
        return replace(self, name=name)

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.hash_key, self.range_key)

    def attribute_definitions(self) -> list[dict[str, str]]:
        """Every key attribute of the table and its indexes, once."""
        found: dict[str, str] = {}
        for key in (self.hash_key, self.range_key, *(k for i in self.indexes for k in (i.hash_key, i.range_key))):
            if key is not None:
                if found.setdefault(key.name, key.type) != key.type:
                    raise ConfigurationError(f"attribute {key.name!r} is declared with two types")
        return [{"AttributeName": n, "AttributeType": t} for n, t in found.items()]

    def create_table_kwargs(self) -> dict[str, Any]:
        """Arguments of ``CreateTable`` for this spec."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": self.key_schema(),
            "AttributeDefinitions": self.attribute_definitions(),
            "BillingMode": self.billing_mode,
        }
        if self.indexes:
            kwargs["GlobalSecondaryIndexes"] = [i.to_api() for i in self.indexes]
        if self.tags:
            kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in self.tags]
        return kwargs


def _key_schema(hash_key: KeyAttribute, range_key: KeyAttribute | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key is not None:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


def jobs_table(name: str = JOBS_TABLE_NAME) -> TableSpec:
    """The jobs table of :class:`~asyncmq_cloud.stores.dynamodb.DynamoDBStateStore`."""
    return TableSpec(
        name=name,
        hash_key=KeyAttribute(PK),
        range_key=KeyAttribute(SK),
        indexes=(
            IndexSpec(BY_STATE_INDEX, KeyAttribute(BY_STATE_PK), KeyAttribute(BY_STATE_SK, "N")),
            IndexSpec(ACTIVE_INDEX, KeyAttribute(ACTIVE_PK), KeyAttribute(ACTIVE_SK, "N")),
            IndexSpec(READY_INDEX, KeyAttribute(READY_PK), KeyAttribute(READY_SK, "N")),
        ),
        ttl_attribute=TTL_ATTRIBUTE,
    )


def delay_table(name: str = DELAY_TABLE_NAME) -> TableSpec:
    """The delay table of :class:`~asyncmq_cloud.delays.dynamodb.DynamoDBDelayStore`.

    ``name`` is validated like every table name (:func:`validate_table_name`).
    """
    return TableSpec(
        name=name,
        hash_key=KeyAttribute(PK),
        range_key=KeyAttribute(SK),
        indexes=(IndexSpec(DUE_INDEX, KeyAttribute(DUE_PK), KeyAttribute(DUE_SK, "N")),),
        ttl_attribute=TTL_ATTRIBUTE,
    )


#: Every resource spec with its default name (the drift test walks this).
RESOURCES: tuple[TableSpec, ...] = (jobs_table(), delay_table())


async def provision_table(client: DynamoDBClient, spec: TableSpec, *, timeout: float = 300.0) -> None:
    """Create ``spec``'s table if missing, wait for ACTIVE, enable TTL. Idempotent.

    An existing table with other keys or missing indexes raises
    :class:`ConfigurationError` (it is never altered or dropped).
    """
    resource = f"DynamoDB table {spec.name!r}"
    with translated(resource):
        description = await _describe(client, spec.name)
        if description is None:
            try:
                await client.create_table(**spec.create_table_kwargs())
            except Exception as exc:
                if error_code(exc) != "ResourceInUseException":  # created meanwhile by someone else
                    raise
        description = await _wait_active(client, spec.name, timeout)
        _check_layout(spec, description)
        if spec.ttl_attribute:
            await _enable_ttl(client, spec.name, spec.ttl_attribute)


async def _describe(client: DynamoDBClient, name: str) -> dict[str, Any] | None:
    try:
        response = await client.describe_table(TableName=name)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return dict(response["Table"])


async def _wait_active(client: DynamoDBClient, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        description = await _describe(client, name)
        if description is not None:
            indexes = description.get("GlobalSecondaryIndexes") or []
            if description.get("TableStatus") == "ACTIVE" and all(
                i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes
            ):
                return description
        if time.monotonic() >= deadline:
            raise TransientError(f"DynamoDB table {name!r} not ACTIVE after {timeout:.0f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def _check_layout(spec: TableSpec, description: dict[str, Any]) -> None:
    if description.get("KeySchema") != spec.key_schema():
        raise ConfigurationError(
            f"DynamoDB table {spec.name!r} has key schema {description.get('KeySchema')}; "
            f"asyncmq-cloud expects {spec.key_schema()} (use another table name)"
        )
    present = {i["IndexName"]: i.get("KeySchema") for i in description.get("GlobalSecondaryIndexes") or []}
    for index in spec.indexes:
        if present.get(index.name) != index.key_schema():
            raise ConfigurationError(
                f"DynamoDB table {spec.name!r} lacks index {index.name!r} with keys {index.key_schema()}; "
                "add it (terraform/) or use a new table"
            )


async def _enable_ttl(client: DynamoDBClient, name: str, attribute: str) -> None:
    current = (await client.describe_time_to_live(TableName=name)).get("TimeToLiveDescription", {})
    status = current.get("TimeToLiveStatus")
    if status in ("ENABLED", "ENABLING"):
        if current.get("AttributeName") != attribute:
            raise ConfigurationError(
                f"DynamoDB table {name!r} has TTL on {current.get('AttributeName')!r}; expected {attribute!r}"
            )
        return
    try:
        await client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )
    except Exception as exc:
        # Two provisioners racing: the loser is told TTL "is already enabled".
        if error_code(exc) != "ValidationException" or "already enabled" not in str(exc).lower():
            raise


__all__ = [
    "ACTIVE_INDEX",
    "BY_STATE_INDEX",
    "DELAY_TABLE_NAME",
    "DUE_INDEX",
    "JOBS_TABLE_NAME",
    "READY_INDEX",
    "READY_PK",
    "READY_SK",
    "RESOURCES",
    "TTL_ATTRIBUTE",
    "IndexSpec",
    "KeyAttribute",
    "TableSpec",
    "delay_table",
    "jobs_table",
    "provision_table",
    "validate_table_name",
]


# -- SQS ---------------------------------------------------------------------------------
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
#: "A queue name can have up to 80 characters. Valid values: alphanumeric characters,
#: hyphens (-), and underscores (_)"; a FIFO queue name ends in ``.fifo`` (counted in the 80).
SQS_QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
SQS_QUEUE_NAME_MAX = 80
SQS_FIFO_SUFFIX = ".fifo"
#: The dead-letter queue of ``NAME`` is ``NAME-dlq`` (``NAME-dlq.fifo`` for FIFO).
SQS_DLQ_SUFFIX = "-dlq"
#: A DLQ keeps messages for the longest retention SQS allows (14 days) so they can be inspected.
SQS_MAX_RETENTION_SECONDS = 1_209_600


def validate_sqs_queue_name(name: str, *, fifo: bool = False) -> str:
    """Return ``name`` (with ``.fifo`` when ``fifo``) or raise :class:`InvalidNameError` naming the rule.

    The name must leave room for the ``-dlq`` suffix of its dead-letter queue.
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError("SQS queue name must be a non-empty string")
    base = name.removesuffix(SQS_FIFO_SUFFIX) if fifo else name
    if fifo and not name.endswith(SQS_FIFO_SUFFIX):
        raise InvalidNameError(f"SQS FIFO queue name {name!r} must end with {SQS_FIFO_SUFFIX!r}")
    if not base or not SQS_QUEUE_NAME_RE.match(base):
        raise InvalidNameError(
            f"SQS queue name {name!r} may only contain letters, digits, '-' and '_'"
            f"{' before the .fifo suffix' if fifo else ''} (rule: {SQS_QUEUE_NAME_RE.pattern}); "
            "AsyncMQ queue names may contain '.', which SQS forbids: rename the queue or the prefix"
        )
    longest = len(base) + len(SQS_DLQ_SUFFIX) + (len(SQS_FIFO_SUFFIX) if fifo else 0)
    if longest > SQS_QUEUE_NAME_MAX:
        raise InvalidNameError(
            f"SQS queue name {name[:60]!r} is too long: its dead-letter queue name would be {longest} "
            f"characters and SQS allows {SQS_QUEUE_NAME_MAX} (prefix + queue name + {SQS_DLQ_SUFFIX!r}"
            f"{' + .fifo' if fifo else ''}); shorten the queue name or the queue_prefix"
        )
    return name


@dataclass(frozen=True)
class SqsQueueSpec:
    """An SQS queue and its dead-letter queue, as ``provision`` creates them.

    Attributes:
        name: the queue name (``.fifo`` included for FIFO).
        fifo: a FIFO queue (its DLQ is FIFO too, as SQS requires).
        visibility_timeout: the queue's default visibility timeout (s).
        max_receive_count: receives after which SQS moves a message to the DLQ.
        retention_seconds: message retention of the queue (``None`` = SQS default, 4 days).
        kms_key_id: KMS key for server-side encryption (``None`` = SQS-managed SSE).
        kms_data_key_reuse_seconds: how long SQS reuses a data key (fewer KMS calls).
        attributes: further ``CreateQueue`` attributes, passed through.
    """

    name: str
    fifo: bool = False
    visibility_timeout: int = 30
    max_receive_count: int = 5
    retention_seconds: int | None = None
    kms_key_id: str | None = None
    kms_data_key_reuse_seconds: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        validate_sqs_queue_name(self.name, fifo=self.fifo)

    @property
    def dlq_name(self) -> str:
        base = self.name.removesuffix(SQS_FIFO_SUFFIX) if self.fifo else self.name
        return base + SQS_DLQ_SUFFIX + (SQS_FIFO_SUFFIX if self.fifo else "")

    def _common(self) -> dict[str, str]:
        attrs: dict[str, str] = {}
        if self.fifo:
            attrs["FifoQueue"] = "true"
        if self.kms_key_id:
            attrs["KmsMasterKeyId"] = self.kms_key_id
            if self.kms_data_key_reuse_seconds is not None:
                attrs["KmsDataKeyReusePeriodSeconds"] = str(self.kms_data_key_reuse_seconds)
        return attrs

    def dlq_attributes(self) -> dict[str, str]:
        """``CreateQueue`` attributes of the dead-letter queue (longest retention)."""
        return {**self._common(), "MessageRetentionPeriod": str(SQS_MAX_RETENTION_SECONDS)}

    def queue_attributes(self, dlq_arn: str) -> dict[str, str]:
        """``CreateQueue`` attributes of the queue, redriving to ``dlq_arn``."""
        attrs = {
            **self._common(),
            "VisibilityTimeout": str(self.visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.max_receive_count}),
        }
        if self.retention_seconds is not None:
            attrs["MessageRetentionPeriod"] = str(self.retention_seconds)
        attrs.update(dict(self.attributes))
        return attrs


__all__ += [
    "SQS_DLQ_SUFFIX",
    "SQS_FIFO_SUFFIX",
    "SQS_QUEUE_NAME_MAX",
    "SqsQueueSpec",
    "validate_sqs_queue_name",
]


@dataclass(frozen=True)
class KafkaTopicSpec:
    """A Kafka topic and its dead-letter topic, as ``provision`` creates them.

    Attributes:
        name: the topic of the queue.
        dlq_name: its dead-letter topic.
        group: the consumer group that runs the queue.
        partitions: / replication_factor: of both topics.
        config: further topic configs (``retention.ms`` ...).
    """

    name: str
    dlq_name: str
    group: str
    partitions: int
    replication_factor: int
    config: tuple[tuple[str, str], ...] = ()
