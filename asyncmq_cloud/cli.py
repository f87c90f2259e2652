"""``asyncmq-cloud``: operator commands next to AsyncMQ's own ``asyncmq`` CLI.

The backend is the one AsyncMQ uses: ``settings.backend`` of the settings
class named by ``ASYNCMQ_SETTINGS_MODULE`` (``--settings`` overrides it), so
the scanner and the workers always agree on stores and queues.

Commands::

    asyncmq-cloud worker QUEUE [--concurrency N] [--grace S] [--health-port P] ...
    asyncmq-cloud scanner run --queue Q [--queue Q2 ...] [--interval S]
    asyncmq-cloud provision [--queue Q ...] [--dry-run | --print-iam [--region R] [--account-id A] ...]
    asyncmq-cloud health [--queue Q ...] [--timeout S]
    asyncmq-cloud doctor [--queue Q ...] [--timeout S]
    asyncmq-cloud dashboard [--host H] [--port P] [--queues-per-tick N]
    asyncmq-cloud metrics --queue Q [--queue Q2 ...] [--port P] [--interval S]
    asyncmq-cloud demo [--backend sqs|dynamodb|kafka] [--endpoint URL]
    asyncmq-cloud cost [--backend sqs,dynamodb,kafka] [--jobs N] [--idle-seconds S] [--json PATH]
    asyncmq-cloud dlq {list,show,redrive,purge} [ID] --queue Q [--source jobs|broker] [--limit N] [--rate R] ...

This module only parses the arguments; each command lives in :mod:`asyncmq_cloud.commands`
(``health``, for instance, is the Kubernetes probe of :mod:`asyncmq_cloud.commands.health`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from collections.abc import Callable, Sequence

from asyncmq_cloud.commands._signals import catch_early, release_early
from asyncmq_cloud.errors import CloudBackendError, MissingExtraError
from asyncmq_cloud.extras import missing_extra

#: Commands that run until stopped: a SIGTERM while they start stops them cleanly.
LONG_RUNNING = frozenset({"worker", "scanner", "metrics", "dashboard"})

# The commands are imported when used: `import asyncmq_cloud.cli` stays cheap, so the early
# signal handlers are in place before the SDKs load (commands/_signals.py).


async def run_health(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.health import run_health as run

    return await run(args)


async def run_provision(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.provision import run_provision as run

    return await run(args)


async def run_scan(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.scanner import run_scan as run

    return await run(args)


async def _dlq(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.dlq import run_dlq  # imported when used: the backend's SDKs

    return await run_dlq(args)


async def _doctor(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.doctor import run_doctor  # imported when used: the AWS and Kafka SDKs

    return await run_doctor(args)


async def _dashboard(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.dashboard import serve_dashboard  # imported when used: uvicorn, lilya

    return await serve_dashboard(args)


async def _worker(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.worker import run_worker_command  # imported when used: AsyncMQ's runtime

    return await run_worker_command(args)


async def _metrics(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.metrics import run_metrics_command  # imported when used: prometheus_client

    return await run_metrics_command(args)


async def _demo(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.demo import run_demo  # imported when used: moto, rich

    return await run_demo(args)


async def _cost(args: argparse.Namespace) -> int:
    from asyncmq_cloud.commands.cost import run_cost  # imported when used: moto, rich

    return await run_cost(args)


def _queue(value: str) -> str:
    from asyncmq_cloud.core.validation import validate_queue_name

    try:
        return validate_queue_name(value)
    except CloudBackendError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _seconds(value: str) -> float:
    seconds = float(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {value}")
    return seconds


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {value}")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (0-65535), not {value}")
    return number


def _non_negative(value: str) -> float:
    seconds = float(value)
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return seconds


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from asyncmq_cloud.commands._logging import FORMATS, LEVELS

    worker = commands.add_parser(
        "worker",
        help="run AsyncMQ's worker on QUEUE; SIGTERM/SIGINT drain it (see docs/workers.md)",
        description="Run AsyncMQ's own worker (run_worker) on QUEUE with the configured backend. The first "
        "SIGTERM/SIGINT drains: no job starts any more, running jobs may finish within --grace seconds, the "
        "rest are given back for immediate redelivery; a second signal stops at once. Exit code 0.",
    )
    worker.add_argument("queue", metavar="QUEUE", type=_queue, help="the queue to work")
    worker.add_argument(
        "--concurrency", type=_positive_int, help="jobs run at once (default: settings.worker_concurrency)"
    )
    worker.add_argument(
        "--settings", default=argparse.SUPPRESS, help="settings class path (default: $ASYNCMQ_SETTINGS_MODULE)"
    )
    worker.add_argument(
        "--grace", type=_non_negative, default=25.0, help="seconds running jobs may take to finish after SIGTERM "
        "(default 25, below Kubernetes' default terminationGracePeriodSeconds of 30)",
    )  # fmt: skip
    worker.add_argument("--log-level", type=str.upper, choices=LEVELS, help="root log level (default INFO; -v: DEBUG)")
    worker.add_argument(
        "--log-format", choices=FORMATS, default="text", help="text lines, or one JSON object per line "
        "(ts, level, logger, message, exc) (default text)",
    )  # fmt: skip
    worker.add_argument(
        "--health-port", type=_port, default=0, help="serve GET /livez and /readyz on this port (default 0 = off)"
    )
    worker.add_argument("--health-host", default="127.0.0.1", help="address of the health endpoint (default 127.0.0.1)")
    worker.add_argument(
        "--no-metrics", action="store_true", help="no GET /metrics on the health port (default: served when "
        "the metrics extra is installed; docs/metrics.md)",
    )  # fmt: skip
    worker.set_defaults(handler=_worker)


def _checked(check: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse ``type`` from a validator that raises :class:`ValueError` with the reason."""

    def typed(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return typed


def _add_iam_scope(prov: argparse.ArgumentParser) -> None:
    from asyncmq_cloud.resources.iam import PARTITIONS, check_account, check_msk_cluster, check_region

    region_arg, account_arg, msk_cluster_arg = (
        _checked(check_region),
        _checked(check_account),
        _checked(check_msk_cluster),
    )
    scope = prov.add_argument_group("--print-iam scope (ARNs)")
    scope.add_argument("--region", type=region_arg, help="region of the ARNs (default $AWS_REGION, else '*')")
    scope.add_argument("--account-id", type=account_arg, default="*", help="account of the ARNs (default '*')")
    scope.add_argument("--partition", choices=PARTITIONS, default="aws", help="ARN partition (default aws)")
    scope.add_argument(
        "--msk-cluster-arn", type=msk_cluster_arg, help="MSK cluster whose topics and groups the policies name"
    )


def _add_dlq(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = commands.add_parser("dlq", help="list, show, redrive or purge dead letters (failed jobs, broker DLQ)")
    dlq.add_argument("action", choices=("list", "show", "redrive", "purge"))
    dlq.add_argument("id", nargs="?", help="show: a job id, an SQS message id or a Kafka PARTITION:OFFSET")
    dlq.add_argument("--queue", required=True, type=_queue, help="the AsyncMQ queue")
    dlq.add_argument(
        "--source", choices=("jobs", "broker"), default="jobs", help="jobs: AsyncMQ's failed jobs (default); broker: "
        "the SQS dead-letter queue or Kafka dead-letter topic"
    )  # fmt: skip
    dlq.add_argument("--limit", type=_positive_int, help="at most this many dead letters (default: all)")
    dlq.add_argument("--rate", type=_rate, default=50.0, help="redrive/purge: most per second (default 50; 0: none)")
    dlq.add_argument("--dry-run", action="store_true", help="redrive/purge: count what would be done, change nothing")
    dlq.add_argument("--yes", action="store_true", help="purge: confirm (there is no undo)")
    dlq.add_argument(
        "--method", choices=("auto", "move-task", "loop"), default="auto",
        help="SQS redrive: SQS's message move task, the receive/send/delete loop, or auto (default)",
    )  # fmt: skip
    dlq.set_defaults(handler=_dlq)


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:20]!r} is not a number") from None
    if not math.isfinite(rate) or rate < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (0: no limit), not {value[:20]}")
    return rate


