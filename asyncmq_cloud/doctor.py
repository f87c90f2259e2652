"""``asyncmq-cloud doctor [--queue Q ...] [--timeout S]``: what is wrong, and exactly how to fix it.

It reads the same ``settings.backend`` the workers use and prints one line per check
(``ok``, ``warn``, ``FAIL`` or ``skip``, then a stable id in brackets), each problem
followed by an indented ``fix:`` line. It exits 0 when nothing FAILed (warnings allowed),
else 1. It creates nothing and never starts the backend: it probes with clients of its
own (one attempt, no SDK retries, each call bounded by ``--timeout``, default 5 s). A
check that cannot mean anything after an earlier failure is skipped, not failed again
(no credentials: no AWS calls; an endpoint that does not answer: none of its tables or
queues are reported missing). The checks, in order:

* ``config-settings``: ``ASYNCMQ_SETTINGS_MODULE`` (or ``--settings``) is set, imports,
  and builds ``settings.backend``. Fix: export ``ASYNCMQ_SETTINGS_MODULE=myapp.settings.Settings``
  (importable from the working directory / ``PYTHONPATH``), or correct the backend arguments.
* ``config-backend``: ``settings.backend`` is an asyncmq_cloud backend (``SQSBackend``,
  ``DynamoDBBackend``, ``KafkaBackend`` or a ``CloudBackend``), not e.g. AsyncMQ's RedisBackend.
* ``aws-region`` (only when DynamoDB or SQS is used): ``region_name=``, ``AWS_DEFAULT_REGION``,
  the profile's region or ``AWS_REGION``. Fix: set one of them.
* ``aws-credentials``: botocore's default chain finds credentials (environment, profile, SSO,
  web identity / IRSA, container or instance role) or ``client_kwargs`` pins them. Fix: set
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, or ``AWS_PROFILE``, or run with an IAM role.
* ``endpoint-unreachable`` / ``aws-credentials-rejected``: each AWS endpoint used (DynamoDB,
  SQS) answers; the line names the URL and where it came from (``endpoint_url=``,
  ``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL`` or the AWS
  default for the region). An answer refusing the signature or key means wrong credentials.
* ``table-missing``, ``table-keys``, ``index-missing``, ``index-keys``: each DynamoDB table of
  the state store and the delay store exists with the key schema and every global secondary
  index of its spec (``asyncmq_cloud/resources.py``). Fix: ``asyncmq-cloud provision``
  (development) or the Terraform module; a missing index on an existing table is added with the
  printed ``aws dynamodb update-table`` command (provision never alters a table); wrong keys
  mean another table name. ``table-inactive``/``index-inactive`` (still creating) and
  ``ttl-disabled`` (finished jobs are never cleaned up; fix: ``asyncmq-cloud provision`` or
  ``aws dynamodb update-time-to-live``) are warnings.
* ``queue-missing``, ``dlq-missing`` (SQS, per ``--queue``): the queue and its dead-letter queue
  exist. Fix: ``asyncmq-cloud provision --queue Q``. ``queue-redrive`` (warning): the queue
  does not redrive to its DLQ; the same command sets it.
* ``kafka-unreachable``, ``kafka-auth``, ``topic-missing`` (Kafka): the bootstrap servers
  (``bootstrap_servers=`` or ``KAFKA_BOOTSTRAP_SERVERS``) answer and accept the login, and each
  queue's topic and dead-letter topic exist. Fix: the setting, or ``asyncmq-cloud provision --queue Q``.
* ``redis-unreachable``, ``redis-auth`` (Redis store): the store URL answers ``PING``.
* ``access-denied``: the credentials may not make a call a check needs; grant it (IAM policies
  in ``terraform/``). Without ``--queue`` no queue or topic is checked (a ``skip`` line says so).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from asyncmq_cloud.aws import AwsClients, error_code, translate_error
from asyncmq_cloud.errors import AccessDeniedError, CloudBackendError, TransientError
from asyncmq_cloud.resources import IndexSpec, KafkaTopicSpec, TableSpec

T = TypeVar("T")
_REJECTED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "AuthFailure",
    }
)
_MISSING = frozenset({"ResourceNotFoundException", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})
_CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in ~/.aws/config), "
    "or run with an IAM role (IRSA on EKS: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE; ECS task role; EC2 profile)"
)
_PROVISION = "`asyncmq-cloud provision` (development) or the Terraform module in terraform/ (production)"


class Report:
    """The printed lines and the count of failures and warnings."""

    def __init__(self) -> None:
        self.failed = self.warned = self.passed = 0

    def ok(self, check: str, text: str) -> None:
        self.passed += 1
        self._line("ok  ", check, text)

    def skip(self, check: str, text: str) -> None:
        self._line("skip", check, text)

    def fail(self, check: str, text: str, fix: str) -> None:
        self.failed += 1
        self._line("FAIL", check, text, fix)

    def warn(self, check: str, text: str, fix: str) -> None:
        self.warned += 1
        self._line("warn", check, text, fix)

    def _line(self, level: str, check: str, text: str, fix: str | None = None) -> None:
        print(f"{level} [{check}] {text}", flush=True)
        if fix:
            print(f"     fix: {fix}", flush=True)

    def finish(self) -> int:
        verdict = "problems found" if self.failed else "all checks passed"
        print(f"doctor: {verdict} ({self.passed} ok, {self.failed} failed, {self.warned} warnings)", flush=True)
        return 1 if self.failed else 0


async def run_doctor(args: argparse.Namespace) -> int:
    """Run every check for ``settings.backend`` and ``args.queue``; 0 when none failed, else 1."""
    if not getattr(args, "verbose", False):
        for name in ("botocore", "aiobotocore", "aiokafka"):  # the SDKs' INFO lines are noise here
            logging.getLogger(name).setLevel(logging.WARNING)
    report = Report()
    backend = _load(args.settings, report)
    if backend is not None:
        doctor = _Doctor(backend, list(args.queue), float(args.timeout), report)
        await doctor.run()
    return report.finish()


def _load(settings_path: str | None, report: Report) -> Any:
    path = settings_path or os.environ.get("ASYNCMQ_SETTINGS_MODULE")
    if not path:
        report.fail(
            "config-settings",
            "no settings: ASYNCMQ_SETTINGS_MODULE is not set and --settings was not given",
            "export ASYNCMQ_SETTINGS_MODULE=myapp.settings.Settings (or pass --settings myapp.settings.Settings)",
        )
        return None
    os.environ["ASYNCMQ_SETTINGS_MODULE"] = path
    import asyncmq

    try:
        backend = asyncmq.monkay.settings.backend
    except CloudBackendError as exc:
        report.fail(
            "config-settings",
            f"settings {path!r}: building the backend failed: {exc}",
            f"correct the backend arguments in {path}",
        )
        return None
    except Exception as exc:
        report.fail(
            "config-settings",
            f"settings {path!r} do not load: {type(exc).__name__}: {exc}",
            "set ASYNCMQ_SETTINGS_MODULE/--settings to module.Class importable from here (check PYTHONPATH)",
        )
        return None
    if not hasattr(backend, "promote_due_delayed") or not hasattr(backend, "provision"):
        report.fail(
            "config-backend",
            f"settings.backend of {path} is a {type(backend).__name__}, not an asyncmq_cloud backend",
            "set backend = SQSBackend(...), DynamoDBBackend(...) or KafkaBackend(...) (from asyncmq_cloud)",
        )
        return None
    parts = ", ".join(f"{role} {_describe(getattr(backend, role))}" for role in ("store", "delay_store", "transport"))
    report.ok("config-settings", f"settings {path}: {type(backend).__name__} ({parts})")
    return backend


def _describe(part: Any) -> str:
    spec = getattr(part, "spec", None)
    name = f" {spec.name!r}" if isinstance(spec, TableSpec) else ""
    return f"{type(part).__name__}{name}"


def _is_redis(part: Any) -> bool:
    return type(part).__name__.startswith("Redis") and isinstance(getattr(part, "url", None), str)


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Doctor:
    def __init__(self, backend: Any, queues: list[str], timeout: float, report: Report) -> None:
        self.backend, self.queues, self.timeout, self.report = backend, queues, timeout, report
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
                self.report.ok(
                    "queues", f"{type(transport).__name__}: queues {self.queues} need no resources of their own"
                )
            seen: set[str] = set()
            for role in ("store", "delay_store"):
                part = getattr(self.backend, role)
                if _is_redis(part) and part.url not in seen:
                    seen.add(part.url)
                    await self._redis(role.replace("_", " "), part)

    # -- AWS --------------------------------------------------------------------------
    async def _aws(self) -> None:
        users = [(clients, "dynamodb") for _, _, clients in self.tables]
        if self.sqs is not None:
            users.append((self.sqs, "sqs"))
        if not users:
            return
        regions: dict[int, str] = {}
        for clients, _ in users:
            if id(clients) in regions:
                continue
            try:
                regions[id(clients)] = clients.resolve_region()
            except CloudBackendError as exc:
                fix = "set AWS_DEFAULT_REGION (or AWS_REGION), or region_name= in the backend settings"
                self.report.fail("aws-region", str(exc), fix)
                return
        self.report.ok("aws-region", f"AWS region {', '.join(sorted(set(regions.values())))}")
        if not await self._credentials(users[0][0]):
            self.report.skip("aws", "DynamoDB/SQS endpoints and resources not checked until credentials are found")
            return
        probes: dict[tuple[int, str], Any] = {}
        for clients, service in users:
            key = (id(clients), service)
            if key not in probes:
                probes[key] = await self._probe(clients, service, regions[id(clients)])
        for role, spec, clients in self.tables:
            client = probes[(id(clients), "dynamodb")]
            if client is not None:
                await self._table(client, role, spec)
        if self.sqs is not None:
            client = probes[(id(self.sqs), "sqs")]
            if not self.queues:
                self.report.skip("queues", "no --queue given: SQS queues not checked (pass --queue Q for each)")
            elif client is not None:
                for queue in self.queues:
                    await self._queue(client, queue)

    async def _credentials(self, clients: AwsClients) -> bool:
        if clients.client_kwargs.get("aws_access_key_id"):
            self.report.ok("aws-credentials", "AWS credentials pinned in client_kwargs")
            return True
        session = getattr(clients, "_session", None) or get_session()
        try:
            credentials = await self.bounded(session.get_credentials())
            if credentials is not None:
                await self.bounded(credentials.get_frozen_credentials())
        except TimeoutError:
            self.report.fail(
                "aws-credentials", f"the credential chain gave no answer in {self.timeout}s", _CREDENTIALS_FIX
            )
            return False
        except Exception as exc:
            self.report.fail(
                "aws-credentials", f"AWS credentials failed: {type(exc).__name__}: {exc}", _CREDENTIALS_FIX
            )
            return False
        if credentials is None:
            self.report.fail(
                "aws-credentials", "no AWS credentials found by botocore's credential chain", _CREDENTIALS_FIX
            )
            return False
        self.report.ok("aws-credentials", f"AWS credentials found ({credentials.method})")
        return True

    async def _probe(self, clients: AwsClients, service: str, region: str) -> Any:
        """A one-attempt client for ``service`` if its endpoint answers, else ``None`` (reported)."""
        label = {"dynamodb": "DynamoDB", "sqs": "SQS"}[service]
        config = AioConfig(
            connect_timeout=self.timeout, read_timeout=self.timeout, retries={"mode": "standard", "max_attempts": 0}
        )
        kwargs: dict[str, Any] = {"region_name": region, **clients.client_kwargs}
        kwargs["config"] = clients.aio_config.merge(config) if clients.aio_config else config
        if clients.endpoint_url:
            kwargs["endpoint_url"] = clients.endpoint_url
        session: Any = getattr(clients, "_session", None) or get_session()
        try:
            client = await self.stack.enter_async_context(session.create_client(service, **kwargs))
        except Exception as exc:
            self.report.fail(
                "endpoint-unreachable", f"{label} client: {type(exc).__name__}: {exc}", self._where(service)
            )
            return None
        url = str(client.meta.endpoint_url)
        if url in self.failed_urls:
            self.report.skip("endpoint-unreachable", f"{label} endpoint {url}: the same endpoint, see above")
            return None
        began = time.monotonic()
        try:
            if service == "dynamodb":
                await self.bounded(client.describe_table(TableName="asyncmq-cloud-doctor-probe"))
            else:
                await self.bounded(client.get_queue_url(QueueName="asyncmq-cloud-doctor-probe"))
        except ClientError as exc:
            if error_code(exc) in _REJECTED:
                self.report.fail(
                    "aws-credentials-rejected",
                    f"{label} at {url} refused the credentials: {error_code(exc)}",
                    f"the key, secret or session token is wrong or expired: {_CREDENTIALS_FIX}",
                )
                return None
        except Exception as exc:
            self.failed_urls.add(url)
            detail = "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self.report.fail(
                "endpoint-unreachable", f"{label} endpoint {url} is unreachable: {detail}", self._where(service)
            )
            return None
        ms = (time.monotonic() - began) * 1000
        self.report.ok("endpoint", f"{label} endpoint {url} answers ({ms:.0f} ms; from {self._source(service)})")
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
        """``call()``; an AWS error is reported (``None``) except a missing resource, which is raised."""
        try:
            return await self.bounded(call())
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise
            error = translate_error(exc, resource=what)
            fix = "grant the IAM permission (policies in terraform/)" if isinstance(error, AccessDeniedError) else ""
            self.report.fail("access-denied" if fix else check, str(error), fix or "see the error")
        except Exception as exc:
            self.report.fail(check, f"{what}: {type(exc).__name__}: {exc}", "retry; raise --timeout if it is slow")
        return None

    async def _table(self, client: Any, role: str, spec: TableSpec) -> None:
        what = f"DynamoDB table {spec.name!r} ({role})"
        try:
            reply = await self._call("table", what, lambda: client.describe_table(TableName=spec.name))
        except ClientError:
            self.report.fail("table-missing", f"{what} does not exist", f"create it: {_PROVISION}, or correct the name")
            return
        if reply is None:
            return
        table = reply["Table"]
        if table.get("KeySchema") != spec.key_schema():
            self.report.fail(
                "table-keys",
                f"{what} has key schema {table.get('KeySchema')}, expected {spec.key_schema()}",
                "it was made for something else: use another table name (keys cannot be changed)",
            )
            return
        status = table.get("TableStatus")
        if status != "ACTIVE":
            self.report.warn("table-inactive", f"{what} is {status}", "wait until it is ACTIVE")
        else:
            self.report.ok("table", f"{what} exists, keys {_keys(spec.key_schema())}")
        present = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes") or []}
        for index in spec.indexes:
            self._index(spec, what, index, present.get(index.name))
        if spec.ttl_attribute:
            await self._ttl(client, spec, what, spec.ttl_attribute)

    def _index(self, spec: TableSpec, what: str, index: IndexSpec, found: dict[str, Any] | None) -> None:
        name = f"index {index.name!r} of {what}"
        if found is None:
            definitions = " ".join(
                f"AttributeName={k.name},AttributeType={k.type}" for k in (index.hash_key, index.range_key) if k
            )
            update = json.dumps([{"Create": index.to_api()}], separators=(",", ":"))
            self.report.fail(
                "index-missing",
                f"{name} is missing (global secondary index, keys {_keys(index.key_schema())})",
                f"add it: aws dynamodb update-table --table-name {spec.name} --attribute-definitions {definitions} "
                f"--global-secondary-index-updates '{update}' (or Terraform; provision never alters a table)",
            )
        elif found.get("KeySchema") != index.key_schema():
            self.report.fail(
                "index-keys",
                f"{name} has keys {_keys(found.get('KeySchema') or [])}, expected {_keys(index.key_schema())}",
                f"delete the index and add it with the expected keys, or use another table ({_PROVISION})",
            )
        elif found.get("IndexStatus", "ACTIVE") != "ACTIVE":
            self.report.warn("index-inactive", f"{name} is {found.get('IndexStatus')}", "wait until it is ACTIVE")
        else:
            self.report.ok("index", f"{name} exists, keys {_keys(index.key_schema())}")

    async def _ttl(self, client: Any, spec: TableSpec, what: str, attribute: str) -> None:
        try:
            reply = await self._call("ttl", what, lambda: client.describe_time_to_live(TableName=spec.name))
        except ClientError:
            return
        if reply is None:
            return
        ttl = reply.get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName") == attribute:
            self.report.ok("ttl", f"TTL of {what} on {attribute!r} is {ttl['TimeToLiveStatus']}")
            return
        self.report.warn(
            "ttl-disabled",
            f"TTL of {what} is not on {attribute!r} ({ttl.get('TimeToLiveStatus')} on {ttl.get('AttributeName')!r}): "
            "finished jobs are never cleaned up",
            f"`asyncmq-cloud provision`, or aws dynamodb update-time-to-live --table-name {spec.name} "
            f"--time-to-live-specification Enabled=true,AttributeName={attribute}",
        )

    async def _queue(self, client: Any, queue: str) -> None:
        try:
            spec = self.backend.transport.spec(queue)
        except CloudBackendError as exc:
            self.report.fail("queue-name", str(exc), "rename the queue or the queue_prefix")
            return
        fix = f"asyncmq-cloud provision --queue {queue} (development) or the Terraform module (production)"
        urls: dict[str, str] = {}
        for check, name in (("queue-missing", spec.name), ("dlq-missing", spec.dlq_name)):
            kind = "SQS queue" if check == "queue-missing" else "SQS dead-letter queue"
            what = f"{kind} {name!r} of AsyncMQ queue {queue!r}"
            try:
                reply = await self._call(check, what, functools.partial(client.get_queue_url, QueueName=name))
            except ClientError:
                self.report.fail(check, f"{what} does not exist", fix)
                continue
            if reply is not None:
                urls[check] = reply["QueueUrl"]
                self.report.ok("queue", f"{what} exists")
        if len(urls) < 2:
            return
        got = await self._call(
            "queue-redrive", spec.name, lambda: self._redrive(client, urls["queue-missing"], urls["dlq-missing"])
        )
        if got is False:
            self.report.warn("queue-redrive", f"SQS queue {spec.name!r} does not redrive to {spec.dlq_name!r}", fix)

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

        servers = transport.config.bootstrap_servers
        source = "bootstrap_servers="
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") == servers:
            source = "KAFKA_BOOTSTRAP_SERVERS"
        elif not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and servers == "localhost:9092":
            source = "the default: neither bootstrap_servers= nor KAFKA_BOOTSTRAP_SERVERS is set"
        kwargs = {**client_kwargs(transport.config), "request_timeout_ms": int(self.timeout * 1000)}
        admin = AIOKafkaAdminClient(**kwargs)
        try:
            await self.bounded(start_client(admin, kwargs, f"Kafka cluster {servers}"))
        except AccessDeniedError as exc:
            fix = "check security_protocol, sasl_mechanism, sasl_username/sasl_password (or msk_iam) in the backend"
            self.report.fail("kafka-auth", str(exc), fix)
            return
        except (TransientError, TimeoutError, OSError, CloudBackendError) as exc:
            detail = "no answer" if isinstance(exc, TimeoutError) else str(exc)
            self.report.fail(
                "kafka-unreachable",
                f"Kafka bootstrap servers {servers} (from {source}) unreachable: {detail}",
                "start the broker there (its advertised.listeners must be reachable from here), or correct "
                "bootstrap_servers= in the backend or KAFKA_BOOTSTRAP_SERVERS",
            )
            return
        self.stack.push_async_callback(admin.close)
        self.report.ok("kafka", f"Kafka bootstrap servers {servers} answer (from {source})")
        if not self.queues:
            self.report.skip("queues", "no --queue given: Kafka topics not checked (pass --queue Q for each)")
            return
        try:
            topics = set(await self.bounded(admin.list_topics()))
        except Exception as exc:
            self.report.fail("kafka-unreachable", f"listing topics failed: {type(exc).__name__}: {exc}", "retry")
            return
        for queue in self.queues:
            spec: KafkaTopicSpec = transport.spec(queue)
            for name, kind in ((spec.name, "topic"), (spec.dlq_name, "dead-letter topic")):
                what = f"Kafka {kind} {name!r} of AsyncMQ queue {queue!r}"
                if name in topics:
                    self.report.ok("topic", f"{what} exists")
                else:
                    fix = f"asyncmq-cloud provision --queue {queue} (development) or your topic tooling (production)"
                    self.report.fail("topic-missing", f"{what} does not exist", fix)

    async def _redis(self, role: str, part: Any) -> None:
        import redis.asyncio as aioredis
        from redis import exceptions as rexc
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        url = _mask(part.url)
        extra = {**getattr(part, "_client_kwargs", {}), "retry": Retry(NoBackoff(), 0)}
        client = aioredis.from_url(part.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout, **extra)
        try:
            await self.bounded(client.ping())
            self.report.ok("redis", f"Redis {role} {url} answers PING")
        except (rexc.AuthenticationError, rexc.AuthorizationError, rexc.ResponseError) as exc:
            self.report.fail(
                "redis-auth", f"Redis {role} {url} refused: {exc}", "put the right user:password in the store URL"
            )
        except Exception as exc:
            detail = "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self.report.fail(
                "redis-unreachable",
                f"Redis {role} {url} is unreachable: {detail}",
                "start Redis there, or correct store=/delay_store= (redis://HOST:PORT/DB) in the backend settings",
            )
        finally:
            await client.aclose()


def _keys(schema: list[dict[str, str]]) -> str:
    return "(" + ", ".join(f"{k['AttributeName']} {k['KeyType']}" for k in schema) + ")"
