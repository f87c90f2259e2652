"""DynamoDB capacity and SQS billing units, computed from what went over the wire.

No emulator reports consumed capacity faithfully (moto answers a constant, MiniStack
counts items), so ``cost`` computes it with DynamoDB's published rules:

* an item's size is the sum of its attribute names' and values' sizes: a string its UTF-8
  bytes, a binary its bytes, a number 1 byte plus 1 per two significant digits, a boolean
  or null 1, a list or map 3 bytes plus 1 per element plus the elements, a set its
  elements;
* a write costs ``ceil(max(size before, size after) / 1 KB)`` units (at least 1; twice in
  a transaction); a write that changes nothing (a failed condition) still costs the item;
* each global secondary index the write changes costs its projected item's size: an item
  entering or leaving the index one write, an item whose index key changed two (the old
  entry deleted, the new one written), an item whose projected attributes changed one;
* a read costs ``ceil(bytes read / 4 KB)`` units, halved for an eventually consistent
  read, doubled in a transaction; a ``Query`` or ``Scan`` reads what it evaluated
  (``ScannedCount``), at least one unit's half.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncmq_cloud.commands.cost.prices import READ_UNIT, SQS_CHUNK, WRITE_UNIT

Item = Mapping[str, Any]


def number_size(text: str) -> int:
    digits = text.lstrip("+-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return 1 + math.ceil(max(len(digits), 1) / 2)


def _binary_size(data: Any) -> int:
    return len(base64.b64decode(data))


_SIZES: dict[str, Callable[[Any], int]] = {
    "S": lambda data: len(str(data).encode()),
    "N": lambda data: number_size(str(data)),
    "B": _binary_size,
    "BOOL": lambda data: 1,
    "NULL": lambda data: 1,
    "L": lambda data: 3 + sum(1 + value_size(element) for element in data),
    "M": lambda data: 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in data.items()),
    "SS": lambda data: sum(len(str(element).encode()) for element in data),
    "NS": lambda data: sum(number_size(str(element)) for element in data),
    "BS": lambda data: sum(_binary_size(element) for element in data),
}


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one wire-format value (``{"S": ...}``, ``{"M": {...}}``, ...)."""
    ((kind, data),) = value.items()
    size = _SIZES.get(kind)
    if size is None:
        raise ValueError(f"unknown DynamoDB value type {kind!r}")
    return size(data)


def item_size(item: Item | None) -> int:
    """Bytes of an item in DynamoDB's wire format (0 for no item)."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


@dataclass(frozen=True)
class Index:
    """A global secondary index: its key attributes and what it projects."""

    name: str
    keys: tuple[str, ...]
    projection: str = "ALL"  # ALL, KEYS_ONLY or INCLUDE
    included: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableShape:
    keys: tuple[str, ...]
    indexes: tuple[Index, ...] = field(default=())

    def key_of(self, item: Item) -> dict[str, Any]:
        return {name: item[name] for name in self.keys}

    def projected(self, index: Index, item: Item | None) -> dict[str, Any] | None:
        """The index's entry for ``item`` (None: the item is not in the index)."""
        if not item or any(name not in item for name in index.keys):
            return None
        if index.projection == "ALL":
            return dict(item)
        names = {*self.keys, *index.keys, *(index.included if index.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in names}


def shape_of(description: Mapping[str, Any]) -> TableShape:
    """A :class:`TableShape` from ``DescribeTable``'s ``Table``."""
    indexes = tuple(
        Index(
            name=gsi["IndexName"],
            keys=tuple(key["AttributeName"] for key in gsi["KeySchema"]),
            projection=gsi.get("Projection", {}).get("ProjectionType", "ALL"),
            included=tuple(gsi.get("Projection", {}).get("NonKeyAttributes", ())),
        )
        for gsi in description.get("GlobalSecondaryIndexes", ())
    )
    return TableShape(keys=tuple(key["AttributeName"] for key in description["KeySchema"]), indexes=indexes)


def units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


def index_write_units(shape: TableShape, old: Item | None, new: Item | None) -> int:
    """Write units the table's indexes take for an item going from ``old`` to ``new``."""
    total = 0
    for index in shape.indexes:
        before, after = shape.projected(index, old), shape.projected(index, new)
        if before == after:  # not in it before or after, or its entry unchanged
            continue
        if before is None or after is None:
            total += units(item_size(before or after), WRITE_UNIT)
        elif any(before[name] != after[name] for name in index.keys):
            total += units(item_size(before), WRITE_UNIT) + units(item_size(after), WRITE_UNIT)
        else:
            total += units(max(item_size(before), item_size(after)), WRITE_UNIT)
    return total


def write_units(shape: TableShape, old: Item | None, new: Item | None, transactional: bool) -> tuple[int, int]:
    """(table units, index units) of one item write."""
    table = units(max(item_size(old), item_size(new)), WRITE_UNIT) * (2 if transactional else 1)
    return table, index_write_units(shape, old, new)


def read_units(sizes: Sequence[int], consistent: bool, transactional: bool = False) -> float:
    """Read units of one read of items of ``sizes`` together (a ``Query`` page, one ``GetItem``)."""
    whole = units(sum(sizes), READ_UNIT)
    return whole * (2.0 if transactional else 1.0 if consistent else 0.5)


def sqs_message_size(message: Mapping[str, Any]) -> int:
    """A message's billed bytes: its body and its attributes (names, types and values)."""
    size = len(str(message.get("MessageBody", message.get("Body", ""))).encode())
    for name, attribute in (message.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(attribute.get("DataType", "")).encode())
        size += len(str(attribute.get("StringValue", attribute.get("BinaryValue", ""))).encode())
    return size


def sqs_request_units(payload: int) -> int:
    """Billed requests of one SQS request carrying ``payload`` bytes (each 64 KB chunk is one)."""
    return units(payload, SQS_CHUNK)
