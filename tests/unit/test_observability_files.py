"""The Grafana board and the Prometheus alert rules: valid, and about metrics the code exports.

Every query is parsed by a PromQL parser (``promql-parser``, offline), and every ``asyncmq_*``
name in it must be a sample name the metrics module produces. docs/metrics.md must list every
metric family.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from asyncmq_cloud import metrics

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "deploy" / "grafana" / "asyncmq-cloud.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
NAME = re.compile(r"\basyncmq_[a-z0-9_]+")


class _Depth:
    async def queue_stats(self, queue_name: str) -> dict[str, int]:
        return {"waiting": 1, "delayed": 0, "failed": 0}

    async def broker_stats(self, queue_name: str) -> dict[str, int]:
        return {"partition-0": 1, "depth": 1}

    async def list_workers(self) -> list[Any]:
        return []


class _Running:
    def running_by_queue(self) -> dict[str, int]:
        return {"q": 1}


async def exported() -> tuple[set[str], set[str]]:
    """(sample names, family names) of every metric, each fed once."""
    registry = CollectorRegistry()
    observer = metrics.PrometheusObserver(registry)
    observer.jobs_enqueued("q", ["t"])
    observer.job_started("q", {"id": "j", "task": "t"}, 0.1)
    for outcome in metrics.ENDED:
        observer.job_ended("q", "j", "t", outcome, 0.1)
    observer.reference_dropped("q", "duplicate")
    observer.reference_dead_lettered("q")
    observer.delayed_handed_over("q", 0.1)
    observer.backend_call("sqs", "ReceiveMessage", "ok", 0.1)
    running = _Running()  # watched weakly: kept alive for the collection below
    observer.watch(running)
    sampler = metrics.DepthSampler(_Depth(), ["q"])
    await sampler.sample()
    registry.register(sampler)
    families = list(registry.collect())
    del running
    return {s.name for f in families for s in f.samples}, {f.name for f in families}


def board_queries() -> list[str]:
    board = json.loads(BOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("expr", board_queries() + [rule["expr"] for rule in alert_rules()])
async def test_every_query_parses_and_names_an_exported_metric(expr: str) -> None:
    promql_parser.parse(expr)  # raises on a syntax error
    samples, _ = await exported()
    names = set(NAME.findall(expr))
    assert names, f"no asyncmq metric in {expr!r}"
    assert names <= samples, f"{sorted(names - samples)} are not exported"


def test_a_broken_query_is_refused_by_the_parser() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(asyncmq_jobs_started_total[5m])")


def test_the_board_covers_what_an_operator_watches() -> None:
    queries = " ".join(board_queries())
    for needed in ("asyncmq_queue_jobs", "asyncmq_jobs_completed_total", "asyncmq_jobs_failed_total",
                   "asyncmq_job_run_seconds_bucket", "asyncmq_backend_calls_total", "throttled",
                   "asyncmq_broker_messages"):  # fmt: skip
        assert needed in queries, needed
    panels = json.loads(BOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids are unique"


def test_every_alert_rule_is_complete() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "AsyncMQDeadLetterGrowing",
        "AsyncMQQueueNotDraining",
        "AsyncMQThrottled",
        "AsyncMQNoWorker",
    }
    for rule in rules:
        assert rule["for"] and rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


async def test_docs_list_every_metric_family() -> None:
    _, families = await exported()
    docs = (ROOT / "docs" / "metrics.md").read_text()
    # prometheus_client names counter families without their _total suffix.
    listed = {name.removesuffix("_total") for name in re.findall(r"`(asyncmq_[a-z0-9_]+)`", docs)}
    assert families <= listed, f"undocumented: {sorted(families - listed)}"
