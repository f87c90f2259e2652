"""aiokafka errors translated into the project's hierarchy, at one boundary (``raise ... from exc``).

aiokafka marks errors ``retriable``; those (and timeouts, lost connections) become
:class:`~asyncmq_cloud.errors.TransientError`. Authorization and SASL failures become
:class:`~asyncmq_cloud.errors.AccessDeniedError`, an unknown topic
:class:`~asyncmq_cloud.errors.ResourceMissingError`, bad topic settings
:class:`~asyncmq_cloud.errors.ConfigurationError`; the rest
:class:`~asyncmq_cloud.errors.PermanentError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from aiokafka import errors as kerr
from aiokafka.protocol.admin import SaslAuthenticateRequest_v0, SaslAuthenticateRequest_v1

from asyncmq_cloud import observe
from asyncmq_cloud.errors import (
    AccessDeniedError,
    CloudBackendError,
    ConfigurationError,
    PermanentError,
    ResourceMissingError,
    TransientError,
)

_ACCESS = (
    kerr.TopicAuthorizationFailedError,
    kerr.GroupAuthorizationFailedError,
    kerr.ClusterAuthorizationFailedError,
    kerr.SaslAuthenticationFailed,
    kerr.AuthenticationFailedError,
    kerr.AuthenticationMethodNotSupported,
    kerr.UnsupportedSaslMechanismError,
    kerr.IllegalSaslStateError,
)
_CONFIG = (
    kerr.InvalidTopicError,
    kerr.InvalidPartitionsError,
    kerr.InvalidReplicationFactorError,
    kerr.PolicyViolationError,
    kerr.KafkaConfigurationError,
)
_TRANSIENT = (kerr.KafkaTimeoutError, kerr.KafkaConnectionError, kerr.NoBrokersAvailable, kerr.RequestTimedOutError)


def translate_kafka_error(exc: BaseException, resource: str) -> CloudBackendError:
    """The project error for an aiokafka (or connection) error raised while using ``resource``."""
    if isinstance(exc, CloudBackendError):
        return exc
    text = str(exc)
    detail = (
        f"{resource}: {text}" if text.startswith(type(exc).__name__) else f"{resource}: {type(exc).__name__}: {text}"
    )
    if isinstance(exc, _ACCESS):
        return AccessDeniedError(f"{detail} (check the SASL credentials, ACLs or MSK IAM policy)")
    if isinstance(exc, kerr.UnknownTopicOrPartitionError):
        return ResourceMissingError(f"{detail} (run `asyncmq-cloud provision --queue ...`)")
    if isinstance(exc, _CONFIG):
        return ConfigurationError(detail)
    if isinstance(exc, (*_TRANSIENT, ConnectionError, TimeoutError)) or getattr(exc, "retriable", False):
        return TransientError(f"{detail} (the broker may be unavailable; retry)")
    return PermanentError(detail)


def classify_kafka_error(exc: Exception) -> str:
    """The :data:`asyncmq_cloud.observe.CALL_OUTCOMES` value of a failed Kafka call."""
    return "transient" if isinstance(translate_kafka_error(exc, ""), TransientError) else "permanent"


@contextmanager
def kafka_errors(resource: str, operation: str | None = None) -> Iterator[None]:
    """Translate aiokafka errors raised inside the block; with ``operation`` (a Kafka API
    name: ``Produce``, ``CreateTopics``...), the call is told to :mod:`asyncmq_cloud.observe`."""
    try:
        with observe.timed_call("kafka", operation, classify_kafka_error) if operation else nullcontext():
            yield
    except CloudBackendError:
        raise
    except (kerr.KafkaError, ConnectionError, TimeoutError) as exc:
        raise translate_kafka_error(exc, resource) from exc


_SASL_REQUESTS = (SaslAuthenticateRequest_v0, SaslAuthenticateRequest_v1)


class SaslBytesFilter(logging.Filter):
    """Masks the SASL bytes of aiokafka's DEBUG "Request to ..." lines: SASL PLAIN sends the password in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(arg, _SASL_REQUESTS) for arg in args):
            shown = "SaslAuthenticateRequest(sasl_auth_bytes=***)"
            record.args = tuple(shown if isinstance(arg, _SASL_REQUESTS) else arg for arg in args)
        return True


def hide_sasl_bytes() -> None:
    """Install :class:`SaslBytesFilter` on aiokafka's connection logger (idempotent; done at import)."""
    conn = logging.getLogger("aiokafka.conn")
    if not any(isinstance(f, SaslBytesFilter) for f in conn.filters):
        conn.addFilter(SaslBytesFilter())


hide_sasl_bytes()

#: aiokafka keywords that decide whether a connection is accepted (``create_conn`` takes them).
_CONNECT_KEYS = (
    "client_id",
    "request_timeout_ms",
    "ssl_context",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_oauth_token_provider",
)


async def _bootstrap_cause(kwargs: dict[str, Any]) -> BaseException | None:
    """The authentication error behind aiokafka's "Unable to bootstrap" (aiokafka only logs it)."""
    from aiokafka.conn import collect_hosts, create_conn

    for host, port, _ in collect_hosts(kwargs["bootstrap_servers"]):
        try:
            conn = await create_conn(host, port, **{k: kwargs[k] for k in _CONNECT_KEYS if k in kwargs})
        except _ACCESS as exc:
            return exc  # type: ignore[no-any-return]
        except (TimeoutError, OSError, kerr.KafkaError):
            continue
        conn.close()
    return None


async def start_client(client: Any, kwargs: dict[str, Any], resource: str) -> None:
    """Start an aiokafka client; on failure close it (no unclosed-client warning) and raise the typed error.

    A refused SASL login surfaces as :class:`AccessDeniedError`, not as a retriable connection error.
    """
    try:
        await client.start()
    except BaseException as exc:
        await (client.close() if hasattr(client, "close") else client.stop())
        if isinstance(exc, kerr.KafkaConnectionError) and (cause := await _bootstrap_cause(kwargs)) is not None:
            raise translate_kafka_error(cause, resource) from cause
        if isinstance(exc, (kerr.KafkaError, ConnectionError, TimeoutError)):
            raise translate_kafka_error(exc, resource) from exc
        raise
