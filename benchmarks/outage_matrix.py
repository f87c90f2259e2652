"""Outage matrix (issue 16), on this machine: a service away while three workers run jobs.

For each cell — the state store (Redis under Kafka workers; DynamoDB on moto under SQS
workers) or the broker (SQS on ElasticMQ with a Redis store; the Kafka broker with a
Redis store) — ``--jobs`` jobs of 0.2-1 s run on three worker processes; once a quarter
of them started, the service goes away for each of ``--outages`` seconds (a TCP proxy in
front of it is cut; the Kafka broker, which keeps its data on disk, is halted), then comes
back. Reported per cell, outage and worker command: worker exits, jobs lost, run twice,
recorded ``failed`` (every job succeeds when it runs), jobs started before the cut and
finished during it, and the seconds the run took. The baseline is the same cell with the
same jobs and no outage in the same run.

Worker commands (``--runner``): ``asyncmq`` = AsyncMQ's own ``asyncmq worker start``
(the backend-side fix alone), ``asyncmq-cloud`` = ``asyncmq-cloud worker``.

Usage::

    python benchmarks/outage_matrix.py [--jobs 250] [--outages 5,20] [--cells all]
        [--runner asyncmq,asyncmq-cloud]

Services come from the environment variables the test plugin honours (``REDIS_URL``,
``ASYNCMQ_TEST_MOTO_URLS``, ``ELASTICMQ_ENDPOINT_URL``, ``KAFKA_BOOTSTRAP_SERVERS``), else
private ones are started through ``scripts/services.py``; the Kafka-broker cell always
starts a private broker it may halt. Every loop is bounded; traffic is loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import services  # type: ignore[import-not-found]  # noqa: E402

from tests.e2e.helpers import ASYNCMQ, QUEUE, Workers  # noqa: E402
from tests.e2e.outage import CELLS, CellResult, Services, cell_env, proxied_target, run_cell  # noqa: E402
from tests.support.tcp_proxy import TcpProxy  # noqa: E402

DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def runner_command(runner: str) -> list[str]:
    if runner == "asyncmq":
        return [ASYNCMQ, "worker", "start", QUEUE, "--concurrency", "4"]
    cloud = str(Path(ASYNCMQ).parent / "asyncmq-cloud")
    return [cloud, "worker", QUEUE, "--concurrency", "4", "--grace", "30"]


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def shared_services(started: list[Any]) -> Services:
    """The running services named by the environment, else private ones."""

    def get(env: str, name: str) -> str:
        found = _first(os.environ.get(env))
        if found:
            return found
        service = services.start(name)
        started.append(service)
        return str(service.url)

    return Services(
        redis_url=get("REDIS_URL", "redis"),
        moto=get("ASYNCMQ_TEST_MOTO_URLS", "moto"),
        elasticmq=get("ELASTICMQ_ENDPOINT_URL", "elasticmq"),
        kafka=get("KAFKA_BOOTSTRAP_SERVERS", "kafka"),
    )


async def one_run(cell: str, found: Services, runner: str, jobs: int, outage: float, kafka: Any | None) -> CellResult:
    """One cell, one outage length (0 = the baseline run), one worker command."""
    workdir = Path(tempfile.mkdtemp(prefix="outage-"))
    logs = workdir / "runs"
    logs.mkdir()
    target = proxied_target(cell, found)
    proxy = TcpProxy(*target).start() if target else None
    if cell == "kafka-broker/redis":
        found = dataclasses.replace(found, kafka=kafka.url)
    cut: Callable[[], None] = proxy.cut if proxy else kafka.halt
    restore: Callable[[], None] = proxy.restore if proxy else kafka.resume
    if outage == 0:
        cut = restore = lambda: None
    env, producer_env, factory = cell_env(cell, found, proxy, logs)
    os.environ.update(producer_env)
    workers = Workers({**os.environ, **env}, workdir, runner_command(runner))
    producer = factory()
    try:
        await producer.provision([QUEUE])
        return await run_cell(cell, producer, workers, logs, cut=cut, restore=restore, jobs=jobs, outage=outage)
    finally:
        workers.stop_all()
        await producer.close()
        if proxy:
            proxy.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=250)
    parser.add_argument("--outages", default="5,20", help="outage lengths in seconds, comma-separated")
    parser.add_argument("--cells", default="all", help=f"comma-separated, from: {', '.join(CELLS)}")
    parser.add_argument("--runner", default="asyncmq,asyncmq-cloud")
    args = parser.parse_args()
    for key, value in DUMMY_AWS.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    cells = list(CELLS) if args.cells == "all" else args.cells.split(",")
    outages = [0.0, *(float(x) for x in args.outages.split(","))]
    started: list[Any] = []
    results: list[dict[str, Any]] = []
    try:
        found = shared_services(started)
        kafka = None
        if "kafka-broker/redis" in cells:
            kafka = services.start_kafka()
            started.append(kafka)
        for runner in args.runner.split(","):
            for cell in cells:
                for outage in outages:
                    print(f"{runner:14} {cell:20} outage {outage:4.0f} s ...", end=" ", flush=True)
                    result = asyncio.run(one_run(cell, found, runner, args.jobs, outage, kafka))
                    row = {"runner": runner, **dataclasses.asdict(result)}
                    results.append(row)
                    print(
                        f"exits {result.worker_exits} lost {result.lost} twice {result.run_twice} "
                        f"failed {result.recorded_failed} (started before cut {result.started_before_cut}, "
                        f"ended during it {result.ended_during_cut}) {result.seconds:.1f} s",
                        flush=True,
                    )
    finally:
        for service in reversed(started):
            service.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
