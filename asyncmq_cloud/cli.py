"""``asyncmq-cloud``: operator commands next to AsyncMQ's own ``asyncmq`` CLI.

The backend is the one AsyncMQ uses: ``settings.backend`` of the settings
class named by ``ASYNCMQ_SETTINGS_MODULE`` (``--settings`` overrides it), so
the scanner and the workers always agree on stores and queues.

Commands::

    asyncmq-cloud scanner run --queue Q [--queue Q2 ...] [--interval S]
    asyncmq-cloud provision [--queue Q ...] [--dry-run]
    asyncmq-cloud health [--queue Q ...] [--timeout S]
    asyncmq-cloud doctor [--queue Q ...] [--timeout S]
    asyncmq-cloud dashboard [--host H] [--port P]
    asyncmq-cloud demo [--backend sqs|dynamodb|kafka] [--endpoint URL]

``health`` exits 0 when the backend's stores (and each ``--queue`` on the broker)
answer within ``--timeout`` seconds (transient errors are retried inside it), else 1
with the reason on stderr: a
Kubernetes probe of backend connectivity that does not depend on jobs existing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from asyncmq_cloud.core.validation import validate_queue_name
from asyncmq_cloud.errors import CloudBackendError, TransientError
from asyncmq_cloud.resources import KafkaTopicSpec
from asyncmq_cloud.scanners.runner import install_signal_handlers, run_scanner


def _backend(settings_path: str | None) -> Any:
    if settings_path:
        os.environ["ASYNCMQ_SETTINGS_MODULE"] = settings_path
    import asyncmq

    backend = asyncmq.monkay.settings.backend
    if not hasattr(backend, "promote_due_delayed") or not hasattr(backend, "provision"):
        raise SystemExit(
            f"settings.backend is a {type(backend).__name__}; asyncmq-cloud commands need an "
            "asyncmq_cloud backend (set ASYNCMQ_SETTINGS_MODULE or --settings)"
        )
    return backend


async def _scan(args: argparse.Namespace) -> int:
    backend = _backend(args.settings)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    print(f"asyncmq-cloud scanner: queues={args.queue} interval={args.interval}s (SIGTERM to stop)", flush=True)
    try:
        stats = await run_scanner(
            backend, args.queue, interval=args.interval, stop=stop, report_every=args.report_every
        )
    finally:
        await backend.close()
    print(f"asyncmq-cloud scanner stopped: {stats.passes} passes, promoted {stats.promoted}", flush=True)
    return 0


def _keys(spec: Any) -> str:
    return f"{spec.hash_key.name}, {spec.range_key.name if spec.range_key else '-'}"


def plan(backend: Any, queues: Sequence[str]) -> list[str]:
    """What ``provision`` creates for ``backend`` and ``queues``, one line each (no I/O)."""
    lines = []
    for part in (backend.store, backend.delay_store):
        spec = getattr(part, "spec", None)
        if spec is None:
            lines.append(f"{type(part).__name__}: nothing to create")
            continue
        indexes = ", ".join(f"{i.name}({_keys(i)})" for i in spec.indexes)
        lines.append(
            f"DynamoDB table {spec.name}: key ({_keys(spec)}), indexes {indexes}, "
            f"TTL {spec.ttl_attribute}, {spec.billing_mode}"
        )
    transport_spec = getattr(backend.transport, "spec", None)
    for queue in queues:
        if transport_spec is None:
            lines.append(f"queue {queue}: nothing to create on {type(backend.transport).__name__}")
            continue
        spec = transport_spec(queue)
        if isinstance(spec, KafkaTopicSpec):
            lines.append(
                f"Kafka topic {spec.name} and dead-letter topic {spec.dlq_name} ({spec.partitions} partitions, "
                f"replication {spec.replication_factor}), consumer group {spec.group}"
            )
            continue
        lines.append(
            f"SQS queue {spec.name} (visibility {spec.visibility_timeout}s, redrive after {spec.max_receive_count} "
            f"receives) and dead-letter queue {spec.dlq_name}{' (FIFO)' if spec.fifo else ''}"
        )
    return lines


async def _provision(args: argparse.Namespace) -> int:
    backend = _backend(args.settings)
    if args.dry_run:
        for line in plan(backend, args.queue):
            print(f"would create (if missing): {line}", flush=True)
        return 0
    try:
        await backend.provision(args.queue)
    finally:
        await backend.close()
    print(f"provisioned: stores and queues {args.queue}", flush=True)
    return 0


async def _health(args: argparse.Namespace) -> int:
    backend = _backend(args.settings)
    last: TransientError | None = None
    try:
        async with asyncio.timeout(args.timeout):
            while True:  # a TransientError (e.g. a broker still electing its group coordinator) is retried
                try:
                    await backend.list_queues()  # the state store answers
                    for queue in args.queue:
                        await backend.transport.depth(queue)  # the broker has the queue
                    break
                except TransientError as exc:
                    last = exc
                    await asyncio.sleep(0.5)
    except TimeoutError:
        reason = f" (last error: {type(last).__name__}: {last})" if last else ""
        print(f"unhealthy: no answer within {args.timeout}s{reason}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        try:
            await backend.close()
        except Exception:  # pragma: no cover - a probe must answer even if close fails
            pass
    print("healthy", flush=True)
    return 0


async def _doctor(args: argparse.Namespace) -> int:
    from asyncmq_cloud.doctor import run_doctor

    return await run_doctor(args)


async def _dashboard(args: argparse.Namespace) -> int:
    from asyncmq_cloud.dashboard import serve_dashboard

    return await serve_dashboard(args)


async def _demo(args: argparse.Namespace) -> int:
    from asyncmq_cloud.demo import run_demo

    return await run_demo(args)


def _queue(value: str) -> str:
    try:
        return validate_queue_name(value)
    except CloudBackendError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asyncmq-cloud", description=__doc__.split("\n")[0])
    parser.add_argument("--settings", help="settings class path (default: $ASYNCMQ_SETTINGS_MODULE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    scanner = commands.add_parser("scanner", help="delayed-job scanner").add_subparsers(dest="action", required=True)
    run = scanner.add_parser("run", help="promote due delayed jobs until SIGTERM")
    run.add_argument("--queue", action="append", required=True, type=_queue, help="queue to scan (repeatable)")
    run.add_argument("--interval", type=float, default=1.0, help="seconds between idle passes (default 1.0)")
    run.add_argument("--report-every", type=float, default=10.0, help="seconds between progress lines")
    run.set_defaults(handler=_scan)
    prov = commands.add_parser("provision", help="create tables/queues the backend needs (idempotent)")
    prov.add_argument("--queue", action="append", default=[], type=_queue, help="queue to create (repeatable)")
    prov.add_argument("--dry-run", action="store_true", help="print what would be created; create nothing")
    prov.set_defaults(handler=_provision)
    health = commands.add_parser("health", help="exit 0 if the backend answers (a probe), else 1")
    health.add_argument("--queue", action="append", default=[], type=_queue, help="queue that must exist")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds for all checks (default 5)")
    health.set_defaults(handler=_health)
    doctor = commands.add_parser("doctor", help="check configuration, credentials, reachability and resources")
    doctor.add_argument("--queue", action="append", default=[], type=_queue, help="queue to check (repeatable)")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds for each check (default 5)")
    doctor.set_defaults(handler=_doctor)
    dash = commands.add_parser("dashboard", help="serve AsyncMQ's dashboard against the configured backend")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dash.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    dash.set_defaults(handler=_dashboard)
    demo = commands.add_parser("demo", help="run a sample workload on an embedded AWS endpoint (moto)")
    demo.add_argument("--backend", choices=("sqs", "dynamodb", "kafka"), default="sqs", help="backend (default sqs)")
    demo.add_argument(
        "--endpoint",
        help="AWS endpoint URL (LocalStack, real AWS) or, with --backend kafka, bootstrap servers; "
        "default: an embedded moto server",
    )
    demo.add_argument("--timeout", type=float, default=90.0, help="seconds before the demo gives up (default 90)")
    demo.add_argument("--json", dest="json_path", help="also write the outcome as JSON to this file")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "interval", 1.0) <= 0:
        print("asyncmq-cloud: --interval must be > 0", file=sys.stderr)
        return 2
    try:
        return int(asyncio.run(args.handler(args)))
    except CloudBackendError as exc:
        print(f"asyncmq-cloud: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
