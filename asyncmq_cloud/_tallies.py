"""Counters and histograms for the hot path: plain tallies under one lock, families at scrape time.

``prometheus_client``'s ``Counter`` and ``Histogram`` take a lock per value they update
(a histogram observation updates a bucket and the sum) and ``labels()`` costs more than
the update; measured in a drain, each observation cost about 5 µs, and a job makes
seven (docs/decisions.md, entry 67). :class:`Tallies` keeps every counter and histogram
of one observer in dicts of label values, updated under one uncontended lock (about
1 µs an observation), and writes them as ``CounterMetricFamily`` / ``HistogramMetricFamily``
when the registry is collected. The exposition is the same: ``_total`` and ``_created``
for counters; cumulative ``_bucket`` samples, ``_count`` and ``_sum`` (and ``_created``)
for histograms.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


@dataclass
class _Family:
    name: str
    doc: str
    labels: tuple[str, ...]
    #: Histogram upper bounds (ascending, +Inf implied); empty for a counter.
    bounds: tuple[float, ...] = ()
    #: Label values -> counter value, or bucket counts (one per bound, then +Inf) and the sum.
    rows: dict[tuple[str, ...], list[float]] = field(default_factory=dict)
    created: dict[tuple[str, ...], float] = field(default_factory=dict)


class Tallies(Collector):
    """The counters and histograms of one observer; register it in a ``CollectorRegistry``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[_Family] = []

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> _Family:
        """A counter (exposed as ``{name}_total``); update it with :meth:`inc`."""
        family = _Family(name, doc, tuple(labels))
        self._families.append(family)
        return family

    def histogram(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> _Family:
        """A histogram with upper bounds ``buckets`` (+Inf added); update it with :meth:`observe`."""
        family = _Family(name, doc, tuple(labels), tuple(sorted(float(b) for b in buckets)))
        self._families.append(family)
        return family

    def _row(self, family: _Family, labels: tuple[str, ...]) -> list[float]:
        row = family.rows[labels] = [0.0] * (len(family.bounds) + 2 if family.bounds else 1)
        family.created[labels] = time.time()
        return row

    def inc(self, family: _Family, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to the counter ``family`` at ``labels`` (one value per label name)."""
        with self._lock:
            row = family.rows.get(labels) or self._row(family, labels)
            row[0] += amount

    def observe(self, family: _Family, labels: tuple[str, ...], value: float) -> None:
        """Count ``value`` in the histogram ``family`` at ``labels``; ``le`` buckets are inclusive."""
        with self._lock:
            row = family.rows.get(labels) or self._row(family, labels)
            row[bisect.bisect_left(family.bounds, value)] += 1  # first bound >= value; past the last: +Inf
            row[-1] += value

    def inc_and_observe(
        self, counter: _Family, counted: tuple[str, ...], histogram: _Family, labels: tuple[str, ...], value: float
    ) -> None:
        """:meth:`inc` and :meth:`observe` under one lock (an event that feeds both: a call, a run)."""
        with self._lock:
            row = counter.rows.get(counted) or self._row(counter, counted)
            row[0] += 1
            row = histogram.rows.get(labels) or self._row(histogram, labels)
            row[bisect.bisect_left(histogram.bounds, value)] += 1
            row[-1] += value

    def describe(self) -> Iterable[Metric]:
        """The families without samples: the registry checks their names once, at registration."""
        for family in self._families:
            if family.bounds:
                yield HistogramMetricFamily(family.name, family.doc, labels=family.labels)
            else:
                yield CounterMetricFamily(family.name, family.doc, labels=family.labels)

    def collect(self) -> Iterable[Metric]:
        with self._lock:  # a consistent copy; the families are written outside the lock
            copies = [
                (family, [(labels, list(row), family.created[labels]) for labels, row in family.rows.items()])
                for family in self._families
            ]
        for family, rows in copies:
            yield self._written(family, sorted(rows))

    @staticmethod
    def _written(family: _Family, rows: list[tuple[tuple[str, ...], list[float], float]]) -> Metric:
        if not family.bounds:
            counter = CounterMetricFamily(family.name, family.doc, labels=family.labels)
            for labels, (value,), created in rows:
                counter.add_metric(list(labels), value, created=created)
            return counter
        histogram = HistogramMetricFamily(family.name, family.doc, labels=family.labels)
        edges = [floatToGoString(bound) for bound in family.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for labels, row, created in rows:
            cumulative, buckets = 0.0, []
            for edge, count in zip(edges, row[:-1], strict=True):
                cumulative += count
                buckets.append((edge, cumulative))
            histogram.add_metric(list(labels), buckets, row[-1])
            named = dict(zip(family.labels, labels, strict=True))
            histogram.samples.append(Sample(f"{family.name}_created", named, created))
        return histogram
