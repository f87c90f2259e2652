"""Item layout of the DynamoDB jobs table: keys, attribute encoding, sizes, update expressions.

Pure functions only (no I/O) so the layout can be read — and tested — in one
place. ``stores/dynamodb.py`` turns these into calls; its module docstring is
the operator's description of the same layout.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from typing import Any

from asyncmq_cloud.core import states
from asyncmq_cloud.core.protocols import WAITING_CHILDREN as WAITING_CHILDREN
from asyncmq_cloud.core.protocols import JobRecord
from asyncmq_cloud.core.validation import decode_payload
from asyncmq_cloud.core.validation import encode_payload as encode_payload
from asyncmq_cloud.resources import ACTIVE_INDEX as ACTIVE_INDEX
from asyncmq_cloud.resources import ACTIVE_PK as ACTIVE_PK
from asyncmq_cloud.resources import ACTIVE_SK as ACTIVE_SK
from asyncmq_cloud.resources import BY_STATE_INDEX as BY_STATE_INDEX
from asyncmq_cloud.resources import BY_STATE_PK as BY_STATE_PK
from asyncmq_cloud.resources import BY_STATE_SK as BY_STATE_SK
from asyncmq_cloud.resources import PK as PK
from asyncmq_cloud.resources import READY_INDEX as READY_INDEX
from asyncmq_cloud.resources import READY_PK as READY_PK
from asyncmq_cloud.resources import READY_SK as READY_SK
from asyncmq_cloud.resources import SK as SK
from asyncmq_cloud.resources import TTL_ATTRIBUTE as TTL_ATTRIBUTE

#: Largest item DynamoDB stores, names and values included: "400 KB", read as 400,000
#: bytes (the service accepts a little more, ~409,600; moto stops at 405,000).
#: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items
DYNAMODB_MAX_ITEM_BYTES = 400_000
#: Room kept free under the item limit for what later writes add to a job item
#: (owner token, heartbeat, active-index keys, TTL): about 200 bytes in practice.
ITEM_HEADROOM_BYTES = 1024
#: ``TransactWriteItems``: at most 100 actions, 4 MB in all, no two on one item.
#: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html
TRANSACT_MAX_ACTIONS = 100
TRANSACT_MAX_BYTES = 4 * 1024 * 1024
#: ``BatchGetItem``: at most 100 keys per call.
BATCH_GET_MAX_KEYS = 100
#: Conditional updates ``promote`` keeps in flight at once.
PROMOTE_CONCURRENCY = 16
#: Partitions of the sparse ``active`` index; ``list_stalled`` queries each one.
ACTIVE_SHARDS = 4

#: States ``count_jobs`` counts (one index query each).
KNOWN_STATES = states.ALL_STATES
#: States that get the TTL attribute when ``completed_ttl`` is set.
TERMINAL_STATES = states.TERMINAL

JOB_SK = "JOB"
DEPS_SK = "DEPS"
META_SK = "META"
REP_PREFIX = "REP#"
WORKERS_PK = "WORKERS"
REGISTRY_PK = "REGISTRY"
REGISTRY_SK = "QUEUES"
LOCK_SK = "LOCK"

# Every attribute is addressed through ``#name`` placeholders: several of these
# (state, owner, queue, ttl) are DynamoDB reserved words.
NAMES = {
    "#pk": PK,
    "#state": "state",
    "#queue": "queue",
    "#id": "job_id",
    "#payload": "payload",
    "#run_at": "run_at",
    "#owner": "owner",
    "#hb": "heartbeat",
    "#upd": "updated_at",
    "#created": "created_at",
    "#g1pk": BY_STATE_PK,
    "#g1sk": BY_STATE_SK,
    "#apk": ACTIVE_PK,
    "#ask": ACTIVE_SK,
    "#exp": TTL_ATTRIBUTE,
    "#rpk": READY_PK,
    "#rsk": READY_SK,
    "#prio": "prio_base",
}

#: The ready index sorts by ``priority * PRIORITY_SCALE + ready time``: lower AsyncMQ
#: priority first, then first ready first. Ready times (~1.8e9 s) stay below the scale
#: for centuries; DynamoDB adds the two exactly (38-digit decimals).
PRIORITY_SCALE = Decimal(10) ** 11
#: AsyncMQ's default priority, for a job whose payload has none.
DEFAULT_PRIORITY = 5
#: Most ready-index shards per queue.
MAX_READY_SHARDS = 64

Item = dict[str, Any]


# -- keys ------------------------------------------------------------------------
def job_pk(queue: str, job_id: str) -> str:
    # Queue names never contain '#', so the key is unambiguous for any job id.
    return f"Q#{queue}#J#{job_id}"


def key(pk: str, sk: str) -> Item:
    return {PK: {"S": pk}, SK: {"S": sk}}


def job_key(queue: str, job_id: str) -> Item:
    return key(job_pk(queue, job_id), JOB_SK)


def deps_key(queue: str, job_id: str) -> Item:
    return key(job_pk(queue, job_id), DEPS_SK)


def queue_meta_key(queue: str) -> Item:
    return key(f"Q#{queue}", META_SK)


def repeatable_key(queue: str, rep_key: str) -> Item:
    return key(f"Q#{queue}", f"{REP_PREFIX}{rep_key}")


def worker_key(worker_id: str) -> Item:
    return key(WORKERS_PK, f"W#{worker_id}")


def lock_key(name: str) -> Item:
    return key(f"LOCK#{name}", LOCK_SK)


def registry_key() -> Item:
    return key(REGISTRY_PK, REGISTRY_SK)


def state_partition(queue: str, state: str) -> str:
    return f"{queue}#{state}"


def ready_shard(queue: str, job_id: str, shards: int) -> str:
    """The ready-index partition of a job: ``{queue}#R#{0..shards-1}`` by a hash of its id."""
    return f"{queue}#R#{zlib.crc32(job_id.encode()) % shards}"


