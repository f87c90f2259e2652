"""``asyncmq-cloud worker QUEUE``: AsyncMQ's own worker, with a drain on SIGTERM.

It runs AsyncMQ's ``run_worker`` (the app's tasks and settings unchanged; the delayed
scanner and the repeatable scheduler run inside it) on ``settings.backend``, and adds
what ``asyncmq worker start`` (0.10.1) lacks in a container:

* SIGTERM and SIGINT (handlers installed for the whole run) drain: the backend stops
  taking jobs at once (``backend.drain()``: ``dequeue`` answers None, prefetched
  references go back to the broker), AsyncMQ's ``drain_event`` is set, and the running
  jobs may finish for ``--grace`` seconds. When they have all finished, the grace ends
  or a second signal arrives, the rest are cancelled (AsyncMQ writes nothing for a
  cancelled run) and given back for immediate redelivery (``backend.release_running()``);
  the worker is deregistered, the backend closed, and the process exits 0.
* logging at INFO, quiet SDK loggers, ``--log-format json`` (``commands/_logging.py``);
* ``/livez`` and ``/readyz`` on ``--health-port`` (``commands/_health_server.py``), and
  ``/metrics`` (Prometheus, docs/metrics.md) when the ``metrics`` extra is installed.

See docs/workers.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from asyncmq_cloud.commands._health_server import HealthServer, Probes
from asyncmq_cloud.commands._logging import configure_logging
from asyncmq_cloud.commands._settings import load_backend
from asyncmq_cloud.commands._signals import early_signals
from asyncmq_cloud.commands.metrics import install_metrics
from asyncmq_cloud.core.lifecycle import CloudBackend

logger = logging.getLogger("asyncmq_cloud.worker")


@dataclass
class DrainReport:
    """How a worker run ended."""

    signal: str | None = None  # name of the first signal, None if the worker ended by itself
    running_at_signal: int = 0
    given_back: int = 0
    stopped_by: str = "finished"  # finished | grace | second signal
    drain_seconds: float = 0.0
    error: BaseException | None = None

    @property
    def finished(self) -> int:
        """Jobs running at the signal that finished during the drain."""
        return max(0, self.running_at_signal - self.given_back)


class Signals:
    """SIGTERM/SIGINT on the running loop: the first sets :attr:`first`, any later one :attr:`again`."""

    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.again = asyncio.Event()
        self.received: list[str] = []

    def __call__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if not self.first.is_set():
            self.first.set()
        else:
            logger.warning("%s received again: stopping now; running jobs are given back", name)
            self.again.set()

    def install(self) -> Callable[[], None]:
        """Install the handlers on the running loop; returns the function that removes them."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self, sig)
        for signum in early_signals():  # received while the command was starting
            self(signum)

        def remove() -> None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

        return remove


