"""The AWS checks of ``asyncmq-cloud doctor``: region, credentials, endpoints, tables, SQS queues.

Each check goes through public surfaces only: the stores' and the delay store's
``resources()`` and ``clients``, the SQS transport's ``spec()`` and ``clients``, and
:class:`~asyncmq_cloud.aws.AwsClients` (``session``, ``client_kwargs``, ``endpoint_url``...).
Its probe clients make one attempt each (no SDK retries) and are closed with the run.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from asyncmq_cloud.aws import ACCESS_CODES, AwsClients, error_code, translate_error
from asyncmq_cloud.commands.doctor._report import Checks, Report, error_text, key_text
from asyncmq_cloud.errors import AccessDeniedError, CloudBackendError
from asyncmq_cloud.resources import IndexSpec, TableSpec

if TYPE_CHECKING:
    from asyncmq_cloud.transports.sqs import SQSTransport

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

#: (role, its table, the clients it calls through) of each DynamoDB table a store uses.
Table = tuple[str, TableSpec, AwsClients]


class AwsChecks(Checks):
    """The AWS checks of one run.

    Args:
        say: the report.
        queues: the ``--queue`` names (their SQS queues are checked).
        timeout: seconds for each call.
        stack: closes the probe clients.
        tables: each DynamoDB table of the state and delay store, once.
        transport: the SQS transport, or ``None`` when the broker is not SQS.
    """

    def __init__(
        self,
        say: Report,
        queues: list[str],
        timeout: float,
        stack: AsyncExitStack,
        *,
        tables: list[Table],
        transport: SQSTransport | None,
    ) -> None:
        super().__init__(say, queues, timeout, stack)
        self.tables, self.transport = tables, transport
        self.sqs: AwsClients | None = transport.clients if transport is not None else None
        self.failed_urls: set[str] = set()

    async def run(self) -> None:
        """Region, credentials, each endpoint, then each table and (with ``--queue``) each SQS queue."""
        users = [(clients, "dynamodb") for _, _, clients in self.tables] + ([(self.sqs, "sqs")] if self.sqs else [])
        if not users:
            return
        regions = self._regions(users)
        if regions is None:
            return
        if not await self._credentials(users[0][0]):
            self.say("skip", "aws", "DynamoDB/SQS endpoints and resources not checked until credentials are found")
            return
        probes: dict[tuple[int, str], Any] = {}
        for clients, service in users:
            if (id(clients), service) not in probes:
                probes[(id(clients), service)] = await self._probe(clients, service, regions[id(clients)])
        await self._resources(probes)

    def _regions(self, users: list[tuple[AwsClients, str]]) -> dict[int, str] | None:
        """The region of each set of clients (reported), or ``None`` after reporting the one that has none."""
        regions: dict[int, str] = {}
        for clients, _ in users:
            try:
                regions[id(clients)] = regions.get(id(clients)) or clients.resolve_region()
            except CloudBackendError as exc:
                fix = "set AWS_DEFAULT_REGION (or AWS_REGION), or region_name= in the backend settings"
                self.say("FAIL", "aws-region", str(exc), fix)
                return None
        self.say("ok", "aws-region", f"AWS region {', '.join(sorted(set(regions.values())))}")
        return regions

    async def _resources(self, probes: dict[tuple[int, str], Any]) -> None:
        """Each table, then each SQS queue, on the endpoints that answered."""
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
        session = clients.session or get_session()
        try:
            credentials = await self.bounded(session.get_credentials())
            if credentials is not None:  # an assumed role or SSO resolves only here
                await self.bounded(credentials.get_frozen_credentials())
        except Exception as exc:
            self.say("FAIL", "aws-credentials", f"the AWS credential chain failed: {error_text(exc)}", _CREDENTIALS_FIX)
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
        session: Any = clients.session or get_session()
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
            text = f"{label} endpoint {url} is unreachable: {error_text(exc)}"
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
            text = f"{what} has keys {key_text(table.get('KeySchema') or [])}, expected {key_text(expected)}"
            self.say("FAIL", "table-keys", text, "it was made for something else: use another table name")
            return
        if (status := table.get("TableStatus")) != "ACTIVE":
            self.say("warn", "table-inactive", f"{what} is {status}", "wait until it is ACTIVE")
        else:
            self.say("ok", "table", f"{what} exists, keys {key_text(expected)}")
        present = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes") or []}
        for index in spec.indexes:
            self._index(spec, what, index, present.get(index.name))
        if spec.ttl_attribute:
            await self._ttl(client, spec, what, spec.ttl_attribute)

    def _index(self, spec: TableSpec, what: str, index: IndexSpec, found: dict[str, Any] | None) -> None:
        name, keys = f"index {index.name!r} of {what}", key_text(index.key_schema())
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
            text = f"{name} has keys {key_text(found.get('KeySchema') or [])}, expected {keys}"
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
            assert self.transport is not None  # only called with an SQS transport
            spec = self.transport.spec(queue)
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
        for lane in spec.lanes:
            await self._lane(client, queue, lane, fix)
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

    async def _lane(self, client: Any, queue: str, lane: str, fix: str) -> None:
        what = f"SQS priority lane {lane!r} of AsyncMQ queue {queue!r}"
        try:
            if await self._call("lane-missing", what, functools.partial(client.get_queue_url, QueueName=lane)):
                self.say("ok", "queue", f"{what} exists")
        except ClientError:
            self.say("FAIL", "lane-missing", f"{what} does not exist", fix)

    async def _redrive(self, client: Any, url: str, dlq_url: str) -> bool:
        dlq = await client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        own = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = json.loads(own.get("Attributes", {}).get("RedrivePolicy") or "{}")
        return bool(policy.get("deadLetterTargetArn") == dlq["Attributes"]["QueueArn"])
