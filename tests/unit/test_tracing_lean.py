"""The lean ``process`` span (decision 81) is the span the SDK's own ``Span`` would have given.

Each test runs the same claims through a :class:`TracingObserver` with ``lean_spans`` on and
one with it off (every span through ``Tracer.start_span``), on the OpenTelemetry SDK with an
in-memory exporter, and compares what the processors were handed; and it checks that each
set-up the lean span cannot reproduce goes through the SDK.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import pytest
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode

from asyncmq_cloud import tracing

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def provider_with(exporter: InMemorySpanExporter, **kwargs: Any) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False, **kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def job(job_id: str, carrier: dict[str, str] | None = None, claimed_at: float = 1_700_000_000.25) -> dict[str, Any]:
    payload: dict[str, Any] = {"id": job_id, "task": "app.tasks.resize", "active_since": claimed_at}
    if carrier is not None:
        payload[tracing.TRACE_KEY] = carrier
    return payload


def run(observer: tracing.TracingObserver, payload: dict[str, Any], outcome: str) -> Any:
    """Claim and end one job; what the observer kept for it in between."""
    observer.job_started("images", dict(payload), 0.5)
    kept = observer.runs.get(("images", payload["id"]))
    observer.job_ended("images", payload["id"], payload["task"], outcome, 0.1)
    return kept


def comparable(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter reads, but the span's own id and end time (new per span)."""
    data = json.loads(span.to_json())
    data["context"].pop("span_id")
    data.pop("end_time")
    with warnings.catch_warnings():  # deprecated, still read by older exporters
        warnings.simplefilter("ignore", DeprecationWarning)
        info = span.instrumentation_info
    return {
        "json": data,
        "trace_id": span.context.trace_id,
        "flags": int(span.context.trace_flags),
        "trace_state": span.context.trace_state,
        "remote": span.context.is_remote,
        "parent": span.parent,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "status": (span.status.status_code, span.status.description),
        "start_time": span.start_time,
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "info": info,
        "events": span.events,
        "links": span.links,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def both_ways(carrier: dict[str, str], outcome: str, **provider_kwargs: Any) -> tuple[ReadableSpan, ReadableSpan]:
    """The same claim's span, lean and through the SDK, on providers set up alike."""
    spans = []
    for lean in (True, False):
        exporter = InMemorySpanExporter()
        observer = tracing.TracingObserver(provider_with(exporter, **provider_kwargs), lean_spans=lean)
        kept = run(observer, job("j1", carrier), outcome)
        assert isinstance(kept, tracing._LeanRun) is lean, "the path this arm is about"
        (span,) = exporter.get_finished_spans()
        assert span.end_time is not None and span.start_time is not None and span.end_time >= span.start_time
        spans.append(span)
    return spans[0], spans[1]


@pytest.mark.parametrize(
    ("carrier", "outcome"),
    [
        ({"traceparent": TRACEPARENT}, "completed"),
        ({"traceparent": TRACEPARENT}, "failed"),
        ({"traceparent": TRACEPARENT}, "expired"),
        ({"traceparent": TRACEPARENT}, "retried"),
        ({"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other=1"}, "completed"),
        # W3C level 2: the random-trace-id flag, kept by start_span from the parent
        ({"traceparent": TRACEPARENT[:-2] + "03"}, "cancelled"),
    ],
)
def test_the_lean_span_is_the_sdk_span(carrier: dict[str, str], outcome: str) -> None:
    lean, sdk = both_ways(carrier, outcome)
    assert comparable(lean) == comparable(sdk)
    assert lean.context.span_id != sdk.context.span_id, "each span gets an id of its own"
    assert lean.kind == SpanKind.CONSUMER and lean.name == "process images"
    assert lean.parent is not None and lean.parent.span_id == int(TRACEPARENT[36:52], 16)
    assert lean.start_time == int(1_700_000_000.25 * 1e9), "the claim is the span's start"
    assert lean.attributes is not None and lean.attributes["asyncmq.outcome"] == outcome
    failed = outcome in ("failed", "expired")
    assert lean.status.status_code == (StatusCode.ERROR if failed else StatusCode.UNSET)


class TaggingSampler(Sampler):
    """Samples everything and adds an attribute, as a rule-based sampler may."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        attributes = kwargs.get("attributes", args[4] if len(args) > 4 else None)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "sampler.rule": "all"})

    def get_description(self) -> str:
        return "TaggingSampler"


def test_a_samplers_attributes_are_kept() -> None:
    lean, sdk = both_ways({"traceparent": TRACEPARENT}, "completed", sampler=TaggingSampler())
    assert comparable(lean) == comparable(sdk)
    assert lean.attributes is not None and lean.attributes["sampler.rule"] == "all"


class RecordOnly(Sampler):
    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "RecordOnly"


class Seen(SpanProcessor):
    """A processor that acts at the span's start: it must see the SDK's span then."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[tuple[str, bool]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append((span.name, span.context.trace_flags.sampled))


def test_a_recorded_but_unsampled_run_reaches_the_processors_unsampled() -> None:
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    handed: list[tuple[str, bool]] = []
    to_processor = processor.on_end

    def recording(span: ReadableSpan) -> None:
        handed.append((span.name, span.context.trace_flags.sampled))
        to_processor(span)

    # recorded on the instance: its type stays the SDK's, so the lean path still applies
    processor.on_end = recording  # type: ignore[method-assign]
    provider = TracerProvider(shutdown_on_exit=False, sampler=RecordOnly())
    provider.add_span_processor(processor)
    seen = Seen()
    observer = tracing.TracingObserver(provider)
    kept = run(observer, job("j1", {"traceparent": TRACEPARENT}), "completed")
    assert isinstance(kept, tracing._LeanRun)
    assert handed == [("process images", False)], "the lean span reached on_end, unsampled"
    assert exporter.get_finished_spans() == (), "SimpleSpanProcessor exports only sampled spans"
    provider.add_span_processor(seen)  # from here on: through the SDK (checked below), same decision
    assert not isinstance(run(observer, job("j2", {"traceparent": TRACEPARENT}), "completed"), tracing._LeanRun)
    assert seen.ended == [("process images", False)]


def test_a_processor_that_acts_at_the_start_sees_the_sdk_span_from_when_it_is_added() -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter)
    observer = tracing.TracingObserver(provider)
    assert isinstance(run(observer, job("j1", {"traceparent": TRACEPARENT}), "completed"), tracing._LeanRun)
    seen = Seen()
    provider.add_span_processor(seen)
    assert not isinstance(run(observer, job("j2", {"traceparent": TRACEPARENT}), "completed"), tracing._LeanRun)
    assert seen.started == ["process images"], "on_start ran at the claim"
    assert [(s.attributes or {})["messaging.message.id"] for s in exporter.get_finished_spans()] == ["j1", "j2"]


