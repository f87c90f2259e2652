"""The same app on KafkaBackend: only the backend line differs from ``settings.py``.

The broker comes from the standard ``KAFKA_BOOTSTRAP_SERVERS``; the store, topic prefix
and the liveness knobs the crash tests shorten from ``E2E_*`` variables.
"""

from __future__ import annotations

import os

from asyncmq.conf.global_settings import Settings as Base

from asyncmq_cloud import KafkaBackend
from asyncmq_cloud.config import LifecycleConfig


class Settings(Base):
    tasks = ["tests.e2e.app"]
    worker_concurrency = 4
    enable_stalled_check = os.environ.get("E2E_STALLED_CHECK", "1") == "1"
    stalled_check_interval = 1.0
    stalled_threshold = float(os.environ.get("E2E_STALLED_THRESHOLD", "3.0"))
    heartbeat_ttl = 5
    backend = KafkaBackend(
        topic_prefix=os.environ.get("E2E_TOPIC_PREFIX", "asyncmq-"),
        store=os.environ.get("E2E_STORE", "redis://localhost:6379/0"),
        delay_store=os.environ.get("E2E_DELAY_STORE") or None,
        partitions=int(os.environ.get("E2E_PARTITIONS", "4")),
        session_timeout_ms=int(os.environ.get("E2E_KAFKA_SESSION_MS", "10000")),
        heartbeat_interval_ms=int(os.environ.get("E2E_KAFKA_HEARTBEAT_MS", "3000")),
        config=LifecycleConfig(receive_wait=1.0, lease_timeout=float(os.environ.get("E2E_LEASE", "60"))),
    )
