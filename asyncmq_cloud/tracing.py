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

With the OpenTelemetry SDK's own tracer and span processors (``BatchSpanProcessor``,
``SimpleSpanProcessor``), the ``process`` span is built at the end of the run as the
``ReadableSpan`` the SDK's ``Span`` would hand its processors, sampled at the claim by the
tracer's own sampler: the same span at about a third of the CPU (decision 81). Any other set-up
(another processor, SDK-internal metrics, an attribute length limit, a job without a trace
context, ``lean_spans=False``) goes through ``Tracer.start_span``.

Without the extra nothing is imported and the hooks cost one list check each.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from asyncmq_cloud import observe
from asyncmq_cloud.core.records import TRACE_KEY
from asyncmq_cloud.extras import missing_extra

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised in a subprocess (tests/unit)
    _error = missing_extra(_exc, "OpenTelemetry tracing")
    if _error is _exc:
        raise
    raise _error from _exc

try:  # the SDK, when the application installed one: what a lean span is built from (decision 81)
    from opentelemetry.sdk.trace import ReadableSpan as _ReadableSpan
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor as _MultiProcessor
    from opentelemetry.sdk.trace import Tracer as _SdkTracer
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, StaticSampler
except ImportError:  # pragma: no cover - the SDK is a test dependency here
    _SdkTracer = None  # type: ignore[misc,assignment]
try:  # the SDK's own span metrics (1.39+), off unless OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics as _NoOpTracerMetrics
except ImportError:  # pragma: no cover - an SDK without them
    _NoOpTracerMetrics = None  # type: ignore[misc,assignment]

SYSTEM = "asyncmq"
#: Open ``process`` spans kept at most: a run given back at a drain, or whose claim was lost to
#: a stalled-job recovery, never ends here; the oldest is ended as ``abandoned`` past this.
MAX_OPEN_RUNS = 10_000
#: The processors whose ``on_start`` and ``_on_ending`` do nothing: with only these, a span the
#: processors first see at its end is the span they would have seen (decision 81).
_PLAIN_PROCESSORS: tuple[type, ...] = () if _SdkTracer is None else (BatchSpanProcessor, SimpleSpanProcessor)
#: A lean span has the five claim attributes, the outcome and any the sampler adds.
_LEAN_ATTRIBUTES_MIN = 16
_MISSING = object()


#: A version-00 ``traceparent`` with nothing around it: what this package's adds write. A
#: header this does not match (whitespace, another version, a ``tracestate``) is extracted by
#: the propagator itself.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_NO_TRACE, _NO_SPAN = "0" * 32, "0" * 16
_textmap_checked: list[Any] = [None, False]  # the global propagator last checked, and whether it is W3C's
#: Every value of the W3C flags byte, made once.
_FLAGS = [trace.TraceFlags(flags) for flags in range(256)]


def _w3c_default() -> bool:
    """Whether the global propagator extracts a lone ``traceparent`` as W3C's Trace Context does:
    OpenTelemetry's default (``tracecontext,baggage``, in that order) or ``tracecontext`` alone."""
    textmap = propagate.get_global_textmap()
    if textmap is not _textmap_checked[0]:
        kinds = [type(p) for p in _sdk(textmap, "_propagators", ())] if type(textmap) is CompositePropagator else []
        w3c = type(textmap) is TraceContextTextMapPropagator or kinds in (
            [TraceContextTextMapPropagator],
            [TraceContextTextMapPropagator, W3CBaggagePropagator],
        )
        _textmap_checked[:] = [textmap, w3c]
    return bool(_textmap_checked[1])


def _extract(carrier: dict[str, Any]) -> tuple[otel_context.Context, trace.SpanContext]:
    """``propagate.extract(carrier)`` and the span context in it, parsed here for the common
    carrier (decision 81): only a plain version-00 ``traceparent``, and the default
    propagators. Anything else: the propagator's."""
    if len(carrier) == 1 and _w3c_default():
        header = carrier.get("traceparent")
        match = _TRACEPARENT.fullmatch(header) if type(header) is str else None
        if match is not None and match[1] != _NO_TRACE and match[2] != _NO_SPAN:
            remote = trace.SpanContext(
                int(match[1], 16), int(match[2], 16), is_remote=True, trace_flags=_FLAGS[int(match[3], 16)]
            )
            return trace.set_span_in_context(trace.NonRecordingSpan(remote), otel_context.Context()), remote
    context = propagate.extract(carrier)
    return context, trace.get_current_span(context).get_span_context()


def _attributes(queue: str, operation: str, payload: dict[str, Any]) -> dict[str, str]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": str(payload.get("id", "")),
        "asyncmq.task": str(payload.get("task") or payload.get("task_id") or ""),
    }


