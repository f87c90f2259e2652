"""The app's AsyncMQ settings: the backend line is the only cloud-specific part.

Endpoints come from the standard AWS environment (``AWS_ENDPOINT_URL_SQS``,
``AWS_ENDPOINT_URL_DYNAMODB``); the rest from ``E2E_*`` variables the tests set.
"""

from __future__ import annotations

import os

from asyncmq.conf.global_settings import Settings as Base

from asyncmq_cloud import SQSBackend
from asyncmq_cloud.config import LifecycleConfig


class Settings(Base):
    tasks = ["tests.e2e.app"]
    worker_concurrency = 4
    enable_stalled_check = os.environ.get("E2E_STALLED_CHECK", "1") == "1"
    stalled_check_interval = 1.0
    stalled_threshold = float(os.environ.get("E2E_STALLED_THRESHOLD", "3.0"))
    heartbeat_ttl = 5
    backend = SQSBackend(
        queue_prefix=os.environ.get("E2E_QUEUE_PREFIX", ""),
        store=os.environ.get("E2E_STORE", "dynamodb://asyncmq-jobs"),
        delay_store=os.environ.get("E2E_DELAY_STORE") or None,
        visibility_timeout=int(os.environ.get("E2E_VISIBILITY", "30")),
        priority_lanes=int(os.environ.get("E2E_PRIORITY_LANES", "1")),
        offload=os.environ.get("E2E_OFFLOAD") or None,
        config=LifecycleConfig(receive_wait=1.0, lease_timeout=float(os.environ.get("E2E_LEASE", "60"))),
    )