async def _first_of(task: asyncio.Task[None], event: asyncio.Event, timeout: float | None = None) -> None:
    """Wait until ``task`` ends, ``event`` is set, or ``timeout`` passes."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _drain(
    backend: CloudBackend,
    task: asyncio.Task[None],
    drain_event: anyio.Event,
    signals: Signals,
    grace: float,
    report: DrainReport,
) -> None:
    """From the first signal: stop taking jobs, then wait for the runs (bounded by ``grace``)."""
    started = time.monotonic()
    report.signal = signals.received[0]
    report.running_at_signal = backend.running
    logger.info(
        "%s received: draining; no job starts from now on, %d running job(s) may finish within %g s "
        "(a second signal stops at once)",
        report.signal,
        report.running_at_signal,
        grace,
    )
    await backend.drain()
    drain_event.set()
    await _first_of(task, signals.again, timeout=max(0.0, grace - (time.monotonic() - started)))
    if not task.done():
        report.stopped_by = "second signal" if signals.again.is_set() else "grace"
    report.drain_seconds = time.monotonic() - started


async def _leftover_registrations(backend: CloudBackend) -> None:
    """Deregister a worker that ``run_worker`` registered but did not deregister (cancelled early)."""
    for worker_id in backend.local_worker_ids():
        await backend.deregister_worker(worker_id)


async def supervise(
    backend: CloudBackend, queue: str, concurrency: int, *, grace: float, signals: Signals
) -> DrainReport:
    """Run AsyncMQ's ``run_worker`` on ``queue`` until it ends or ``signals`` drain it.

    Args:
        backend: the worker's backend (``settings.backend``).
        queue: the queue to work.
        concurrency: jobs run at once.
        grace: seconds the running jobs may take to finish after the first signal.
        signals: the installed signal handlers.

    Returns:
        How the run ended (the jobs given back included); ``error`` if ``run_worker`` failed.
    """
    from asyncmq.runners import run_worker

    drain_event = anyio.Event()
    task = asyncio.ensure_future(run_worker(queue, backend, concurrency, drain_event=drain_event))
    report = DrainReport()
    await _first_of(task, signals.first)
    if signals.first.is_set():
        await _drain(backend, task, drain_event, signals, grace, report)
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        report.error = exc
    report.given_back = await backend.release_running()
    await _leftover_registrations(backend)
    return report


def _warn_stalled_threshold(settings: Any, backend: CloudBackend) -> None:
    """AsyncMQ's stalled checker re-runs a job whose heartbeats could not be written (a store
    outage) for ``stalled_threshold`` seconds: say so when that is shorter than the lease."""
    threshold = float(settings.stalled_threshold)
    lease = backend.config.lease_timeout
    if settings.enable_stalled_check and lease and threshold < lease:
        logger.warning(
            "stalled_threshold (%g s) is below lease_timeout (%g s): a store outage longer than %g s makes "
            "AsyncMQ's stalled checker run jobs again (see docs/workers.md)",
            threshold,
            lease,
            threshold,
        )


def _log_end(report: DrainReport) -> None:
    if report.error is not None:
        logger.error("the worker failed", exc_info=report.error)
    if report.signal is None:
        logger.info("worker stopped; %d running job(s) given back", report.given_back)
        return
    logger.info(
        "drained in %.1f s (%s): %d of %d job(s) running at the signal finished, %d given back for redelivery",
        report.drain_seconds,
        "all runs ended" if report.stopped_by == "finished" else f"stopped by the {report.stopped_by}",
        report.finished,
        report.running_at_signal,
        report.given_back,
    )


async def _start_http(backend: CloudBackend, host: str, port: int, with_metrics: bool = True) -> HealthServer | None:
    if not port:
        return None
    server = HealthServer()
    Probes(backend).install(server)
    if with_metrics:
        install_metrics(server, backend)
    bound = await server.start(host, port)
    logger.info("health endpoint on http://%s:%d (%s)", host, bound, ", ".join(server.routes))
    return server


async def run_worker_command(args: argparse.Namespace) -> int:
    """``asyncmq-cloud worker``: work ``args.queue`` until SIGTERM/SIGINT; 0 after a drain.

    Args:
        args: the parsed ``worker`` arguments (see ``asyncmq_cloud/cli.py``).
    """
    level = args.log_level or ("DEBUG" if vars(args).get("verbose") else "INFO")
    configure_logging(level, args.log_format)
    signals = Signals()
    remove = signals.install()  # before anything slow: a signal while starting drains too
    try:
        import asyncmq
        from asyncmq.workers import autodiscover_tasks

        backend = load_backend(args.settings)
        settings = asyncmq.monkay.settings
        concurrency = int(args.concurrency or settings.worker_concurrency)
        if settings.tasks:
            autodiscover_tasks()
        _warn_stalled_threshold(settings, backend)
        server = await _start_http(backend, args.health_host, args.health_port, not vars(args).get("no_metrics"))
        logger.info("worker on queue %r: concurrency %d, grace %g s", args.queue, concurrency, args.grace)
        try:
            report = await supervise(backend, args.queue, concurrency, grace=args.grace, signals=signals)
        finally:
            if server is not None:
                await server.close()
            try:
                await backend.close()
            except Exception as exc:
                logger.warning("closing the backend failed: %s", type(exc).__name__)
        _log_end(report)
        return 1 if report.error is not None else 0
    finally:
        remove()
