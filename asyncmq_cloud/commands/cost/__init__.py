"""``asyncmq-cloud cost``: what a million jobs, and an idle worker, cost on each backend.

Runs :mod:`asyncmq_cloud.commands.cost.workload` on an embedded moto server (extra
``demo``; nothing leaves this process, no AWS account is needed), bills every request
(:mod:`~asyncmq_cloud.commands.cost.meter`: SQS requests per 64 KB chunk, DynamoDB write
and read units from the items' real sizes and the indexes each write changed) and prints,
per backend, the calls and units per job, the dollars per million jobs and per idle
worker-month, with the price table used (:mod:`~asyncmq_cloud.commands.cost.prices`).

Options::

    --backend sqs,dynamodb,kafka   backends to price (default sqs,dynamodb; kafka needs a broker)
    --jobs N                       jobs per backend (default 1000)
    --idle-seconds S               idle time counted per backend (default 30)
    --fifo                         SQSBackend on a FIFO queue (default standard)
    --kafka HOST:PORT              the broker for --backend kafka (default $KAFKA_BOOTSTRAP_SERVERS)
    --json PATH                    also write the figures as JSON

The state and delay stores are DynamoDB tables. The Redis store and Amazon MSK are priced
by the hour, not per request: see :mod:`~asyncmq_cloud.commands.cost.prices`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asyncmq_cloud.commands.cost.bill import Bill, per_month, price
from asyncmq_cloud.commands.cost.meter import Meter
from asyncmq_cloud.commands.cost.prices import PRICES
from asyncmq_cloud.commands.cost.workload import Measured, measure
from asyncmq_cloud.commands.demo._moto import threaded_moto
from asyncmq_cloud.errors import ConfigurationError

BACKENDS = ("sqs", "dynamodb", "kafka")


def _backends(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BACKENDS]
    if unknown or not chosen:
        raise ConfigurationError(f"--backend takes a comma-separated list of {', '.join(BACKENDS)}, not {text!r}")
    return chosen


def _validate(args: argparse.Namespace) -> None:
    if args.jobs < 1 or args.jobs > 100_000:
        raise ConfigurationError(f"--jobs must be between 1 and 100000, not {args.jobs}")
    if not 1 <= args.idle_seconds <= 3600:
        raise ConfigurationError(f"--idle-seconds must be between 1 and 3600, not {args.idle_seconds:g}")


async def run_cost(args: argparse.Namespace) -> int:
    backends = _backends(args.backend)
    _validate(args)
    bootstrap = args.kafka or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if "kafka" in backends and not bootstrap:
        raise ConfigurationError("--backend kafka needs a broker: --kafka HOST:PORT or $KAFKA_BOOTSTRAP_SERVERS")
    console = Console(highlight=False, width=None if Console().is_terminal else 160)
    for name in ("asyncmq", "moto", "werkzeug", "aiokafka", "botocore", "aiobotocore"):
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "asyncmq" else logging.WARNING)
    meter = Meter()
    results: list[Measured] = []
    with threaded_moto(wrap=meter.wrap) as endpoint:
        console.print(f"embedded AWS endpoint: moto server at {endpoint} (in this process)")
        for kind in backends:
            with console.status(f"{kind}: starting") as status:
                progress = status.update if console.is_terminal else _Lines(console)
                async with asyncio.timeout(args.timeout):
                    results.append(
                        await measure(
                            kind, endpoint, meter, jobs=args.jobs, idle_seconds=args.idle_seconds,
                            bootstrap=bootstrap, fifo=args.fifo, progress=progress,
                        )
                    )  # fmt: skip
            console.print(f"{kind}: {args.jobs} jobs in {results[-1].seconds:.1f} s, then idle")
    render(results, console)
    if args.json_path:
        _write_json(args.json_path, report(results))
    return 0


class _Lines:
    """Progress as plain lines, at most one per :data:`EVERY` seconds (logs and CI)."""

    EVERY = 5.0

    def __init__(self, console: Console) -> None:
        self.console, self.last = console, 0.0

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.EVERY or "idle" in line:
            self.console.print(line)
            self.last = now


def _write_json(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2))


def figures(measured: Measured) -> dict[str, Any]:
    """Per job and per idle second, and their prices."""
    jobs, idle = measured.jobs, max(measured.idle_seconds, 1e-9)
    per_job = {name: value / jobs for name, value in measured.billed.items()}
    jobs_bill = price(measured.billed, jobs, PRICES, measured.fifo)
    idle_bill = per_month(price(measured.idle_billed, idle, PRICES, measured.fifo))
    return {
        "backend": measured.backend + (" (FIFO)" if measured.fifo else ""),
        "jobs": jobs,
        "calls_per_job": sum(measured.calls.values()) / jobs,
        "calls_per_job_by_operation": {op: n / jobs for op, n in measured.calls.most_common()},
        "billed_per_job": per_job,
        "usd_per_million_jobs": {**asdict(jobs_bill), "total": jobs_bill.total},
        "idle_calls_per_s": sum(measured.idle_calls.values()) / idle,
        "idle_calls_per_s_by_operation": {op: n / idle for op, n in measured.idle_calls.most_common()},
        "usd_per_idle_worker_month": {**asdict(idle_bill), "total": idle_bill.total},
    }


def report(results: list[Measured]) -> dict[str, Any]:
    return {"prices": asdict(PRICES), "backends": [figures(m) for m in results]}


def _money(bill: dict[str, float]) -> str:
    return f"${bill['total']:.3f}"


def render(results: list[Measured], console: Console) -> None:
    table = Table(title=f"asyncmq-cloud cost — prices {PRICES.region}, as of {PRICES.as_of}")
    for column in (
        "backend", "calls/job", "SQS req/job", "WRU/job (table+index)", "RRU/job",
        "$ / million jobs", "idle calls/s", "$ / idle worker-month",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == "backend" else "right")
    every = [figures(measured) for measured in results]
    for f in every:
        billed = f["billed_per_job"]
        sqs = billed.get("sqs_requests", 0) + billed.get("sqs_other_requests", 0)
        table.add_row(
            f["backend"], f"{f['calls_per_job']:.2f}", f"{sqs:.2f}",
            f"{billed.get('wru_table', 0):.2f}+{billed.get('wru_index', 0):.2f}", f"{billed.get('rru', 0):.2f}",
            _money(f["usd_per_million_jobs"]), f"{f['idle_calls_per_s']:.2f}", _money(f["usd_per_idle_worker_month"]),
        )  # fmt: skip
    console.print(table)
    for f in every:
        top = ", ".join(f"{op} {n:.2f}" for op, n in list(f["calls_per_job_by_operation"].items())[:6])
        console.print(f"{f['backend']}: calls per job: {top}")
        console.print(f"  $ per million jobs: {_split(f['usd_per_million_jobs'])}")
    console.print(
        f"Prices: SQS ${PRICES.sqs_standard_per_million} per million requests (FIFO "
        f"${PRICES.sqs_fifo_per_million}; each 64 KB chunk a request), DynamoDB on demand "
        f"${PRICES.dynamodb_wru_per_million} per million write units and ${PRICES.dynamodb_rru_per_million} "
        f"per million read units (transactions count twice); {PRICES.region}, as of {PRICES.as_of}, from "
        f"{' and '.join(PRICES.sources)}. Not included: Amazon MSK and ElastiCache (priced by the hour), "
        "storage, data transfer, free tiers. An idle worker-month is 30 days of one worker with no jobs."
    )


def _split(bill: dict[str, float]) -> str:
    return (
        f"SQS ${bill['sqs']:.3f} + DynamoDB writes ${bill['dynamodb_writes']:.3f} + "
        f"reads ${bill['dynamodb_reads']:.3f} = ${bill['total']:.3f}"
    )


__all__ = ["Bill", "figures", "render", "report", "run_cost"]
