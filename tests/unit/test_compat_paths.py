"""The 0.1.0 import paths that moved keep working (with a deprecation warning where they moved)."""

from __future__ import annotations

import subprocess
import sys


def test_scanners_path_still_imports_the_delay_stores_and_warns() -> None:
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    from asyncmq_cloud.scanners.memory import MemoryDelayStore\n"
        "    from asyncmq_cloud.scanners.dynamodb import DynamoDBDelayStore\n"
        "    from asyncmq_cloud.scanners.redis import RedisDelayStore\n"
        "from asyncmq_cloud import delays\n"
        "from asyncmq_cloud.delays.memory import MemoryDelayStore as M\n"
        "assert MemoryDelayStore is M\n"
        "assert [w.category.__name__ for w in seen] == ['DeprecationWarning'], seen\n"
        "assert 'asyncmq_cloud.delays' in str(seen[0].message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_dashboard_path_still_serves_build_dashboard_app() -> None:
    from asyncmq_cloud.commands.dashboard import build_dashboard_app
    from asyncmq_cloud.dashboard import build_dashboard_app as old

    assert old is build_dashboard_app
