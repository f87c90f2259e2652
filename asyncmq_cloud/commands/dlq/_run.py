"""What every ``asyncmq-cloud dlq`` action shares: the pace, the progress lines, the stop flag, the summary."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Run:
    """One action over dead letters: a rate limit, progress on stderr, a stop on SIGINT/SIGTERM.

    Args:
        action: ``redrive``, ``purge``, ``list``.
        total: how many items the action expects (``None``: unknown).
        rate: most items per second (0: no limit).
        every: seconds between progress lines.
    """

    action: str
    total: int | None = None
    rate: float = 0.0
    every: float = 1.0
    counts: Counter[str] = field(default_factory=Counter)
    stopped: bool = False
    out: TextIO = field(default_factory=lambda: sys.stderr)
    _began: float = field(default_factory=time.monotonic)
    _next_slot: float = 0.0
    _last_line: float = 0.0

    def install(self) -> None:
        """SIGINT and SIGTERM end the action after the item in progress (each item is moved whole)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def stop(self) -> None:
        self.stopped = True

    async def pace(self, items: int = 1) -> None:
        """Wait until ``items`` more fit the rate limit."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._next_slot = max(self._next_slot, now)
        wait = self._next_slot - now
        self._next_slot += items / self.rate
        if wait > 0:
            await asyncio.sleep(wait)

    def done(self, outcome: str, items: int = 1) -> None:
        """Count ``items`` with ``outcome`` (``redriven``, ``purged``, ``skipped`` ...); a progress line when due."""
        self.counts[outcome] += items
        now = time.monotonic()
        if now - self._last_line >= self.every:
            self._last_line = now
            self.progress()

    def progress(self) -> None:
        handled = sum(self.counts.values())
        of = f"/{self.total}" if self.total is not None else ""
        bar = ""
        if self.total:
            filled = min(20, int(20 * handled / self.total))
            bar = f"[{'#' * filled}{'.' * (20 - filled)}] "
        per_second = handled / max(time.monotonic() - self._began, 1e-6)
        print(f"{self.action}: {bar}{handled}{of} ({per_second:.0f}/s)", file=self.out, flush=True)

    def summary(self) -> str:
        seconds = time.monotonic() - self._began
        parts = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items())) or "nothing"
        ending = "interrupted: " if self.stopped else ""
        return f"{self.action}: {ending}{parts} in {seconds:.1f} s"
