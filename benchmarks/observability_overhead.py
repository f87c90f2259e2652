"""What metrics and tracing cost: drain throughput with both on against both off, in one run.

``SQSBackend`` on ElasticMQ with the Redis state and delay stores (started through
``scripts/services.py`` unless ``--sqs-endpoint`` / ``--redis-url`` are given). Each round
adds ``--jobs`` no-op jobs with ``Queue.add`` (concurrently, 100 at a time), then drains them
with AsyncMQ's own worker (``run_worker``, concurrency ``--concurrency``) and times the drain
from the first job's start to the last completion. Rounds alternate *off* and *on* (the
order flips every round, so neither side always runs on a warmer machine); *on* means
``metrics.enable()`` (a private registry) and ``tracing.enable()`` with the OpenTelemetry SDK
and a batch processor whose exporter drops the spans (what an app exporting over OTLP pays in
process, minus the network). The results: the ratio of the medians (on/off) and the median of
the per-round ratios (each round's two drains ran back to back); the target of issue 18 is
>= 0.95. ``--observe none`` is an A/A run: the noise floor of this machine.

``--slices S`` (decision 81) measures within one drain instead: all ``--jobs`` are added with
the observers on (every record carries its trace context, as on the observed side), then one
worker drains them while the observers are subscribed and unsubscribed in turn, every ``S``
seconds; each pair of adjacent slices (the order flips every pair) gives a ratio of jobs
completed per second, counted by the task itself. Adjacent slices share the machine's state
(the emulators' load, their caches, the queue's depth), which separate drains do not: on two
cores the drain-to-drain spread is larger than the effect measured. The first ``--warmup``
seconds and the drain's tail (the last fifth of the jobs) are left out.

    python benchmarks/observability_overhead.py --jobs 1000 --rounds 5
    python benchmarks/observability_overhead.py --jobs 20000 --slices 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from asyncmq.queues import Queue  # noqa: E402
from asyncmq.runners import run_worker  # noqa: E402
from asyncmq.tasks import task  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from asyncmq_cloud import SQSBackend, metrics, observe, tracing  # noqa: E402
from asyncmq_cloud.config import LifecycleConfig  # noqa: E402
from asyncmq_cloud.core.lifecycle import CloudBackend  # noqa: E402
from asyncmq_cloud.delays.memory import MemoryDelayStore  # noqa: E402
from asyncmq_cloud.stores.memory import MemoryStateStore  # noqa: E402
from asyncmq_cloud.transports.memory import MemoryTransport  # noqa: E402
from benchmarks._sqs_bench import sqs_and_redis  # noqa: E402

QUEUE = "overhead"
TASK_ID = f"{__name__}.noop"


#: Whether the tracer builds the ``process`` span lean (decision 81); ``--sdk-spans``: the SDK's Span.
LEAN_SPANS = [True]
#: Jobs the task has run in this process (the sliced drain's clock-independent count).
RAN = [0]


@task(queue=QUEUE)
async def noop(i: int) -> int:
    RAN[0] += 1
    return i


class Dropped(SpanExporter):
    """Counts the spans and drops them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def turn_on(exporter: Dropped, what: str, sampling: float) -> tuple[CollectorRegistry | None, TracerProvider | None]:
    """Metrics and/or tracing on (``what``), as the observed side runs them."""
    registry, provider = None, None
    if what in ("both", "metrics"):
        registry = CollectorRegistry()
        metrics.enable(registry)
    if what in ("both", "tracing"):
        # ParentBased: the run follows the add's decision, as with OTEL_TRACES_SAMPLER=parentbased_traceidratio.
        provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(sampling)))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracing.enable(provider, lean_spans=LEAN_SPANS[0])
    return registry, provider


def make_backend(memory: bool, run: str, store: str) -> Any:
    if memory:  # no service: the worker's own CPU per job, without an emulator's noise
        return CloudBackend(
            MemoryStateStore(), MemoryTransport(), MemoryDelayStore(), config=LifecycleConfig(receive_wait=0.2)
        )
    return SQSBackend(queue_prefix=f"o{run}-", store=store, delay_store=store, config=LifecycleConfig(receive_wait=1.0))


async def add_jobs(backend: Any, jobs: int, provider: TracerProvider | None) -> None:
    """``jobs`` no-op jobs through ``Queue.add``, 100 at a time."""
    queue = Queue(QUEUE, backend=backend)
    for start in range(0, jobs, 100):
        await asyncio.gather(*(queue.add(TASK_ID, args=[i]) for i in range(start, min(jobs, start + 100))))
    if provider is not None:  # the adds' spans exported now, not on the drain's clock (a worker has none)
        provider.force_flush()


