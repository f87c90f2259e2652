"""``asyncmq-cloud dashboard`` (in progress)."""

from __future__ import annotations

import argparse


async def serve_dashboard(args: argparse.Namespace) -> int:
    raise SystemExit("asyncmq-cloud dashboard: not implemented yet")
