"""Compatibility path of :mod:`asyncmq_cloud.delays.redis` (see :mod:`asyncmq_cloud.scanners`)."""

from __future__ import annotations

from asyncmq_cloud.delays.redis import RedisDelayStore

__all__ = ["RedisDelayStore"]
