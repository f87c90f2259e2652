"""``asyncmq-cloud demo`` (in progress)."""

from __future__ import annotations

import argparse


async def run_demo(args: argparse.Namespace) -> int:
    raise SystemExit("asyncmq-cloud demo: not implemented yet")
