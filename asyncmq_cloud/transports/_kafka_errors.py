"""aiokafka errors translated into the project's hierarchy, at one boundary (``raise ... from exc``).

aiokafka marks errors ``retriable``; those (and timeouts, lost connections) become
:class:`~asyncmq_cloud.errors.TransientError`. Authorization and SASL failures become
:class:`~asyncmq_cloud.errors.AccessDeniedError`, an unknown topic
:class:`~asyncmq_cloud.errors.ResourceMissingError`, bad topic settings
:class:`~asyncmq_cloud.errors.ConfigurationError`; the rest
:class:`~asyncmq_cloud.errors.PermanentError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka import errors as kerr

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
    detail = f"{resource}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _ACCESS):
        return AccessDeniedError(f"{detail} (check the SASL credentials, ACLs or MSK IAM policy)")
    if isinstance(exc, kerr.UnknownTopicOrPartitionError):
        return ResourceMissingError(f"{detail} (run `asyncmq-cloud provision --queue ...`)")
    if isinstance(exc, _CONFIG):
        return ConfigurationError(detail)
    if isinstance(exc, (*_TRANSIENT, ConnectionError, TimeoutError)) or getattr(exc, "retriable", False):
        return TransientError(f"{detail} (the broker may be unavailable; retry)")
    return PermanentError(detail)


@contextmanager
def kafka_errors(resource: str) -> Iterator[None]:
    """Translate aiokafka errors raised inside the block."""
    try:
        yield
    except CloudBackendError:
        raise
    except (kerr.KafkaError, ConnectionError, TimeoutError) as exc:
        raise translate_kafka_error(exc, resource) from exc
