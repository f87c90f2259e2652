"""One aiobotocore session/client lifecycle and the one botocore error boundary.

Every AWS-facing class (the DynamoDB store, the SQS transport, the DynamoDB delay
store) gets its clients from an :class:`AwsClients`, alone or shared::

    async with AwsClients(region_name="eu-west-1") as clients:
        ddb = await clients.dynamodb()

Configuration comes from the standard AWS environment unless given explicitly:

* endpoint: ``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_DYNAMODB``
  / ``AWS_ENDPOINT_URL_SQS`` are honoured by botocore itself (``endpoint_url``
  overrides both);
* region: ``region_name``, else ``AWS_DEFAULT_REGION`` / the profile's region
  (botocore), else ``AWS_REGION``; none at all is a :class:`ConfigurationError`;
* credentials: the default chain (environment, profile, SSO, web identity / IRSA,
  container and instance metadata); pass ``aws_access_key_id`` etc. through
  ``client_kwargs`` to pin them;
* retries: botocore's own retry modes, ``retry_mode="standard"|"adaptive"`` and
  ``max_attempts`` in botocore's meaning (retries after the first call: the
  default 4 makes at most 5 calls). An ``aio_config`` that sets ``retries``
  itself wins; every other ``AioConfig`` knob is passed through.

Errors: :func:`translate_error` is the single place that maps botocore/aiohttp
exceptions to :mod:`asyncmq_cloud.errors`; call sites use
``raise translate_error(exc) from exc`` or the :func:`translated` context manager.
``ConditionalCheckFailedException`` is an expected outcome of conditional writes,
not an error: stores test for it with :func:`is_conditional_failure` first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from asyncmq_cloud._aws_codes import (
    ACCESS_CODES,
    CONDITIONAL_FAILED,
    MISSING_CODES,
    TRANSIENT_CANCEL_REASONS,
    TRANSIENT_CODES,
)
from asyncmq_cloud._aws_observe import instrument
from asyncmq_cloud._aws_user_agent import cache_user_agent
from asyncmq_cloud._component import Component
from asyncmq_cloud.errors import (
    ConfigurationError,
)
from asyncmq_cloud.redact import mask_in_logger, mask_url, masked_repr

# AsyncMQ 0.10.1 configures the root logger at DEBUG in every worker (its
# ``setup_logging()`` ignores ``settings.logging_level``), which makes botocore
# format and print every request and response body: most of a worker's CPU.
# Quiet the SDK unless the application chose a level for it (docs/decisions.md, entry 25).
for _sdk_logger in ("botocore", "aiobotocore"):
    if logging.getLogger(_sdk_logger).level == logging.NOTSET:
        logging.getLogger(_sdk_logger).setLevel(logging.INFO)
# An application that sets botocore to DEBUG gets the signed headers and the canonical request,
# with the session token: mask it there (issue 17, item 5).
_SESSION_TOKEN = re.compile(r"(?i)(x-amz-security-token['\"]?\s*:\s*b?['\"]?)[^'\"\s,}]+")
for _signing_logger in ("botocore.auth", "botocore.endpoint"):
    mask_in_logger(_signing_logger, _SESSION_TOKEN)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_sqs import SQSClient

from asyncmq_cloud._aws_errors import (  # noqa: E402  re-exported: the one SDK boundary
    cancellation_codes,
    error_code,
    is_conditional_failure,
    translate_error,
    translated,
)

T = TypeVar("T")
RetryMode = Literal["standard", "adaptive", "legacy"]

#: Retries after the first call (botocore's ``max_attempts``): at most 5 calls in all.
DEFAULT_MAX_ATTEMPTS = 4


def _check_endpoint_url(url: str) -> None:
    """An ``http(s)://HOST[:PORT]`` URL, or :class:`ConfigurationError` now (botocore would fail at first use)."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        port_ok = parts is not None and (parts.port is None or 0 < parts.port < 65536)
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigurationError(
            f"endpoint_url={mask_url(url)!r} is not an http(s)://HOST[:PORT] URL (e.g. http://127.0.0.1:4566)"
        )


