"""End-to-end fixtures shared by ``tests/e2e``: ``workers``, real ``asyncmq worker start`` processes.

Each e2e module defines its own ``app_env`` (the backend's environment); ``workers`` starts
processes with it and stops every one of them after the test (SIGINT, then SIGKILL).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import Workers


@pytest.fixture
def workers(app_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    group = Workers(app_env, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
