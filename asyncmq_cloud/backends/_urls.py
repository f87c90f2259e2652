"""Store and delay-store URLs shared by the backend presets (SQS, Kafka, DynamoDB).

A preset accepts either an instance or a URL::

    dynamodb://TABLE                     DynamoDBStateStore / DynamoDBDelayStore on TABLE
    redis://HOST:PORT/DB?prefix=P        RedisStateStore / RedisDelayStore (prefix default "asyncmq-cloud")
    rediss://HOST:PORT/DB?prefix=P       the same over TLS
    memory://                            the in-process reference stores (tests, demos)

Any other URL raises :class:`~asyncmq_cloud.errors.ConfigurationError` naming the rule.
Stores are imported lazily so an app that uses DynamoDB does not need redis-py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.redact import mask_url, masked_repr
from asyncmq_cloud.resources import DELAY_TABLE_NAME, validate_table_name

if TYPE_CHECKING:
    from asyncmq_cloud.aws import AwsClients
    from asyncmq_cloud.core.protocols import DelayStore, StateStore
    from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore
    from asyncmq_cloud.stores.redis import RedisStateStore

Kind = Literal["dynamodb", "redis", "memory"]

#: Default Redis key prefix of both Redis stores.
DEFAULT_REDIS_PREFIX = "asyncmq-cloud"
_FORMS = "dynamodb://TABLE, redis://HOST:PORT/DB[?prefix=P], rediss://... or memory://"


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL.

    Attributes:
        kind: which store family.
        target: the table name (DynamoDB) or the Redis URL without ``prefix`` (Redis).
        prefix: the Redis key prefix.
    """

    kind: Kind
    target: str = ""
    prefix: str = DEFAULT_REDIS_PREFIX

    def __repr__(self) -> str:
        return masked_repr(self)  # store URLs and secret options masked


def parse_store_url(url: str, *, setting: str = "store") -> StoreURL:
    """Parse ``url``; :class:`ConfigurationError` names ``setting`` and the broken rule (password masked)."""
    shown = f"{setting}={mask_url(url)!r}"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(f"{shown} is not a store URL; use {_FORMS}")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(f"{shown} is not a valid URL; use {_FORMS}") from None
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path.strip("/") or parts.query:
            raise ConfigurationError(f"{shown}: memory:// takes no table, host or options")
        return StoreURL("memory")
    if scheme == "dynamodb":
        return StoreURL("dynamodb", _table(parts.netloc, parts.path, parts.query, shown))
    if scheme in ("redis", "rediss"):
        return _redis(url, shown)
    raise ConfigurationError(f"{shown}: unsupported scheme {parts.scheme!r}; use {_FORMS}")


def _redis(url: str, shown: str) -> StoreURL:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigurationError(f"{shown}: a Redis URL needs a host (redis://HOST:PORT/DB)")
    try:
        parts.port  # noqa: B018  (parsing it is the check)
    except ValueError:
        raise ConfigurationError(f"{shown}: the port must be a number from 1 to 65535") from None
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ConfigurationError(f"{shown}: the database must be a number (redis://HOST:PORT/0)")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in query if key == "prefix"]
    if any(not p for p in prefixes) or len(prefixes) > 1:
        raise ConfigurationError(f"{shown}: give ?prefix= once, non-empty")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    return StoreURL("redis", target, prefixes[0] if prefixes else DEFAULT_REDIS_PREFIX)


def _table(netloc: str, path: str, query: str, shown: str) -> str:
    if not netloc or path.strip("/") or query or "@" in netloc or ":" in netloc:
        raise ConfigurationError(f"{shown}: write a DynamoDB table as dynamodb://TABLE (nothing else)")
    return validate_table_name(netloc)


def build_state_store(spec: str | StateStore, *, clients: AwsClients) -> StateStore:
    """The state store for ``spec``: an instance as is, a URL built with the shared ``clients``."""
    if spec is None:
        raise ConfigurationError(f"store is required: a StateStore or a URL ({_FORMS})")
    if not isinstance(spec, str):
        return spec
    parsed = parse_store_url(spec, setting="store")
    if parsed.kind == "dynamodb":
        from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore

        return DynamoDBStateStore(parsed.target, clients=clients)
    if parsed.kind == "redis":
        from asyncmq_cloud.stores.redis import RedisStateStore

        return RedisStateStore(parsed.target, prefix=parsed.prefix)
    from asyncmq_cloud.stores.memory import MemoryStateStore

    return MemoryStateStore()


def build_delay_store(spec: str | DelayStore | None, *, store: StateStore, clients: AwsClients) -> DelayStore:
    """The delay store for ``spec``; ``None`` picks the one that matches ``store``.

    DynamoDB store -> ``dynamodb://asyncmq-delays`` on the same clients; Redis store ->
    a sorted set on the same Redis and prefix; memory store -> memory. A Redis delay store
    on the state store's Redis URL shares its connection pool (:class:`~asyncmq_cloud.redis.RedisClients`).
    """
    if spec is not None and not isinstance(spec, str):
        return spec
    if spec is None:
        return _default_delay_store(store, clients)
    parsed = parse_store_url(spec, setting="delay_store")
    if parsed.kind == "dynamodb":
        from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore

        return DynamoDBDelayStore(parsed.target, clients=clients)
    if parsed.kind == "redis":
        from asyncmq_cloud.delays.redis import RedisDelayStore

        redis = _redis_store(store)
        if redis is not None and redis.url == parsed.target:  # one pool for both stores
            return RedisDelayStore(prefix=parsed.prefix, clients=redis.clients)
        return RedisDelayStore(parsed.target, prefix=parsed.prefix)
    from asyncmq_cloud.delays.memory import MemoryDelayStore

    return MemoryDelayStore()


def _default_delay_store(store: StateStore, clients: AwsClients) -> DelayStore:
    from asyncmq_cloud.stores.memory import MemoryStateStore

    if isinstance(store, MemoryStateStore):
        from asyncmq_cloud.delays.memory import MemoryDelayStore

        return MemoryDelayStore()
    if (dynamodb := _dynamodb_store(store)) is not None:
        from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore

        return DynamoDBDelayStore(DELAY_TABLE_NAME, clients=dynamodb.clients)
    if (redis := _redis_store(store)) is not None:
        from asyncmq_cloud.delays.redis import RedisDelayStore

        return RedisDelayStore(prefix=redis.prefix, clients=redis.clients)  # one pool for both stores
    raise ConfigurationError(
        f"delay_store is required with a {type(store).__name__} state store: pass a DelayStore or a URL ({_FORMS})"
    )


def _dynamodb_store(store: StateStore) -> DynamoDBStateStore | None:
    """``store`` if it is a DynamoDB one (without aiobotocore installed it cannot be)."""
    try:
        from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore
    except ImportError:  # pragma: no cover - the SDK is missing
        return None
    return store if isinstance(store, DynamoDBStateStore) else None


def _redis_store(store: StateStore) -> RedisStateStore | None:
    """``store`` if it is a Redis one (without redis-py installed it cannot be)."""
    try:
        from asyncmq_cloud.stores.redis import RedisStateStore
    except ImportError:  # pragma: no cover - redis-py is missing
        return None
    return store if isinstance(store, RedisStateStore) else None
