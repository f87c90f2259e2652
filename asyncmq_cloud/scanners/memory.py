"""Compatibility path of :mod:`asyncmq_cloud.delays.memory` (see :mod:`asyncmq_cloud.scanners`)."""

from __future__ import annotations

from asyncmq_cloud.delays.memory import MemoryDelayStore

__all__ = ["MemoryDelayStore"]