async def one_round(
    jobs: int,
    concurrency: int,
    redis_url: str,
    observed: bool,
    what: str = "both",
    sampling: float = 1.0,
    memory: bool = False,
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    store = f"{redis_url}?prefix=ovh-{run}"
    exporter = Dropped()
    registry, provider = turn_on(exporter, what if observed else "none", sampling)
    backend = make_backend(memory, run, store)
    try:
        if not memory:
            await backend.provision([QUEUE])
        await add_jobs(backend, jobs, provider)
        began, cpu_began = time.perf_counter(), time.process_time()
        worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=concurrency))
        deadline = began + 600
        while (await backend.get_job_counts(QUEUE, "completed"))["completed"] < jobs:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{jobs} jobs not drained in 600 s")
            await asyncio.sleep(0.05)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        result: dict[str, Any] = {
            "observed": observed,
            "seconds": round(elapsed, 3),
            "jobs_per_s": jobs / elapsed,
            "cpu_ms_per_job": 1000 * cpu / jobs,  # this process only (the worker), during the drain
        }
        if provider is not None:
            provider.force_flush()
            result.update(spans=exporter.spans)
        if registry is not None:
            completed = sum(
                s.value for f in registry.collect() for s in f.samples if s.name == "asyncmq_jobs_completed_total"
            )
            result.update(completed_counted=completed)
        return result
    finally:
        await clean_up(backend, redis_url, run, provider if observed else None, memory)


