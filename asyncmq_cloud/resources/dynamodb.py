"""DynamoDB resources: the jobs table, the delay table, their indexes and TTL, and ``provision_table``."""

from __future__ import annotations

import asyncio
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
