"""asyncmq-cloud: cloud-managed backends for the AsyncMQ task queue.

``SQSBackend``, ``KafkaBackend`` and ``DynamoDBBackend`` are imported lazily so
that an app that uses one of them does not need the SDKs of the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import CloudBackendError

__version__ = "0.1.0"

_LAZY = {
    "SQSBackend": "asyncmq_cloud.backends.sqs",
    "KafkaBackend": "asyncmq_cloud.backends.kafka",
    "DynamoDBBackend": "asyncmq_cloud.backends.dynamodb",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'asyncmq_cloud' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ImportError(f"{name} is not available in asyncmq-cloud {__version__} yet") from exc
        raise
    return getattr(module, name)


__all__ = ["CloudBackend", "CloudBackendError", "LifecycleConfig", "__version__", *_LAZY]
