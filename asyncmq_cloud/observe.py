"""What the backends tell observers (metrics, tracing): job transitions and backend calls.

``KEPT_KEYS`` (:mod:`asyncmq_cloud.core.records`): the payload keys an observer may add in
:func:`jobs_adding`; the backend keeps them through every run of the job.

The core calls the module functions below at each point of a job's life and around
each call to a service; an observer (:class:`Observer`, e.g.
:class:`asyncmq_cloud.metrics.PrometheusObserver`) subscribes with :func:`subscribe`.
With no observer subscribed every function returns at its first line: the package
pays one list check per event and imports nothing.

AsyncMQ's own ``event_emitter`` events carry the job but not its queue, and it emits
nothing for enqueues, retries or dropped references; the backend sees every one of
these with its queue, so it is the one source (docs/decisions.md, entry 62).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

logger = logging.getLogger("asyncmq_cloud.observe")

#: How a run ended, by the state its end wrote (a run made waiting or delayed again is a retry).
OUTCOMES = {
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
    "waiting": "retried",
    "delayed": "retried",
}
#: Outcomes of a call to a service: answered, throttled, failed and worth repeating, failed for good.
CALL_OUTCOMES = ("ok", "throttled", "transient", "permanent")


class Observer(Protocol):
    """What an observer is told. Every method must be cheap and must not raise."""

    def jobs_adding(self, queue: str, payloads: Sequence[dict[str, Any]]) -> None:
        """Jobs about to be written by an add; an observer may add :data:`KEPT_KEYS` to them."""

    def jobs_enqueued(self, queue: str, tasks: Sequence[str]) -> None:
        """Jobs written by an add (plain, bulk, delayed or flow), one task name each."""

    def job_started(self, queue: str, job: dict[str, Any], waited: float | None) -> None:
        """A job was claimed for a run (``job``: the claimed job dict, as ``dequeue`` returns it,
        with ``task`` and ``active_since``); ``waited``: seconds since it was due (None: unknown)."""

    def job_ended(self, queue: str, job_id: str, task: str, outcome: str, ran: float | None) -> None:
        """A run ended with ``outcome`` (a value of :data:`OUTCOMES`) after ``ran`` seconds."""

    def reference_dropped(self, queue: str, reason: str) -> None:
        """A reference was acked without a run: ``unknown`` job, ``duplicate`` or ``cancelled``."""

    def reference_dead_lettered(self, queue: str) -> None:
        """A reference the store refuses outright went to the broker's dead-letter queue/topic."""

    def delayed_handed_over(self, queue: str, lateness: float) -> None:
        """A due delayed job was handed to the broker ``lateness`` seconds after its ``run_at``."""

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        """One call to ``service`` (``dynamodb``, ``sqs``, ``kafka``, ``redis``) ended with ``outcome``."""


class BaseObserver:
    """An :class:`Observer` that ignores everything: subclass it and override what you need."""

    def jobs_adding(self, queue: str, payloads: Sequence[dict[str, Any]]) -> None: ...
    def jobs_enqueued(self, queue: str, tasks: Sequence[str]) -> None: ...
    def job_started(self, queue: str, job: dict[str, Any], waited: float | None) -> None: ...
    def job_ended(self, queue: str, job_id: str, task: str, outcome: str, ran: float | None) -> None: ...
    def reference_dropped(self, queue: str, reason: str) -> None: ...
    def reference_dead_lettered(self, queue: str) -> None: ...
    def delayed_handed_over(self, queue: str, lateness: float) -> None: ...
    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None: ...


_observers: list[Observer] = []


def subscribe(observer: Observer) -> None:
    """Tell ``observer`` everything from now on (idempotent)."""
    if observer not in _observers:
        _observers.append(observer)


def unsubscribe(observer: Observer) -> None:
    """Stop telling ``observer`` (idempotent)."""
    if observer in _observers:
        _observers.remove(observer)


def active() -> bool:
    """Whether any observer listens."""
    return bool(_observers)


