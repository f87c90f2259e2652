"""asyncmq-cloud: cloud-managed backends for the AsyncMQ task queue.

``SQSBackend``, ``KafkaBackend`` and ``DynamoDBBackend`` are imported lazily so
that an app that uses one of them does not need the SDKs of the others; a backend
whose SDK is missing raises :class:`~asyncmq_cloud.errors.MissingExtraError`, which
names the extra to install (see :mod:`asyncmq_cloud.extras`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.errors import CloudBackendError
from asyncmq_cloud.extras import missing_extra

if TYPE_CHECKING:
    from asyncmq_cloud.backends.dynamodb import DynamoDBBackend as DynamoDBBackend
    from asyncmq_cloud.backends.kafka import KafkaBackend as KafkaBackend
    from asyncmq_cloud.backends.sqs import SQSBackend as SQSBackend
    from asyncmq_cloud.config import LifecycleConfig as LifecycleConfig
    from asyncmq_cloud.core.lifecycle import CloudBackend as CloudBackend

__version__ = "0.1.0"

# Everything heavy is imported on first use: ``import asyncmq_cloud`` stays cheap, so the
# CLI can catch a SIGTERM that arrives while a command is still starting (commands/_signals.py).
_LAZY = {
    "CloudBackend": "asyncmq_cloud.core.lifecycle",
    "LifecycleConfig": "asyncmq_cloud.config",
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
        error = missing_extra(exc, name)
        if error is exc:  # not an optional SDK: a broken install, shown as it is
            raise
        raise error from exc
    return getattr(module, name)


__all__ = ["CloudBackendError", "__version__", *_LAZY]
