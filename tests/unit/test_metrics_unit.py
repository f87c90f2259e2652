"""The observer hooks and the Prometheus observer, without services.

Whether a real workload is counted is tested on the services in ``tests/e2e/test_metrics.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from asyncmq.queues import Queue
from prometheus_client import CollectorRegistry

from asyncmq_cloud import metrics, observe
from asyncmq_cloud._aws_observe import classify_code
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.transports.memory import MemoryTransport


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


@pytest.fixture
def registry() -> Any:
    registry = CollectorRegistry()
    metrics.enable(registry)
    try:
        yield registry
    finally:
        metrics.disable()


def test_nothing_is_told_without_an_observer_and_everything_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observe, "_observers", [])
    payload: dict[str, Any] = {"id": "j", "task": "t"}
    observe.jobs_adding("q", [payload])
    with observe.timed_call("sqs", "SendMessage"):
        pass
    assert not observe.active() and payload == {"id": "j", "task": "t"}

    told: list[tuple[Any, ...]] = []

    class Recording:
        def backend_call(self, *args: Any) -> None:
            told.append(args)

    observe.subscribe(Recording())  # type: ignore[arg-type]
    with observe.timed_call("sqs", "SendMessage"):
        pass
    with pytest.raises(KeyError), observe.timed_call("sqs", "ReceiveMessage", lambda exc: "permanent"):
        raise KeyError("x")
    assert [(service, op, outcome) for service, op, outcome, _ in told] == [
        ("sqs", "SendMessage", "ok"),
        ("sqs", "ReceiveMessage", "permanent"),
    ]


def test_an_observer_that_raises_never_breaks_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def jobs_enqueued(self, queue: str, tasks: Any) -> None:
            raise RuntimeError("observer bug")

    broken: Any = Broken()
    observe.subscribe(broken)
    try:
        observe.jobs_enqueued("q", [{"task": "t"}])
    finally:
        observe.unsubscribe(broken)
    assert "observer bug" in caplog.text


@pytest.mark.parametrize(
    ("code", "reasons", "outcome"),
    [
        (None, None, "ok"),
        ("ConditionalCheckFailedException", None, "ok"),
        ("ProvisionedThroughputExceededException", None, "throttled"),
        ("ThrottlingException", None, "throttled"),
        ("RequestLimitExceeded", None, "throttled"),
        ("InternalServerError", None, "transient"),
        ("ServiceUnavailable", None, "transient"),
        ("ValidationException", None, "permanent"),
        ("AccessDeniedException", None, "permanent"),
        ("TransactionCanceledException", ["None", "ConditionalCheckFailed"], "ok"),
        ("TransactionCanceledException", ["TransactionConflict"], "transient"),
        ("TransactionCanceledException", ["ThrottlingError", "None"], "throttled"),
    ],
)
def test_aws_answers_are_sorted_into_outcomes(code: str | None, reasons: list[str] | None, outcome: str) -> None:
    assert classify_code(code, reasons) == outcome


async def test_a_workload_on_the_memory_backend_is_counted_exactly(
    memory_state_store: Any, registry: CollectorRegistry
) -> None:
    from asyncmq.workers import handle_job

    qname = f"m-{uuid.uuid4().hex[:8]}"
    backend = CloudBackend(memory_state_store, MemoryTransport(), MemoryDelayStore())
    observer = metrics.enable(registry)
    observer.watch(backend)
    queue = Queue(qname, backend=backend)
    await queue.add("tests.tasks.add", args=[1, 2])
    await queue.add("tests.tasks.fail_always", args=["k"], retries=0)
    await queue.add_bulk([{"task_id": "tests.tasks.add", "args": [i, i]} for i in range(2)])
    assert value(registry, "asyncmq_jobs_enqueued_total", queue=qname) == 4
    for _ in range(4):
        job = await backend.dequeue(qname)
        assert job is not None
        assert value(registry, "asyncmq_jobs_running", queue=qname) == 1
        await handle_job(qname, job, backend)
    assert value(registry, "asyncmq_jobs_started_total", queue=qname) == 4
    assert value(registry, "asyncmq_jobs_completed_total", queue=qname, task="tests.tasks.add") == 3
    assert value(registry, "asyncmq_jobs_failed_total", queue=qname, task="tests.tasks.fail_always") == 1
    assert value(registry, "asyncmq_job_run_seconds_count", queue=qname) == 4
    assert value(registry, "asyncmq_job_wait_seconds_count", queue=qname) == 4
    assert value(registry, "asyncmq_jobs_running", queue=qname) == 0
    # A delayed job handed over by the scanner: one lateness observation.
    await queue.add("tests.tasks.add", args=[0, 0], delay=0.05)
    await asyncio.sleep(0.1)
    await backend.promote_due_delayed(qname)
    assert value(registry, "asyncmq_delayed_handover_lateness_seconds_count", queue=qname) == 1
    text = metrics.exposition(registry)
    assert f'asyncmq_jobs_completed_total{{queue="{qname}",task="tests.tasks.add"}} 3.0' in text
    await backend.close()


async def test_a_reference_to_a_finished_job_is_counted_as_dropped(
    memory_state_store: Any, registry: CollectorRegistry
) -> None:
    from asyncmq.workers import handle_job

    qname = f"m-{uuid.uuid4().hex[:8]}"
    transport = MemoryTransport()
    backend = CloudBackend(memory_state_store, transport, MemoryDelayStore())
    job_id = await Queue(qname, backend=backend).add("tests.tasks.add", args=[1, 2])
    job = await backend.dequeue(qname)
    assert job is not None and job["id"] == job_id
    await handle_job(qname, job, backend)
    await transport.send(qname, [job_id])  # a duplicate reference to the completed job
    assert await backend.dequeue(qname) is None
    assert value(registry, "asyncmq_references_dropped_total", queue=qname, reason="duplicate") == 1
    assert value(registry, "asyncmq_jobs_started_total", queue=qname) == 1
    await backend.close()


async def test_the_depth_sampler_serves_its_last_sample(memory_state_store: Any) -> None:
    qname = f"m-{uuid.uuid4().hex[:8]}"
    backend = CloudBackend(memory_state_store, MemoryTransport(), MemoryDelayStore())
    queue = Queue(qname, backend=backend)
    await queue.add("tests.tasks.add", args=[1, 2])
    await queue.add("tests.tasks.add", args=[1, 2], delay=600)
    sampler = metrics.DepthSampler(backend, [qname], interval=60)
    registry = CollectorRegistry()
    registry.register(sampler)
    assert value(registry, "asyncmq_queue_jobs", queue=qname) == 0, "nothing before the first sample"
    await sampler.sample()
    assert value(registry, "asyncmq_queue_jobs", queue=qname, state="waiting") == 1
    assert value(registry, "asyncmq_queue_jobs", queue=qname, state="delayed") == 1
    await queue.add("tests.tasks.add", args=[1, 2])
    assert value(registry, "asyncmq_queue_jobs", queue=qname, state="waiting") == 1, "a scrape reads no store"
    assert 0 <= value(registry, "asyncmq_queue_sample_age_seconds", queue=qname) < time.time()
    await backend.close()


def test_runs_that_never_end_here_do_not_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from asyncmq_cloud import tracing

    monkeypatch.setattr(tracing, "MAX_OPEN_RUNS", 3)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = tracing.TracingObserver(provider)
    for i in range(5):  # claimed, never ended (given back at a drain, or the claim lost)
        observer.job_started("q", {"id": f"j{i}", "task": "t", "active_since": time.time()}, None)
    assert list(observer.runs) == [("q", "j2"), ("q", "j3"), ("q", "j4")]
    ended = exporter.get_finished_spans()
    assert [(s.attributes or {}).get("messaging.message.id") for s in ended] == ["j0", "j1"]
    assert {(s.attributes or {}).get("asyncmq.outcome") for s in ended} == {"abandoned"}


def test_a_run_the_sampler_drops_is_not_kept_open() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from asyncmq_cloud import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = tracing.TracingObserver(provider)
    payloads = [{"id": f"j{i}", "task": "t"} for i in range(200)]
    observer.jobs_adding("q", payloads)
    sampled = [p["id"] for p in payloads if int(p[tracing.TRACE_KEY]["traceparent"][-2:], 16) & 1]  # W3C flags
    assert 0 < len(sampled) < len(payloads), "the ratio sampler keeps some adds and drops others"
    for payload in payloads:
        observer.job_started("q", {**payload, "active_since": time.time()}, None)
    assert sorted(job_id for _, job_id in observer.runs) == sorted(sampled), "the run follows the add's decision"
    for payload in payloads:
        observer.job_ended("q", payload["id"], "t", "completed", 0.0)
    assert not observer.runs
    runs = [s for s in exporter.get_finished_spans() if s.name == "process q"]
    assert sorted((s.attributes or {}).get("messaging.message.id") for s in runs) == sorted(sampled)


def test_a_failed_kafka_call_is_observed_with_its_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``KafkaTransport.send`` relies on: a failure raised inside ``kafka_errors`` (its
    records' errors, translated) is reported with its outcome, not as ``ok``."""
    from aiokafka.errors import KafkaTimeoutError

    from asyncmq_cloud.errors import PermanentError, TransientError
    from asyncmq_cloud.transports._kafka_errors import kafka_errors

    told: list[tuple[str, str]] = []

    class Recording:
        def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
            told.append((operation, outcome))

    monkeypatch.setattr(observe, "_observers", [Recording()])
    with pytest.raises(TransientError), kafka_errors("topic t", "Produce"):
        raise KafkaTimeoutError()
    with pytest.raises(PermanentError), kafka_errors("topic t", "Produce"):
        raise PermanentError("record too large")
    with kafka_errors("topic t", "Produce"):
        pass
    assert told == [("Produce", "transient"), ("Produce", "permanent"), ("Produce", "ok")]


async def test_the_depth_sampler_exports_kafka_lag_per_partition() -> None:
    class KafkaLike:
        async def queue_stats(self, queue_name: str) -> dict[str, int]:
            return {"waiting": 7, "delayed": 0, "failed": 0}

        async def broker_stats(self, queue_name: str) -> dict[str, int]:
            return {"partition-0": 2, "partition-1": 5, "depth": 7}

        async def list_workers(self) -> list[Any]:
            return []

    sampler = metrics.DepthSampler(KafkaLike(), ["emails"])
    registry = CollectorRegistry()
    registry.register(sampler)
    await sampler.sample()
    assert value(registry, "asyncmq_kafka_consumer_lag", queue="emails", partition="0") == 2
    assert value(registry, "asyncmq_kafka_consumer_lag", queue="emails", partition="1") == 5
    assert value(registry, "asyncmq_broker_messages", queue="emails") == 7, "partitions are not broker kinds"
    assert value(registry, "asyncmq_broker_messages", queue="emails", kind="depth") == 7
