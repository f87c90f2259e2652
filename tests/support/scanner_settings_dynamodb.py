"""AsyncMQ settings for DynamoDB scanner processes started by the hand-over tests and benchmark.

DynamoDB state store + DynamoDB delay store on an emulator, and the Redis-list
transport whose send log shows every reference handed over. Everything comes
from the environment so each run uses its own tables and keys:
``HANDOVER_DYNAMODB_ENDPOINT``, ``HANDOVER_JOBS_TABLE``, ``HANDOVER_DELAY_TABLE``,
``REDIS_URL``, ``HANDOVER_PREFIX`` and ``HANDOVER_REPAIR_GRACE``. Credentials and
region come from the standard AWS environment (dummy ones for an emulator).
"""

from __future__ import annotations

import os

from asyncmq.conf.global_settings import Settings as Base

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore
from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore
from tests.support.redis_transport import RedisListTransport

_ENDPOINT = os.environ.get("HANDOVER_DYNAMODB_ENDPOINT", "http://127.0.0.1:5000")
_REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
_JOBS = os.environ.get("HANDOVER_JOBS_TABLE", "handover-jobs")
_DELAYS = os.environ.get("HANDOVER_DELAY_TABLE", "handover-delays")
_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_PREFIX = os.environ.get("HANDOVER_PREFIX", "handover")
_GRACE = float(os.environ.get("HANDOVER_REPAIR_GRACE", "30"))


class Settings(Base):
    backend = CloudBackend(
        DynamoDBStateStore(_JOBS, endpoint_url=_ENDPOINT, region_name=_REGION),
        RedisListTransport(_URL, _PREFIX),
        DynamoDBDelayStore(_DELAYS, endpoint_url=_ENDPOINT, region_name=_REGION),
        config=LifecycleConfig(promote_batch=200, repair_interval=max(_GRACE, 0.5), repair_grace=_GRACE),
    )
