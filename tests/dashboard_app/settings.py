"""Settings for ``asyncmq-cloud dashboard`` in ``tests/test_dashboard.py``.

Endpoints come from the standard AWS environment (``AWS_ENDPOINT_URL_SQS``,
``AWS_ENDPOINT_URL_DYNAMODB``); names from the ``DASH_*`` variables the test sets, so the
dashboard process sees exactly the queues and tables the test seeded.
"""

from __future__ import annotations

import os

from asyncmq.conf.global_settings import Settings as Base

from asyncmq_cloud import DynamoDBBackend, SQSBackend


class _Common(Base):
    # The seeded worker registered "now": it must still count as alive while the browser looks.
    heartbeat_ttl = 600


class SQSSettings(_Common):
    backend = SQSBackend(
        queue_prefix=os.environ.get("DASH_QUEUE_PREFIX", ""),
        store=os.environ.get("DASH_STORE", "dynamodb://asyncmq-jobs"),
        delay_store=os.environ.get("DASH_DELAY_STORE") or None,
    )


class DynamoDBSettings(_Common):
    backend = DynamoDBBackend(
        table=os.environ.get("DASH_TABLE", "asyncmq-jobs"),
        delay_store=os.environ.get("DASH_DELAY_STORE", "dynamodb://asyncmq-delays"),
    )
