"""Drift test: AsyncMQ's BaseBackend surface must match the recorded snapshot.

An AsyncMQ release that adds, removes or changes a backend hook fails here
instead of silently falling back to the base class's default in production.
When it fails: review the new hook, implement it in ``core/lifecycle.py`` (the job
lifecycle) or ``core/backend.py`` (administration), then regenerate the snapshot with
``python -m tests.basebackend_surface > tests/data/basebackend_surface.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from asyncmq.backends.base import BaseBackend

from asyncmq_cloud.core.lifecycle import CloudBackend
from tests.basebackend_surface import surface

RECORDED = json.loads((Path(__file__).parent / "data" / "basebackend_surface.json").read_text())["methods"]

#: Hooks whose BaseBackend default is fine for CloudBackend (pure helpers built
#: on the methods we do implement).
INHERITED_ON_PURPOSE = {
    "_inspect_all_jobs",
    "_job_cleanup_timestamp",
    "_prepare_retry_payload",
    "_purge_jobs_by_state",
    "clean_jobs",
    "count",
    "drain_queue",
    "get_job_count_by_types",
    "get_jobs",
    "inspect_jobs",
    "obliterate_queue",
}


def test_basebackend_surface_unchanged() -> None:
    current = surface()
    added = sorted(set(current) - set(RECORDED))
    removed = sorted(set(RECORDED) - set(current))
    changed = sorted(name for name in set(current) & set(RECORDED) if current[name] != RECORDED[name])
    assert (added, removed, changed) == ([], [], []), (
        f"AsyncMQ BaseBackend drifted: added={added} removed={removed} changed={changed}"
    )


def test_cloudbackend_overrides_every_hook() -> None:
    not_overridden = sorted(
        name
        for name in RECORDED
        if getattr(CloudBackend, name) is getattr(BaseBackend, name) and name not in INHERITED_ON_PURPOSE
    )
    assert not_overridden == []
    assert not CloudBackend.__abstractmethods__
