"""OpenTelemetry: the producer's trace reaches the task, on SQS, DynamoDB and Kafka (real services).

The OTel SDK's in-memory exporter collects the spans. A producer span around ``Queue.add``;
then AsyncMQ's own worker loop (``process_job``: it runs each job in a task created after
``dequeue``) or ``handle_job`` runs the job, whose task opens a span. The task's span must be
in the producer's trace, a child of the ``send`` span, itself a child of the producer's span;
the ``process`` span (claim to end of run) carries the messaging attributes. A retried job keeps its
trace: AsyncMQ drops unknown job keys, the backend writes the context back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asyncmq.queues import Queue
from asyncmq.workers import handle_job
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from asyncmq_cloud import tracing

TRACED = [
    pytest.param("sqs-elasticmq", marks=[pytest.mark.elasticmq, pytest.mark.redis]),
    pytest.param("dynamodb-moto", marks=pytest.mark.moto),
    pytest.param("kafka-redis", marks=[pytest.mark.kafka, pytest.mark.redis]),
]


@pytest.fixture(params=TRACED)
def traced_backend(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param.replace("-", "_") + "_backend")


#: The process's global provider (set once: OpenTelemetry refuses to replace it); the task's
#: own span uses it, as an application's would.
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    EXPORTER.clear()
    tracing.enable()  # the global provider
    try:
        yield PROVIDER, EXPORTER
    finally:
        tracing.disable()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def claim(backend: Any, queue: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await backend.promote_due_delayed(queue)
        job = await backend.dequeue(queue)
        if job is not None:
            return job
        assert asyncio.get_running_loop().time() < deadline, "no job claimed"


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "sdk-span"])
async def test_the_task_span_is_a_child_of_the_producer_trace(traced_backend: Any, spans: Any, lean: bool) -> None:
    provider, exporter = spans
    observer = tracing.enable(lean_spans=lean)  # the process span built lean (decision 81), or the SDK's
    queue = f"tr-{uuid.uuid4().hex[:8]}"
    with provider.get_tracer("producer").start_as_current_span("checkout") as producer:
        job_id = await Queue(queue, backend=traced_backend).add("tests.tasks.traced", args=["one"])
    # AsyncMQ's worker loop: dequeue here, the run in a task it creates afterwards.
    job = await claim(traced_backend, queue)
    await asyncio.get_running_loop().create_task(handle_job(queue, job, traced_backend))
    assert await traced_backend.get_job_state(queue, job_id) == "completed"

    (send,) = named(exporter, f"send {queue}")
    (task,) = named(exporter, "task one")
    (process,) = named(exporter, f"process {queue}")
    trace_id = producer.get_span_context().trace_id
    assert send.kind == SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == producer.get_span_context().span_id
    assert task.context.trace_id == trace_id, "the task runs in the producer's trace"
    assert task.parent is not None and task.parent.span_id == send.context.span_id
    assert process.kind == SpanKind.CONSUMER and process.context.trace_id == trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.destination.name"] == queue
    assert process.attributes["messaging.message.id"] == job_id
    assert process.attributes["messaging.system"] == "asyncmq"
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["asyncmq.outcome"] == "completed"
    assert process.start_time is not None and process.end_time is not None
    assert process.start_time <= task.start_time and task.end_time <= process.end_time, "claim to end of run"
    assert (observer._emitter is not None) is lean, "the path this case is about"


async def test_a_retried_job_keeps_its_trace_and_jobs_do_not_share_one(traced_backend: Any, spans: Any) -> None:
    provider, exporter = spans
    queue = f"tr-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    with provider.get_tracer("producer").start_as_current_span("first"):
        flaky = await Queue(queue, backend=traced_backend).add("tests.tasks.flaky", args=[key, 1], retries=2, backoff=0)
    untraced = await traced_backend.enqueue(queue, {"id": uuid.uuid4().hex, "task": "tests.tasks.traced",
                                                    "args": ["plain"], "kwargs": {}})  # fmt: skip
    (send_flaky,) = [s for s in named(exporter, f"send {queue}") if s.attributes["messaging.message.id"] == flaky]
    for _ in range(3):  # the flaky job twice, the plain one once
        job = await claim(traced_backend, queue)
        await asyncio.get_running_loop().create_task(handle_job(queue, job, traced_backend))
    assert await traced_backend.get_job_state(queue, flaky) == "completed"
    processes = named(exporter, f"process {queue}")
    flaky_runs = [s for s in processes if s.attributes["messaging.message.id"] == flaky]
    assert [s.attributes["asyncmq.outcome"] for s in flaky_runs] == ["retried", "completed"]
    assert {s.context.trace_id for s in flaky_runs} == {send_flaky.context.trace_id}, "the retry kept the trace"
    (plain_task,) = named(exporter, "task plain")
    (send_plain,) = [s for s in named(exporter, f"send {queue}") if s.attributes["messaging.message.id"] == untraced]
    assert plain_task.context.trace_id == send_plain.context.trace_id != send_flaky.context.trace_id