class _Emitter:
    """An SDK tracer's parts a lean span is built from, checked for one set of processors."""

    __slots__ = ("info", "processor", "processors", "remote", "resource", "sampler", "scope", "span_ids", "tracer")

    def __init__(self, tracer: Any, processors: Any) -> None:
        self.tracer = tracer
        self.processors = processors
        self.processor = tracer.span_processor
        self.sampler = tracer.sampler
        self.span_ids = tracer.id_generator
        self.resource = tracer.resource
        self.info = tracer.instrumentation_info
        self.scope = tracer._instrumentation_scope
        self.remote = _remote_decisions(self.sampler)


def _sdk(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.<name>``: the OpenTelemetry SDK's internals, which other versions may lack (decision 81)."""
    return getattr(obj, name, default)


def _remote_decisions(sampler: Any) -> tuple[Any, Any] | None:
    """What the SDK's ``ParentBased`` decides for a remote parent, sampled and not, when its
    delegates for them are the SDK's fixed ones (the default ``parentbased_always_on``, and
    ``parentbased_traceidratio``: the ratio applies to root spans only). None: ask the sampler."""
    if type(sampler) is not ParentBased:
        return None
    sampled, not_sampled = _sdk(sampler, "_remote_parent_sampled"), _sdk(sampler, "_remote_parent_not_sampled")
    if type(sampled) is not StaticSampler or type(not_sampled) is not StaticSampler:
        return None
    decisions = _sdk(sampled, "_decision"), _sdk(not_sampled, "_decision")
    return None if None in decisions else decisions


def _sdk_tracer(tracer: Any) -> Any:
    """The SDK's own ``Tracer`` behind ``tracer`` (the API's proxy once a provider is set), or None."""
    if _SdkTracer is None:
        return None
    if type(tracer) is not _SdkTracer:
        tracer = _sdk(tracer, "_tracer")  # ProxyTracer: the global provider set after enable()
    return tracer if type(tracer) is _SdkTracer else None


def _lean_allowed(tracer: Any) -> bool:
    """True when a span built at its end is what the SDK's ``Span`` would have given (decision 81)."""
    processor = _sdk(tracer, "span_processor")
    if type(processor) is not _MultiProcessor:  # ConcurrentMultiSpanProcessor, or a replaced one
        return False
    if not all(type(p) in _PLAIN_PROCESSORS for p in _sdk(processor, "_span_processors", (None,))):
        return False  # a processor that may act in on_start (or a subclass): it sees the SDK's Span
    limits = _sdk(tracer, "_span_limits")
    if limits is None or _sdk(limits, "max_span_attribute_length", 0) is not None:
        return False  # values the SDK would truncate
    most = _sdk(limits, "max_span_attributes", 0)
    if most is not None and most < _LEAN_ATTRIBUTES_MIN:
        return False
    metrics = _sdk(tracer, "_tracer_metrics")  # the SDK counting its own spans
    if metrics is not None and (_NoOpTracerMetrics is None or not isinstance(metrics, _NoOpTracerMetrics)):
        return False
    needed = ("sampler", "id_generator", "resource", "instrumentation_info", "_instrumentation_scope")
    return all(_sdk(tracer, name, _MISSING) is not _MISSING for name in needed)


class _LeanRun:
    """A sampled run whose ``process`` span is built at its end (decision 81)."""

    __slots__ = ("attributes", "emitter", "flags", "name", "parent", "start", "trace_state")

    def __init__(
        self, emitter: _Emitter, name: str, parent: Any, flags: Any, trace_state: Any, attributes: Any, start: int
    ) -> None:
        self.emitter = emitter
        self.name = name
        self.parent = parent
        self.flags = flags
        self.trace_state = trace_state
        self.attributes = attributes
        self.start = start


class TracingObserver(observe.BaseObserver):
    """Spans for adds, claims and runs, and the context carried between them.

    Args:
        tracer_provider: where the spans go (default: the global provider).
        lean_spans: build the ``process`` span at the end of the run when the tracer is the
            SDK's with its own processors (decision 81); False: always ``Tracer.start_span``.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None, *, lean_spans: bool = True) -> None:
        self.tracer = trace.get_tracer("asyncmq_cloud", tracer_provider=tracer_provider)
        self.lean_spans = lean_spans
        #: The ``process`` span of each run in this process, by (queue, job id): the SDK's
        #: span, or what a lean one is built from at the end.
        self.runs: dict[tuple[str, str], trace.Span | _LeanRun] = {}
        self._emitter: _Emitter | None = None
        self._checked: tuple[Any, Any] | None = None  # (tracer, its processors) _emitter is for
        self._sdk: Any = None  # the SDK's tracer behind self.tracer, once there is one

    def _lean_emitter(self) -> _Emitter | None:
        """The emitter for the tracer as it is now (checked again when its processors change)."""
        tracer = self._sdk
        if tracer is None:
            tracer = self._sdk = _sdk_tracer(self.tracer)
            if tracer is None:  # no SDK provider (yet: a global one may be set later)
                return None
        # add_span_processor replaces the tuple: a new one is checked again
        key = (tracer, _sdk(tracer.span_processor, "_span_processors"))
        if self._checked is None or self._checked[0] is not key[0] or self._checked[1] is not key[1]:
            self._checked = key
            self._emitter = _Emitter(tracer, key[1]) if _lean_allowed(tracer) else None
        is_enabled = _sdk(tracer, "_is_enabled")  # a tracer configurator may turn it off
        return self._emitter if is_enabled is None or is_enabled() else None

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
        parent, remote = _extract(carrier) if isinstance(carrier, dict) else (otel_context.Context(), None)
        while len(self.runs) >= MAX_OPEN_RUNS:  # runs that never ended here (given back, lost claims)
            oldest = next(iter(self.runs))
            self.job_ended(oldest[0], oldest[1], "", "abandoned", None)
        start = int(claimed_at * 1e9)
        emitter = self._lean_emitter() if self.lean_spans else None
        if emitter is not None and remote is not None and remote.is_valid:  # no context: a root span, the SDK's
            self._lean_start(emitter, queue, payload, parent, remote, start)
            otel_context.attach(parent)
            return
        # One span per run, from the claim to the end: the claim is its start (a span of its
        # own per claim cost as much as the run's span, decision 64).
        span = self.tracer.start_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=_attributes(queue, "process", payload),
            start_time=start,
        )
        if span.is_recording():  # a span the sampler dropped has nothing to end (decision 69)
            self.runs[(queue, str(payload.get("id")))] = span
        # Current in the calling task from here on: the run's task, created next, copies it.
        otel_context.attach(parent)

    def _lean_start(
        self, emitter: _Emitter, queue: str, payload: dict[str, Any], parent: Any, remote: Any, start: int
    ) -> None:
        """Sample the run as ``start_span`` would; keep what its span is built from at the end."""
        name = f"process {queue}"
        attributes: Any = _attributes(queue, "process", payload)
        parent_flags = remote.trace_flags
        if emitter.remote is not None:  # ParentBased's answer, without asking it
            decision, trace_state = emitter.remote[0 if parent_flags & _SAMPLED else 1], remote.trace_state
        else:
            sampled = emitter.sampler.should_sample(parent, remote.trace_id, name, SpanKind.CONSUMER, attributes, ())
            decision, trace_state, attributes = sampled.decision, sampled.trace_state, sampled.attributes
        if not decision.is_recording():  # nothing to end (decision 69)
            return
        # W3C level 2's random-trace-id flag is kept from the parent, as start_span does
        flags = (_SAMPLED if decision.is_sampled() else 0) | (parent_flags & _RANDOM)
        self.runs[(queue, str(payload.get("id")))] = _LeanRun(
            emitter, name, remote, _FLAGS[flags], trace_state, attributes, start
        )

    def job_ended(self, queue: str, job_id: str, task: str, outcome: str, ran: float | None) -> None:
        span = self.runs.pop((queue, job_id), None)
        if span is None:
            return
        if isinstance(span, _LeanRun):
            _lean_end(span, outcome)
            return
        span.set_attribute("asyncmq.outcome", outcome)
        if outcome in ("failed", "expired"):
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()


def _lean_end(run: _LeanRun, outcome: str) -> None:
    """Hand the processors the ``ReadableSpan`` the SDK's ``Span.end()`` would have built."""
    emitter = run.emitter
    attributes = dict(run.attributes)
    attributes["asyncmq.outcome"] = outcome
    context = trace.SpanContext(
        run.parent.trace_id,
        emitter.span_ids.generate_span_id(),
        is_remote=False,
        trace_flags=run.flags,
        trace_state=run.trace_state,
    )
    span = _ReadableSpan(
        name=run.name,
        context=context,
        parent=run.parent,
        resource=emitter.resource,
        attributes=attributes,
        kind=SpanKind.CONSUMER,
        instrumentation_info=emitter.info,
        status=Status(StatusCode.ERROR, outcome) if outcome in ("failed", "expired") else _UNSET,
        start_time=run.start,
        end_time=time.time_ns(),
        instrumentation_scope=emitter.scope,
    )
    emitter.processor.on_end(span)


_UNSET = Status(StatusCode.UNSET)
_SAMPLED, _RANDOM = int(trace.TraceFlags.SAMPLED), int(_sdk(trace.TraceFlags, "RANDOM_TRACE_ID", 0))
_enabled: TracingObserver | None = None


def enable(tracer_provider: TracerProvider | None = None, *, lean_spans: bool = True) -> TracingObserver:
    """Subscribe a :class:`TracingObserver` (one per process; a new provider replaces it).

    ``lean_spans=False`` sends every ``process`` span through ``Tracer.start_span`` (decision 81).
    """
    global _enabled
    if _enabled is not None:
        observe.unsubscribe(_enabled)
    _enabled = TracingObserver(tracer_provider, lean_spans=lean_spans)
    observe.subscribe(_enabled)
    return _enabled


def disable() -> None:
    """Undo :func:`enable` (idempotent); runs in progress end their spans unfinished."""
    global _enabled
    if _enabled is not None:
        observe.unsubscribe(_enabled)
        _enabled = None


__all__ = ["TRACE_KEY", "TracingObserver", "disable", "enable"]
