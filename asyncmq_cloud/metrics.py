"""Prometheus metrics of the cloud backends (extra ``metrics``: ``prometheus_client``).

:func:`enable` subscribes a :class:`PrometheusObserver` to :mod:`asyncmq_cloud.observe`
(jobs and backend calls, counted where they happen) and returns it; the worker command
does it for its ``/metrics`` route. :class:`DepthSampler` samples queue depth from the
store and the broker at a bounded rate (a background task, never per scrape), for the
standalone exporter ``asyncmq-cloud metrics``. Every metric is listed in docs/metrics.md.

    from asyncmq_cloud import metrics
    observer = metrics.enable()                 # into prometheus_client's default registry
    observer.watch(backend)                     # asyncmq_jobs_running of this backend
    text = metrics.exposition()                 # what GET /metrics answers
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from asyncmq.backends.base import WorkerInfo

from asyncmq_cloud import observe
from asyncmq_cloud.extras import missing_extra

try:
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector

    from asyncmq_cloud._tallies import Tallies
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised in a subprocess (tests/unit)
    _error = missing_extra(_exc, "Prometheus metrics")
    if _error is _exc:
        raise
    raise _error from _exc

logger = logging.getLogger("asyncmq_cloud.metrics")

#: Run time of a job (s): from milliseconds to an hour.
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: Queue wait and hand-over lateness (s).
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: One call to a service (s): a long poll may take its full wait (up to 20 s).
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
#: The counters of :meth:`PrometheusObserver.job_ended`, by outcome.
ENDED = ("completed", "failed", "retried", "expired", "cancelled")


class RunningSource(Protocol):
    """What :meth:`PrometheusObserver.watch` reads: a backend's jobs running now, by queue."""

    def running_by_queue(self) -> dict[str, int]: ...


class PrometheusObserver:
    """Job counters, histograms and backend-call metrics; an :class:`~asyncmq_cloud.observe.Observer`.

    Args:
        registry: where the metrics are registered (default: ``prometheus_client``'s
            global registry, which a ``prometheus_client`` HTTP server already serves).
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self._tallies = tallies = Tallies()  # one lock for every update (decision 67)
        job = ["queue", "task"]

        def counter(name: str, doc: str, labels: Sequence[str] = job) -> Any:
            return tallies.counter(name, doc, labels)

        self.enqueued = counter("asyncmq_jobs_enqueued", "Jobs added (plain, bulk, delayed, flow).")
        self.started = counter("asyncmq_jobs_started", "Jobs claimed for a run.")
        self.ended = {outcome: counter(f"asyncmq_jobs_{outcome}", f"Runs that ended {outcome}.") for outcome in ENDED}
        self.dead_lettered = counter(
            "asyncmq_jobs_dead_lettered", "References moved to the broker's dead-letter queue/topic.", ["queue"]
        )
        self.dropped = counter(
            "asyncmq_references_dropped", "References acked without a run, by reason.", ["queue", "reason"]
        )
        self.run_seconds = tallies.histogram("asyncmq_job_run_seconds", "Run time, claim to end.", job, RUN_BUCKETS)
        self.wait_seconds = tallies.histogram(
            "asyncmq_job_wait_seconds", "Due (added, or the end of its delay) to claimed.", ["queue"], WAIT_BUCKETS
        )
        self.lateness_seconds = tallies.histogram(
            "asyncmq_delayed_handover_lateness_seconds",
            "Due time of a delayed job to its hand-over by a scanner.",
            ["queue"],
            WAIT_BUCKETS,
        )
        self.calls = counter(
            "asyncmq_backend_calls", "Calls to the services, by outcome.", ["service", "operation", "outcome"]
        )
        self.call_seconds = tallies.histogram(
            "asyncmq_backend_call_seconds",
            "Latency of the calls to the services.",
            ["service", "operation"],
            CALL_BUCKETS,
        )
        registry.register(tallies)
        self._running = _RunningCollector()
        registry.register(self._running)

    def watch(self, backend: RunningSource) -> None:
        """Report ``asyncmq_jobs_running`` for ``backend`` (held weakly; read at each scrape, in memory)."""
        self._running.sources.add(backend)

    def close(self) -> None:
        """Unsubscribe and unregister every metric (idempotent)."""
        observe.unsubscribe(self)
        for collector in (self._tallies, self._running):
            with contextlib.suppress(KeyError):
                self.registry.unregister(collector)

    # -- observe.Observer ---------------------------------------------------------------
    def jobs_adding(self, queue: str, payloads: Sequence[dict[str, Any]]) -> None:
        """Nothing to add to a job."""

    def jobs_enqueued(self, queue: str, tasks: Sequence[str]) -> None:
        for task in tasks:
            self._tallies.inc(self.enqueued, (queue, task))

    def job_started(self, queue: str, job: dict[str, Any], waited: float | None) -> None:
        labels = (queue, observe.task_of(job))
        if waited is None:
            self._tallies.inc(self.started, labels)
        else:
            self._tallies.inc_and_observe(self.started, labels, self.wait_seconds, (queue,), waited)

    def job_ended(self, queue: str, job_id: str, task: str, outcome: str, ran: float | None) -> None:
        if ran is None:
            self._tallies.inc(self.ended[outcome], (queue, task))
        else:
            self._tallies.inc_and_observe(self.ended[outcome], (queue, task), self.run_seconds, (queue, task), ran)

    def reference_dropped(self, queue: str, reason: str) -> None:
        self._tallies.inc(self.dropped, (queue, reason))

    def reference_dead_lettered(self, queue: str) -> None:
        self._tallies.inc(self.dead_lettered, (queue,))

    def delayed_handed_over(self, queue: str, lateness: float) -> None:
        self._tallies.observe(self.lateness_seconds, (queue,), lateness)

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        self._tallies.inc_and_observe(
            self.calls, (service, operation, outcome), self.call_seconds, (service, operation), seconds
        )


class _RunningCollector(Collector):
    def __init__(self) -> None:
        self.sources: weakref.WeakSet[RunningSource] = weakref.WeakSet()

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("asyncmq_jobs_running", "Jobs running in this process.", labels=["queue"])
        totals: dict[str, int] = {}
        for source in list(self.sources):
            for queue, count in source.running_by_queue().items():
                totals[queue] = totals.get(queue, 0) + count
        for queue, count in sorted(totals.items()):
            family.add_metric([queue], count)
        yield family


_enabled: PrometheusObserver | None = None


def enable(registry: CollectorRegistry = REGISTRY) -> PrometheusObserver:
    """Subscribe a :class:`PrometheusObserver` on ``registry`` (once per registry) and return it."""
    global _enabled
    if _enabled is None or _enabled.registry is not registry:
        if _enabled is not None:
            _enabled.close()
        _enabled = PrometheusObserver(registry)
    observe.subscribe(_enabled)
    return _enabled


def disable() -> None:
    """Undo :func:`enable` (idempotent)."""
    global _enabled
    if _enabled is not None:
        _enabled.close()
        _enabled = None


def exposition(registry: CollectorRegistry = REGISTRY) -> str:
    """The registry in Prometheus' text format (what ``GET /metrics`` answers)."""
    return generate_latest(registry).decode("utf-8")