def summarize(slices: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """The sliced drain's result: each warm pair's ratio of jobs/s (on over off), and the totals."""
    pairs = [
        (on, off)
        for p in range(count)
        for on in [next(s for s in slices if s["pair"] == p and s["on"])]
        for off in [next(s for s in slices if s["pair"] == p and not s["on"])]
        if on["warm"] and off["warm"] and on["jobs"] and off["jobs"]
    ]
    ratios = [(on["jobs"] / on["seconds"]) / (off["jobs"] / off["seconds"]) for on, off in pairs]
    if len(ratios) < 2:
        raise SystemExit(f"{len(ratios)} warm pair(s) of slices: give more --jobs, shorter --slices or --warmup")

    def rate(side: int) -> float:
        return sum(p[side]["jobs"] for p in pairs) / sum(p[side]["seconds"] for p in pairs)

    def per_job(side: int, what: str) -> float:  # milliseconds per job run
        return 1000 * sum(p[side][what] for p in pairs) / sum(p[side]["jobs"] for p in pairs)

    return {
        "pairs": len(pairs),
        "off_jobs_per_s": round(rate(1), 1),
        "on_jobs_per_s": round(rate(0), 1),
        "ratio_on_over_off": round(rate(0) / rate(1), 3),
        "paired_ratio_median": round(statistics.median(ratios), 3),
        "paired_ratio_quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)],
        "worker_cpu_ms_per_job_off": round(per_job(1, "cpu"), 3),
        "worker_cpu_ms_per_job_on": round(per_job(0, "cpu"), 3),
        "gc_ms_per_job_off": round(per_job(1, "gc"), 4),
        "gc_ms_per_job_on": round(per_job(0, "gc"), 4),
        "target": ">= 0.95",
    }


async def alternate(observers: list[Any], jobs: int, width: float, warmup: float) -> tuple[list[dict[str, Any]], int]:
    """Subscribe and unsubscribe ``observers`` every ``width`` seconds until 80 % of ``jobs`` ran."""
    slices: list[dict[str, Any]] = []
    began = time.perf_counter()
    pair = 0
    collecting = [0.0, 0.0]  # the running collection's start, and the seconds collections took

    def gc_clock(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            collecting[1] += time.perf_counter() - collecting[0]

    gc.callbacks.append(gc_clock)
    try:
        while RAN[0] < jobs * 0.8:
            pair = await alternate_pair(observers, pair, width, slices, began, warmup, collecting)
            if time.perf_counter() - began > 900:
                raise TimeoutError("the sliced drain took more than 900 s")
    finally:
        gc.callbacks.remove(gc_clock)
    for observer in observers:
        observe.unsubscribe(observer)
    return slices, pair


async def alternate_pair(
    observers: list[Any],
    pair: int,
    width: float,
    slices: list[dict[str, Any]],
    began: float,
    warmup: float,
    collecting: list[float],
) -> int:
    """One slice off and one on (the order flips every pair); the next pair's number."""
    for on in (False, True) if pair % 2 == 0 else (True, False):
        for observer in observers:
            (observe.subscribe if on else observe.unsubscribe)(observer)
        t0, c0, n0, g0 = time.perf_counter(), time.process_time(), RAN[0], collecting[1]
        await asyncio.sleep(width)
        ran, seconds, cpu = RAN[0] - n0, time.perf_counter() - t0, time.process_time() - c0
        slices.append({"pair": pair, "on": on, "jobs": ran, "seconds": seconds, "cpu": cpu,
                       "gc": collecting[1] - g0, "warm": t0 - began >= warmup})  # fmt: skip
    return pair + 1


async def sliced(
    jobs: int, concurrency: int, redis_url: str, what: str, sampling: float, memory: bool, width: float, warmup: float
) -> dict[str, Any]:
    """One drain, the observers subscribed and unsubscribed every ``width`` seconds."""
    run = uuid.uuid4().hex[:8]
    store = f"{redis_url}?prefix=ovh-{run}"
    exporter = Dropped()
    _, provider = turn_on(exporter, what, sampling)
    observers = list(observe._observers)  # what turn_on subscribed
    backend = make_backend(memory, run, store)
    try:
        if not memory:
            await backend.provision([QUEUE])
        await add_jobs(backend, jobs, provider)
        RAN[0] = 0
        worker = asyncio.create_task(run_worker(QUEUE, backend=backend, concurrency=concurrency))
        slices, pairs = await alternate(observers, jobs, width, warmup)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    finally:
        await clean_up(backend, redis_url, run, provider, memory)
    return summarize(slices, pairs) | {
        "jobs": jobs,
        "observed": what,
        "sampling": sampling,
        "slice_seconds": width,
        "lean_spans": LEAN_SPANS[0],
        "spans": exporter.spans if provider is not None else None,
    }


async def clean_up(backend: Any, redis_url: str, run: str, provider: TracerProvider | None, memory: bool) -> None:
    """Close the backend, turn metrics and tracing off, and drop the run's queues and keys."""
    await backend.close()
    metrics.disable()
    tracing.disable()
    if provider is not None:
        provider.shutdown()
    if not memory:
        await drop(backend, redis_url, run)


async def drop(backend: SQSBackend, redis_url: str, run: str) -> None:
    import redis.asyncio as aioredis

    from tests.plugins.backend_sqs import drop_queues

    await drop_queues(os.environ["AWS_ENDPOINT_URL_SQS"], f"o{run}-")
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"ovh-{run}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each side (alternated)")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument(
        "--backend",
        choices=("sqs", "memory"),
        default="sqs",
        help="sqs: SQSBackend on ElasticMQ + Redis; memory: the in-process memory store and transport "
        "(no service: the worker's CPU per job without the emulators' noise)",
    )
    parser.add_argument("--sqs-endpoint")
    parser.add_argument("--redis-url")
    parser.add_argument(
        "--observe",
        choices=("both", "metrics", "tracing", "none"),
        default="both",
        help="what the observed side turns on (none: an A/A run, the noise floor)",
    )
    parser.add_argument(
        "--sampling",
        type=float,
        default=1.0,
        help="share of traces the tracer records (ParentBased(TraceIdRatioBased)); 1.0: every job",
    )
    parser.add_argument(
        "--slices",
        type=float,
        default=0.0,
        help="seconds per slice: one drain, the observers on and off in turn (0: separate drains per round)",
    )
    parser.add_argument(
        "--sdk-spans", action="store_true", help="every process span through Tracer.start_span (lean_spans=False)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of the sliced drain left out first")
    args = parser.parse_args()
    LEAN_SPANS[0] = not args.sdk_spans
    if args.observe == "none" and args.slices:
        parser.error("--slices compares observers on and off within a drain: give --observe both|metrics|tracing")
    with contextlib.ExitStack() as stack:
        redis_url = ""
        if args.backend == "sqs":
            wanted = argparse.Namespace(emulator="elasticmq", sqs_endpoint=args.sqs_endpoint, redis_url=args.redis_url)
            _, redis_url = stack.enter_context(sqs_and_redis(wanted))
        if args.slices:
            summary = asyncio.run(
                sliced(
                    args.jobs,
                    args.concurrency,
                    str(redis_url),
                    args.observe,
                    args.sampling,
                    args.backend == "memory",
                    args.slices,
                    args.warmup,
                )
            )
            print(json.dumps(summary, indent=2), flush=True)
            return
        results: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for i in range(args.rounds):
            for observed in (False, True) if i % 2 == 0 else (True, False):
                outcome = asyncio.run(
                    one_round(
                        args.jobs,
                        args.concurrency,
                        str(redis_url),
                        observed,
                        args.observe,
                        args.sampling,
                        args.backend == "memory",
                    )
                )
                results[observed].append(outcome)
                print(f"round {i + 1}: {json.dumps(outcome)}", flush=True)
        off = statistics.median(r["jobs_per_s"] for r in results[False])
        on = statistics.median(r["jobs_per_s"] for r in results[True])
        # Each round's two drains ran back to back: their ratio is less exposed to the machine's
        # drift over the run than the ratio of the medians.
        paired = [a["jobs_per_s"] / b["jobs_per_s"] for a, b in zip(results[True], results[False], strict=True)]
        cpu_off = statistics.median(r["cpu_ms_per_job"] for r in results[False])
        cpu_on = statistics.median(r["cpu_ms_per_job"] for r in results[True])
        summary = {
            "jobs": args.jobs,
            "rounds": args.rounds,
            "observed": args.observe,
            "sampling": args.sampling,
            "lean_spans": LEAN_SPANS[0],
            "off_jobs_per_s_median": round(off, 1),
            "on_jobs_per_s_median": round(on, 1),
            "ratio_on_over_off": round(on / off, 3),
            "paired_ratio_median": round(statistics.median(paired), 3),
            "paired_ratios": [round(r, 3) for r in paired],
            "worker_cpu_ms_per_job_off": round(cpu_off, 3),
            "worker_cpu_ms_per_job_on": round(cpu_on, 3),
            "target": ">= 0.95",
        }
        print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