class MyBatch(BatchSpanProcessor):
    """A subclass may override on_start: not one of the SDK's own."""


@pytest.mark.parametrize(
    "setup",
    [
        "concurrent processors",
        "a subclassed processor",
        "attribute length limit",
        "few attributes allowed",
        "no trace context",
        "lean_spans off",
        "tracer turned off",
        "SDK-internal metrics",
    ],
)
def test_set_ups_the_lean_span_cannot_reproduce_go_through_the_sdk(setup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if setup == "SDK-internal metrics":  # the SDK counts its spans itself, in Span's start and end
        monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    exporter = InMemorySpanExporter()
    kwargs: dict[str, Any] = {}
    if setup == "concurrent processors":
        kwargs["active_span_processor"] = ConcurrentMultiSpanProcessor(2)
    if setup == "attribute length limit":
        kwargs["span_limits"] = SpanLimits(max_span_attribute_length=6)
    if setup == "few attributes allowed":
        kwargs["span_limits"] = SpanLimits(max_span_attributes=4)
    provider = TracerProvider(shutdown_on_exit=False, **kwargs)
    processor = MyBatch(exporter) if setup == "a subclassed processor" else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    observer = tracing.TracingObserver(provider, lean_spans=setup != "lean_spans off")
    if setup == "tracer turned off":
        from opentelemetry.sdk.trace import _TracerConfig

        observer.tracer._set_tracer_config(_TracerConfig(is_enabled=False))  # type: ignore[attr-defined]
    carrier = None if setup == "no trace context" else {"traceparent": TRACEPARENT}
    try:
        kept = run(observer, job("j1", carrier), "completed")
        processor.force_flush()
    finally:
        provider.shutdown()
    assert not isinstance(kept, tracing._LeanRun)
    spans = exporter.get_finished_spans()
    if setup == "tracer turned off":
        assert spans == () and kept is None
        return
    (span,) = spans
    attributes = dict(span.attributes or {})
    if setup == "attribute length limit":
        assert attributes["messaging.destination.name"] == "images" and attributes["asyncmq.task"] == "app.ta"
    elif setup == "few attributes allowed":
        assert len(attributes) == 4 and span.dropped_attributes == 2
    else:
        assert attributes["asyncmq.outcome"] == "completed"
    if setup == "no trace context":
        assert span.parent is None, "a root span"


def test_runs_abandoned_past_the_bound_end_lean_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "MAX_OPEN_RUNS", 2)
    exporter = InMemorySpanExporter()
    observer = tracing.TracingObserver(provider_with(exporter))
    for i in range(4):
        observer.job_started("images", job(f"j{i}", {"traceparent": TRACEPARENT}, claimed_at=time.time()), None)
    assert list(observer.runs) == [("images", "j2"), ("images", "j3")]
    ended = exporter.get_finished_spans()
    assert [((s.attributes or {})["messaging.message.id"], (s.attributes or {})["asyncmq.outcome"]) for s in ended] == [
        ("j0", "abandoned"),
        ("j1", "abandoned"),
    ]


