"""Which extra installs which optional SDK, and the error that says so.

A core install (``pip install asyncmq-cloud``) holds what every backend needs: AsyncMQ,
aiobotocore (the default store of every backend is DynamoDB) and pydantic. The
service SDKs a user may not need come with extras::

    pip install "asyncmq-cloud[kafka]"       # aiokafka: KafkaBackend
    pip install "asyncmq-cloud[msk]"         # + the MSK IAM signer (msk_iam=True)
    pip install "asyncmq-cloud[redis]"       # redis: the Redis state and delay stores
    pip install "asyncmq-cloud[dashboard]"   # uvicorn: asyncmq-cloud dashboard
    pip install "asyncmq-cloud[demo]"        # moto server + rich: asyncmq-cloud demo
    pip install "asyncmq-cloud[localstack]"  # localstack-client: --endpoint localstack
    pip install "asyncmq-cloud[metrics]"     # prometheus_client: /metrics, asyncmq-cloud metrics
    pip install "asyncmq-cloud[otel]"        # opentelemetry-api: trace context producer -> task
    pip install "asyncmq-cloud[all]"

``sqs``, ``dynamodb`` and ``s3`` are accepted as extras too and add nothing: their SDK is in the core.
"""

from __future__ import annotations

from asyncmq_cloud.errors import MissingExtraError

#: Top-level module name -> the extra that installs it.
EXTRA_OF_MODULE = {
    "aiokafka": "kafka",
    "aws_msk_iam_sasl_signer": "msk",
    "redis": "redis",
    "uvicorn": "dashboard",
    "moto": "demo",
    "rich": "demo",
    "werkzeug": "demo",  # the embedded moto server (commands/demo/_moto.py)
    "localstack_client": "localstack",
    "prometheus_client": "metrics",
    "opentelemetry": "otel",
}


def missing_extra(exc: ModuleNotFoundError, feature: str) -> ImportError:
    """The error to raise for ``exc``: a :class:`MissingExtraError` naming the extra, or ``exc`` itself.

    Args:
        exc: the ``ModuleNotFoundError`` an import raised.
        feature: what needed the module, for the message (e.g. ``"KafkaBackend"``).

    Returns:
        A ``MissingExtraError`` when the missing module belongs to an extra; otherwise ``exc``
        unchanged (a missing module of ours or of a core dependency is a broken install).
    """
    root = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(root)
    if extra is None:
        return exc
    return MissingExtraError(
        f'{feature} needs {root}, which is not installed: pip install "asyncmq-cloud[{extra}]"',
        extra=extra,
        name=exc.name,
    )
