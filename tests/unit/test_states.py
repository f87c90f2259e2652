"""The job state machine of ``asyncmq_cloud/core/states.py`` and what the stores generate from it.

The stores' answers are checked against these predicates case by case in
``tests/contract/test_store_contract.py``; here the predicates themselves are pinned
to hand-written expectations, and the generated Lua tables and DynamoDB conditions
to the sets.
"""

from __future__ import annotations

from typing import Any

import pytest
from asyncmq.core.enums import State

from asyncmq_cloud.core import lifecycle, states
from asyncmq_cloud.core.protocols import JobRecord
from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores import _redis_scripts


def _job(state: str, **fields: Any) -> JobRecord:
    return JobRecord("q", "j", state, {"id": "j"}, **fields)


def test_state_names_are_asyncmqs() -> None:
    assert {s.value for s in State} - {"queued"} == set(states.ALL_STATES) - {states.WAITING_CHILDREN, states.CANCELLED}
    assert len(set(states.ALL_STATES)) == len(states.ALL_STATES) == 8
    for name in ("CLAIMABLE", "CLAIMABLE_WHEN_DUE", "CLAIMABLE_WHEN_STALE", "TERMINAL", "CANCELLABLE", "RETRYABLE"):
        assert getattr(states, name) <= set(states.ALL_STATES), name
    assert not states.TERMINAL & (states.CLAIMABLE | states.CLAIMABLE_WHEN_DUE | states.CLAIMABLE_WHEN_STALE)
    assert states.RETRYABLE <= states.TERMINAL and not states.CANCELLABLE & states.TERMINAL


def test_lifecycle_uses_the_state_sets() -> None:
    assert lifecycle.CANCELLABLE is states.CANCELLABLE
    assert lifecycle.RETRYABLE is states.RETRYABLE
    assert codec.TERMINAL_STATES == states.TERMINAL and codec.KNOWN_STATES == states.ALL_STATES


def test_lease_time_is_the_heartbeat_else_the_last_write() -> None:
    assert states.lease_time(_job("active", heartbeat=10.0, updated_at=50.0)) == 10.0
    assert states.lease_time(_job("active", updated_at=50.0)) == 50.0


@pytest.mark.parametrize(
    ("record", "now", "stale_before", "expected"),
    [
        (None, 100.0, 200.0, False),
        (_job("waiting"), 100.0, None, True),
        (_job("delayed", run_at=100.0), 100.0, None, True),
        (_job("delayed", run_at=100.5), 100.0, 1e9, False),
        (_job("delayed"), 1e9, 1e9, False),  # delayed by update_job_state, no run_at: never due
        (_job("active", heartbeat=10.0, updated_at=90.0), 100.0, None, False),  # no stale_before: never
        (_job("active", heartbeat=10.0, updated_at=90.0), 100.0, 20.0, True),  # by the heartbeat ...
        (_job("active", heartbeat=10.0, updated_at=90.0), 100.0, 10.0, False),  # ... strictly older
        (_job("active", heartbeat=95.0, updated_at=10.0), 100.0, 20.0, False),  # a fresh heartbeat wins
        (_job("active", updated_at=10.0), 100.0, 20.0, True),  # no heartbeat: by the last write
        (_job("active", updated_at=30.0), 100.0, 20.0, False),
        *[(_job(s, heartbeat=1.0, run_at=1.0), 1e9, 1e9, False) for s in sorted(states.TERMINAL)],
        (_job(states.WAITING_CHILDREN), 1e9, 1e9, False),
    ],
)
def test_claimable(record: JobRecord | None, now: float, stale_before: float | None, expected: bool) -> None:
    assert states.claimable(record, now, stale_before) is expected


@pytest.mark.parametrize(
    ("record", "expect_states", "expect_owner", "expected"),
    [
        (None, None, None, False),
        (_job("completed"), None, None, True),
        (_job("active", owner="t"), {"active"}, "t", True),
        (_job("active", owner="t"), {"active"}, "u", False),
        (_job("active"), None, "t", False),  # an owner is expected, none is held
        (_job("active", owner="t"), {"waiting", "delayed"}, None, False),
        (_job("waiting"), set(), None, False),
        (_job("failed"), states.RETRYABLE, None, True),
    ],
)
def test_transition_allowed(
    record: JobRecord | None, expect_states: set[str] | None, expect_owner: str | None, expected: bool
) -> None:
    assert states.transition_allowed(record, expect_states, expect_owner) is expected


def test_heartbeat_and_stalled() -> None:
    held = _job("active", owner="t", heartbeat=10.0, updated_at=90.0)
    assert states.heartbeat_allowed(held, "t") and states.heartbeat_allowed(held, None)
    assert not states.heartbeat_allowed(held, "u") and not states.heartbeat_allowed(_job("waiting"), None)
    assert states.stalled(held, 11.0) and not states.stalled(held, 10.0)
    assert states.stalled(_job("active", updated_at=5.0), 6.0)
    assert not states.stalled(_job("waiting", updated_at=5.0), 6.0)


def test_redis_scripts_get_the_sets_generated() -> None:
    header = _redis_scripts.lua_state_sets()
    assert "local CLAIMABLE = { ['waiting'] = true }" in header
    assert "local CLAIMABLE_WHEN_DUE = { ['delayed'] = true }" in header
    assert "local CLAIMABLE_WHEN_STALE = { ['active'] = true }" in header
    assert "local PROMOTABLE = { ['delayed'] = true }" in header
    assert "local CLAIMED = 'active'" in header
    readers = {
        "claim": ["CLAIMABLE[state]", "CLAIMABLE_WHEN_DUE[state]", "CLAIMABLE_WHEN_STALE[state]", "CLAIMED"],
        "promote": ["PROMOTABLE[state]"],
        "heartbeat": ["~= CLAIMED"],
    }
    for script, uses in readers.items():
        text = _redis_scripts.load_script(script)
        assert text.startswith(header)
        for use in uses:
            assert use in text[len(header) :], f"state_{script}.lua does not read {use}"
    assert not _redis_scripts.load_script("acquire_lock").startswith(header)


def test_dynamodb_claim_condition_is_built_from_the_sets() -> None:
    plain, values = codec.claim_condition(take_over=False)
    assert ":stale" not in plain and "#hb" not in plain
    taking, taking_values = codec.claim_condition(take_over=True)
    assert "#hb < :stale OR (attribute_not_exists(#hb) AND #upd < :stale)" in taking
    claimable = states.CLAIMABLE | states.CLAIMABLE_WHEN_DUE | states.CLAIMABLE_WHEN_STALE
    assert {v["S"] for v in taking_values.values()} == claimable
    assert {v["S"] for v in values.values()} == states.CLAIMABLE | states.CLAIMABLE_WHEN_DUE
    assert all(name in taking for name in taking_values)


def test_dynamodb_transition_condition() -> None:
    assert codec.transition_condition(None, None) == ("attribute_exists(#pk)", {})
    condition, values = codec.transition_condition({"active", "cancelled"}, "tok")
    assert condition == "attribute_exists(#pk) AND #state IN (:s0, :s1) AND #owner = :expect_owner"
    assert values == {":s0": {"S": "active"}, ":s1": {"S": "cancelled"}, ":expect_owner": {"S": "tok"}}
