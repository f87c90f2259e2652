"""``asyncmq-cloud demo``: a real AsyncMQ workload on an embedded AWS endpoint.

No AWS account, Docker or running service is needed: by default the demo starts
a moto server in-process on a free 127.0.0.1 port, provisions uniquely named
tables and queues on it, and runs :mod:`asyncmq_cloud.commands.demo.workload` (a
``FlowProducer`` DAG, a delayed job through the delay store and the scanner, a
failing job retried with backoff and dead-lettered, a cron repeatable) through
the chosen backend with an in-process AsyncMQ worker. It ends with a table of
every job (state, attempts, timings, the AWS calls it cost) and exits 0 only if
every check held.

Options::

    --backend sqs       SQSBackend on a FIFO queue (no per-message delay: every delay,
                        retries included, goes through the DynamoDB delay table),
                        DynamoDB state store (default)
    --backend dynamodb  DynamoDBBackend: the jobs table is the queue
    --backend kafka     KafkaBackend; DynamoDB store on the embedded moto server
                        (or on $AWS_ENDPOINT_URL when set)
    --endpoint URL      AWS endpoint (e.g. LocalStack http://127.0.0.1:4566), ``localstack``
                        (the URL localstack-client resolves from $LOCALSTACK_HOST, default
                        localhost:4566; extra ``localstack``) or ``aws`` for real AWS through
                        the standard credential chain and region; with --backend kafka: the
                        bootstrap servers
    --timeout S         give up after S seconds (default 90)
    --json PATH         also write the outcome (rows, checks, calls) as JSON

The demo deletes what it created on any endpoint that outlives it (its two tables
on a non-embedded AWS endpoint, its queues or its Kafka topics) when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.session import get_session
from rich.console import Console
from rich.table import Table

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.commands._endpoints import localstack_endpoint
from asyncmq_cloud.commands.demo._moto import threaded_moto
from asyncmq_cloud.commands.demo.ledger import CallLedger
from asyncmq_cloud.commands.demo.tasks import QUEUE
from asyncmq_cloud.commands.demo.workload import Outcome, Workload
from asyncmq_cloud.commands.provision import plan
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.resources import KafkaTopicSpec, SqsQueueSpec, TableSpec

EMBEDDED_CREDENTIALS = {"aws_access_key_id": "demo", "aws_secret_access_key": "demo"}


@contextlib.contextmanager
def embedded_moto() -> Iterator[str]:
    """A moto server in this process on a free loopback port, DynamoDB writes atomic; yields its URL."""
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the dev and demo extras install it
        raise ConfigurationError('the embedded endpoint needs moto: pip install "asyncmq-cloud[demo]"') from exc
    with threaded_moto() as url:
        yield url


def build_backend(kind: str, prefix: str, clients: AwsClients, bootstrap: str | None = None) -> CloudBackend:
    """The demo's backend: uniquely named tables and queues under ``prefix``."""
    from asyncmq_cloud.backends.dynamodb import DynamoDBBackend
    from asyncmq_cloud.backends.kafka import KafkaBackend
    from asyncmq_cloud.backends.sqs import SQSBackend

    jobs, delays = f"dynamodb://{prefix}jobs", f"dynamodb://{prefix}delays"
    config = LifecycleConfig(receive_wait=0.5)
    if kind == "sqs":
        return SQSBackend(
            queue_prefix=prefix, fifo=True, fifo_group="job", store=jobs, delay_store=delays, clients=clients,
            config=config, create_missing=True,
        )  # fmt: skip
    if kind == "dynamodb":
        return DynamoDBBackend(table=f"{prefix}jobs", delay_store=delays, clients=clients, config=config)
    if kind == "kafka":
        return KafkaBackend(
            bootstrap_servers=bootstrap, topic_prefix=prefix, store=jobs, delay_store=delays, partitions=2,
            clients=clients, config=config, create_missing=True,
        )  # fmt: skip
    raise ConfigurationError(f"--backend must be sqs, dynamodb or kafka, not {kind!r}")


