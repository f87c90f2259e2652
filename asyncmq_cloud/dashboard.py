"""Compatibility path: the dashboard command lives in :mod:`asyncmq_cloud.commands.dashboard`.

``from asyncmq_cloud.dashboard import build_dashboard_app`` (the 0.1.0 import path for mounting
AsyncMQ's dashboard in an app) keeps working.
"""

from __future__ import annotations

from asyncmq_cloud.commands.dashboard import build_dashboard_app

__all__ = ["build_dashboard_app"]
