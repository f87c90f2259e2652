"""AsyncMQ settings for scanner processes started by the hand-over tests.

Everything comes from the environment so each test run uses its own keys:
``REDIS_URL``, ``HANDOVER_PREFIX`` and ``HANDOVER_REPAIR_GRACE``.
"""

from __future__ import annotations

import os

from asyncmq.conf.global_settings import Settings as Base

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.redis import RedisDelayStore
from asyncmq_cloud.stores.redis import RedisStateStore
from tests.support.redis_transport import RedisListTransport

_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_PREFIX = os.environ.get("HANDOVER_PREFIX", "handover")
_GRACE = float(os.environ.get("HANDOVER_REPAIR_GRACE", "30"))


class Settings(Base):
    backend = CloudBackend(
        RedisStateStore(_URL, prefix=_PREFIX),
        RedisListTransport(_URL, _PREFIX),
        RedisDelayStore(_URL, prefix=_PREFIX),
        config=LifecycleConfig(promote_batch=200, repair_interval=max(_GRACE, 0.5), repair_grace=_GRACE),
    )
