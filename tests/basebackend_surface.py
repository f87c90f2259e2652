"""Snapshot of AsyncMQ's ``BaseBackend`` surface (method names, signatures, abstractness).

``python -m tests.basebackend_surface`` prints the snapshot of the installed
AsyncMQ; ``tests/test_drift_basebackend.py`` compares it with the recorded one.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from asyncmq.backends.base import BaseBackend


def surface() -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for name, member in inspect.getmembers(BaseBackend):
        if name.startswith("__") or not callable(member):
            continue
        methods[name] = {
            "signature": str(inspect.signature(member)),
            "abstract": bool(getattr(member, "__isabstractmethod__", False)),
            "async": inspect.iscoroutinefunction(member),
        }
    return methods


if __name__ == "__main__":
    import asyncmq

    print(json.dumps({"asyncmq": asyncmq.__version__, "methods": surface()}, indent=2, sort_keys=True))