def ready_shards_of(queue: str, shards: int) -> list[str]:
    return [f"{queue}#R#{i}" for i in range(shards)]


def job_id_from_pk(pk: str, queue: str) -> str:
    """The job id in a job item's ``pk`` (``Q#{queue}#J#{id}``)."""
    prefix = f"Q#{queue}#J#"
    if not pk.startswith(prefix):
        raise ValueError(f"{pk!r} is not a job key of queue {queue!r}")
    return pk[len(prefix) :]


def priority_base(payload: Mapping[str, Any]) -> Decimal:
    """``priority * PRIORITY_SCALE`` for the ready index (non-numeric priorities count as the default)."""
    priority = payload.get("priority", DEFAULT_PRIORITY)
    if isinstance(priority, bool) or not isinstance(priority, int | float) or not math.isfinite(priority):
        priority = DEFAULT_PRIORITY
    return Decimal(int(priority)) * PRIORITY_SCALE


def active_shard(queue: str, job_id: str) -> str:
    return f"ACTIVE#{zlib.crc32(f'{queue}#{job_id}'.encode()) % ACTIVE_SHARDS}"


# -- values ----------------------------------------------------------------------
def num(value: float) -> dict[str, str]:
    """A DynamoDB number: plain decimal notation that round-trips the float exactly."""
    return {"N": format(Decimal(repr(float(value))), "f")}


def ttl_num(epoch: float) -> dict[str, str]:
    """TTL attributes must be whole epoch seconds."""
    return {"N": str(math.ceil(epoch))}


