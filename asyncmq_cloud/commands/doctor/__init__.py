"""``asyncmq-cloud doctor [--queue Q ...] [--timeout S]``: what is wrong, and exactly how to fix it.

It checks the ``settings.backend`` the workers use and prints one line per check:
``ok``/``warn``/``FAIL``/``skip``, a stable id in brackets, the finding, and under each
problem a ``fix:`` line. Exit 0 when nothing FAILed (warnings allowed), else 1. It creates
nothing and never starts the backend: its own probe clients make one attempt (no SDK
retries), each call bounded by ``--timeout`` (default 5 s). Nothing cascades: without
credentials no AWS call is made; behind an endpoint that does not answer no table or
queue is reported missing. Without ``--queue`` no queue or topic is checked (``skip``).

``config-settings``   ``ASYNCMQ_SETTINGS_MODULE``/``--settings`` is set, imports and builds the
                      backend. Fix: ``export ASYNCMQ_SETTINGS_MODULE=myapp.settings.Settings``
                      (importable: ``PYTHONPATH``), or the backend argument the error names.
``config-backend``    it is an asyncmq_cloud backend (``SQSBackend``, ``DynamoDBBackend``,
                      ``KafkaBackend``), not e.g. AsyncMQ's own RedisBackend.
``aws-region``        (DynamoDB/SQS) ``region_name=``, ``AWS_DEFAULT_REGION``, the profile's or
                      ``AWS_REGION``. Fix: set one.
``aws-credentials``   botocore's chain finds credentials (environment, profile, SSO, web
                      identity/IRSA, container or instance role). Fix: ``AWS_ACCESS_KEY_ID`` +
                      ``AWS_SECRET_ACCESS_KEY``, or ``AWS_PROFILE``, or an IAM role.
``endpoint-unreachable``  each AWS endpoint used answers; names the URL and its source
                      (``endpoint_url=``, ``AWS_ENDPOINT_URL_DYNAMODB``/``_SQS``, ``AWS_ENDPOINT_URL``
                      or the AWS default). Fix: start the service there or correct that source.
``aws-credentials-rejected``  the endpoint refuses the key/signature: wrong or expired credentials.
``table-missing``     each DynamoDB table of the state and delay store exists (its ``TableSpec``
                      in ``asyncmq_cloud/resources/``). Fix: ``asyncmq-cloud provision`` or terraform/.
``table-keys``        its key schema is the spec's. Fix: another table name (keys never change).
``index-missing``     each global secondary index of the spec exists. Fix: the printed
                      ``aws dynamodb update-table ... --global-secondary-index-updates`` command
                      or terraform/ (provision never alters an existing table).
``index-keys``        the index has the spec's keys. Fix: recreate the index, or a new table.
``ttl-disabled``      (warning) TTL is on ``expires_at``, else finished jobs are never deleted.
                      Fix: ``asyncmq-cloud provision`` or ``aws dynamodb update-time-to-live``.
``table-inactive``/``index-inactive``  (warnings) still being created: wait for ACTIVE.
``queue-missing``/``dlq-missing``  (SQS) each ``--queue``'s queue and dead-letter queue exist.
                      Fix: ``asyncmq-cloud provision --queue Q`` (or terraform/).
``queue-redrive``     (warning) the queue redrives to its DLQ. Fix: the same command.
``kafka-unreachable``/``kafka-auth``  the bootstrap servers (``bootstrap_servers=`` or
                      ``KAFKA_BOOTSTRAP_SERVERS``) answer and accept the login (SASL/TLS/MSK IAM).
``topic-missing``     each ``--queue``'s topic and dead-letter topic exist.
                      Fix: ``asyncmq-cloud provision --queue Q``.
``redis-unreachable``/``redis-auth``  the Redis store URL answers ``PING``. Fix: the URL.
``access-denied``     the credentials may not make a call a check needs. Fix: grant it (terraform/).
"""

from __future__ import annotations

import argparse
import logging
import os
from contextlib import AsyncExitStack

from asyncmq_cloud.commands._settings import settings_backend
from asyncmq_cloud.commands.doctor._report import Checks, Report
from asyncmq_cloud.commands.doctor.aws import AwsChecks, Table
from asyncmq_cloud.commands.doctor.kafka import check_kafka
from asyncmq_cloud.commands.doctor.redis import check_redis
from asyncmq_cloud.commands.doctor.s3 import check_bucket
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.core.protocols import DelayStore, StateStore, Transport
from asyncmq_cloud.errors import CloudBackendError
from asyncmq_cloud.resources import TableSpec

__all__ = ["Report", "run_doctor"]


