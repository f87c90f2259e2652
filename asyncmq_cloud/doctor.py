"""``asyncmq-cloud doctor`` (in progress)."""

from __future__ import annotations

import argparse


async def run_doctor(args: argparse.Namespace) -> int:
    raise SystemExit("asyncmq-cloud doctor: not implemented yet")