@dataclass(frozen=True)
class AwsOptions:
    """The AWS client keywords every preset and component accepts, in one typed value.

    Attributes:
        endpoint_url: endpoint for every service (LocalStack, ElasticMQ, moto); else the environment's.
        region_name: AWS region (else ``AWS_DEFAULT_REGION``/profile, then ``AWS_REGION``).
        retry_mode: botocore's retry mode.
        max_attempts: retries after the first call (``None``: :data:`DEFAULT_MAX_ATTEMPTS`).
        aio_config: an ``AioConfig`` whose knobs are passed through (its ``retries`` win).
        client_kwargs: further ``create_client`` keywords (``aws_access_key_id``, ...).
    """

    endpoint_url: str | None = None
    region_name: str | None = None
    retry_mode: RetryMode = "standard"
    max_attempts: int | None = None
    aio_config: AioConfig | None = None
    client_kwargs: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return masked_repr(self)  # an endpoint's password and the keys in client_kwargs masked

    def __post_init__(self) -> None:
        if self.endpoint_url is not None:
            _check_endpoint_url(self.endpoint_url)
        if self.retry_mode not in ("standard", "adaptive", "legacy"):
            raise ConfigurationError(f"retry_mode must be 'standard', 'adaptive' or 'legacy', not {self.retry_mode!r}")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ConfigurationError(
                f"max_attempts (retries after the first call) must be >= 0, not {self.max_attempts}"
            )

    def clients(self, session: AioSession | None = None) -> AwsClients:
        """A new :class:`AwsClients` with these options (the caller owns and closes it)."""
        return AwsClients(options=self, session=session)

    def use(self, clients: AwsClients | None) -> tuple[AwsClients, bool]:
        """``clients`` (shared, borrowed) or new ones built from these options; the flag says "owned".

        Raises:
            ConfigurationError: shared clients together with endpoint, region, config or client keywords.
        """
        if clients is None:
            return self.clients(), True
        if self.endpoint_url or self.region_name or self.aio_config or self.client_kwargs:
            raise ConfigurationError("pass endpoint_url/region_name/aio_config/client_kwargs to the shared clients")
        return clients, False


class AwsClients(Component):
    """Owns one aiobotocore session and one client per service.

    ``start()``/``close()`` are idempotent; a closed instance cannot be reopened
    (:class:`ClosedError`). Clients are created on first use and closed by
    ``close()`` (they sit on an ``AsyncExitStack``). Share one instance between
    a store, a transport and a delay store to share connection pools.
    """

    _warn_unclosed = True
    _unclosed_advice = ": call await close()"

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        retry_mode: RetryMode = "standard",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        client_kwargs: Mapping[str, Any] | None = None,
        aio_config: AioConfig | None = None,
        session: AioSession | None = None,
        options: AwsOptions | None = None,
    ) -> None:
        super().__init__()
        if options is None:
            options = AwsOptions(endpoint_url, region_name, retry_mode, max_attempts, aio_config, client_kwargs)
        self.options = options
        self.endpoint_url = options.endpoint_url
        self.region_name = options.region_name
        self.retry_mode = options.retry_mode
        self.max_attempts = DEFAULT_MAX_ATTEMPTS if options.max_attempts is None else options.max_attempts
        self.client_kwargs = dict(options.client_kwargs or {})
        self.aio_config = options.aio_config
        self._session = session
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    @property
    def session(self) -> AioSession | None:
        """The aiobotocore session given, or prepared by ``start()``; ``None`` before either."""
        return self._session

    def config(self) -> AioConfig:
        """The client config: retries from this object unless ``aio_config`` sets them."""
        ours = AioConfig(retries={"mode": self.retry_mode, "max_attempts": self.max_attempts})
        if self.aio_config is None:
            return ours
        if getattr(self.aio_config, "retries", None):
            return self.aio_config
        return self.aio_config.merge(ours)

    def resolve_region(self) -> str:
        """``region_name``, else botocore's (``AWS_DEFAULT_REGION``, profile), else ``AWS_REGION``."""
        if self.region_name:
            return self.region_name
        session = self._session or get_session()
        region = session.get_config_variable("region") or os.environ.get("AWS_REGION")
        if not region:
            raise ConfigurationError("no AWS region: pass region_name or set AWS_DEFAULT_REGION or AWS_REGION")
        return str(region)

    async def _open(self, stack: AsyncExitStack) -> None:
        """Prepare the session. Clients are opened on first use."""
        self.region_name = self.resolve_region()
        self._session = self._session or get_session()
        stack.callback(self._clients.clear)

    async def _shutdown(self) -> None:
        # First, before the clients close: a caller racing close() gets ClosedError, never a closing client.
        self._clients.clear()

    async def client(self, service: str) -> Any:
        """The (cached) aiobotocore client for ``service``, created on first use."""
        existing = self._clients.get(service)
        if existing is not None:
            return existing
        async with self._lock:
            await self._ensure_started()
            if service not in self._clients:
                assert self._session is not None
                session: Any = self._session  # the stubs overload create_client per literal service name
                kwargs: dict[str, Any] = {"region_name": self.region_name, "config": self.config()}
                kwargs.update(self.client_kwargs)
                if self.endpoint_url is not None:
                    kwargs["endpoint_url"] = self.endpoint_url
                with translated(f"{service} client"):
                    created = await self._stack.enter_async_context(session.create_client(service, **kwargs))
                instrument(created, service)  # every call told to asyncmq_cloud.observe (metrics)
                cache_user_agent(created)  # built once per feature set, not twice per request
                self._clients[service] = created
            return self._clients[service]

    async def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = await self.client("dynamodb")
        return client

    async def sqs(self) -> SQSClient:
        client: SQSClient = await self.client("sqs")
        return client