async def run_doctor(args: argparse.Namespace) -> int:
    """Run every check for ``settings.backend`` and ``args.queue``; 0 when none failed, else 1.

    Args:
        args: the parsed ``doctor`` arguments (``settings``, ``queue``, ``timeout``, ``verbose``).
    """
    if not args.verbose:
        for name in ("botocore", "aiobotocore", "aiokafka"):  # the SDKs' own lines repeat the report
            logging.getLogger(name).setLevel(logging.CRITICAL)
    say = Report()
    backend = _load(args.settings, say)
    if backend is not None:
        await _run(backend, list(args.queue), float(args.timeout), say)
    return say.finish()


def _load(settings_path: str | None, say: Report) -> CloudBackend | None:
    """``settings.backend`` as every command gets it, or ``None`` (reported)."""
    path = settings_path or os.environ.get("ASYNCMQ_SETTINGS_MODULE")
    if not path:
        fix = "export ASYNCMQ_SETTINGS_MODULE=myapp.settings.Settings (or pass --settings myapp.settings.Settings)"
        say("FAIL", "config-settings", "ASYNCMQ_SETTINGS_MODULE is not set and --settings was not given", fix)
        return None
    try:
        backend = settings_backend(path)
    except CloudBackendError as exc:
        say("FAIL", "config-settings", f"settings {path}: the backend refused its arguments: {exc}", f"fix {path}")
        return None
    except Exception as exc:
        fix = "set ASYNCMQ_SETTINGS_MODULE/--settings to module.Class, importable from here (check PYTHONPATH)"
        say("FAIL", "config-settings", f"settings {path!r} do not load: {type(exc).__name__}: {exc}", fix)
        return None
    if not isinstance(backend, CloudBackend):
        fix = "set backend = SQSBackend(...), DynamoDBBackend(...) or KafkaBackend(...) (from asyncmq_cloud)"
        say("FAIL", "config-backend", f"settings.backend is a {type(backend).__name__}, not asyncmq_cloud's", fix)
        return None
    roles = (("store", backend.store), ("delay_store", backend.delay_store), ("transport", backend.transport))
    parts = ", ".join(f"{role} {_describe(part)}" for role, part in roles)
    say("ok", "config-settings", f"settings {path}: {type(backend).__name__} ({parts})")
    return backend


def _describe(part: StateStore | DelayStore | Transport) -> str:
    """``DynamoDBStateStore 'asyncmq-jobs'``: the class and the tables it keeps."""
    tables = [spec.name for spec in part.resources([]) if isinstance(spec, TableSpec)]
    return type(part).__name__ + "".join(f" {name!r}" for name in tables)


def _unwrapped(store: StateStore) -> StateStore:
    """The state store behind the S3 claim check (the tables and Redis it keeps), else ``store``."""
    from asyncmq_cloud.stores._forwarding import ForwardingStore

    return store.inner if isinstance(store, ForwardingStore) else store


def _tables(backend: CloudBackend, queues: list[str]) -> list[Table]:
    """Each DynamoDB table of the state and delay store, once, with the clients its store calls through."""
    from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore
    from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore

    tables: list[Table] = []
    for role, part in (("store", _unwrapped(backend.store)), ("delay store", backend.delay_store)):
        if isinstance(part, DynamoDBStateStore | DynamoDBDelayStore):
            for spec in part.resources(queues):
                if isinstance(spec, TableSpec) and all(spec.name != t[1].name for t in tables):
                    tables.append((role, spec, part.clients))
    return tables


async def _run(backend: CloudBackend, queues: list[str], timeout: float, say: Report) -> None:
    """AWS (tables, SQS queues), then Kafka, then each Redis store: each through its public surface."""
    from asyncmq_cloud.delays.redis import RedisDelayStore
    from asyncmq_cloud.stores.offload import OffloadingStore
    from asyncmq_cloud.stores.redis import RedisStateStore
    from asyncmq_cloud.transports.kafka import KafkaTransport
    from asyncmq_cloud.transports.sqs import SQSTransport

    transport = backend.transport
    async with AsyncExitStack() as stack:
        sqs = transport if isinstance(transport, SQSTransport) else None
        await AwsChecks(say, queues, timeout, stack, tables=_tables(backend, queues), transport=sqs).run()
        checks = Checks(say, queues, timeout, stack)
        if isinstance(transport, KafkaTransport):
            await check_kafka(checks, transport)
        elif sqs is None and queues:
            say("ok", "queues", f"{type(transport).__name__}: queues need no resources of their own")
        if isinstance(backend.store, OffloadingStore):
            await check_bucket(checks, backend.store.bodies)
        seen: set[str] = set()
        for role, part in (("store", _unwrapped(backend.store)), ("delay store", backend.delay_store)):
            if isinstance(part, RedisStateStore | RedisDelayStore) and part.url not in seen:
                seen.add(part.url)
                await check_redis(checks, role, part.url, part.client_kwargs)