def _failed(observer: Observer, what: str) -> None:
    """Log an observer's error (inside the ``except`` that caught it); the job goes on.

    Each hook below calls its observers in a plain ``try`` (a context manager per call
    cost more than a metrics update, decision 67).
    """
    logger.exception("observer %r failed on %s", observer, what)


def task_of(payload: dict[str, Any]) -> str:
    """The task id of a job dict (``task``, or ``task_id`` as AsyncMQ's ``add_bulk`` gives it)."""
    return str(payload.get("task") or payload.get("task_id") or "unknown")


def jobs_adding(queue: str, payloads: Sequence[dict[str, Any]]) -> None:
    """Before the records are written: the tracer puts the trace context into each payload."""
    if _observers:
        for observer in list(_observers):
            try:
                observer.jobs_adding(queue, payloads)
            except Exception:  # an observer never breaks a job
                _failed(observer, "jobs_adding")


def jobs_enqueued(queue: str, payloads: Sequence[dict[str, Any]]) -> None:
    if _observers:
        tasks = [task_of(p) for p in payloads]
        for observer in list(_observers):
            try:
                observer.jobs_enqueued(queue, tasks)
            except Exception:  # an observer never breaks a job
                _failed(observer, "jobs_enqueued")


def job_started(queue: str, payload: dict[str, Any], now: float) -> None:
    """``waited``: since ``delay_until`` for a delayed job or a retry with backoff, else since the
    record's last write (``updated_at``: the add, an immediate retry, a stalled recovery)."""
    if not _observers:
        return
    since = payload.get("delay_until") or payload.get("updated_at") or payload.get("created_at")
    waited = max(0.0, now - float(since)) if isinstance(since, int | float) else None
    for observer in list(_observers):
        try:
            observer.job_started(queue, payload, waited)
        except Exception:  # an observer never breaks a job
            _failed(observer, "job_started")


def job_ended(queue: str, payload: dict[str, Any], state: str, claimed_at: float | None) -> None:
    if not _observers:
        return
    outcome = OUTCOMES.get(str(state))
    if outcome is not None:
        ran = max(0.0, time.time() - claimed_at) if claimed_at else None
        for observer in list(_observers):
            try:
                observer.job_ended(queue, str(payload.get("id")), task_of(payload), outcome, ran)
            except Exception:  # an observer never breaks a job
                _failed(observer, "job_ended")


def reference_dropped(queue: str, reason: str) -> None:
    if _observers:
        for observer in list(_observers):
            try:
                observer.reference_dropped(queue, reason)
            except Exception:  # an observer never breaks a job
                _failed(observer, "reference_dropped")


def reference_dead_lettered(queue: str) -> None:
    if _observers:
        for observer in list(_observers):
            try:
                observer.reference_dead_lettered(queue)
            except Exception:  # an observer never breaks a job
                _failed(observer, "reference_dead_lettered")


def delayed_handed_over(queue: str, run_ats: Sequence[float], now: float) -> None:
    """Delayed jobs due at ``run_ats`` claimed for the hand-over at ``now``."""
    if not _observers:
        return
    for run_at in run_ats:
        for observer in list(_observers):
            try:
                observer.delayed_handed_over(queue, max(0.0, now - float(run_at)))
            except Exception:  # an observer never breaks a job
                _failed(observer, "delayed_handed_over")


def backend_call(service: str, operation: str, outcome: str, seconds: float) -> None:
    for observer in _observers:  # the hottest hook (every service call): no copy, no context manager
        try:
            observer.backend_call(service, operation, outcome, seconds)
        except Exception:
            logger.exception("observer %r failed on backend_call", observer)


@contextlib.contextmanager
def timed_call(service: str, operation: str, classify: Callable[[Exception], str] | None = None) -> Iterator[None]:
    """Report the call made inside the block; ``classify(exc)`` sorts a failure into one of
    :data:`CALL_OUTCOMES` (default ``transient``). A cancelled call is not reported."""
    if not _observers:
        yield
        return
    began = time.monotonic()
    try:
        yield
    except Exception as exc:
        backend_call(service, operation, classify(exc) if classify else "transient", time.monotonic() - began)
        raise
    backend_call(service, operation, "ok", time.monotonic() - began)
