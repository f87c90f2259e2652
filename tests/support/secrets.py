"""What ``tests/test_secrets.py`` shares: one marker secret, where to look for it, and the places it hides in.

Every secret a test gives starts with :data:`MARKER` (``PW-MARKER-<uuid>``); the uuid alone is
searched for, so a secret quoted, cut, case-changed after the prefix or percent-encoded is
found too.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIQUE = uuid.uuid4().hex
MARKER = f"PW-MARKER-{UNIQUE}"
#: AWS keys pinned in code (``client_kwargs``): the access key id is not a secret, the others are.
AWS_KEYS = {
    "aws_access_key_id": "AKIDSECRETSTEST",
    "aws_secret_access_key": f"{MARKER}-aws-key",
    "aws_session_token": f"{MARKER}-aws-token",
}
#: The same secrets in the environment.
AWS_ENV = {"AWS_SECRET_ACCESS_KEY": f"{MARKER}-env-key", "AWS_SESSION_TOKEN": f"{MARKER}-env-token"}
#: SDK loggers watched at DEBUG besides the root logger (botocore keeps the level the package gives it).
WATCHED_LOGGERS = ("asyncmq_cloud", "asyncmq", "aiokafka", "redis", "asyncio")


def secret(tag: str) -> str:
    """A secret of its own (``PW-MARKER-<uuid>-tag``) for one configuration path."""
    return f"{MARKER}-{tag}"


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_hidden(text: str, where: str) -> None:
    """Fail, quoting the line, when ``text`` (what ``where`` shows) contains the marker."""
    at = text.find(UNIQUE)
    if at >= 0:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        pytest.fail(f"{where} shows a secret: {text[start : end if end >= 0 else None]!r}", pytrace=False)


def exception_text(exc: BaseException) -> str:
    """``str``, ``repr`` and the traceback of ``exc`` and of every exception in its chain (cause, context, group)."""
    parts: list[str] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        todo += [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            todo += list(current.exceptions)
    return "\n".join(parts)


def assert_exception_hidden(exc: BaseException, where: str) -> None:
    """The marker is in no text of ``exc`` or its chain."""
    assert_hidden(exception_text(exc), f"{where}: {type(exc).__name__}")


def assert_reprs_hidden(named: Iterable[tuple[str, object]]) -> None:
    """The marker is in neither ``repr`` nor ``str`` of any object."""
    for name, value in named:
        assert_hidden(repr(value) + "\n" + str(value), f"repr/str of {name}")


@contextmanager
def watched_logs(caplog: pytest.LogCaptureFixture, *also: str) -> Iterator[None]:
    """Capture every record at DEBUG (root, :data:`WATCHED_LOGGERS` and ``also``); on exit no record shows the marker.

    Args:
        caplog: pytest's capture.
        also: further loggers set to DEBUG meanwhile (``botocore``: as an application that chose it).
    """
    with caplog.at_level(logging.DEBUG):
        levels = {name: logging.getLogger(name).level for name in (*WATCHED_LOGGERS, *also)}
        for name in levels:
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger("asyncmq_cloud.tests").debug("capture on")  # a capture that sees nothing fails
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
    assert caplog.records, "nothing was logged: the capture is not watching"
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert_hidden(caplog.text + "\n" + messages, "a log line")


@contextmanager
def redis_with_password(password: str) -> Iterator[int]:
    """A private ``redis-server --requirepass password`` on a free port; yields the port."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
    command += ["--save", "", "--appendonly", "no"]
    try:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def write_settings(directory: Path, name: str, backend_code: str) -> str:
    """Write an AsyncMQ settings module whose backend is ``backend_code`` (secrets read from ``os.environ``).

    Returns:
        Its class path, for ``ASYNCMQ_SETTINGS_MODULE``.
    """
    source = (
        "import os\n\n"
        "from asyncmq.conf.global_settings import Settings as Base\n\n"
        "from asyncmq_cloud import DynamoDBBackend, KafkaBackend, SQSBackend  # noqa: F401\n\n"
        "E = os.environ\n\n\n"
        "class Settings(Base):\n"
        "    tasks: list[str] = []\n"
        f"    backend = {backend_code}\n"
    )
    (directory / f"{name}.py").write_text(source)
    return f"{name}.Settings"


def command_env(directory: Path, settings: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a command: the settings module's directory and the worktree on ``PYTHONPATH``."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT)]),
        "ASYNCMQ_SETTINGS_MODULE": settings,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDSECRETSTEST",
        "AWS_SECURITY_TOKEN": AWS_ENV["AWS_SESSION_TOKEN"],  # botocore reads this one first
        **AWS_ENV,
        **extra,
    }


def run_command(args: list[str], env: dict[str, str]) -> str:
    """``asyncmq-cloud ARGS`` as a subprocess; its stdout and stderr together."""
    command = [sys.executable, "-m", "asyncmq_cloud.cli", *args]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def run_worker(env: dict[str, str], seconds: float) -> str:
    """``asyncmq-cloud worker secrets`` for ``seconds``, stopped by SIGTERM; its stdout and stderr together."""
    command = [sys.executable, "-m", "asyncmq_cloud.cli", "worker", "secrets", "--grace", "1", "--log-level", "DEBUG"]
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            output, _ = proc.communicate(timeout=seconds)  # a refused configuration ends at once
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return f"exit {proc.returncode}\n{output}"