@contextlib.asynccontextmanager
async def _aws_endpoint(args: argparse.Namespace, console: Console) -> AsyncIterator[tuple[str | None, bool]]:
    """(endpoint URL or None for real AWS, whether it is the embedded one)."""
    endpoint = None if args.backend == "kafka" else args.endpoint
    endpoint = endpoint or (os.environ.get("AWS_ENDPOINT_URL") if args.backend == "kafka" else None)
    if endpoint == "aws":
        yield None, False
    elif endpoint == "localstack":
        url = localstack_endpoint("sqs")
        console.print(f"LocalStack endpoint: {url}")
        yield url, False
    elif endpoint:
        yield endpoint, False
    else:
        with embedded_moto() as url:
            console.print(f"embedded AWS endpoint: moto server at {url} (in this process)")
            yield url, True


def _kafka_bootstrap(args: argparse.Namespace) -> str | None:
    if args.backend != "kafka":
        return None
    bootstrap = args.endpoint or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        raise ConfigurationError(
            "--backend kafka needs a broker: --endpoint HOST:PORT or $KAFKA_BOOTSTRAP_SERVERS "
            "(for a local one: python scripts/services.py start kafka)"
        )
    return bootstrap


async def run_demo(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    if not console.is_terminal:  # logs and CI: wide enough that the table's rows stay on one line
        console = Console(highlight=False, width=160)
    if not args.verbose:
        # AsyncMQ logs every failed attempt with a traceback (the table reports them), and its
        # setup_logging() puts the root logger at DEBUG (docs/decisions.md, entry 25), which lets
        # the embedded moto server and the clients log every request.
        logging.getLogger("asyncmq").setLevel(logging.CRITICAL)
        for name in ("moto", "werkzeug", "aiokafka", "kafka", "botocore", "aiobotocore", "asyncio"):
            logging.getLogger(name).setLevel(logging.WARNING)
    bootstrap = _kafka_bootstrap(args)
    prefix = f"demo-{uuid.uuid4().hex[:6]}-"
    ledger = CallLedger()
    session = get_session()
    ledger.register(session)
    async with _aws_endpoint(args, console) as (endpoint, embedded):
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        credentials = EMBEDDED_CREDENTIALS if embedded else None
        local = bool(endpoint) and urlsplit(endpoint or "").hostname in ("127.0.0.1", "localhost", "::1")
        if local and not embedded and not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
            credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}  # LocalStack accepts any
        clients = AwsClients(session=session, endpoint_url=endpoint, region_name=region, client_kwargs=credentials)
        try:
            backend = build_backend(args.backend, prefix, clients, bootstrap)
            try:
                async with asyncio.timeout(args.timeout + 60):  # provisioning and shutdown, beyond the workload
                    outcome = await _run(backend, args, console, ledger)
            finally:
                try:
                    await backend.close()  # first: a Kafka consumer commits its offsets while its topic exists
                finally:
                    if not embedded or bootstrap:
                        async with asyncio.timeout(60):
                            await _cleanup(backend, clients, bootstrap, console, tables=not embedded)
        finally:
            await clients.close()
    render(outcome, args.backend, console)
    if args.json_path:
        _write_json(args.json_path, {"backend": args.backend, "prefix": prefix, "ok": outcome.ok, **asdict(outcome)})
    return 0 if outcome.ok else 1


async def _run(backend: CloudBackend, args: argparse.Namespace, console: Console, ledger: CallLedger) -> Outcome:
    for line in plan(backend, [QUEUE]):
        console.print(f"provisioning: {line}")
    await backend.provision([QUEUE])
    workload = Workload(backend, ledger, console.print, timeout=args.timeout)
    with console.status("running the workload (one in-process AsyncMQ worker, concurrency 4)"):
        return await workload.run()


