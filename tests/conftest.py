"""Shared test configuration.

Service fixtures (real processes on 127.0.0.1) live in ``tests/plugins/services.py``;
store and backend fixtures in ``tests/plugins/stores.py`` and
``tests/plugins/store_*.py``. A service that cannot be started skips its tests
locally and fails them under ``CI=true``.
"""

from __future__ import annotations

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``first`` run first (stable order otherwise): under ``pytest -n N`` the
    suite's longest test starts at once instead of becoming the tail of the run."""
    items.sort(key=lambda item: item.get_closest_marker("first") is None)
