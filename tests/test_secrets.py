"""No secret reaches an error, a repr, a log line or a command's output (issue 17, item 5).

Every secret given here starts with one marker (``PW-MARKER-<uuid>``, ``tests/support/secrets.py``),
through every configuration path that can carry one: a Redis password (``redis://:PW@``,
``redis://user:PW@``, ``?password=PW``) as store and as delay store, a DynamoDB URL with a user
part, an unsupported scheme with a password, Kafka's ``sasl_password`` and ``ssl_password``, a
bootstrap string with credentials, AWS keys in ``client_kwargs`` and in the environment, and
``ASYNCMQ_CLOUD_*`` variables. The surfaces searched: ``str``/``repr``/traceback of every exception
and of its whole chain (bad input, an unreachable endpoint, a real redis-server with
``--requirepass``, a real Kafka SASL listener, moto), ``repr``/``str`` of the backends and their
parts, every log record at DEBUG, and the output of ``asyncmq-cloud doctor``/``health``/
``provision``/``worker`` run as subprocesses (``tests/test_secrets_commands.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asyncmq.queues import Queue

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.backends._urls import build_delay_store, build_state_store, parse_store_url
from asyncmq_cloud.backends.dynamodb import DynamoDBBackend
from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.backends.sqs import SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import AccessDeniedError, CloudBackendError, ConfigurationError, TransientError
from asyncmq_cloud.transports._kafka_config import KafkaTransportConfig
from asyncmq_cloud.transports.memory import MemoryTransport
from tests.plugins.services import _unavailable
from tests.support.secrets import (
    AWS_ENV,
    AWS_KEYS,
    assert_exception_hidden,
    assert_reprs_hidden,
    free_port,
    redis_with_password,
    secret,
    watched_logs,
)

S = secret("cfg")


def bad_store_urls() -> list[str]:
    """Store URLs that are refused, each carrying the secret in another place."""
    return [
        f"redis://:{S}@h:notaport/0",
        f"redis://user:{S}@h:6379/zero",
        f"redis://h:6379/0?password={S}&prefix=",
        f"rediss://{S}@h:6379/0?prefix=",
        f"redis://:{S}/x@h:6379/0",  # an unencoded '/' in a generated password
        f"redis//:{S}@h:6379/0",  # a typo in the scheme
        f"ftp://user:{S}@h/x",  # an unsupported scheme
        f"dynamodb://user:{S}@tbl",
        f"memory://user:{S}@",
    ]


def kafka_bad_settings() -> list[dict[str, Any]]:
    """Kafka settings that are refused, each carrying the secret."""
    return [
        {"sasl_mechanism": "NOPE", "sasl_username": "u", "sasl_password": S},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_password": S},
        {"security_protocol": "SASL_SSL", "msk_iam": True, "sasl_password": S},
        {"ssl_certfile": "client.pem", "ssl_password": S},
        {"bootstrap_servers": f"user:{S}@127.0.0.1:9092"},
        {"bootstrap_servers": f"user:{S}@127.0.0.1"},
        {"bootstrap_servers": f"SASL_PLAINTEXT://user:{S}@127.0.0.1:9092"},
        {"bootstrap_servers": f"127.0.0.1:9092,admin:{S}@127.0.0.2:9093"},
    ]


def _backends_with_store(url: str) -> list[Callable[[], object]]:
    return [
        lambda: SQSBackend(store=url),
        lambda: SQSBackend(store="memory://", delay_store=url),
        lambda: KafkaBackend(bootstrap_servers="127.0.0.1:9", store=url),
        lambda: KafkaBackend(bootstrap_servers="127.0.0.1:9", store="memory://", delay_store=url),
        lambda: DynamoDBBackend(delay_store=url),
    ]


@pytest.mark.parametrize("url", bad_store_urls(), ids=lambda url: url.split(S)[0] + "PW" + url.split(S)[1])
def test_a_refused_store_url_never_shows_its_secret(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with watched_logs(caplog):
        for build in _backends_with_store(url):
            with pytest.raises(ConfigurationError) as caught:
                build()
            assert_exception_hidden(caught.value, f"store URL {url.split(S)[0]!r}")
        with pytest.raises(ConfigurationError) as caught:
            parse_store_url(url)
        assert_exception_hidden(caught.value, "parse_store_url")


@pytest.mark.parametrize("settings", kafka_bad_settings())
def test_a_refused_kafka_setting_never_shows_its_secret(
    settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with watched_logs(caplog):
        with pytest.raises(ConfigurationError) as direct:
            KafkaTransportConfig(**settings)
        with pytest.raises(ConfigurationError) as backend:
            KafkaBackend(**{"bootstrap_servers": "127.0.0.1:9", "store": "memory://", **settings})
    for caught in (direct, backend):
        assert_exception_hidden(caught.value, f"Kafka settings {sorted(settings)}")


def test_an_encrypted_key_file_that_cannot_be_read_never_shows_its_password(caplog: pytest.LogCaptureFixture) -> None:
    settings = {"ssl_certfile": "/nonexistent/c.pem", "ssl_keyfile": "/nonexistent/k.pem", "ssl_password": S}
    with watched_logs(caplog):
        with pytest.raises((ConfigurationError, OSError)) as caught:
            KafkaBackend(bootstrap_servers="127.0.0.1:9", store="memory://", security_protocol="SSL", **settings)
    assert_exception_hidden(caught.value, "ssl_keyfile with ssl_password")


def aws_bad_inputs() -> list[Callable[[], object]]:
    keys = dict(AWS_KEYS)
    return [
        lambda: SQSBackend(store="memory://", endpoint_url=f"http://user:{S}@h:notaport", client_kwargs=keys),
        lambda: SQSBackend(store="memory://", retry_mode="nope", client_kwargs=keys),  # type: ignore[arg-type]
        lambda: SQSBackend(store="memory://", max_attempts=-1, client_kwargs=keys),
        lambda: SQSBackend(store="memory://", clients=AwsClients(region_name="us-east-1"), client_kwargs=keys),
        lambda: DynamoDBBackend(shards=0, client_kwargs=keys),
        lambda: AwsClients(endpoint_url=f"ftp://{S}@h", client_kwargs=keys),
    ]


@pytest.mark.parametrize("build", aws_bad_inputs())
def test_refused_aws_settings_never_show_the_keys(
    build: Callable[[], object], caplog: pytest.LogCaptureFixture
) -> None:
    with watched_logs(caplog):
        with pytest.raises(ConfigurationError) as caught:
            build()
    assert_exception_hidden(caught.value, "AWS settings")


@pytest.mark.parametrize(
    ("model", "variables"),
    [
        (LifecycleConfig, {"RECEIVE_WAIT": S}),
        (LifecycleConfig, {"PREFETCH": S, "LEASE_TIMEOUT": S}),
        (KafkaTransportConfig, {"SASL_PASSWORD": S, "SECURITY_PROTOCOL": S}),
        (KafkaTransportConfig, {"SASL_PASSWORD": S, "SECURITY_PROTOCOL": "SASL_PLAINTEXT"}),
        (KafkaTransportConfig, {"SASL_PASSWORD": S, "TOPIC_CONFIG": S}),
        (KafkaTransportConfig, {"BOOTSTRAP_SERVERS": f"app:{S}@broker:9092"}),
    ],
)
def test_settings_from_the_environment_never_show_a_secret(
    model: type[LifecycleConfig] | type[KafkaTransportConfig],
    variables: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"ASYNCMQ_CLOUD_{name}", value)
    with watched_logs(caplog):
        with pytest.raises(ConfigurationError) as caught:
            model.from_env()
    assert_exception_hidden(caught.value, f"{model.__name__}.from_env")


def accepted_backends(port: int) -> list[CloudBackend]:
    """Backends that accept a secret in every place that may carry one (nothing is contacted)."""
    closed = f"127.0.0.1:{port}"
    return [
        SQSBackend(
            store=f"redis://app:{S}@{closed}/0?prefix=p",
            delay_store=f"redis://{closed}/1?password={S}",
            endpoint_url=f"http://{closed}",
            region_name="us-east-1",
            client_kwargs=AWS_KEYS,
        ),
        KafkaBackend(
            bootstrap_servers=closed,
            store=f"redis://:{S}@{closed}/0",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="app",
            sasl_password=S,
            ssl_password=S,
            client_kwargs=AWS_KEYS,
        ),
        KafkaBackend(bootstrap_servers=closed, store=f"dynamodb://t-{port}", client_kwargs=AWS_KEYS),
        DynamoDBBackend(delay_store=f"rediss://{S}@{closed}/0", client_kwargs=AWS_KEYS),
    ]


def parts_of(backend: CloudBackend) -> list[tuple[str, object]]:
    """The backend and every part of it (stores, transport, their clients and configs), by name."""
    named: list[tuple[str, object]] = [("backend", backend)]
    for name in ("store", "delay_store", "transport", "settings", "aws", "clients", "config"):
        part = getattr(backend, name, None)
        named.append((name, part))
        if name in ("store", "delay_store", "transport"):
            named += [
                (f"{name}.{inner}", getattr(part, inner)) for inner in ("clients", "config") if hasattr(part, inner)
            ]
    return named


def test_backends_and_their_parts_never_show_a_secret_in_repr() -> None:
    port = free_port()
    for backend in accepted_backends(port):
        assert_reprs_hidden(parts_of(backend))
    for url in (f"redis://app:{S}@h/0?prefix=p", f"redis://h/0?password={S}", f"dynamodb://t-{port}"):
        assert_reprs_hidden([("StoreURL", parse_store_url(url))])


def redis_forms(port: int, password: str) -> list[str]:
    """The three ways a Redis URL carries a password."""
    return [
        f"redis://:{password}@127.0.0.1:{port}/0",
        f"redis://default:{password}@127.0.0.1:{port}/0?prefix=secrets",
        f"redis://127.0.0.1:{port}/0?password={password}",
    ]


def redis_backend(store: str, delay_store: str | None = None) -> CloudBackend:
    """A backend on a Redis state store and delay store (built from the URLs) and an in-memory broker."""
    clients = AwsClients(region_name="us-east-1")
    state = build_state_store(store, clients=clients)
    return CloudBackend(state, MemoryTransport(), build_delay_store(delay_store, store=state, clients=clients))


async def expect_failure(backend: CloudBackend, error: type[CloudBackendError]) -> CloudBackendError:
    """``list_queues`` fails with ``error``; the backend is closed."""
    try:
        with pytest.raises(error) as caught:
            await backend.list_queues()
    finally:
        await backend.close()
    return caught.value


async def test_an_unreachable_redis_with_a_password_never_shows_it(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with watched_logs(caplog):
        for url in redis_forms(port, secret("unreachable")):
            for store, delays in ((url, None), ("memory://", url)):  # as store, as delay store
                backend = redis_backend(store, delays)
                assert_exception_hidden(await expect_failure(backend, TransientError), f"unreachable {store!r}")
                assert_reprs_hidden(parts_of(backend))


async def test_an_unreachable_kafka_with_a_sasl_password_never_shows_it(caplog: pytest.LogCaptureFixture) -> None:
    backend = KafkaBackend(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        store="memory://",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="app",
        sasl_password=secret("kafka-unreachable"),
        request_timeout_ms=2000,
    )
    with watched_logs(caplog):
        try:
            async with asyncio.timeout(30):
                with pytest.raises(TransientError) as caught:
                    await backend.start()
        finally:
            await backend.close()
    assert_exception_hidden(caught.value, "an unreachable Kafka cluster")
    assert_reprs_hidden(parts_of(backend))


@pytest.mark.redis
async def test_a_real_redis_refuses_the_wrong_password_and_takes_the_right_one_silently(
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = secret("real")
    with redis_with_password(real) as port, watched_logs(caplog):
        for wrong in redis_forms(port, secret("wrong")):
            for store, delays in ((wrong, None), ("memory://", wrong)):  # as store, as delay store
                error = await expect_failure(redis_backend(store, delays), AccessDeniedError)
                assert_exception_hidden(error, f"wrong password {wrong.split('@')[-1]!r}")
        for right in redis_forms(port, real):
            queue = f"secrets-{uuid.uuid4().hex[:8]}"
            async with redis_backend(right, right) as backend:
                job_id = await Queue(queue, backend=backend).add("tests.tasks.add", args=[1, 2])
                job = await backend.dequeue(queue)
                assert job is not None and job["id"] == job_id
                assert_reprs_hidden([*parts_of(backend), ("redis client", backend.store.clients.client)])  # type: ignore[attr-defined]


def sasl_address(kafka_env: dict[str, str]) -> str:
    address = kafka_env.get("KAFKA_SASL_BOOTSTRAP_SERVERS", "")
    if not address:
        _unavailable("kafka SASL listener", LookupError("kafka_env has no KAFKA_SASL_BOOTSTRAP_SERVERS"))
    return address


@pytest.mark.kafka
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_a_kafka_sasl_listener_refuses_the_wrong_password_silently(
    kafka_env: dict[str, str], mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = KafkaBackend(
        bootstrap_servers=sasl_address(kafka_env),
        store="memory://",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username=kafka_env.get("KAFKA_SASL_USERNAME", "asyncmq"),
        sasl_password=secret("kafka-wrong"),
        request_timeout_ms=5000,
    )
    errors: list[BaseException] = []
    with watched_logs(caplog):
        try:
            async with asyncio.timeout(60):
                for call in (backend.start, lambda: backend.transport.open_admin(request_timeout=5)):
                    with pytest.raises(AccessDeniedError) as caught:
                        await call()
                    errors.append(caught.value)
        finally:
            await backend.close()
    assert "sasl_auth_bytes=***" in caplog.text, "aiokafka's DEBUG request lines were not watched"
    for error in errors:
        assert_exception_hidden(error, f"Kafka SASL {mechanism} with the wrong password")
    assert_reprs_hidden(parts_of(backend))


async def run_one_job(backend: CloudBackend, queue: str) -> None:
    """Enqueue a job and take it again (the broker may need a few receives)."""
    job_id = await Queue(queue, backend=backend).add("tests.tasks.add", args=[1, 2])
    async with asyncio.timeout(30):
        job = None
        while job is None:
            job = await backend.dequeue(queue)
    assert job["id"] == job_id


@pytest.mark.moto
@pytest.mark.parametrize("pinned", [True, False], ids=["client_kwargs", "environment"])
async def test_aws_keys_in_code_or_in_the_environment_never_show(
    moto_endpoint: str, pinned: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)  # botocore would prefer it to AWS_SESSION_TOKEN
    run = uuid.uuid4().hex[:8]
    keys: dict[str, Any] = {"client_kwargs": AWS_KEYS} if pinned else {}
    tables = {"store": f"dynamodb://secrets-{run}", "delay_store": f"dynamodb://secrets-delays-{run}"}
    backend = SQSBackend(
        queue_prefix=f"secrets-{run}-", endpoint_url=moto_endpoint, create_missing=True, **tables, **keys
    )
    elsewhere = SQSBackend(queue_prefix=f"secrets-{run}-none-", endpoint_url=moto_endpoint, **tables, **keys)
    down = SQSBackend(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=0, **tables, **keys)
    with watched_logs(caplog, "botocore", "aiobotocore"):  # the SDK's request dump included
        async with backend:
            await backend.provision(["q"])
            await run_one_job(backend, "q")
        async with elsewhere:
            with pytest.raises(CloudBackendError) as missing:
                await elsewhere.transport.depth("q")
        unreachable = await expect_failure(down, CloudBackendError)
    assert "x-amz-security-token:***" in caplog.text, "botocore's signing lines were not watched"
    assert_exception_hidden(missing.value, "a missing SQS queue")
    assert_exception_hidden(unreachable, "an unreachable AWS endpoint")
    assert_reprs_hidden([*parts_of(backend), *parts_of(elsewhere), *parts_of(down)])
