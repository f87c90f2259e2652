"""Graceful stop of the long-running commands (``worker``, ``scanner run``, ``metrics``, ``dashboard``).

A SIGTERM can come while a command is still importing its SDKs (a rolling update right
after a pod started; a loaded machine takes seconds to start Python). :func:`catch_early`
records it from the first line of ``main`` on; the command's own handlers then honour it
at once (:func:`early_signals`), so the process stops cleanly instead of dying by SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal

#: Signals received before the command installed its own handlers.
_EARLY: list[int] = []
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def catch_early() -> None:
    """Record SIGTERM/SIGINT from now on, until the command installs its own handlers."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: _EARLY.append(signum))


def release_early() -> None:
    """Back to the default handlers (a short command stays killable); a signal recorded
    meanwhile is delivered again, now with its default effect."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    if _EARLY:
        os.kill(os.getpid(), _EARLY.pop(0))


def early_signals() -> list[int]:
    """The signals recorded by :func:`catch_early` (taken: each is honoured once)."""
    taken = list(_EARLY)
    _EARLY.clear()
    return taken


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop`` (graceful: the work in progress finishes).

    Args:
        stop: the event the command waits on.
    """
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if early_signals():
        stop.set()
