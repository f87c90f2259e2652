"""AsyncMQ settings for local development against the compose file's LocalStack.

Use the same class in your app (``ASYNCMQ_SETTINGS_MODULE``) with
``AWS_ENDPOINT_URL=http://localhost:4566`` exported.
"""

from __future__ import annotations

import os

from asyncmq.conf.global_settings import Settings as Base

from asyncmq_cloud import SQSBackend


class Settings(Base):
    backend = SQSBackend(
        queue_prefix=os.environ.get("QUEUE_PREFIX", "dev-"),
        store=os.environ.get("STORE", "dynamodb://asyncmq-jobs"),
        delay_store=os.environ.get("DELAY_STORE", "dynamodb://asyncmq-delays"),
    )
