"""Endpoint words the commands accept besides a URL: ``localstack`` (resolved by localstack-client)."""

from __future__ import annotations

from asyncmq_cloud.extras import missing_extra


def localstack_endpoint(service: str = "sqs") -> str:
    """The LocalStack URL of ``service`` as LocalStack's own client resolves it.

    localstack-client reads ``AWS_ENDPOINT_URL`` first, else ``LOCALSTACK_HOST`` (default
    ``localhost:4566``) and ``USE_SSL``, so a compose stack, a remote LocalStack host or a
    TLS edge are all found the way LocalStack documents them.

    Args:
        service: the AWS service name (every service shares the edge URL today).

    Raises:
        MissingExtraError: localstack-client is not installed (``asyncmq-cloud[localstack]``).
    """
    try:
        from localstack_client.config import get_service_endpoint
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, "--endpoint localstack")
        if error is exc:
            raise
        raise error from exc
    return str(get_service_endpoint(service))
