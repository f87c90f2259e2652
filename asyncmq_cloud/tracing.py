"""OpenTelemetry trace propagation from the producer to the task (extra ``otel``).

:func:`enable` subscribes a :class:`TracingObserver` to :mod:`asyncmq_cloud.observe`:

* on an add, a ``send {queue}`` span (kind PRODUCER, a child of the caller's current
  span) is started and ended per job, and its W3C trace context (``traceparent``,
  ``tracestate``) is written into the job's record under ``_asyncmq_trace``. The record
  is the one place every backend has (an SQS or Kafka message carries only the job id),
  and the backend keeps the key through every run, retry and redelivery (AsyncMQ's
  ``Job`` drops unknown keys, so the backend writes it back itself);
* on a claim, a ``process {queue}`` span (kind CONSUMER) starts at the claim and lasts
  until the end of the run, with its outcome, and the producer's context is made current
  in the task that called ``dequeue``. AsyncMQ's worker starts
  the run in a task created right after ``dequeue`` returns, which copies that context:
  the task's own spans (and AsyncMQ's ``asyncmq.job.*`` span when ``tracing_enabled``)
  are children of the ``send`` span, in the producer's trace. A job without a context
  gets an empty one, so nothing leaks from the job before.

Attributes follow the messaging semantic conventions: ``messaging.system`` (``asyncmq``),
``messaging.operation.type``, ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the job id), plus ``asyncmq.task``. The adding caller's payload
dict gains the ``_asyncmq_trace`` key.

Without the extra nothing is imported and the hooks cost one list check each.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from asyncmq_cloud import observe
from asyncmq_cloud.core.records import TRACE_KEY
from asyncmq_cloud.extras import missing_extra

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised in a subprocess (tests/unit)
    _error = missing_extra(_exc, "OpenTelemetry tracing")
    if _error is _exc:
        raise
    raise _error from _exc

SYSTEM = "asyncmq"
#: Open ``process`` spans kept at most: a run given back at a drain, or whose claim was lost to
#: a stalled-job recovery, never ends here; the oldest is ended as ``abandoned`` past this.
MAX_OPEN_RUNS = 10_000


def _attributes(queue: str, operation: str, payload: dict[str, Any]) -> dict[str, str]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": str(payload.get("id", "")),
        "asyncmq.task": str(payload.get("task") or payload.get("task_id") or ""),
    }


class TracingObserver(observe.BaseObserver):
    """Spans for adds, claims and runs, and the context carried between them.

    Args:
        tracer_provider: where the spans go (default: the global provider).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("asyncmq_cloud", tracer_provider=tracer_provider)
        #: The ``process`` span of each run in this process, by (queue, job id).
        self.runs: dict[tuple[str, str], trace.Span] = {}

    # -- observe.Observer ------------------------------------------------------------------
    def jobs_adding(self, queue: str, payloads: Sequence[dict[str, Any]]) -> None:
        for payload in payloads:
            span = self.tracer.start_span(
                f"send {queue}", kind=SpanKind.PRODUCER, attributes=_attributes(queue, "send", payload)
            )
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            payload[TRACE_KEY] = carrier
            span.end()

    def job_started(self, queue: str, payload: dict[str, Any], waited: float | None) -> None:
        carrier = payload.get(TRACE_KEY)
        claimed_at = payload.get("active_since")
        claimed_at = float(claimed_at) if isinstance(claimed_at, int | float) else time.time()
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else otel_context.Context()
        while len(self.runs) >= MAX_OPEN_RUNS:  # runs that never ended here (given back, lost claims)
            oldest = next(iter(self.runs))
            self.job_ended(oldest[0], oldest[1], "", "abandoned", None)
        # One span per run, from the claim to the end: the claim is its start (a span of its
        # own per claim cost as much as the run's span, decision 64).
        span = self.tracer.start_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=_attributes(queue, "process", payload),
            start_time=int(claimed_at * 1e9),
        )
        if span.is_recording():  # a span the sampler dropped has nothing to end (decision 69)
            self.runs[(queue, str(payload.get("id")))] = span
        # Current in the calling task from here on: the run's task, created next, copies it.
        otel_context.attach(parent)

    def job_ended(self, queue: str, job_id: str, task: str, outcome: str, ran: float | None) -> None:
        span = self.runs.pop((queue, job_id), None)
        if span is None:
            return
        span.set_attribute("asyncmq.outcome", outcome)
        if outcome in ("failed", "expired"):
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()


_enabled: TracingObserver | None = None


def enable(tracer_provider: TracerProvider | None = None) -> TracingObserver:
    """Subscribe a :class:`TracingObserver` (one per process; a new provider replaces it)."""
    global _enabled
    if _enabled is not None:
        observe.unsubscribe(_enabled)
    _enabled = TracingObserver(tracer_provider)
    observe.subscribe(_enabled)
    return _enabled


def disable() -> None:
    """Undo :func:`enable` (idempotent); runs in progress end their spans unfinished."""
    global _enabled
    if _enabled is not None:
        observe.unsubscribe(_enabled)
        _enabled = None


__all__ = ["TRACE_KEY", "TracingObserver", "disable", "enable"]
