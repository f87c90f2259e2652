"""The exception hierarchy of asyncmq-cloud.

Every error raised by this package derives from :class:`CloudBackendError`.
SDK errors (botocore, redis, aiokafka) are translated once, at the boundary of
the module that calls the SDK, with ``raise ... from exc`` so the original
error stays attached::

    CloudBackendError
    ├── ConfigurationError        bad settings, invalid names; fix the config
    │   └── InvalidNameError      a queue/table/topic name breaks a naming rule
    ├── PayloadTooLargeError      refused at enqueue, nothing written
    ├── ResourceMissingError      a queue/table/topic does not exist (run provision)
    ├── AccessDeniedError         the credentials lack a permission
    ├── TransientError            worth retrying (throttling, timeouts, broker away)
    ├── PermanentError            retrying will not help
    ├── FlowTooLargeError         a flow does not fit in one transaction
    └── ClosedError               a client-owning object used after close()

    ImportError
    └── MissingExtraError         an optional SDK is not installed; names the extra
"""

from __future__ import annotations


class CloudBackendError(Exception):
    """Base class of every error raised by asyncmq-cloud.

    Attributes:
        retriable: whether repeating the same call may succeed.
    """

    retriable: bool = False


class ConfigurationError(CloudBackendError, ValueError):
    """A setting is missing or invalid. The message names the setting and the rule."""


class InvalidNameError(ConfigurationError):
    """A queue, table or topic name breaks a naming rule; the message says which."""


class PayloadTooLargeError(CloudBackendError, ValueError):
    """A job payload exceeds what the store or broker accepts. Nothing was written.

    Attributes:
        size: the encoded size in bytes.
        limit: the limit in bytes.
    """

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class UnencodableError(CloudBackendError, TypeError):
    """A payload or result that neither the default JSON encoder nor the one configured in
    AsyncMQ's settings (``json_dumps``) can encode. Nothing was written. A ``TypeError``, as
    AsyncMQ's own ``Queue.add`` raises for such a value."""


class ResourceMissingError(CloudBackendError):
    """A queue, table or topic the backend needs does not exist.

    Create it with ``await backend.provision()`` (local development) or with the
    Terraform module in ``terraform/`` (production).
    """


class AccessDeniedError(CloudBackendError):
    """The credentials in use lack a permission (IAM, KMS key policy, ACL)."""


class TransientError(CloudBackendError):
    """A failure that may succeed when repeated (throttling, timeouts, connection loss)."""

    retriable = True


class PermanentError(CloudBackendError):
    """A failure that repeating the call will not fix."""


class FlowTooLargeError(CloudBackendError, ValueError):
    """A flow does not fit in one atomic write; nothing of it was written."""


class ClosedError(CloudBackendError, RuntimeError):
    """A client-owning object was used after ``close()``; create a new one."""


class MissingExtraError(ImportError):
    """A feature needs an SDK that is installed only with one of the package's extras.

    The message names the feature, the missing module and the ``pip install`` command.

    Attributes:
        extra: the extra that installs the missing module (e.g. ``kafka``).
    """

    def __init__(self, message: str, *, extra: str, name: str | None = None) -> None:
        super().__init__(message, name=name)
        self.extra = extra


__all__ = [
    "AccessDeniedError",
    "ClosedError",
    "CloudBackendError",
    "ConfigurationError",
    "FlowTooLargeError",
    "InvalidNameError",
    "MissingExtraError",
    "PayloadTooLargeError",
    "PermanentError",
    "ResourceMissingError",
    "TransientError",
]
