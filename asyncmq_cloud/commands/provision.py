"""``asyncmq-cloud provision [--queue Q ...] [--dry-run | --print-iam]``: create what the backend needs.

Every table, queue and topic comes from :meth:`CloudBackend.resources` (the specs the
stores, the delay store and the transport declare); ``--dry-run`` prints them and
contacts nothing, otherwise ``CloudBackend.provision`` creates the missing ones
(idempotent: nothing existing is altered). ``--print-iam`` prints the runtime and the
provisioning IAM policy of those resources (:mod:`asyncmq_cloud.resources.iam`) and
contacts nothing either.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from asyncmq_cloud.commands._settings import load_backend
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.resources import IndexSpec, KafkaTopicSpec, TableSpec
from asyncmq_cloud.resources.iam import Scope, check_region, policies, render
from asyncmq_cloud.resources.s3 import S3BucketSpec

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec


def _keys(spec: TableSpec | IndexSpec) -> str:
    return f"{spec.hash_key.name}, {spec.range_key.name if spec.range_key else '-'}"


def describe(spec: ResourceSpec) -> str:
    """One line that says what ``spec`` is and how it is made.

    Args:
        spec: a table, SQS queue or Kafka topic spec.
    """
    if isinstance(spec, TableSpec):
        indexes = ", ".join(f"{i.name}({_keys(i)})" for i in spec.indexes)
        return (
            f"DynamoDB table {spec.name}: key ({_keys(spec)}), indexes {indexes}, "
            f"TTL {spec.ttl_attribute}, {spec.billing_mode}"
        )
    if isinstance(spec, S3BucketSpec):
        return (
            f"S3 bucket {spec.name} for payload bodies under {spec.prefix or '/'} (public access blocked, "
            f"SSE-KMS with {spec.kms_key_id or 'aws/s3'}, bodies expire {spec.expire_days} days after their last write)"
        )
    if isinstance(spec, KafkaTopicSpec):
        return (
            f"Kafka topic {spec.name} and dead-letter topic {spec.dlq_name} ({spec.partitions} partitions, "
            f"replication {spec.replication_factor}), consumer group {spec.group}"
        )
    return (
        f"SQS queue {spec.name} (visibility {spec.visibility_timeout}s, redrive after {spec.max_receive_count} "
        f"receives) and dead-letter queue {spec.dlq_name}{' (FIFO)' if spec.fifo else ''}"
    )


def plan(backend: CloudBackend, queues: Sequence[str]) -> list[str]:
    """What ``provision`` creates for ``backend`` and ``queues``, one line each (no I/O).

    Args:
        backend: the backend whose stores and broker are provisioned.
        queues: the AsyncMQ queues whose queue/topic is wanted.
    """
    lines = [describe(spec) for spec in backend.resources(queues)]
    if not lines:
        parts = ", ".join(type(p).__name__ for p in (backend.store, backend.delay_store, backend.transport))
        lines.append(f"nothing to create: {parts} need no table, queue or topic")
    return lines


async def run_provision(args: argparse.Namespace) -> int:
    """``asyncmq-cloud provision``: print the plan (``--dry-run``) or create what is missing.

    Args:
        args: the parsed ``provision`` arguments (``settings``, ``queue``, ``dry_run``).
    """
    backend = load_backend(args.settings)
    if args.print_iam:
        return print_iam(backend, args)
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


def print_iam(backend: CloudBackend, args: argparse.Namespace) -> int:
    """``provision --print-iam``: both IAM documents on stdout, what was left out on stderr.

    Args:
        backend: the configured backend.
        args: ``queue``, ``region``, ``account_id``, ``partition``, ``msk_cluster_arn``.
    """
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "*"
    if not args.region:
        try:
            check_region(region)
        except ConfigurationError as exc:
            raise ConfigurationError(f"$AWS_REGION / $AWS_DEFAULT_REGION: {exc}; or pass --region") from None
    scope = Scope(region, args.account_id, args.partition, args.msk_cluster_arn)
    specs = backend.resources(args.queue)
    notes = []
    if "*" in (scope.region, scope.account):
        notes.append("ARNs match any region or account ('*'): pass --region and --account-id to pin them")
    if not args.queue:
        notes.append("no --queue: only the tables are covered; name every queue the app uses")
    if any(isinstance(s, KafkaTopicSpec) for s in specs) and scope.msk_cluster_arn is None:
        notes.append("Kafka topics left out: pass --msk-cluster-arn for Amazon MSK with IAM authentication")
    print(render(policies(specs, scope)), flush=True)
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)
    return 0
