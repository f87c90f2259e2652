"""The one redis-py boundary: a shared connection pool, error translation and Lua loading.

The Redis state store and the Redis delay store get their connection from a
:class:`RedisClients`, alone or shared (a backend built from ``redis://`` URLs shares one
pool between both, as it shares :class:`~asyncmq_cloud.aws.AwsClients` for DynamoDB)::

    async with RedisClients("redis://127.0.0.1:6379/0") as clients:
        await clients.client.ping()

Errors: :func:`translate_redis_error` is the single place that maps redis-py exceptions to
:mod:`asyncmq_cloud.errors` (connection loss, timeouts, loading and read-only replicas ->
:class:`~asyncmq_cloud.errors.TransientError`; authentication and ACL failures ->
:class:`~asyncmq_cloud.errors.AccessDeniedError`; anything else ->
:class:`~asyncmq_cloud.errors.PermanentError`); methods use the :func:`redis_errors` decorator.

redis-py comes with the ``redis`` extra; without it, importing this module raises
:class:`~asyncmq_cloud.errors.MissingExtraError`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from importlib import resources
from typing import Any, ParamSpec, TypeVar

from asyncmq_cloud import observe
from asyncmq_cloud._component import Component
from asyncmq_cloud.errors import (
    AccessDeniedError,
    ClosedError,
    CloudBackendError,
    ConfigurationError,
    PermanentError,
    TransientError,
)
from asyncmq_cloud.extras import missing_extra

try:
    import redis.asyncio as aioredis
    from redis import exceptions as rexc
    from redis.commands.core import AsyncScript
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised in a subprocess (tests/unit)
    _error = missing_extra(_exc, "the Redis state and delay stores")
    if _error is _exc:
        raise
    raise _error from _exc

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: The URL both Redis stores default to.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: What :func:`redis_errors` translates.
REDIS_ERRORS = (rexc.RedisError, ConnectionError, TimeoutError)


def translate_redis_error(exc: BaseException) -> CloudBackendError:
    """Map one redis-py (or socket) error onto the package hierarchy (``raise ... from exc``)."""
    if isinstance(exc, CloudBackendError):
        return exc
    message = f"redis: {exc}"
    if isinstance(exc, rexc.AuthenticationError | rexc.AuthorizationError | rexc.NoPermissionError):
        return AccessDeniedError(message)
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | rexc.BusyLoadingError | rexc.ReadOnlyError):
        return TransientError(message)
    if isinstance(exc, rexc.TryAgainError | ConnectionError | TimeoutError):
        return TransientError(message)
    return PermanentError(message)


def redis_errors(method: Callable[_P, Coroutine[Any, Any, _R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Decorate a coroutine function: redis-py errors it raises become :mod:`asyncmq_cloud.errors`."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except REDIS_ERRORS as exc:
            raise translate_redis_error(exc) from exc

    return wrapper


#: Script SHA -> script name: an ``EVALSHA`` is reported under its script's name.
_SCRIPT_NAMES: dict[str, str] = {}


def _operation(args: tuple[Any, ...]) -> str:
    name = str(args[0]).upper() if args else "UNKNOWN"
    if name == "EVALSHA" and len(args) > 1:
        return _SCRIPT_NAMES.get(str(args[1]), name)
    return name


def _classify(exc: Exception) -> str:
    translated = translate_redis_error(exc)
    return "transient" if isinstance(translated, TransientError) else "permanent"


class ObservedRedis(aioredis.Redis):
    """The pool's client: each command (each pipeline) told to :mod:`asyncmq_cloud.observe`."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not observe.active():
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        began = time.monotonic()  # timed inline: a context manager per command costs more than the update
        try:
            reply = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except Exception as exc:  # a cancelled command is not reported
            observe.backend_call("redis", _operation(args), _classify(exc), time.monotonic() - began)
            raise
        observe.backend_call("redis", _operation(args), "ok", time.monotonic() - began)
        return reply

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> aioredis.client.Pipeline:
        return _ObservedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _ObservedPipeline(aioredis.client.Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not observe.active():
            return await super().execute(raise_on_error)
        with observe.timed_call("redis", "MULTI" if self.is_transaction else "PIPELINE", _classify):
            return await super().execute(raise_on_error)


def to_str(value: Any) -> str:
    """A reply as text (a client given by the caller may not decode responses)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_lua(name: str) -> str:
    """The text of ``asyncmq_cloud/lua/{name}.lua``."""
    return (resources.files("asyncmq_cloud") / "lua" / f"{name}.lua").read_text("utf-8")


async def register_scripts(client: aioredis.Redis, bodies: Mapping[str, str]) -> dict[str, AsyncScript]:
    """Register every script and load it into Redis in one round trip (each call is then one ``EVALSHA``).

    Args:
        client: the connection to load them with.
        bodies: script name -> Lua text.
    """
    scripts = {name: client.register_script(body) for name, body in bodies.items()}
    _SCRIPT_NAMES.update({script.sha: name for name, script in scripts.items()})
    async with client.pipeline(transaction=False) as pipe:
        for script in scripts.values():
            pipe.script_load(script.script)
        await pipe.execute()
    return scripts


class RedisClients(Component):
    """Owns one redis-py connection pool (or borrows a caller's client); share it between stores.

    Args:
        url: ``redis://`` / ``rediss://`` URL of the pool (when no ``client`` is given).
        client: an existing ``redis.asyncio.Redis``; it is used as is and never closed here.
        client_kwargs: passed to ``BlockingConnectionPool.from_url`` (``max_connections``,
            ``timeout``, ``socket_timeout``, TLS options, ...); responses are decoded unless
            ``decode_responses=False`` is given.
    """

    def __init__(
        self,
        url: str = DEFAULT_REDIS_URL,
        *,
        client: aioredis.Redis | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.client_kwargs = dict(client_kwargs or {})
        self._given = client
        self._redis: aioredis.Redis | None = None

    @property
    def owns_connection(self) -> bool:
        """True when this object created (and so closes) the pool."""
        return self._given is None

    async def _open(self, stack: AsyncExitStack) -> None:
        if self._given is not None:
            self._redis = self._given
            return
        pool = aioredis.BlockingConnectionPool.from_url(self.url, **{"decode_responses": True, **self.client_kwargs})
        client = ObservedRedis.from_pool(pool)
        stack.push_async_callback(client.aclose)
        self._redis = client

    async def _shutdown(self) -> None:
        self._redis = None

    @property
    def client(self) -> aioredis.Redis:
        """The client (raises :class:`~asyncmq_cloud.errors.ClosedError` outside start()..close())."""
        self._check_open()
        if self._redis is None:
            raise ClosedError(f"{type(self).__name__} is not started; await start() or use 'async with'")
        return self._redis


class RedisComponent(Component):
    """A component that talks to Redis through :class:`RedisClients`: its own (closed with it) or shared ones."""

    _redis_clients: RedisClients
    _owns_redis: bool

    def _use_redis(
        self,
        url: str,
        *,
        client: aioredis.Redis | None,
        clients: RedisClients | None,
        client_kwargs: Mapping[str, Any] | None,
    ) -> RedisClients:
        """Borrow the caller's ``clients`` or build (and own) private ones on ``url`` / ``client``.

        Args:
            url: Redis URL of private clients.
            client: a caller's ``redis.asyncio.Redis`` for private clients (never closed here).
            clients: shared, caller-owned :class:`RedisClients` (never closed here), or ``None``.
            client_kwargs: pool options of private clients.
        """
        if clients is not None and (client is not None or client_kwargs):
            raise ConfigurationError(f"{type(self).__name__}: pass client/client_kwargs to the shared RedisClients")
        self._owns_redis = clients is None
        if clients is None:
            clients = self._adopt(RedisClients(url, client=client, client_kwargs=client_kwargs))
        self._redis_clients = clients
        return clients

    @property
    def clients(self) -> RedisClients:
        """The :class:`RedisClients` this component uses (shared or its own)."""
        return self._redis_clients

    @property
    def client_kwargs(self) -> dict[str, Any]:
        """The options given to the connection pool (a copy)."""
        return dict(self._redis_clients.client_kwargs)

    def _warns_unclosed(self) -> bool:
        return self._warn_unclosed and self._owns_redis and self._redis_clients.owns_connection

    @redis_errors
    async def start(self) -> None:
        """Connect (when the component owns its clients) and load its scripts; idempotent.

        Redis errors are translated here too: a start runs inside every lazily started
        backend call (``dequeue`` included), which must see ``TransientError``, not redis-py's.
        """
        await super().start()

    async def _open(self, stack: AsyncExitStack) -> None:
        clients = self._redis_clients
        await clients.start()
        if self._owns_redis:  # unwound by a start that fails later (loading scripts) and by close()
            stack.push_async_callback(self._release_own, clients)

    async def _release_own(self, clients: RedisClients) -> None:
        await clients.close()
        if not self.closed:  # a failed start: fresh private clients for the next try
            self._redis_clients = self._adopt(
                RedisClients(clients.url, client=clients._given, client_kwargs=clients.client_kwargs)
            )


__all__ = [
    "DEFAULT_REDIS_URL",
    "REDIS_ERRORS",
    "RedisClients",
    "RedisComponent",
    "aioredis",
    "load_lua",
    "redis_errors",
    "register_scripts",
    "rexc",
    "to_str",
    "translate_redis_error",
]
