"""Translation of botocore and aiohttp errors into the package's hierarchy (re-exported by :mod:`asyncmq_cloud.aws`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from asyncmq_cloud._aws_codes import (
    ACCESS_CODES,
    CONDITIONAL_FAILED,
    MISSING_CODES,
    TRANSIENT_CANCEL_REASONS,
    TRANSIENT_CODES,
)
from asyncmq_cloud.errors import (
    AccessDeniedError,
    CloudBackendError,
    ConfigurationError,
    PermanentError,
    ResourceMissingError,
    TransientError,
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_conditional_failure(exc: BaseException) -> bool:
    """True for a failed ``ConditionExpression`` (an expected outcome, not an error)."""
    return error_code(exc) == CONDITIONAL_FAILED


def cancellation_codes(exc: BaseException) -> list[str]:
    """Per-action reason codes of a ``TransactionCanceledException`` (``"None"`` = that action was fine)."""
    if not isinstance(exc, ClientError):
        return []
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


#: How a missing table is created (``provision()`` with no queue creates every table).
CREATE_TABLES = "`await backend.provision()` / `asyncmq-cloud provision` (development)"


def translate_error(exc: BaseException, *, resource: str | None = None, create: str | None = None) -> CloudBackendError:
    """Map a botocore / aiohttp exception to the project's error hierarchy.

    Args:
        exc: the SDK exception.
        resource: what was being accessed (``"DynamoDB table 'asyncmq-jobs'"``),
            named in the message.
        create: for a missing resource, the call that creates it (default: :data:`CREATE_TABLES`).

    Returns:
        The error to raise, always as ``raise translate_error(exc) from exc``.
    """
    where = f" ({resource})" if resource else ""
    if isinstance(exc, CloudBackendError):
        return exc
    if isinstance(exc, ClientError):
        return _translate_client_error(exc, where, resource, create)
    if isinstance(exc, NoRegionError):
        return ConfigurationError(f"no AWS region{where}: pass region_name or set AWS_DEFAULT_REGION/AWS_REGION")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError | TokenRetrievalError):
        return ConfigurationError(
            f"no usable AWS credentials{where}: {exc}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run with an IAM role"
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError | aiohttp.ClientError | TimeoutError):
        return TransientError(f"AWS connection failed{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, BotoCoreError):
        return PermanentError(f"AWS SDK error{where}: {type(exc).__name__}: {exc}")
    return PermanentError(f"unexpected error{where}: {type(exc).__name__}: {exc}")


def _translate_client_error(
    exc: ClientError, where: str, resource: str | None, create: str | None
) -> CloudBackendError:
    code = error_code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    text = f"{exc.operation_name} failed{where}: {code}: {message}"
    if code == "TransactionCanceledException":
        reasons = [c for c in cancellation_codes(exc) if c != "None"]
        if reasons and all(c in TRANSIENT_CANCEL_REASONS for c in reasons):
            return TransientError(f"{text} (reasons: {', '.join(reasons)})")
        return PermanentError(f"{text} (reasons: {', '.join(reasons) or 'unknown'})")
    if code in TRANSIENT_CODES:
        return TransientError(text)
    if "AccessDenied" in code or code in ACCESS_CODES:
        return AccessDeniedError(f"{text}; grant the IAM permission (see the adapter's module docstring)")
    if code.upper().startswith("KMS"):
        return AccessDeniedError(f"{text}; check the KMS key policy and key state for these credentials")
    if code in MISSING_CODES:
        name = resource or "the resource"
        return ResourceMissingError(
            f"{text}; {name} does not exist: create it with {create or CREATE_TABLES} "
            "or the Terraform module in terraform/ (production)"
        )
    if status >= 500:
        return TransientError(text)
    if status == 403:
        return AccessDeniedError(text)
    return PermanentError(text)


@contextmanager
def translated(resource: str | None = None, *, create: str | None = None) -> Iterator[None]:
    """Translate SDK errors raised inside the block (``raise ... from exc``); see :func:`translate_error`."""
    try:
        yield
    except (ClientError, BotoCoreError, aiohttp.ClientError) as exc:
        raise translate_error(exc, resource=resource, create=create) from exc
