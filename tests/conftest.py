"""Shared test configuration.

Service fixtures (real processes on 127.0.0.1) live in ``tests/plugins/services.py``;
store and backend fixtures in ``tests/plugins/stores.py`` and
``tests/plugins/store_*.py``. A service that cannot be started skips its tests
locally and fails them under ``CI=true``.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.plugins.services",
    "tests.plugins.stores",
    "tests.plugins.store_redis",
    "tests.plugins.store_dynamodb",
    "tests.plugins.backend_sqs",
    "tests.plugins.backend_dynamodb",
    "tests.plugins.backend_kafka",
    "tests.plugins.e2e",
]


#: The service markers (a test with none of them needs no service).
SERVICE_MARKERS = ("redis", "moto", "localstack", "ministack", "elasticmq", "kafka")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``first`` run first (stable order otherwise): under ``pytest -n N`` the
    suite's longest test starts at once instead of becoming the tail of the run.

    ``ASYNCMQ_TEST_RAN_WITHOUT_SERVICES`` (comma-separated paths, set by ``scripts/test.sh``):
    the tests under those paths that need no service already ran before the services started;
    they are deselected here, and reported as such, instead of running twice.
    """
    items.sort(key=lambda item: item.get_closest_marker("first") is None)
    ran = [path.strip().rstrip("/") for path in os.environ.get("ASYNCMQ_TEST_RAN_WITHOUT_SERVICES", "").split(",")]
    ran = [path for path in ran if path]
    if not ran:
        return

    def already_ran(item: pytest.Item) -> bool:
        path = item.nodeid.split("::", 1)[0]
        under = any(path == p or path.startswith(p + "/") for p in ran)
        return under and not any(item.get_closest_marker(m) for m in SERVICE_MARKERS)

    done = [item for item in items if already_ran(item)]
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = [item for item in items if not already_ran(item)]
