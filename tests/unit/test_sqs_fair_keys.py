"""``fair_key``: how a job's payload becomes the ``MessageGroupId`` of its reference (no I/O)."""

from __future__ import annotations

import logging

import pytest

from asyncmq_cloud import SQSBackend
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.transports._sqs_fair import fair_key_function, group_id, with_groups

JOB = {"id": "j1", "task": "app.send", "args": ["acme", 2], "kwargs": {"tenant": {"id": 7}, "to": "x"}}


def test_a_path_walks_keys_and_list_indexes() -> None:
    assert fair_key_function("args.0")(JOB) == "acme"  # type: ignore[misc]
    assert fair_key_function("kwargs.tenant.id")(JOB) == "7"  # type: ignore[misc]
    assert fair_key_function("task")(JOB) == "app.send"  # type: ignore[misc]
    for missing in ("args.5", "kwargs.nobody", "kwargs.to.deeper", "args.x"):
        assert fair_key_function(missing)(JOB) is None, missing  # type: ignore[misc]
    assert fair_key_function(None) is None


def test_groups_sqs_refuses_are_hashed_stably() -> None:
    assert group_id("tenant-42:eu/1") == "tenant-42:eu/1"
    assert group_id(None) is None
    spaced = group_id("Acme Corp")
    assert spaced == group_id("Acme Corp") and spaced != group_id("Acme_Corp")
    assert spaced is not None and spaced.startswith("h-") and len(spaced) == 42
    assert group_id("x" * 129) != group_id("x" * 128) == "x" * 128
    assert group_id("\udcff lone surrogate") is not None  # never raises


def test_a_raising_function_gives_no_group_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = fair_key_function(lambda job: job["kwargs"]["missing"])
    with caplog.at_level(logging.WARNING, logger="asyncmq_cloud.sqs"):
        assert key({"id": "j9", "kwargs": {}}) is None  # type: ignore[misc]
    assert "fair_key failed on job j9 (KeyError)" in caplog.text


def test_groups_go_on_the_entries_that_have_one() -> None:
    entries = with_groups([{"MessageBody": "a"}, {"MessageBody": "b", "MessageGroupId": "q"}], ["t1", None])
    assert entries == [{"MessageBody": "a", "MessageGroupId": "t1"}, {"MessageBody": "b", "MessageGroupId": "q"}]


def test_the_backend_declares_the_key_and_refuses_bad_ones() -> None:
    assert SQSBackend(store="memory://").transport.capabilities.fair_key is None
    backend = SQSBackend(store="memory://", fair_key="kwargs.tenant.id")
    assert backend.transport.capabilities.fair_key(JOB) == "7"  # type: ignore[misc]
    for bad in ("kwargs..x", "kwargs tenant", "", "kwargs.tenant\n", 42):
        with pytest.raises(ConfigurationError, match="fair_key"):
            SQSBackend(store="memory://", fair_key=bad)