def test_the_global_provider_set_after_enable_is_used_lean(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tracing.enable()`` before the SDK's set-up: the API's proxy tracer finds the SDK's later."""
    from opentelemetry import trace

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace.Once())
    observer = tracing.TracingObserver()
    assert type(observer.tracer) is trace.ProxyTracer
    exporter = InMemorySpanExporter()
    trace.set_tracer_provider(provider_with(exporter))
    assert isinstance(run(observer, job("j1", {"traceparent": TRACEPARENT}), "completed"), tracing._LeanRun)
    (span,) = exporter.get_finished_spans()
    assert span.name == "process images"


CARRIERS = [
    {"traceparent": TRACEPARENT},
    {"traceparent": TRACEPARENT[:-2] + "00"},
    {"traceparent": TRACEPARENT[:-2] + "03"},
    {"traceparent": " " + TRACEPARENT + "\t"},
    {"traceparent": TRACEPARENT.upper()},
    {"traceparent": "00-" + "0" * 32 + TRACEPARENT[35:]},
    {"traceparent": TRACEPARENT[:36] + "0" * 16 + "-01"},
    {"traceparent": "ff" + TRACEPARENT[2:]},
    {"traceparent": "01" + TRACEPARENT[2:] + "-future"},
    {"traceparent": TRACEPARENT + "-extra"},
    {"traceparent": TRACEPARENT[:-1]},
    {"traceparent": [TRACEPARENT]},
    {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"},
    {"traceparent": TRACEPARENT, "baggage": "user=alice"},
    {"tracestate": "vendor=abc"},
    {},
]


def extracted(context: Any, remote: Any = None) -> tuple[Any, ...]:
    """What a context holds; with ``remote`` (``_extract``'s second value): that it is the span's."""
    from opentelemetry import baggage, trace

    span_context = trace.get_current_span(context).get_span_context()
    assert remote is None or remote == span_context
    return (sorted(context), span_context, dict(baggage.get_all(context)))


@pytest.mark.parametrize("carrier", CARRIERS)
def test_the_extraction_is_the_propagators(carrier: dict[str, Any]) -> None:
    from opentelemetry import propagate

    assert extracted(*tracing._extract(carrier)) == extracted(propagate.extract(carrier))


def test_another_propagator_set_up_is_the_one_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import baggage, propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.context import attach, detach
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    class Ignoring(TraceContextTextMapPropagator):
        """Reads nothing: a propagator of another format."""

        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            return context if context is not None else tracing.otel_context.Context()

    carrier = {"traceparent": TRACEPARENT}
    for textmap in (Ignoring(), CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()])):
        monkeypatch.setattr(propagate, "propagator", textmap)
        token = attach(baggage.set_baggage("tenant", "t1"))  # baggage first: it may start from the current context
        try:
            assert extracted(*tracing._extract(carrier)) == extracted(propagate.extract(carrier))
        finally:
            detach(token)


def samplers() -> list[Any]:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased

    return [
        ParentBased(ALWAYS_ON),  # the SDK's default
        ParentBased(TraceIdRatioBased(0.5)),  # parentbased_traceidratio
        ParentBased(ALWAYS_OFF, remote_parent_not_sampled=ALWAYS_ON),
        ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF),
        ParentBased(ALWAYS_ON, remote_parent_sampled=TaggingSampler(), remote_parent_not_sampled=RecordOnly()),
        TraceIdRatioBased(0.5),
        TaggingSampler(),
    ]


@pytest.mark.parametrize("sampler", range(len(samplers())))
@pytest.mark.parametrize("flags", ["00", "01", "03"])
def test_each_sampler_decides_as_it_does_for_the_sdk_span(sampler: int, flags: str) -> None:
    """ParentBased with the SDK's fixed delegates is answered without asking it: the same answer."""
    carrier = {"traceparent": TRACEPARENT[:-2] + flags}
    got = []
    for lean in (True, False):
        exporter = InMemorySpanExporter()
        observer = tracing.TracingObserver(provider_with(exporter, sampler=samplers()[sampler]), lean_spans=lean)
        kept = run(observer, job("j1", carrier), "completed")
        assert kept is None or isinstance(kept, tracing._LeanRun) is lean
        got.append((kept is not None, [comparable(s) for s in exporter.get_finished_spans()]))
    assert got[0] == got[1]
