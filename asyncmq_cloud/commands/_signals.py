"""Graceful stop of the long-running commands (``scanner run``, ``dashboard``)."""

from __future__ import annotations

import asyncio
import signal


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop`` (graceful: the work in progress finishes).

    Args:
        stop: the event the command waits on.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
