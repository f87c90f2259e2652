"""The same app on DynamoDBBackend: only the backend line differs from ``settings.py``.

The endpoint comes from ``AWS_ENDPOINT_URL_DYNAMODB``; table names from ``E2E_*``.
"""

from __future__ import annotations

import os

from asyncmq.conf.global_settings import Settings as Base

from asyncmq_cloud import DynamoDBBackend
from asyncmq_cloud.config import LifecycleConfig


class Settings(Base):
    tasks = ["tests.e2e.app"]
    worker_concurrency = 4
    enable_stalled_check = os.environ.get("E2E_STALLED_CHECK", "1") == "1"
    scan_interval = float(os.environ.get("E2E_SCAN_INTERVAL", "1.0"))
    stalled_check_interval = 1.0
    stalled_threshold = float(os.environ.get("E2E_STALLED_THRESHOLD", "3.0"))
    heartbeat_ttl = 5
    backend = DynamoDBBackend(
        table=os.environ.get("E2E_TABLE", "asyncmq-jobs"),
        delay_store=os.environ.get("E2E_DELAY_STORE", "dynamodb://asyncmq-delays"),
        config=LifecycleConfig(receive_wait=1.0),
    )
