"""Compatibility path of :mod:`asyncmq_cloud.delays.dynamodb` (see :mod:`asyncmq_cloud.scanners`)."""

from __future__ import annotations

from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore

__all__ = ["DynamoDBDelayStore"]
