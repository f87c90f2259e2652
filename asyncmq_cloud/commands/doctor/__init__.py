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
                      in ``resources.py``). Fix: ``asyncmq-cloud provision`` or terraform/.
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
import asyncio
import functools
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from asyncmq_cloud.aws import ACCESS_CODES, AwsClients, error_code, translate_error
from asyncmq_cloud.errors import AccessDeniedError, CloudBackendError
from asyncmq_cloud.resources import IndexSpec, KafkaTopicSpec, TableSpec

T = TypeVar("T")
#: Error codes of an answer that refuses the credentials themselves (not a permission).
_REJECTED = ACCESS_CODES - {"UnauthorizedOperation"}
_MISSING = frozenset({"ResourceNotFoundException", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})
_CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in ~/.aws/config), "
    "or run with an IAM role (IRSA on EKS: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE; ECS task role; EC2 profile)"
)
_PROVISION = "`asyncmq-cloud provision` (development) or the Terraform module in terraform/ (production)"
_PROBE_NAME = "asyncmq-cloud-doctor-probe"  # a name that need not exist: any answer proves the endpoint answers


class Report:
    """Prints ``LEVEL [check] text`` (and ``fix: ...``) lines and counts them by level."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, level: str, check: str, text: str, fix: str = "") -> None:
        self.counts[level] += 1
        print(f"{level:<4} [{check}] {text}" + (f"\n     fix: {fix}" if fix else ""), flush=True)

    def finish(self) -> int:
        c = self.counts
        verdict = "problems found" if c["FAIL"] else "all checks passed"
        print(f"doctor: {verdict} ({c['ok']} ok, {c['FAIL']} failed, {c['warn']} warnings)", flush=True)
        return 1 if c["FAIL"] else 0


async def run_doctor(args: argparse.Namespace) -> int:
    """Run every check for ``settings.backend`` and ``args.queue``; 0 when none failed, else 1."""
    if not getattr(args, "verbose", False):
        for name in ("botocore", "aiobotocore", "aiokafka"):  # the SDKs' own lines repeat the report
            logging.getLogger(name).setLevel(logging.CRITICAL)
    say = Report()
    backend = _load(args.settings, say)
    if backend is not None:
        await _Doctor(backend, list(args.queue), float(args.timeout), say).run()
    return say.finish()


def _load(settings_path: str | None, say: Report) -> Any:
    """``settings.backend`` as ``cli._backend`` gets it, or ``None`` (reported)."""
    path = settings_path or os.environ.get("ASYNCMQ_SETTINGS_MODULE")
    if not path:
        fix = "export ASYNCMQ_SETTINGS_MODULE=myapp.settings.Settings (or pass --settings myapp.settings.Settings)"
        say("FAIL", "config-settings", "ASYNCMQ_SETTINGS_MODULE is not set and --settings was not given", fix)
        return None
    os.environ["ASYNCMQ_SETTINGS_MODULE"] = path
    import asyncmq

    try:
        backend = asyncmq.monkay.settings.backend
    except CloudBackendError as exc:
        say("FAIL", "config-settings", f"settings {path}: the backend refused its arguments: {exc}", f"fix {path}")
        return None
    except Exception as exc:
        fix = "set ASYNCMQ_SETTINGS_MODULE/--settings to module.Class, importable from here (check PYTHONPATH)"
        say("FAIL", "config-settings", f"settings {path!r} do not load: {type(exc).__name__}: {exc}", fix)
        return None
    if not hasattr(backend, "promote_due_delayed") or not hasattr(backend, "provision"):
        fix = "set backend = SQSBackend(...), DynamoDBBackend(...) or KafkaBackend(...) (from asyncmq_cloud)"
        say("FAIL", "config-backend", f"settings.backend is a {type(backend).__name__}, not asyncmq_cloud's", fix)
        return None
    parts = ", ".join(f"{role} {_describe(getattr(backend, role))}" for role in ("store", "delay_store", "transport"))
    say("ok", "config-settings", f"settings {path}: {type(backend).__name__} ({parts})")
    return backend


def _describe(part: Any) -> str:
    spec = getattr(part, "spec", None)
    return type(part).__name__ + (f" {spec.name!r}" if isinstance(spec, TableSpec) else "")


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _detail(exc: BaseException) -> str:
    return "no answer within --timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"


def _keys(schema: list[dict[str, str]]) -> str:
    return "(" + ", ".join(f"{k['AttributeName']} {k['KeyType']}" for k in schema) + ")"


class _Doctor:
    def __init__(self, backend: Any, queues: list[str], timeout: float, say: Report) -> None:
        self.backend, self.queues, self.timeout, self.say = backend, queues, timeout, say
        self.stack = AsyncExitStack()
        self.tables: list[tuple[str, TableSpec, AwsClients]] = []
        for role in ("store", "delay_store"):
            part = getattr(backend, role)
            spec = getattr(part, "spec", None)
            if isinstance(spec, TableSpec) and all(spec.name != t[1].name for t in self.tables):
                self.tables.append((role.replace("_", " "), spec, part.clients))
        transport = backend.transport
        self.sqs: AwsClients | None = getattr(transport, "_clients", None) if hasattr(transport, "queue_name") else None
        self.failed_urls: set[str] = set()

    async def bounded(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self.timeout):
            return await call

    async def run(self) -> None:
        async with self.stack:
            await self._aws()
            transport = self.backend.transport
            if type(transport).__name__ == "KafkaTransport":
                await self._kafka(transport)
            elif self.sqs is None and self.queues:
                self.say("ok", "queues", f"{type(transport).__name__}: queues need no resources of their own")
            seen: set[str] = set()
            for role in ("store", "delay_store"):
                part = getattr(self.backend, role)
                url = getattr(part, "url", None)
                if type(part).__name__.startswith("Redis") and isinstance(url, str) and url not in seen:
                    seen.add(url)
                    await self._redis(role.replace("_", " "), part, url)

    # -- AWS --------------------------------------------------------------------------
    async def _aws(self) -> None:
        users = [(clients, "dynamodb") for _, _, clients in self.tables] + ([(self.sqs, "sqs")] if self.sqs else [])
        if not users:
            return
        regions: dict[int, str] = {}
        for clients, _ in users:
            try:
                regions[id(clients)] = regions.get(id(clients)) or clients.resolve_region()
            except CloudBackendError as exc:
                fix = "set AWS_DEFAULT_REGION (or AWS_REGION), or region_name= in the backend settings"
                self.say("FAIL", "aws-region", str(exc), fix)
                return
        self.say("ok", "aws-region", f"AWS region {', '.join(sorted(set(regions.values())))}")
        if not await self._credentials(users[0][0]):
            self.say("skip", "aws", "DynamoDB/SQS endpoints and resources not checked until credentials are found")
            return
        probes: dict[tuple[int, str], Any] = {}
        for clients, service in users:
            if (id(clients), service) not in probes:
                probes[(id(clients), service)] = await self._probe(clients, service, regions[id(clients)])
        for role, spec, clients in self.tables:
            if (client := probes[(id(clients), "dynamodb")]) is not None:
                await self._table(client, role, spec)
        if self.sqs is not None:
            client = probes[(id(self.sqs), "sqs")]
            if not self.queues:
                self.say("skip", "queues", "no --queue given: SQS queues not checked (pass --queue Q for each)")
            for queue in self.queues if client is not None else []:
                await self._queue(client, queue)

    async def _credentials(self, clients: AwsClients) -> bool:
        if clients.client_kwargs.get("aws_access_key_id"):
            self.say("ok", "aws-credentials", "AWS credentials pinned in client_kwargs")
            return True
        session = getattr(clients, "_session", None) or get_session()
        try:
            credentials = await self.bounded(session.get_credentials())
            if credentials is not None:  # an assumed role or SSO resolves only here
                await self.bounded(credentials.get_frozen_credentials())
        except Exception as exc:
            self.say("FAIL", "aws-credentials", f"the AWS credential chain failed: {_detail(exc)}", _CREDENTIALS_FIX)
            return False
        if credentials is None:
            self.say("FAIL", "aws-credentials", "no AWS credentials found by botocore's chain", _CREDENTIALS_FIX)
            return False
        self.say("ok", "aws-credentials", f"AWS credentials found ({credentials.method})")
        return True

    async def _probe(self, clients: AwsClients, service: str, region: str) -> Any:
        """A one-attempt client for ``service`` if its endpoint answers, else ``None`` (reported)."""
        label = {"dynamodb": "DynamoDB", "sqs": "SQS"}[service]
        retries: Any = {"mode": "standard", "max_attempts": 0}  # one call: no SDK retry outlasts --timeout
        config = AioConfig(connect_timeout=self.timeout, read_timeout=self.timeout, retries=retries)
        kwargs: dict[str, Any] = {"region_name": region, **clients.client_kwargs}
        kwargs["config"] = clients.aio_config.merge(config) if clients.aio_config else config
        if clients.endpoint_url:
            kwargs["endpoint_url"] = clients.endpoint_url
        session: Any = getattr(clients, "_session", None) or get_session()
        try:
            client = await self.stack.enter_async_context(session.create_client(service, **kwargs))
        except Exception as exc:
            self.say("FAIL", "endpoint-invalid", f"{label} client: {type(exc).__name__}: {exc}", self._where(service))
            return None
        url = str(client.meta.endpoint_url)
        if url in self.failed_urls:
            self.say("skip", "endpoint-unreachable", f"{label} endpoint {url}: the same endpoint, see above")
            return None
        began = time.monotonic()
        try:
            if service == "dynamodb":
                await self.bounded(client.describe_table(TableName=_PROBE_NAME))
            else:
                await self.bounded(client.get_queue_url(QueueName=_PROBE_NAME))
        except ClientError as exc:
            if error_code(exc) in _REJECTED:
                text = f"{label} at {url} refused the credentials: {error_code(exc)}"
                self.say("FAIL", "aws-credentials-rejected", text, f"they are wrong or expired: {_CREDENTIALS_FIX}")
                return None
        except Exception as exc:
            self.failed_urls.add(url)
            text = f"{label} endpoint {url} is unreachable: {_detail(exc)}"
            self.say("FAIL", "endpoint-unreachable", text, self._where(service))
            return None
        ms = (time.monotonic() - began) * 1000
        self.say("ok", "endpoint", f"{label} endpoint {url} answers ({ms:.0f} ms; from {self._source(service)})")
        return client

    def _source(self, service: str) -> str:
        clients = self.sqs if service == "sqs" else self.tables[0][2]
        if clients is not None and clients.endpoint_url:
            return "endpoint_url= of the backend"
        for var in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
            if os.environ.get(var):
                return var
        return "the AWS default for the region"

    def _where(self, service: str) -> str:
        source, var = self._source(service), f"AWS_ENDPOINT_URL_{service.upper()}"
        if source.startswith("the AWS default"):
            return f"check network/proxy access to AWS; for an emulator set {var} (or endpoint_url= in the backend)"
        also = f" ({var} overrides it for this service)" if source == "AWS_ENDPOINT_URL" else ""
        return f"start the service at that URL, or correct {source}{also}"

    async def _call(self, check: str, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """``call()``; an error is reported (``None``), except a missing resource: that ClientError is raised."""
        try:
            return await self.bounded(call())
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise
            error = translate_error(exc, resource=what)
            if isinstance(error, AccessDeniedError):
                self.say("FAIL", "access-denied", str(error), "grant the IAM permission (policies in terraform/)")
            else:
                self.say("FAIL", check, str(error), "see the error; retry if it is transient")
        except Exception as exc:
            self.say("FAIL", check, f"{what}: {type(exc).__name__}: {exc}", "retry; raise --timeout if it is slow")
        return None

    async def _table(self, client: Any, role: str, spec: TableSpec) -> None:
        what = f"DynamoDB table {spec.name!r} ({role})"
        try:
            reply = await self._call("table", what, lambda: client.describe_table(TableName=spec.name))
        except ClientError:
            setting = "store='dynamodb://NAME' (table= of DynamoDBBackend)" if role == "store" else "delay_store="
            fix = f"create it: {_PROVISION}, or correct {setting} in the backend settings"
            self.say("FAIL", "table-missing", f"{what} does not exist", fix)
            return
        if reply is None:
            return
        table, expected = reply["Table"], spec.key_schema()
        if table.get("KeySchema") != expected:
            text = f"{what} has keys {_keys(table.get('KeySchema') or [])}, expected {_keys(expected)}"
            self.say("FAIL", "table-keys", text, "it was made for something else: use another table name")
            return
        if (status := table.get("TableStatus")) != "ACTIVE":
            self.say("warn", "table-inactive", f"{what} is {status}", "wait until it is ACTIVE")
        else:
            self.say("ok", "table", f"{what} exists, keys {_keys(expected)}")
        present = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes") or []}
        for index in spec.indexes:
            self._index(spec, what, index, present.get(index.name))
        if spec.ttl_attribute:
            await self._ttl(client, spec, what, spec.ttl_attribute)

    def _index(self, spec: TableSpec, what: str, index: IndexSpec, found: dict[str, Any] | None) -> None:
        name, keys = f"index {index.name!r} of {what}", _keys(index.key_schema())
        if found is None:
            keyed = (index.hash_key, index.range_key)
            attrs = " ".join(f"AttributeName={k.name},AttributeType={k.type}" for k in keyed if k)
            update = json.dumps([{"Create": index.to_api()}], separators=(",", ":"))
            fix = (
                f"add it: aws dynamodb update-table --table-name {spec.name} --attribute-definitions {attrs} "
                f"--global-secondary-index-updates '{update}' (or Terraform; provision never alters a table)"
            )
            self.say("FAIL", "index-missing", f"{name} is missing (a global secondary index, keys {keys})", fix)
        elif found.get("KeySchema") != index.key_schema():
            text = f"{name} has keys {_keys(found.get('KeySchema') or [])}, expected {keys}"
            self.say("FAIL", "index-keys", text, "delete the index and add it with these keys, or use a new table")
        elif (status := found.get("IndexStatus", "ACTIVE")) != "ACTIVE":
            self.say("warn", "index-inactive", f"{name} is {status}", "wait until it is ACTIVE")
        else:
            self.say("ok", "index", f"{name} exists, keys {keys}")

    async def _ttl(self, client: Any, spec: TableSpec, what: str, attribute: str) -> None:
        try:
            reply = await self._call("ttl", what, lambda: client.describe_time_to_live(TableName=spec.name))
        except ClientError:
            return
        ttl = (reply or {}).get("TimeToLiveDescription", {})
        status, on = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
        if reply is None:
            return
        if status in ("ENABLED", "ENABLING") and on == attribute:
            self.say("ok", "ttl", f"TTL of {what} on {attribute!r} is {status}")
            return
        fix = (
            f"`asyncmq-cloud provision`, or aws dynamodb update-time-to-live --table-name {spec.name} "
            f"--time-to-live-specification Enabled=true,AttributeName={attribute}"
        )
        text = f"TTL of {what} is {status} on {on!r}, not on {attribute!r}: finished jobs are never cleaned up"
        self.say("warn", "ttl-disabled", text, fix)

    async def _queue(self, client: Any, queue: str) -> None:
        try:
            spec = self.backend.transport.spec(queue)
        except CloudBackendError as exc:
            self.say("FAIL", "queue-name", str(exc), "rename the queue or the queue_prefix")
            return
        fix = f"asyncmq-cloud provision --queue {queue} (development) or the Terraform module (production)"
        urls: list[str] = []
        for check, kind, name in (("queue-missing", "queue", spec.name), ("dlq-missing", "DLQ", spec.dlq_name)):
            what = f"SQS {kind} {name!r} of AsyncMQ queue {queue!r}"
            try:
                reply = await self._call(check, what, functools.partial(client.get_queue_url, QueueName=name))
            except ClientError:
                self.say("FAIL", check, f"{what} does not exist", fix)
                continue
            if reply is not None:
                urls.append(reply["QueueUrl"])
                self.say("ok", "queue", f"{what} exists")
        if len(urls) == 2:
            try:
                redrives = await self._call("queue-redrive", spec.name, lambda: self._redrive(client, *urls))
            except ClientError as exc:  # e.g. a queue deleted between the two checks
                self.say("FAIL", "queue-redrive", f"SQS queue {spec.name!r}: redrive not readable: {exc}", fix)
                return
            if redrives is False:
                self.say("warn", "queue-redrive", f"SQS queue {spec.name!r} does not redrive to {spec.dlq_name!r}", fix)
            elif redrives:
                self.say("ok", "queue-redrive", f"SQS queue {spec.name!r} redrives to {spec.dlq_name!r}")

    async def _redrive(self, client: Any, url: str, dlq_url: str) -> bool:
        dlq = await client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        own = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = json.loads(own.get("Attributes", {}).get("RedrivePolicy") or "{}")
        return bool(policy.get("deadLetterTargetArn") == dlq["Attributes"]["QueueArn"])

    # -- Kafka and Redis --------------------------------------------------------------
    async def _kafka(self, transport: Any) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        from asyncmq_cloud.transports._kafka_config import client_kwargs
        from asyncmq_cloud.transports._kafka_errors import start_client

        servers, env = transport.config.bootstrap_servers, os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        source = "KAFKA_BOOTSTRAP_SERVERS" if env == servers else "bootstrap_servers= or the default localhost:9092"
        kwargs = {**client_kwargs(transport.config), "request_timeout_ms": int(self.timeout * 1000)}
        admin = AIOKafkaAdminClient(**kwargs)
        try:
            await self.bounded(start_client(admin, kwargs, f"Kafka cluster {servers}"))
        except AccessDeniedError as exc:
            fix = "check security_protocol, sasl_mechanism, sasl_username/sasl_password (or msk_iam) in the backend"
            self.say("FAIL", "kafka-auth", str(exc), fix)
            return
        except Exception as exc:
            detail = "no answer within --timeout" if isinstance(exc, TimeoutError) else str(exc)
            fix = (
                "start the broker there (its advertised.listeners must be reachable from here), or correct "
                "bootstrap_servers= in the backend or KAFKA_BOOTSTRAP_SERVERS"
            )
            self.say("FAIL", "kafka-unreachable", f"Kafka {servers} (from {source}) is unreachable: {detail}", fix)
            return
        self.stack.push_async_callback(admin.close)
        self.say("ok", "kafka", f"Kafka bootstrap servers {servers} answer (from {source})")
        if not self.queues:
            self.say("skip", "queues", "no --queue given: Kafka topics not checked (pass --queue Q for each)")
            return
        try:
            topics = set(await self.bounded(admin.list_topics()))
        except Exception as exc:
            self.say("FAIL", "kafka-topics", f"listing topics failed: {type(exc).__name__}: {exc}", "retry")
            return
        for queue in self.queues:
            spec: KafkaTopicSpec = transport.spec(queue)
            fix = f"asyncmq-cloud provision --queue {queue} (development) or your topic tooling (production)"
            for name, kind in ((spec.name, "topic"), (spec.dlq_name, "dead-letter topic")):
                what = f"Kafka {kind} {name!r} of AsyncMQ queue {queue!r}"
                if name in topics:
                    self.say("ok", "topic", f"{what} exists")
                else:
                    self.say("FAIL", "topic-missing", f"{what} does not exist", fix)

    async def _redis(self, role: str, part: Any, raw: str) -> None:
        import redis.asyncio as aioredis
        from redis import exceptions as rexc
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        url, extra = _mask(raw), {**getattr(part, "_client_kwargs", {}), "retry": Retry(NoBackoff(), 0)}
        client = aioredis.from_url(raw, socket_connect_timeout=self.timeout, socket_timeout=self.timeout, **extra)
        try:
            await self.bounded(client.ping())
            self.say("ok", "redis", f"Redis {role} {url} answers PING")
        except (rexc.AuthenticationError, rexc.AuthorizationError, rexc.ResponseError) as exc:
            self.say("FAIL", "redis-auth", f"Redis {role} {url} refused: {exc}", "fix user:password in the URL")
        except Exception as exc:
            detail = _detail(exc)
            fix = "start Redis there, or correct store=/delay_store= (redis://HOST:PORT/DB) in the backend settings"
            self.say("FAIL", "redis-unreachable", f"Redis {role} {url} is unreachable: {detail}", fix)
        finally:
            await client.aclose()
