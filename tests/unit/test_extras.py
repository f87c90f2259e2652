"""Dependencies: the core install holds what every backend needs, the rest comes with extras.

* every third-party module the package imports is a core dependency (or comes with one), or
  belongs to an extra that lists its distribution;
* every dependency in ``pyproject.toml`` is imported somewhere in the package (none is dead weight);
* a missing optional SDK raises :class:`MissingExtraError` naming the extra, for the backend
  import, the CLI and ``--endpoint localstack``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from asyncmq_cloud.commands._endpoints import localstack_endpoint
from asyncmq_cloud.errors import MissingExtraError
from asyncmq_cloud.extras import EXTRA_OF_MODULE, missing_extra

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "asyncmq_cloud"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: Distribution -> the module it provides, for the distributions the package's extras and core name.
MODULE_OF_DIST = {
    "asyncmq": "asyncmq",
    "aiobotocore": "aiobotocore",
    "pydantic": "pydantic",
    "aiokafka": "aiokafka",
    "aws-msk-iam-sasl-signer-python": "aws_msk_iam_sasl_signer",
    "redis": "redis",
    "uvicorn": "uvicorn",
    "moto": "moto",
    "werkzeug": "werkzeug",
    "rich": "rich",
    "localstack-client": "localstack_client",
    "prometheus_client": "prometheus_client",
    "opentelemetry-api": "opentelemetry",
}
#: Modules that come with a core dependency (aiobotocore -> botocore, aiohttp; asyncmq -> anyio, lilya).
COMES_WITH_CORE = {"botocore", "aiohttp", "anyio", "lilya"}
#: Stub packages read by the type checker only (imported under TYPE_CHECKING).
TYPING_ONLY = {"types_aiobotocore_dynamodb", "types_aiobotocore_sqs"}


def _dist(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _imported_roots() -> set[str]:
    roots: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.partition(".")[0])
    return {root for root in roots if root not in sys.stdlib_module_names and root != "asyncmq_cloud"}


def test_core_dependencies_are_what_every_backend_needs() -> None:
    core = {_dist(req) for req in PYPROJECT["project"]["dependencies"]}
    assert core == {"asyncmq", "aiobotocore", "pydantic"}


def test_every_imported_sdk_is_core_or_in_its_extra() -> None:
    core = {MODULE_OF_DIST[_dist(req)] for req in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    for root in sorted(_imported_roots() - core - COMES_WITH_CORE - TYPING_ONLY):
        assert root in EXTRA_OF_MODULE, f"{root} is imported but neither core nor mapped to an extra"
        listed = {MODULE_OF_DIST.get(_dist(req)) for req in extras[EXTRA_OF_MODULE[root]]}
        assert root in listed, f"{root} maps to extra {EXTRA_OF_MODULE[root]!r}, which does not install it"


def test_every_dependency_is_imported_by_the_package() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = [*PYPROJECT["project"]["dependencies"]]
    for name, requirements in extras.items():
        if name not in ("dev", "all"):
            declared += [req for req in requirements if not req.startswith("asyncmq-cloud")]
    imported = _imported_roots()
    unused = sorted({_dist(req) for req in declared if MODULE_OF_DIST.get(_dist(req)) not in imported})
    assert not unused, f"declared but imported nowhere in asyncmq_cloud: {unused}"


def test_all_installs_every_extra() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    (spec,) = extras["all"]
    named = set(spec.partition("[")[2].rstrip("]").split(","))
    assert named == set(extras) - {"all", "dev"}


def _blocked(module: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where importing ``module`` fails as if it were not installed."""
    prologue = f"import sys; sys.modules[{module!r}] = None\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", prologue + code], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_kafka_backend_without_aiokafka_names_the_extra() -> None:
    done = _blocked("aiokafka", "from asyncmq_cloud import KafkaBackend")
    assert done.returncode == 1
    assert "MissingExtraError" in done.stderr
    assert 'KafkaBackend needs aiokafka, which is not installed: pip install "asyncmq-cloud[kafka]"' in done.stderr


def test_sqs_backend_imports_without_the_optional_sdks() -> None:
    code = "import sys\nfor m in ('aiokafka', 'rich', 'moto', 'uvicorn', 'localstack_client'): sys.modules[m] = None\n"
    done = _blocked("aws_msk_iam_sasl_signer", code + "from asyncmq_cloud import SQSBackend, DynamoDBBackend\n")
    assert done.returncode == 0, done.stderr


def test_cli_command_without_its_extra_says_which_to_install() -> None:
    done = _blocked("rich", "from asyncmq_cloud.cli import main\nraise SystemExit(main(['demo']))")
    assert done.returncode == 1, done.stderr
    assert 'asyncmq-cloud demo needs rich, which is not installed: pip install "asyncmq-cloud[demo]"' in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_extra_leaves_other_modules_alone() -> None:
    core = ModuleNotFoundError("No module named 'pydantic'", name="pydantic")
    assert missing_extra(core, "x") is core
    error = missing_extra(ModuleNotFoundError("x", name="redis.asyncio"), "the Redis store")
    assert isinstance(error, MissingExtraError) and error.extra == "redis" and error.name == "redis.asyncio"


def test_localstack_endpoint_is_resolved_by_localstack_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("USE_SSL", raising=False)
    monkeypatch.setenv("LOCALSTACK_HOST", "127.0.0.1:4599")
    assert localstack_endpoint("sqs") == "http://127.0.0.1:4599"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4600")  # its documented precedence
    assert localstack_endpoint("dynamodb") == "http://127.0.0.1:4600"


def test_localstack_endpoint_without_localstack_client_names_the_extra() -> None:
    code = "from asyncmq_cloud.commands._endpoints import localstack_endpoint\nlocalstack_endpoint()"
    done = _blocked("localstack_client", code)
    assert done.returncode == 1
    assert 'pip install "asyncmq-cloud[localstack]"' in done.stderr
