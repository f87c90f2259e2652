"""Unit tests of ``asyncmq_cloud.aws``: error translation and the client lifecycle (no server)."""

from __future__ import annotations

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

from asyncmq_cloud.aws import AwsClients, is_conditional_failure, translate_error, translated
from asyncmq_cloud.errors import (
    AccessDeniedError,
    ClosedError,
    CloudBackendError,
    ConfigurationError,
    PermanentError,
    ResourceMissingError,
    TransientError,
)


def client_error(code: str, status: int = 400, message: str = "boom", **extra: object) -> ClientError:
    response: dict[str, object] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "UpdateItem")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, TransientError),
        ("ProvisionedThroughputExceededException", 400, TransientError),
        ("RequestLimitExceeded", 400, TransientError),
        ("InternalServerError", 500, TransientError),
        ("ServiceUnavailable", 503, TransientError),
        ("SomethingNew", 502, TransientError),  # any 5xx
        ("KmsThrottled", 400, TransientError),
        ("AccessDeniedException", 400, AccessDeniedError),
        ("AccessDenied", 403, AccessDeniedError),
        ("KMSAccessDeniedException", 400, AccessDeniedError),
        ("KmsAccessDenied", 400, AccessDeniedError),
        ("KMS.DisabledException", 400, AccessDeniedError),
        ("UnrecognizedClientException", 400, AccessDeniedError),
        ("ExpiredTokenException", 400, AccessDeniedError),
        ("ResourceNotFoundException", 400, ResourceMissingError),
        ("QueueDoesNotExist", 400, ResourceMissingError),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, ResourceMissingError),
        ("ValidationException", 400, PermanentError),
        ("ItemCollectionSizeLimitExceededException", 400, PermanentError),
        ("ConditionalCheckFailedException", 400, PermanentError),  # stores answer it before translating
    ],
)
def test_client_errors_map_to_the_hierarchy(code: str, status: int, expected: type[CloudBackendError]) -> None:
    error = translate_error(client_error(code, status))
    assert type(error) is expected
    assert code in str(error) and "UpdateItem" in str(error)
    assert error.retriable is (expected is TransientError)


def test_missing_resource_message_says_how_to_create_it() -> None:
    error = translate_error(client_error("ResourceNotFoundException"), resource="DynamoDB table 'jobs'")
    assert "DynamoDB table 'jobs'" in str(error)
    assert "provision" in str(error) and "terraform" in str(error)


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["None", "TransactionConflict"], TransientError),
        (["ThrottlingError", "None"], TransientError),
        (["None", "ConditionalCheckFailed"], PermanentError),
        (["ValidationError", "TransactionConflict"], PermanentError),
        ([], PermanentError),
    ],
)
def test_cancelled_transactions_are_classified_by_reason(reasons: list[str], expected: type[Exception]) -> None:
    exc = client_error(
        "TransactionCanceledException", CancellationReasons=[{"Code": r, "Message": "m"} for r in reasons]
    )
    error = translate_error(exc)
    assert type(error) is expected
    for reason in reasons:
        if reason != "None":
            assert reason in str(error)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), TransientError),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), TransientError),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), TransientError),
        (aiohttp.ServerDisconnectedError(), TransientError),
        (TimeoutError(), TransientError),
        (NoCredentialsError(), ConfigurationError),
        (NoRegionError(), ConfigurationError),
        (ParamValidationError(report="bad"), PermanentError),
    ],
)
def test_sdk_errors_map_to_the_hierarchy(exc: Exception, expected: type[Exception]) -> None:
    assert type(translate_error(exc)) is expected


def test_translated_chains_the_original() -> None:
    original = client_error("ThrottlingException")
    with pytest.raises(TransientError) as info, translated("SQS queue 'q'"):
        raise original
    assert info.value.__cause__ is original
    assert "SQS queue 'q'" in str(info.value)


def test_translated_lets_project_errors_through() -> None:
    with pytest.raises(ResourceMissingError), translated():
        raise ResourceMissingError("already translated")


def test_conditional_failure_is_recognised() -> None:
    assert is_conditional_failure(client_error("ConditionalCheckFailedException"))
    assert not is_conditional_failure(client_error("ValidationException"))
    assert not is_conditional_failure(ValueError("ConditionalCheckFailedException"))


# -- AwsClients ---------------------------------------------------------------------------------
def _option(config: object, name: str) -> object:
    return getattr(config, name)  # botocore's Config sets its options dynamically


def test_retry_config_is_botocore_standard_mode_by_default() -> None:
    clients = AwsClients(region_name="us-east-1")
    assert _option(clients.config(), "retries") == {"mode": "standard", "max_attempts": 4}
    adaptive = AwsClients(region_name="us-east-1", retry_mode="adaptive", max_attempts=9)
    assert _option(adaptive.config(), "retries") == {"mode": "adaptive", "max_attempts": 9}


def test_aio_config_is_passed_through_and_its_retries_win() -> None:
    merged = AwsClients(region_name="r", aio_config=AioConfig(max_pool_connections=33)).config()
    assert _option(merged, "max_pool_connections") == 33
    assert _option(merged, "retries") == {"mode": "standard", "max_attempts": 4}
    own = AioConfig(retries={"mode": "legacy", "max_attempts": 2})
    assert AwsClients(region_name="r", aio_config=own).config() is own


@pytest.mark.parametrize(("mode", "attempts"), [("fast", 3), ("standard", -1)])
def test_bad_retry_settings_are_configuration_errors(mode: str, attempts: int) -> None:
    with pytest.raises(ConfigurationError):
        AwsClients(retry_mode=mode, max_attempts=attempts)  # type: ignore[arg-type]


def test_region_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert AwsClients().resolve_region() == "eu-west-3"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert AwsClients().resolve_region() == "ap-south-1"
    assert AwsClients(region_name="us-west-2").resolve_region() == "us-west-2"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ConfigurationError, match="region"):
        AwsClients().resolve_region()


async def test_lifecycle_is_idempotent_and_never_reopens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients = AwsClients(region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    await clients.start()
    await clients.start()
    first = await clients.dynamodb()
    assert await clients.dynamodb() is first  # one client per service
    assert first.meta.endpoint_url == "http://127.0.0.1:9" and first.meta.region_name == "us-east-1"
    assert _option(first.meta.config, "retries") == {"mode": "standard", "total_max_attempts": 5}
    await clients.close()
    await clients.close()
    assert clients.closed
    with pytest.raises(ClosedError):
        await clients.start()
    with pytest.raises(ClosedError):
        await clients.sqs()


async def test_async_with_closes_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    async with AwsClients(region_name="us-east-1", endpoint_url="http://127.0.0.1:9") as clients:
        sqs = await clients.sqs()
        assert sqs.meta.service_model.service_name == "sqs"
    assert clients.closed