def _add_cost(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cost = commands.add_parser("cost", help="price a million jobs and an idle worker per backend (embedded moto)")
    cost.add_argument(
        "--backend", default="sqs,dynamodb", help="comma-separated: sqs, dynamodb, kafka (default sqs,dynamodb)"
    )
    cost.add_argument("--jobs", type=int, default=1000, help="jobs run per backend (default 1000)")
    cost.add_argument("--idle-seconds", type=float, default=30.0, help="idle seconds counted per backend (default 30)")
    cost.add_argument("--fifo", action="store_true", help="SQSBackend on a FIFO queue (default: standard)")
    cost.add_argument("--kafka", help="bootstrap servers for --backend kafka (default $KAFKA_BOOTSTRAP_SERVERS)")
    cost.add_argument("--timeout", type=float, default=600.0, help="seconds per backend before giving up (default 600)")
    cost.add_argument("--json", dest="json_path", help="also write the figures as JSON to this file")
    cost.set_defaults(handler=_cost)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asyncmq-cloud", description=__doc__.split("\n")[0])
    parser.add_argument("--settings", help="settings class path (default: $ASYNCMQ_SETTINGS_MODULE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_worker(commands)
    _add_dlq(commands)
    scanner = commands.add_parser("scanner", help="delayed-job scanner").add_subparsers(dest="action", required=True)
    run = scanner.add_parser("run", help="promote due delayed jobs until SIGTERM")
    run.add_argument("--queue", action="append", required=True, type=_queue, help="queue to scan (repeatable)")
    run.add_argument("--interval", type=_seconds, default=1.0, help="seconds between idle passes (default 1.0)")
    run.add_argument("--report-every", type=float, default=10.0, help="seconds between progress lines")
    run.set_defaults(handler=run_scan)
    prov = commands.add_parser("provision", help="create tables/queues the backend needs (idempotent)")
    prov.add_argument("--queue", action="append", default=[], type=_queue, help="queue to create (repeatable)")
    what = prov.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="print what would be created; create nothing")
    what.add_argument("--print-iam", action="store_true", help="print the runtime and provisioning IAM policies")
    _add_iam_scope(prov)
    prov.set_defaults(handler=run_provision)
    health = commands.add_parser("health", help="exit 0 if the backend answers (a probe), else 1")
    health.add_argument("--queue", action="append", default=[], type=_queue, help="queue that must exist")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds for all checks (default 5)")
    health.set_defaults(handler=run_health)
    doctor = commands.add_parser("doctor", help="check configuration, credentials, reachability and resources")
    doctor.add_argument("--queue", action="append", default=[], type=_queue, help="queue to check (repeatable)")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds for each check (default 5)")
    doctor.set_defaults(handler=_doctor)
    dash = commands.add_parser("dashboard", help="serve AsyncMQ's dashboard against the configured backend")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dash.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    dash.add_argument(
        "--queues-per-tick",
        type=_positive_int,
        default=2,
        help="queues the pages' event stream re-reads per 5 s tick, least recent first (default 2)",
    )
    dash.set_defaults(handler=_dashboard)
    exporter = commands.add_parser("metrics", help="serve the queue-depth gauges for Prometheus (one per deployment)")
    exporter.add_argument("--queue", action="append", required=True, type=_queue, help="queue to sample (repeatable)")
    exporter.add_argument("--port", type=_port, default=9464, help="port of GET /metrics (default 9464)")
    exporter.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    exporter.add_argument("--interval", type=_seconds, default=15.0, help="seconds between samples (default 15)")
    exporter.set_defaults(handler=_metrics)
    demo = commands.add_parser("demo", help="run a sample workload on an embedded AWS endpoint (moto)")
    demo.add_argument("--backend", choices=("sqs", "dynamodb", "kafka"), default="sqs", help="backend (default sqs)")
    demo.add_argument(
        "--endpoint",
        help="AWS endpoint URL, `localstack` (resolved by localstack-client) or `aws` (real AWS); "
        "with --backend kafka: bootstrap servers; default: an embedded moto server",
    )
    demo.add_argument("--timeout", type=float, default=90.0, help="seconds before the demo gives up (default 90)")
    demo.add_argument("--json", dest="json_path", help="also write the outcome as JSON to this file")
    demo.set_defaults(handler=_demo)
    _add_cost(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    catch_early()
    try:
        args = build_parser().parse_args(argv)
    except BaseException:
        release_early()
        raise
    if args.command not in LONG_RUNNING:
        release_early()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = int(asyncio.run(args.handler(args)))
        if args.command == "worker":  # it has stopped: a late SIGTERM must not turn exit 0 into -15
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
        return code
    except (CloudBackendError, MissingExtraError) as exc:
        print(f"asyncmq-cloud: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, f"asyncmq-cloud {args.command}")
        if error is exc:
            raise
        print(f"asyncmq-cloud: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
