"""The standalone delayed-job scanner loop (``asyncmq-cloud scanner run``).

Every AsyncMQ worker already calls ``promote_due_delayed`` for its queue once
per ``scan_interval``. Deployments that want hand-over to keep going while no
worker runs (scaled to zero by KEDA, say), or that want a tighter interval
without more workers, run this loop as its own process. Any number of scanners
and workers may promote the same queue at once: the delay store's claim and
the state store's conditional ``delayed -> waiting`` write hand each job over
exactly once.

Shutdown: SIGTERM or SIGINT ends the loop after the pass in progress (never in
the middle of a batch hand-off) and closes the backend.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from asyncmq_cloud.commands._settings import load_backend
from asyncmq_cloud.commands._signals import install_signal_handlers
from asyncmq_cloud.core.lifecycle import CloudBackend

logger = logging.getLogger("asyncmq_cloud.scanner")


@dataclass
class ScannerStats:
    """Counters a scanner keeps (also printed as progress lines)."""

    passes: int = 0
    promoted: dict[str, int] = field(default_factory=dict)
    errors: int = 0


async def run_scanner(
    backend: CloudBackend,
    queues: Sequence[str],
    *,
    interval: float = 1.0,
    stop: asyncio.Event | None = None,
    report_every: float = 10.0,
    max_passes: int | None = None,
) -> ScannerStats:
    """Promote due delayed jobs of ``queues`` until ``stop`` is set.

    Args:
        backend: a started or startable ``CloudBackend``.
        queues: AsyncMQ queue names to scan.
        interval: seconds to sleep after a pass that promoted nothing; a pass
            that filled a whole batch is followed at once by the next.
        stop: set it to end the loop after the current pass.
        report_every: seconds between progress log lines.
        max_passes: end after this many passes (tests, one-shot runs).
    """
    stop = stop or asyncio.Event()
    stats = ScannerStats(promoted={q: 0 for q in queues})
    batch = backend.config.promote_batch
    last_report = time.monotonic()
    while not stop.is_set():
        busy = False
        for queue in queues:
            try:
                moved = await backend.promote_due_now(queue)  # every pass reads: --interval is the cadence
            except Exception:
                stats.errors += 1
                logger.exception("scanner pass failed for queue %r; retrying after %ss", queue, interval)
                continue
            stats.promoted[queue] += len(moved)
            busy = busy or len(moved) >= batch
        stats.passes += 1
        if max_passes is not None and stats.passes >= max_passes:
            break
        if time.monotonic() - last_report >= report_every:
            last_report = time.monotonic()
            logger.info("scanner: %d passes, promoted %s, %d errors", stats.passes, stats.promoted, stats.errors)
        if not busy:
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
    return stats


async def run_scan(args: argparse.Namespace) -> int:
    """``asyncmq-cloud scanner run``: scan ``args.queue`` until SIGTERM/SIGINT, then close the backend.

    Args:
        args: the parsed ``scanner run`` arguments (``settings``, ``queue``, ``interval``, ``report_every``).
    """
    backend = load_backend(args.settings)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    print(f"asyncmq-cloud scanner: queues={args.queue} interval={args.interval}s (SIGTERM to stop)", flush=True)
    try:
        stats = await run_scanner(
            backend, args.queue, interval=args.interval, stop=stop, report_every=args.report_every
        )
    finally:
        await backend.close()
    print(f"asyncmq-cloud scanner stopped: {stats.passes} passes, promoted {stats.promoted}", flush=True)
    return 0