def get_num(item: Item, name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if value else None


def get_str(item: Item, name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if value else None


def get_set(item: Item, name: str) -> set[str]:
    value = item.get(name)
    return set(value["SS"]) if value else set()


def attribute_size(value: Mapping[str, Any]) -> int:
    """Billed size of one attribute value (numbers counted at their text length, an upper bound)."""
    (kind, raw), *_ = value.items()
    if kind in ("S", "N"):
        return len(str(raw).encode("utf-8"))
    if kind == "B":
        return len(raw)
    if kind in ("SS", "NS"):
        return sum(len(str(v).encode("utf-8")) for v in raw)
    if kind == "BS":
        return sum(len(v) for v in raw)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_size(v) for k, v in raw.items())
    return 1  # BOOL, NULL


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Size of an item as DynamoDB counts it: attribute names plus values."""
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


# -- job items -------------------------------------------------------------------
def job_values(record: JobRecord, *, created: float, now: float, expires: float | None, ready_shards: int = 0) -> Item:
    """Every non-key attribute of a job item as written by ``create``.

    With ``ready_shards`` the item carries its priority base and, while ``waiting``,
    the ready-index keys.
    """
    values: Item = {
        "#queue": {"S": record.queue},
        "#id": {"S": record.id},
        "#state": {"S": record.state},
        "#payload": {"S": encode_payload(record.payload)},
        "#upd": num(now),
        "#created": num(created),
        "#g1pk": {"S": state_partition(record.queue, record.state)},
        "#g1sk": num(created),
    }
    if record.run_at is not None:
        values["#run_at"] = num(record.run_at)
    if record.owner is not None:
        values["#owner"] = {"S": record.owner}
    if record.heartbeat is not None:
        values["#hb"] = num(record.heartbeat)
    if record.state == states.CLAIMED:
        values["#apk"] = {"S": active_shard(record.queue, record.id)}
        values["#ask"] = num(record.heartbeat if record.heartbeat is not None else now)
    if expires is not None:
        values["#exp"] = ttl_num(expires)
    if ready_shards:
        base = priority_base(record.payload)
        values["#prio"] = {"N": format(base, "f")}
        if record.state in states.CLAIMABLE:
            values["#rpk"] = {"S": ready_shard(record.queue, record.id, ready_shards)}
            values["#rsk"] = {"N": format(base + Decimal(repr(float(now))), "f")}
    return values


def job_item(record: JobRecord, *, created: float, now: float, expires: float | None, ready_shards: int = 0) -> Item:
    """The full job item (used to measure it before writing)."""
    values = job_values(record, created=created, now=now, expires=expires, ready_shards=ready_shards)
    return {**job_key(record.queue, record.id), **{NAMES[k]: v for k, v in values.items()}}


#: Set on a job item once another job depends on it; a completion that returns the
#: item without it lets the lifecycle skip AsyncMQ's ``resolve_dependency`` call.
HAS_CHILDREN = "has_children"


def job_upsert(record: JobRecord, *, created: float, now: float, expires: float | None, ready_shards: int = 0) -> Item:
    """``UpdateItem`` arguments that insert or fully overwrite a job item.

    An update rather than a put so that ``created_at`` (the list order) survives
    an overwrite, as in the memory store.
    """
    values = job_values(record, created=created, now=now, expires=expires, ready_shards=ready_shards)
    sets = [f"{name} = :{name[1:]}" for name in values if name not in ("#created", "#g1sk")]
    sets += ["#created = if_not_exists(#created, :created)", "#g1sk = if_not_exists(#g1sk, :created)"]
    optional = ("#run_at", "#owner", "#hb", "#apk", "#ask", "#exp") + (("#rpk", "#rsk") if ready_shards else ())
    removes = [n for n in optional if n not in values]
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    used = set(values) | set(removes) | {"#created", "#g1sk"}
    return {
        "Key": job_key(record.queue, record.id),
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {n: NAMES[n] for n in used},
        "ExpressionAttributeValues": {f":{name[1:]}": v for name, v in values.items() if name != "#g1sk"},
    }


def record_from_item(item: Item) -> JobRecord:
    return JobRecord(
        queue=str(item["queue"]["S"]),
        id=str(item["job_id"]["S"]),
        state=str(item["state"]["S"]),
        payload=decode_payload(item["payload"]["S"]),
        run_at=get_num(item, "run_at"),
        owner=get_str(item, "owner"),
        heartbeat=get_num(item, "heartbeat"),
        updated_at=get_num(item, "updated_at") or 0.0,
        has_children=bool(item.get(HAS_CHILDREN, {}).get("BOOL", False)),
    )


def flag_has_children(update: Item) -> Item:
    """Add ``has_children = true`` to a :func:`job_upsert` (a parent inside a flow)."""
    expression = update["UpdateExpression"]
    sets, _, removes = expression.partition(" REMOVE ")
    flagged = f"{sets}, {HAS_CHILDREN} = :has_children" + (f" REMOVE {removes}" if removes else "")
    values = {**update["ExpressionAttributeValues"], ":has_children": {"BOOL": True}}
    return {**update, "UpdateExpression": flagged, "ExpressionAttributeValues": values}


def estimated_job_size(queue: str, job_id: str, state: str, payload: Mapping[str, Any]) -> int:
    """Size of a job item holding ``payload`` with every optional attribute present."""
    record = JobRecord(queue, job_id, state, dict(payload), run_at=0.0, owner="x" * 64, heartbeat=0.0)
    return item_size(job_item(record, created=1e10, now=1e10, expires=1e10))


# -- dependency items ------------------------------------------------------------
def deps_updates(queue: str, edges: Mapping[str, Iterable[str]]) -> list[Item]:
    """``UpdateItem`` arguments adding ``child -> parents`` edges: one per dependency item.

    A job's dependency item holds ``pending`` (parents it waits for) and
    ``children`` (jobs waiting for it); a job both child and parent gets one
    action, so a transaction never touches one item twice.
    """
    pending: dict[str, set[str]] = {}
    children: dict[str, set[str]] = {}
    for child, parents in edges.items():
        for parent in parents:
            pending.setdefault(child, set()).add(parent)
            children.setdefault(parent, set()).add(child)
    updates: list[Item] = []
    for job_id in sorted(pending.keys() | children.keys()):
        adds, values = [], {}
        if pending.get(job_id):
            adds.append("pending :p")
            values[":p"] = {"SS": sorted(pending[job_id])}
        if children.get(job_id):
            adds.append("children :c")
            values[":c"] = {"SS": sorted(children[job_id])}
        updates.append(
            {
                "Key": deps_key(queue, job_id),
                "UpdateExpression": "ADD " + ", ".join(adds),
                "ExpressionAttributeValues": values,
            }
        )
    return updates


def update_size(update: Mapping[str, Any]) -> int:
    """Upper bound of the item an ``UpdateItem`` of ``deps_updates`` writes."""
    values = update.get("ExpressionAttributeValues", {})
    return item_size(update["Key"]) + sum(attribute_size(v) + 8 for v in values.values())


def state_in(allowed: Collection[str], tag: str) -> tuple[str, Item]:
    """``#state IN (:{tag}0, ...)`` over ``allowed`` and its values.

    Args:
        allowed: the states (at least one).
        tag: a placeholder prefix unique within the expression (letters only).
    """
    values: Item = {f":{tag}{i}": {"S": state} for i, state in enumerate(sorted(allowed))}
    return f"#state IN ({', '.join(values)})", values


def claim_condition(*, take_over: bool) -> tuple[str, Item]:
    """The ``ConditionExpression`` of ``claim``: :func:`asyncmq_cloud.core.states.claimable` in DynamoDB terms.

    Needs ``:now`` (and ``:stale``); a missing heartbeat compares false, so ``updated_at`` stands in.

    Args:
        take_over: also accept a job whose lease is older than ``:stale``.
    """
    (ready, values), (due, due_values) = state_in(states.CLAIMABLE, "ready"), state_in(states.CLAIMABLE_WHEN_DUE, "due")
    parts = [ready, f"({due} AND #run_at <= :now)"]
    if take_over:
        leased, leased_values = state_in(states.CLAIMABLE_WHEN_STALE, "leased")
        parts.append(f"({leased} AND (#hb < :stale OR (attribute_not_exists(#hb) AND #upd < :stale)))")
        due_values.update(leased_values)
    return f"attribute_exists(#pk) AND ({' OR '.join(parts)})", {**values, **due_values}


def transition_condition(expect_states: Collection[str] | None, expect_owner: str | None) -> tuple[str, Item]:
    """The ``ConditionExpression`` of ``transition``: ``states.transition_allowed`` in DynamoDB terms.

    Args:
        expect_states: the state must be one of these (``None``: any; must not be empty).
        expect_owner: the owner must equal this (``None``: any).
    """
    conditions, values = ["attribute_exists(#pk)"], Item()
    if expect_states is not None:
        expected, values = state_in(expect_states, "s")
        conditions.append(expected)
    if expect_owner is not None:
        values[":expect_owner"] = {"S": expect_owner}
        conditions.append("#owner = :expect_owner")
    return " AND ".join(conditions), values
