"""Prometheus metrics of the commands: the worker's ``/metrics`` and ``asyncmq-cloud metrics``.

* :func:`install_metrics`: the worker's ``/metrics`` route (job counters and histograms,
  jobs running, the calls this process makes), when ``prometheus_client`` is installed;
* :func:`run_metrics_command`: the standalone exporter of the queue-depth gauges, one per
  deployment, so depth is read once per interval, not by every worker: it samples
  ``queue_stats`` and ``broker_stats`` of each ``--queue`` every ``--interval`` seconds
  and serves ``/metrics`` (plus ``/livez``) on ``--port`` until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from asyncmq_cloud.commands._health_server import HealthServer
from asyncmq_cloud.commands._settings import load_backend
from asyncmq_cloud.commands._signals import install_signal_handlers
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import MissingExtraError

logger = logging.getLogger("asyncmq_cloud.metrics")
#: The content type of Prometheus' text format.
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def install_metrics(server: HealthServer, backend: CloudBackend) -> bool:
    """Serve ``/metrics`` on ``server`` for ``backend``; False (logged) without the extra."""
    try:
        from asyncmq_cloud import metrics
    except MissingExtraError:
        logger.info("no /metrics: install the metrics extra (pip install 'asyncmq-cloud[metrics]')")
        return False
    observer = metrics.enable()
    observer.watch(backend)

    async def scrape() -> tuple[int, str]:
        return 200, metrics.exposition(observer.registry)

    server.add_route("/metrics", scrape, PROMETHEUS_TEXT)
    return True


async def run_metrics_command(args: argparse.Namespace) -> int:
    """``asyncmq-cloud metrics``: sample depth and serve it until SIGTERM/SIGINT.

    Args:
        args: the parsed ``metrics`` arguments (``settings``, ``queue``, ``port``, ``host``, ``interval``).
    """
    from prometheus_client import CollectorRegistry

    from asyncmq_cloud import metrics

    stop = asyncio.Event()
    install_signal_handlers(stop)
    backend = load_backend(args.settings)
    registry = CollectorRegistry()
    sampler = metrics.DepthSampler(backend, args.queue, args.interval)
    registry.register(sampler)
    observer = metrics.enable(registry)  # the exporter's own calls: what sampling costs
    server = HealthServer()

    async def scrape() -> tuple[int, str]:
        return 200, metrics.exposition(registry)

    async def livez() -> tuple[int, str]:
        return 200, "ok\n"

    server.add_route("/metrics", scrape, PROMETHEUS_TEXT)
    server.add_route("/livez", livez)
    sampling = asyncio.create_task(sampler.run(), name="asyncmq-cloud depth sampler")
    try:
        port = await server.start(args.host, args.port)
        logger.info(
            "metrics of %s on http://%s:%d/metrics, sampled every %g s",
            ", ".join(args.queue),
            args.host,
            port,
            args.interval,
        )
        await stop.wait()
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        await server.close()
        observer.close()
        await backend.close()
    return 0