async def _cleanup(
    backend: CloudBackend, clients: AwsClients, bootstrap: str | None, console: Console, *, tables: bool
) -> None:
    """Delete the demo's topics (Kafka) or queues, and with ``tables`` its two tables; say what failed."""
    deleted: list[str] = []

    async def attempt(name: str, delete: Callable[[], Awaitable[Any]]) -> None:
        try:
            await delete()
            deleted.append(name)
        except Exception as exc:
            console.print(f"[yellow]could not delete {name}: {type(exc).__name__}: {exc}[/yellow]")

    specs = backend.resources([QUEUE])
    if tables:
        ddb = await clients.dynamodb()
        for table in (spec.name for spec in specs if isinstance(spec, TableSpec)):
            await attempt(table, functools.partial(ddb.delete_table, TableName=table))
    topics = [name for spec in specs if isinstance(spec, KafkaTopicSpec) for name in (spec.name, spec.dlq_name)]
    if topics and bootstrap:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            await attempt(", ".join(topics), lambda: admin.delete_topics(topics))
        except Exception as exc:
            console.print(f"[yellow]could not reach {bootstrap} to delete the topics: {exc}[/yellow]")
        finally:
            await admin.close()
    queues = [name for spec in specs if isinstance(spec, SqsQueueSpec) for name in (spec.name, spec.dlq_name)]
    if queues:
        sqs = await clients.sqs()

        async def delete_queue(name: str) -> None:
            url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
            await sqs.delete_queue(QueueUrl=url)

        for name in queues:
            await attempt(name, functools.partial(delete_queue, name))
    console.print(f"cleaned up: {', '.join(deleted) or 'nothing'}")


def _moment(value: float | None) -> str:
    return "-" if value is None else f"+{value:.1f}s"


def _write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, default=str)


def render(outcome: Outcome, backend: str, console: Console) -> None:
    calls_label = "DynamoDB calls" if backend == "kafka" else "AWS calls"
    table = Table(title=f"asyncmq-cloud demo — {backend} backend — {outcome.elapsed:.1f}s")
    for column in ("job", "task", "state", "attempts", "started", "finished", calls_label, "notes"):
        table.add_column(
            column, justify="right" if column in ("attempts", "started", "finished", calls_label) else "left"
        )
    for row in outcome.rows:
        colour = "green" if row.state == row.expected else "red"
        table.add_row(
            row.label, row.task, f"[{colour}]{row.state}[/{colour}]", str(row.attempts),
            _moment(row.started), _moment(row.finished), f"{row.calls:.1f}", row.note,
        )  # fmt: skip
    console.print(table)
    for check, passed in outcome.checks.items():
        console.print(f"  {'[green]✓[/green]' if passed else '[red]✗[/red]'} {check}")
    jobs = len(outcome.rows)
    attributed = outcome.calls_total - outcome.calls_background
    top = ", ".join(f"{name} {count}" for name, count in list(outcome.by_operation.items())[:6])
    console.print(
        f"{calls_label}: {outcome.calls_total} in all — {attributed:.0f} named a job ({attributed / max(jobs, 1):.1f} "
        f"per job), {outcome.calls_background:.0f} background (empty receives, worker registry, repeatable scheduler, "
        f"and the scanner polling every 0.25 s). "
        f"Most: {top}. The scanner handed over {outcome.scanner_promoted} delayed job(s)."
    )
    if backend == "kafka":
        console.print("Kafka requests are not counted here: python benchmarks/kafka_cost.py counts them.")
    verdict = "[green]every job ended as expected[/green]" if outcome.ok else "[red]some checks failed[/red]"
    console.print(f"Result: {verdict}.")
    console.print(
        "Where to look next: docs/README.md (per-backend configuration, semantics, IAM, costs); "
        "docs/migration-from-redis.md; `asyncmq-cloud doctor` checks your own setup; `asyncmq-cloud dashboard` "
        "serves AsyncMQ's dashboard; `asyncmq-cloud demo --endpoint http://127.0.0.1:4566` runs this on LocalStack."
    )
