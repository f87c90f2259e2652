"""Shared test configuration.

Service fixtures (real processes on 127.0.0.1) live in ``tests/plugins/services.py``;
store and backend fixtures in ``tests/plugins/stores.py`` and
``tests/plugins/store_*.py``. A service that cannot be started skips its tests
locally and fails them under ``CI=true``.
"""

from __future__ import annotations

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