class DepthSource(Protocol):
    """What :class:`DepthSampler` reads (``CloudBackend`` is one)."""

    async def queue_stats(self, queue_name: str) -> dict[str, int]: ...
    async def broker_stats(self, queue_name: str) -> dict[str, int]: ...
    async def list_workers(self) -> list[WorkerInfo]: ...


#: The prefix of a ``broker_stats`` kind that is one Kafka partition's lag (``partition-3``).
PARTITION_KIND = "partition-"


class DepthSampler(Collector):
    """Queue depth by state (the store) and by kind (the broker), sampled every ``interval``
    seconds by :meth:`run`; a scrape reads the last sample.

    ``asyncmq_queue_jobs{queue,state}``: waiting, delayed, failed (``queue_stats``);
    ``asyncmq_broker_messages{queue,kind}``: what ``broker_stats`` gives (SQS approximate
    counts, Kafka lag, DynamoDB ready count; ``depth`` on each);
    ``asyncmq_kafka_consumer_lag{queue,partition}``: the Kafka group's lag per partition;
    ``asyncmq_queue_workers{queue}``: live workers in the registry (one registry read per
    sample); ``asyncmq_queue_sample_age_seconds{queue}``.

    Args:
        backend: the backend to ask.
        queues: the AsyncMQ queues to sample.
        interval: seconds between two samples of a queue (each: a few reads per queue).
    """

    def __init__(self, backend: DepthSource, queues: Sequence[str], interval: float = 15.0) -> None:
        self.backend, self.queues, self.interval = backend, list(dict.fromkeys(queues)), interval
        self.samples: dict[str, tuple[float, dict[str, int], dict[str, int]]] = {}
        self.workers: dict[str, int] | None = None
        self.failures = 0

    async def sample(self) -> None:
        """Read every queue once (a failed read keeps the queue's last sample, logged)."""
        try:
            live = await self.backend.list_workers()
            self.workers = {queue: sum(1 for w in live if w.queue == queue) for queue in self.queues}
        except Exception as exc:
            self.failures += 1
            logger.warning("reading the worker registry failed: %s: %s", type(exc).__name__, exc)
        for queue in self.queues:
            try:
                states = await self.backend.queue_stats(queue)
                broker = await self.backend.broker_stats(queue)
            except Exception as exc:
                self.failures += 1
                logger.warning("sampling the depth of %r failed: %s: %s", queue, type(exc).__name__, exc)
                continue
            self.samples[queue] = (time.time(), dict(states), dict(broker))

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        while True:
            began = time.monotonic()
            await self.sample()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("asyncmq_queue_jobs", "Jobs in the store, by state.", labels=["queue", "state"])
        broker = GaugeMetricFamily(
            "asyncmq_broker_messages", "Messages in the broker, by kind.", labels=["queue", "kind"]
        )
        lag = GaugeMetricFamily(
            "asyncmq_kafka_consumer_lag",
            "Kafka records not yet committed by the queue's group.",
            labels=["queue", "partition"],
        )
        age = GaugeMetricFamily("asyncmq_queue_sample_age_seconds", "Age of the depth sample.", labels=["queue"])
        workers = GaugeMetricFamily("asyncmq_queue_workers", "Live workers registered on the queue.", labels=["queue"])
        for queue, count in sorted((self.workers or {}).items()):
            workers.add_metric([queue], count)
        now = time.time()
        for queue, (at, states, kinds) in sorted(self.samples.items()):
            for state, count in sorted(states.items()):
                jobs.add_metric([queue, state], count)
            for kind, count in sorted(kinds.items()):
                if kind.startswith(PARTITION_KIND):  # the Kafka transport's lag per partition
                    lag.add_metric([queue, kind.removeprefix(PARTITION_KIND)], count)
                else:
                    broker.add_metric([queue, kind], count)
            age.add_metric([queue], now - at)
        yield from (jobs, broker, lag, workers, age)
