"""The job state machine, written once: state names, state sets and the rules every store follows.

Pure (no I/O, nothing from ``stores/``). The memory store calls these predicates
directly; the DynamoDB store builds its condition expressions from the same sets
(``stores/_dynamodb_codec.py``); the Redis store's Lua scripts get the sets as
generated Lua tables (``stores/_redis_scripts.py``). The store contract suite
(``tests/contract/test_store_contract.py``) checks every store's answer against
:func:`claimable` and :func:`transition_allowed`, case by case.

The state names are AsyncMQ's (``asyncmq.core.enums.State`` values) plus the two
this package adds: ``waiting-children`` and ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from asyncmq_cloud.core.records import CANCELLED as CANCELLED
from asyncmq_cloud.core.records import WAITING_CHILDREN as WAITING_CHILDREN
from asyncmq_cloud.core.records import JobRecord

WAITING: Final = "waiting"
DELAYED: Final = "delayed"
ACTIVE: Final = "active"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
EXPIRED: Final = "expired"

#: Every state a store may hold (``count_jobs`` of the DynamoDB store counts these).
ALL_STATES: Final = (WAITING, ACTIVE, COMPLETED, FAILED, DELAYED, EXPIRED, WAITING_CHILDREN, CANCELLED)

#: A claim may take a job in these states at any time.
CLAIMABLE: Final = frozenset({WAITING})
#: ... in these once ``run_at <= now``.
CLAIMABLE_WHEN_DUE: Final = frozenset({DELAYED})
#: ... in these once the lease (:func:`lease_time`) is older than ``stale_before`` (take-over).
CLAIMABLE_WHEN_STALE: Final = frozenset({ACTIVE})
#: The state a claim moves a job to; the only state with an owner, heartbeat and lease.
CLAIMED: Final = ACTIVE
#: States ``promote`` moves to :data:`WAITING`.
PROMOTABLE: Final = frozenset({DELAYED})
#: Final states: nothing runs the job again unless it is retried (DynamoDB TTL applies to them).
TERMINAL: Final = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})
#: States a job can be cancelled from (``cancel_job``).
CANCELLABLE: Final = frozenset({WAITING, DELAYED, ACTIVE, WAITING_CHILDREN})
#: States ``retry_job`` moves back to :data:`WAITING`.
RETRYABLE: Final = frozenset({FAILED, EXPIRED})


def lease_time(record: JobRecord) -> float:
    """When the holder of an active job last showed it was alive.

    Args:
        record: the job record.

    Returns:
        Its heartbeat, or without one (a job made ``active`` by ``set_state``) its last write.
    """
    return record.heartbeat if record.heartbeat is not None else record.updated_at


def claimable(record: JobRecord | None, now: float, stale_before: float | None) -> bool:
    """Whether ``claim(queue, id, token, now, stale_before=...)`` takes this job.

    Args:
        record: the job as stored (``None``: no such job).
        now: the claimer's clock (a delayed job is due when ``run_at <= now``).
        stale_before: take over an active job whose lease is older than this; ``None`` never does.

    Returns:
        True if the claim succeeds.
    """
    if record is None:
        return False
    if record.state in CLAIMABLE:
        return True
    if record.state in CLAIMABLE_WHEN_DUE:
        return record.run_at is not None and record.run_at <= now
    if record.state in CLAIMABLE_WHEN_STALE:
        return stale_before is not None and lease_time(record) < stale_before
    return False


def transition_allowed(
    record: JobRecord | None, expect_states: Collection[str] | None, expect_owner: str | None
) -> bool:
    """Whether a conditional ``transition`` (or its size check) finds its conditions true.

    Args:
        record: the job as stored (``None``: no such job).
        expect_states: the state must be one of these (``None``: any; empty: none).
        expect_owner: the claim token must equal this (``None``: any owner or none).

    Returns:
        True if the transition is written (a payload too large raises instead).
    """
    if record is None:
        return False
    if expect_states is not None and record.state not in expect_states:
        return False
    return expect_owner is None or record.owner == expect_owner


def heartbeat_allowed(record: JobRecord | None, token: str | None) -> bool:
    """Whether ``heartbeat(queue, id, now, token)`` refreshes this job's lease.

    Args:
        record: the job as stored (``None``: no such job).
        token: the owner's claim token (``None``: any owner).

    Returns:
        True for a claimed job held by ``token`` (or by anyone without a token).
    """
    return transition_allowed(record, {CLAIMED}, token)


def stalled(record: JobRecord, older_than: float) -> bool:
    """Whether ``list_stalled(older_than)`` reports this job (an active job with an old lease).

    Args:
        record: the job record.
        older_than: the cut-off time.

    Returns:
        True if the job is claimed and its :func:`lease_time` is before ``older_than``.
    """
    return record.state == CLAIMED and lease_time(record) < older_than


__all__ = [
    "ACTIVE",
    "ALL_STATES",
    "CANCELLABLE",
    "CANCELLED",
    "CLAIMABLE",
    "CLAIMABLE_WHEN_DUE",
    "CLAIMABLE_WHEN_STALE",
    "CLAIMED",
    "COMPLETED",
    "DELAYED",
    "EXPIRED",
    "FAILED",
    "PROMOTABLE",
    "RETRYABLE",
    "TERMINAL",
    "WAITING",
    "WAITING_CHILDREN",
    "claimable",
    "heartbeat_allowed",
    "lease_time",
    "stalled",
    "transition_allowed",
]
