"""The hot-path tallies expose exactly what prometheus_client's own Counter and Histogram do."""

from __future__ import annotations

import re
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from asyncmq_cloud._tallies import Tallies

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)
#: Observations on and around every bound (``le`` is inclusive), below the first and past the last.
VALUES = (0.0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0, 10.0, 11.0, 1e6)


def _without_created(text: str) -> list[str]:
    return [line for line in text.splitlines() if "_created" not in line]


def test_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tallies = Tallies()
    calls = tallies.counter("calls", "Calls.", ["service", "outcome"])
    seconds = tallies.histogram("seconds", "Latency.", ["service"], BUCKETS)
    ours.register(tallies)
    calls_ref = Counter("calls", "Calls.", ["service", "outcome"], registry=theirs)
    seconds_ref = Histogram("seconds", "Latency.", ["service"], buckets=BUCKETS, registry=theirs)
    for i, value in enumerate(VALUES):
        service = "sqs" if i % 3 else "redis"
        tallies.inc_and_observe(calls, (service, "ok"), seconds, (service,), value)
        calls_ref.labels(service, "ok").inc()
        seconds_ref.labels(service).observe(value)
    tallies.inc(calls, ("sqs", "throttled"), 2)
    calls_ref.labels("sqs", "throttled").inc(2)
    tallies.observe(seconds, ("kafka",), 0.02)
    seconds_ref.labels("kafka").observe(0.02)
    mine, reference = generate_latest(ours).decode(), generate_latest(theirs).decode()
    assert sorted(_without_created(mine)) == sorted(_without_created(reference))
    # Each counter and histogram series has its creation time, as prometheus_client gives it.
    assert sorted(re.findall(r"^(\w+_created\{[^}]*\})", mine, re.M)) == sorted(
        re.findall(r"^(\w+_created\{[^}]*\})", reference, re.M)
    )


def test_registering_a_name_twice_is_refused() -> None:
    registry = CollectorRegistry()
    tallies = Tallies()
    tallies.counter("asyncmq_jobs_started", "Jobs.", ["queue"])
    registry.register(tallies)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("asyncmq_jobs_started", "Jobs.", ["queue"], registry=registry)


def test_concurrent_updates_lose_nothing() -> None:
    tallies = Tallies()
    calls = tallies.counter("calls", "Calls.", ["service"])
    seconds = tallies.histogram("seconds", "Latency.", ["service"], BUCKETS)

    def hammer() -> None:
        for _ in range(20_000):
            tallies.inc_and_observe(calls, ("sqs",), seconds, ("sqs",), 0.05)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    registry = CollectorRegistry()
    registry.register(tallies)
    assert registry.get_sample_value("calls_total", {"service": "sqs"}) == 80_000
    assert registry.get_sample_value("seconds_count", {"service": "sqs"}) == 80_000
    assert registry.get_sample_value("seconds_bucket", {"service": "sqs", "le": "0.01"}) == 0
    assert registry.get_sample_value("seconds_bucket", {"service": "sqs", "le": "0.1"}) == 80_000
