"""Session fixtures for the real services: ``redis_url``, ``moto_endpoint``, ``localstack_endpoint``,
``ministack_endpoint``, ``elasticmq_endpoint`` and ``kafka_bootstrap``.

Each fixture yields an address and is lazy: a service starts only when a test asks for it, once
per session, and stops when the session ends. Where it comes from:

- an already-running service named by an environment variable (``REDIS_URL``,
  ``AWS_ENDPOINT_URL`` for moto, ``LOCALSTACK_ENDPOINT_URL``, ``MINISTACK_ENDPOINT_URL``,
  ``ELASTICMQ_ENDPOINT_URL``, ``KAFKA_BOOTSTRAP_SERVERS``) — e.g. one from
  ``python scripts/services.py start NAME``, which prints exactly those variables, or a Docker
  compose stack. A variable may list several
  addresses separated by commas; pytest-xdist worker ``gwN`` then takes the N-th, so the workers
  spread over several instances (``scripts/test.sh`` starts one moto server per worker and
  names them in ``ASYNCMQ_TEST_MOTO_URLS``, keeping ``AWS_ENDPOINT_URL`` unset so that no
  client reaches moto without asking for it);
- otherwise ``scripts/services.py`` starts a private process on free 127.0.0.1 ports.

A service that cannot be started skips its tests locally and fails them when ``CI=true``, so a
broken install can never turn into a green CI run of skipped tests.

Traps:

- ``scripts/`` is not a package, and some distributions install a top-level ``scripts`` package
  into site-packages; the module is loaded from its file under a private name instead.
- botocore reads ``AWS_ENDPOINT_URL`` for *every* client. The plugin never sets it (only
  reads it); tests pass ``endpoint_url`` explicitly so moto, LocalStack and ElasticMQ can serve
  the same session.
- Starting is blocking and can take up to 90 s (Kafka) or 120 s (LocalStack) and the first
  ``prepare`` downloads much more: run ``python scripts/services.py prepare all`` before pytest
  so that pytest-timeout (300 s, fixture setup included) only ever times a start.
- Dummy AWS credentials are forced for the whole session (and ``AWS_PROFILE`` dropped) so no
  test can reach a real account through a developer's own credentials.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

_SERVICES_PATH = Path(__file__).resolve().parents[2] / "scripts" / "services.py"
_MODULE_NAME = "_asyncmq_cloud_test_services"

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _load_services() -> ModuleType:
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, _SERVICES_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_SERVICES_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module  # dataclasses look their module up while executing it
    spec.loader.exec_module(module)
    return module


services = _load_services()


def _unavailable(name: str, error: BaseException) -> NoReturn:
    detail = str(error)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} could not be started (CI=true, so this fails): {detail}", pytrace=False)
    # Locally the first line (reason and log path) is enough for the skip summary.
    pytest.skip(f"{name} unavailable: {detail.splitlines()[0] if detail else type(error).__name__}")


def pick_for_worker(addresses: str, worker: str | None = None) -> str:
    """One of comma-separated ``addresses``: the pytest-xdist worker ``gwN`` takes the N-th (modulo).

    Args:
        addresses: one address, or several separated by commas.
        worker: the xdist worker id (default ``$PYTEST_XDIST_WORKER``; none outside xdist).
    """
    choices = [address.strip() for address in addresses.split(",") if address.strip()]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return choices[index % len(choices)]


def _service(name: str, env_var: str) -> Iterator[str]:
    """Yield the address of ``name``: the one in ``env_var`` if set, else a private process."""
    existing = os.environ.get(env_var, "").strip()
    if existing:
        yield pick_for_worker(existing)
        return
    try:
        service = services.start(name)
    except (services.ServiceError, OSError) as exc:
        _unavailable(name, exc)
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture(scope="session", autouse=True)
def aws_test_credentials() -> Iterator[None]:
    """Dummy AWS credentials and region for the whole session, restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in DUMMY_AWS_ENV.items():
            patch.setenv(key, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a redis-server (``REDIS_URL`` reuses a running one)."""
    yield from _service("redis", "REDIS_URL")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server.

    ``ASYNCMQ_TEST_MOTO_URLS`` (comma-separated; each xdist worker takes its own, as
    ``scripts/test.sh`` sets it) or ``AWS_ENDPOINT_URL`` reuses running ones.
    """
    shared = "ASYNCMQ_TEST_MOTO_URLS" if os.environ.get("ASYNCMQ_TEST_MOTO_URLS") else "AWS_ENDPOINT_URL"
    yield from _service("moto", shared)


@pytest.fixture(scope="session")
def localstack_endpoint() -> Iterator[str]:
    """LocalStack gateway URL, SQS/S3/STS only (``LOCALSTACK_ENDPOINT_URL`` reuses a running one)."""
    yield from _service("localstack", "LOCALSTACK_ENDPOINT_URL")


@pytest.fixture(scope="session")
def ministack_endpoint() -> Iterator[str]:
    """MiniStack gateway URL, DynamoDB/SQS/STS only (``MINISTACK_ENDPOINT_URL`` reuses a running one).

    MiniStack answers DynamoDB requests one at a time on its event loop (conditional writes
    race as on DynamoDB) and keeps an index's items by partition, so an index query reads that
    partition only where moto scans the whole table.
    """
    yield from _service("ministack", "MINISTACK_ENDPOINT_URL")


@pytest.fixture(scope="session")
def elasticmq_endpoint() -> Iterator[str]:
    """ElasticMQ SQS endpoint URL (``ELASTICMQ_ENDPOINT_URL`` reuses a running one)."""
    yield from _service("elasticmq", "ELASTICMQ_ENDPOINT_URL")


KAFKA_ENV_KEYS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SASL_BOOTSTRAP_SERVERS",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
)


@pytest.fixture(scope="session")
def kafka_env() -> Iterator[dict[str, str]]:
    """The session broker's addresses: ``KAFKA_BOOTSTRAP_SERVERS`` (PLAINTEXT) and, when it has one,
    ``KAFKA_SASL_BOOTSTRAP_SERVERS`` with ``KAFKA_SASL_USERNAME``/``KAFKA_SASL_PASSWORD`` (PLAIN and
    SCRAM). A running broker is reused when ``KAFKA_BOOTSTRAP_SERVERS`` is set."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        yield {key: os.environ[key] for key in KAFKA_ENV_KEYS if os.environ.get(key)}
        return
    try:
        service = services.start_kafka()
    except (services.ServiceError, OSError) as exc:
        _unavailable("kafka", exc)
    try:
        yield dict(service.env)
    finally:
        service.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_env: dict[str, str]) -> str:
    """``127.0.0.1:PORT`` of a one-node KRaft broker (``KAFKA_BOOTSTRAP_SERVERS`` reuses a running one)."""
    return kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
