"""``asyncmq-cloud dlq {list,show,redrive,purge} --queue Q``: inspect, redrive or purge dead letters.

Two kinds, chosen with ``--source``:

* ``jobs`` (default): AsyncMQ's failed jobs, in the state store, on every backend
  (:mod:`~asyncmq_cloud.commands.dlq.jobs`).
* ``broker``: messages the broker dead-lettered: the SQS dead-letter queue
  (:mod:`~asyncmq_cloud.commands.dlq.sqs`) or the Kafka dead-letter topic
  (:mod:`~asyncmq_cloud.commands.dlq.kafka`). ``DynamoDBBackend`` has none: its queue is
  the jobs table, and what cannot run ends as a failed job.

Options::

    --limit N      at most N dead letters (default: all)
    --rate R       at most R per second for redrive and purge (default 50; 0: no limit)
    --dry-run      redrive/purge: count what would be done, change nothing
    --yes          purge: required (there is no undo)
    --method M     SQS redrive: auto (default: the move task, else the loop), move-task, loop

Progress goes to stderr every second, and a summary at the end. SIGINT or SIGTERM stop
after the item in progress; each kind says what a stop leaves (nothing is lost).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from asyncmq_cloud.aws import translate_error
from asyncmq_cloud.commands._settings import load_backend
from asyncmq_cloud.commands.dlq import jobs
from asyncmq_cloud.commands.dlq._run import Run
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncmq_cloud.transports.kafka import KafkaTransport
    from asyncmq_cloud.transports.sqs import SQSTransport


async def run_dlq(args: argparse.Namespace) -> int:
    """``asyncmq-cloud dlq``: one action on one queue's dead letters; 0 when done, 1 when not found."""
    if args.action == "purge" and not (args.yes or args.dry_run):
        raise ConfigurationError("dlq purge deletes for good: add --yes (or --dry-run to count)")
    backend = load_backend(args.settings)
    changes = args.action in ("redrive", "purge")
    run = Run(args.action, rate=args.rate if changes else 0.0, every=1.0 if changes else float("inf"))
    run.install()
    try:
        await _dispatch(backend, args, run)
    except LookupError as exc:
        print(f"asyncmq-cloud dlq: {exc}", file=sys.stderr, flush=True)
        return 1
    except ClientError as exc:  # an SQS call refused: the typed error, its reason on stderr
        raise translate_error(exc, resource=f"the dead letters of queue {args.queue!r}") from exc
    finally:
        run.uninstall()
        await backend.close()
    if args.action != "show":
        print(run.summary() + (f" (of {run.total})" if args.action == "list" and run.total else ""), file=sys.stderr)
    return 130 if run.stopped else 0


async def _dispatch(backend: CloudBackend, args: argparse.Namespace, run: Run) -> None:
    queue, action = args.queue, args.action
    if args.source == "jobs":
        if action == "list":
            await jobs.list_failed(backend, queue, args.limit, run)
        elif action == "show":
            await jobs.show_failed(backend, queue, _one(args))
        else:
            await jobs.act_on_failed(backend, queue, args.limit, run, args.dry_run)
        return
    from asyncmq_cloud.transports.kafka import KafkaTransport
    from asyncmq_cloud.transports.sqs import SQSTransport

    if isinstance(backend.transport, SQSTransport):
        await _sqs(backend.transport, args, run)
    elif isinstance(backend.transport, KafkaTransport):
        await _kafka(backend.transport, args, run)
    else:
        raise ConfigurationError(
            f"{type(backend).__name__} has no broker dead-letter queue (its queue is the state store): "
            "use --source jobs"
        )


def _one(args: argparse.Namespace) -> str:
    if not args.id:
        raise ConfigurationError(
            "dlq show needs the id of a dead letter (a job id, an SQS message id, PARTITION:OFFSET)"
        )
    return str(args.id)


async def _sqs(transport: SQSTransport, args: argparse.Namespace, run: Run) -> None:
    from asyncmq_cloud.commands.dlq import sqs

    letters = await sqs.DeadLetters.of(transport, args.queue)
    if args.action == "list":
        await sqs.list_messages(letters, args.limit, run)
    elif args.action == "show":
        await sqs.show_message(letters, _one(args), run)
    elif args.dry_run:
        run.total = await letters.depth()
        run.done(
            f"would be {'redriven' if args.action == 'redrive' else 'purged'}", min(run.total, args.limit or run.total)
        )
    elif args.action == "redrive":
        await sqs.redrive(letters, args.limit, run, args.method)
    else:
        await sqs.purge(letters, args.limit, run)


async def _kafka(transport: KafkaTransport, args: argparse.Namespace, run: Run) -> None:
    from asyncmq_cloud.commands.dlq import kafka

    if args.action == "list":
        await kafka.list_records(transport, args.queue, args.limit, run)
    elif args.action == "show":
        await kafka.show_record(transport, args.queue, _one(args))
    elif args.action == "redrive":
        await kafka.redrive(transport, args.queue, args.limit, run, args.dry_run)
    else:
        kafka.purge()