class AwsComponent(Component):
    """A component that calls AWS through :class:`AwsClients`: its own (closed with it) or shared ones.

    Subclasses call :meth:`_use_clients` in ``__init__`` and set ``_aws_resource`` (named in errors).
    """

    _aws_resource: str | None = None
    _clients: AwsClients
    _owns_clients: bool

    def _use_clients(
        self, clients: AwsClients | None, *, endpoint_url: str | None, region_name: str | None, what: str
    ) -> AwsClients:
        """Borrow the caller's ``clients`` or build (and own) private ones.

        Args:
            clients: shared, caller-owned clients (never closed here), or ``None``.
            endpoint_url: endpoint of the private clients.
            region_name: region of the private clients.
            what: this component's kind, for the error message ("store", "transport").
        """
        if clients is not None and (endpoint_url or region_name):
            raise ConfigurationError(f"pass endpoint_url/region_name to the shared AwsClients, not to the {what}")
        self._owns_clients = clients is None
        if clients is None:
            clients = self._adopt(AwsClients(endpoint_url=endpoint_url, region_name=region_name))
        self._clients = clients
        return clients

    @property
    def clients(self) -> AwsClients:
        """The :class:`AwsClients` this component calls through (shared or its own)."""
        return self._clients

    async def _open(self, stack: AsyncExitStack) -> None:
        await self._clients.start()

    async def _dynamodb(self) -> DynamoDBClient:
        self._check_open()
        return await self._clients.dynamodb()

    async def _sqs(self) -> SQSClient:
        self._check_open()
        return await self._clients.sqs()

    async def _call(self, call: Awaitable[T]) -> T:
        """Await an SDK call; SDK errors become :mod:`asyncmq_cloud.errors`."""
        try:
            return await call
        except Exception as exc:
            raise translate_error(exc, resource=self._aws_resource) from exc


__all__ = [
    "ACCESS_CODES",
    "CONDITIONAL_FAILED",
    "MISSING_CODES",
    "TRANSIENT_CANCEL_REASONS",
    "TRANSIENT_CODES",
    "AwsClients",
    "AwsComponent",
    "AwsOptions",
    "cancellation_codes",
    "error_code",
    "is_conditional_failure",
    "translate_error",
    "translated",
]
