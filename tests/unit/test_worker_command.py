"""``asyncmq-cloud worker`` in process: its arguments, its logging, its health endpoint.

The health endpoint runs over a real ``CloudBackend`` on the memory components and is
asked over real TCP connections on 127.0.0.1. The drain runs AsyncMQ's ``run_worker`` on
that backend and gets real signals (sent to this process). Real worker processes are in
``tests/e2e/test_worker_command.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from asyncmq_cloud.cli import build_parser
from asyncmq_cloud.commands._health_server import HealthServer, Probes
from asyncmq_cloud.commands._logging import QUIET_LOGGERS, configure_logging, scrub
from asyncmq_cloud.commands.worker import DrainReport, Signals, supervise
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.errors import TransientError
from asyncmq_cloud.stores.memory import MemoryStateStore
from asyncmq_cloud.transports.memory import MemoryTransport


# -- arguments ---------------------------------------------------------------------------
def test_worker_arguments_and_their_defaults() -> None:
    args = build_parser().parse_args(["worker", "emails"])
    assert (args.queue, args.concurrency, args.grace, args.settings) == ("emails", None, 25.0, None)
    assert (args.log_level, args.log_format, args.health_port, args.health_host) == (None, "text", 0, "127.0.0.1")
    args = build_parser().parse_args(
        [
            *("worker", "emails", "--concurrency", "8", "--settings", "app.S", "--grace", "100"),
            *("--log-level", "debug", "--log-format", "json", "--health-port", "8080", "--health-host", "0.0.0.0"),
        ]
    )
    assert (args.concurrency, args.settings, args.grace, args.log_level) == (8, "app.S", 100.0, "DEBUG")
    assert (args.log_format, args.health_port, args.health_host) == ("json", 8080, "0.0.0.0")
    # --settings before the command (the other commands' place) still counts
    assert build_parser().parse_args(["--settings", "app.S", "worker", "q"]).settings == "app.S"


@pytest.mark.parametrize(
    "bad",
    [
        ["--grace", "-1"],
        ["--concurrency", "0"],
        ["--health-port", "70000"],
        ["--log-format", "xml"],
        ["--log-level", "loud"],
    ],
)
def test_worker_rejects_bad_arguments(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["worker", "q", *bad])
    assert exited.value.code == 2
    assert bad[0] in capsys.readouterr().err


def test_worker_rejects_a_bad_queue_name() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "bad queue!"])


def test_worker_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--help"])
    text = capsys.readouterr().out
    for option in ("QUEUE", "--concurrency", "--settings", "--grace", "--log-level", "--log-format"):
        assert option in text
    assert "--health-port" in text and "--health-host" in text and "default 25" in text


# -- logging -----------------------------------------------------------------------------
@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def test_asyncmqs_own_setup_would_put_the_root_logger_at_debug(restore_logging: None) -> None:
    """The problem the command avoids: the setup AsyncMQ's first log call runs configures root at DEBUG."""
    from asyncmq.logging import setup_logging

    logging.getLogger().setLevel(logging.INFO)
    setup_logging()  # what an unbound AsyncMQ logger proxy runs on its first call
    assert logging.getLogger().level == logging.DEBUG


def test_json_lines_root_level_and_quiet_sdks(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    from asyncmq.logging import logger as asyncmq_logger

    asyncmq_logger.info("from asyncmq")  # AsyncMQ's first call must not reconfigure logging
    logging.getLogger("botocore.endpoint").info("per-request line")
    logging.getLogger("asyncmq_cloud.worker").debug("hidden at INFO")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("asyncmq_cloud.worker").exception("failed for %s", "q")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert logging.getLogger().level == logging.INFO
    assert all(logging.getLogger(name).getEffectiveLevel() == logging.WARNING for name in QUIET_LOGGERS)
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("asyncmq", "from asyncmq"),
        ("asyncmq_cloud.worker", "failed for q"),
    ]
    assert set(lines[0]) == {"ts", "level", "logger", "message"} and lines[0]["level"] == "INFO"
    assert lines[0]["ts"].endswith("+00:00") and "RuntimeError: boom" in lines[1]["exc"]


def test_text_format_and_level(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("warning", "text", stream)
    logging.getLogger("asyncmq_cloud.worker").info("not shown")
    logging.getLogger("asyncmq_cloud.worker").warning("shown %d", 1)
    assert logging.getLogger().level == logging.WARNING
    assert stream.getvalue().strip().endswith("WARNING asyncmq_cloud.worker: shown 1")
    assert "not shown" not in stream.getvalue()


def test_no_secret_reaches_a_log_line(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    url = "redis://app:s3cr3t@cache:6379/0?password=pw123&db=1"
    logging.getLogger("asyncmq_cloud").warning("cannot reach %s", url)
    try:
        raise ConnectionError(f"refused: {url}")
    except ConnectionError:
        logging.getLogger("asyncmq_cloud").exception("outage")
    out = stream.getvalue()
    assert "s3cr3t" not in out and "pw123" not in out
    assert "redis://app:***@cache:6379/0?password=***&db=1" in out
    assert scrub("kafka://user:tok@b:9092 token=x") == "kafka://user:***@b:9092 token=x"  # bare words stay
    # An unencoded "/" (or "?", "#") in a password: urlsplit would put part of it in the path.
    assert scrub("redis://app:pa/ss?w#d@cache:6379/0") == "redis://app:***@cache:6379/0"
    assert "pa/ss" not in scrub("connecting to redis://app:pa/ss@cache:6379/0 failed")


# -- health endpoint -------------------------------------------------------------------
@pytest.fixture
async def backend() -> AsyncIterator[CloudBackend]:
    cloud = CloudBackend(MemoryStateStore(), MemoryTransport(), MemoryDelayStore())
    await cloud.start()
    try:
        yield cloud
    finally:
        await cloud.close()


@pytest.fixture
async def server(backend: CloudBackend) -> AsyncIterator[tuple[HealthServer, int]]:
    http = HealthServer()
    Probes(backend, ready_timeout=0.3, cache_seconds=0.5).install(http)
    port = await http.start("127.0.0.1", 0)
    try:
        yield http, port
    finally:
        await http.close()


async def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_livez_readyz_and_unknown_paths(server: tuple[HealthServer, int], backend: CloudBackend) -> None:
    _, port = server
    assert await get(port, "/livez") == (200, "ok\n")
    assert await get(port, "/readyz?verbose=1") == (200, "ok\n")
    assert (await get(port, "/metrics"))[0] == 404
    assert (await get(port, "/livez", "POST"))[0] == 405
    assert await get(port, "/livez", "HEAD") == (200, "")


async def test_readyz_is_503_while_draining(server: tuple[HealthServer, int], backend: CloudBackend) -> None:
    _, port = server
    assert (await get(port, "/readyz"))[0] == 200
    await backend.drain()
    assert await get(port, "/readyz") == (503, "draining\n")
    assert await get(port, "/livez") == (200, "ok\n"), "a draining worker is alive"


async def test_readyz_bounds_and_caches_the_backend_read(
    server: tuple[HealthServer, int], backend: CloudBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = server
    calls = 0

    async def hanging(queue: str) -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        return False

    assert (await get(port, "/readyz"))[0] == 200
    monkeypatch.setattr(backend.store, "is_paused", hanging)
    assert (await get(port, "/readyz"))[0] == 200 and calls == 0, "the answer is reused for cache_seconds"
    await asyncio.sleep(0.6)
    assert await get(port, "/readyz") == (503, "the backend did not answer within 0.3 s\n")

    async def failing(queue: str) -> bool:
        raise TransientError("redis://u:secret@h down")

    monkeypatch.setattr(backend.store, "is_paused", failing)
    await asyncio.sleep(0.6)
    assert await get(port, "/readyz") == (503, "the backend failed: TransientError\n")


async def test_livez_is_503_with_the_reason(
    server: tuple[HealthServer, int], backend: CloudBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = server
    monkeypatch.setattr(backend, "liveness", lambda: "the lease keeper is not running while 2 job(s) are held")
    assert await get(port, "/livez") == (503, "the lease keeper is not running while 2 job(s) are held\n")


async def test_routes_are_a_table_a_later_endpoint_is_one_call(server: tuple[HealthServer, int]) -> None:
    http, port = server

    async def metrics() -> tuple[int, str]:
        return 200, "jobs_total 0\n"

    http.add_route("/metrics", metrics)
    assert await get(port, "/metrics") == (200, "jobs_total 0\n")
    assert http.routes == ["/livez", "/metrics", "/readyz"]


async def test_a_malformed_request_is_answered_400(server: tuple[HealthServer, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NONSENSE\r\n\r\n")
    await writer.drain()
    raw: Any = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    assert raw.startswith(b"HTTP/1.1 400 ")


# -- the drain, in process (real signals to this process, memory components) --------------
async def _supervised(
    backend: CloudBackend, seconds: float, grace: float
) -> tuple[asyncio.Task[DrainReport], Signals, list[str], Any]:
    from asyncmq.queues import Queue

    import tests.tasks  # noqa: F401  (registers the tasks)

    queue = f"u-{uuid.uuid4().hex[:10]}"
    keys = [f"{queue}-{i}" for i in range(3)]
    ids = [await Queue(queue, backend=backend).add("tests.tasks.sleep_then", args=[k, seconds]) for k in keys]
    signals = Signals()
    remove = signals.install()
    task = asyncio.ensure_future(supervise(backend, queue, 2, grace=grace, signals=signals))
    deadline = time.monotonic() + 10
    while backend.running < 2:
        assert time.monotonic() < deadline and not task.done(), "two jobs never ran"
        await asyncio.sleep(0.02)
    return task, signals, [queue, *ids], remove


async def test_sigterm_lets_running_jobs_finish_and_starts_none(backend: CloudBackend) -> None:
    task, _, (queue, *ids), remove = await _supervised(backend, seconds=0.5, grace=10)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        report = await asyncio.wait_for(task, 10)
    finally:
        remove()
    assert (report.signal, report.running_at_signal, report.finished, report.given_back) == ("SIGTERM", 2, 2, 0)
    assert report.stopped_by == "finished" and report.error is None
    states = [await backend.get_job_state(queue, job_id) for job_id in ids]
    assert sorted(states) == ["completed", "completed", "waiting"], "the third job never started"
    assert await backend.list_workers() == [] and backend.running == 0


async def test_the_end_of_the_grace_gives_running_jobs_back(backend: CloudBackend) -> None:
    task, _, (queue, *ids), remove = await _supervised(backend, seconds=30, grace=0.3)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        report = await asyncio.wait_for(task, 10)
    finally:
        remove()
    assert (report.running_at_signal, report.finished, report.given_back, report.stopped_by) == (2, 0, 2, "grace")
    assert [await backend.get_job_state(queue, job_id) for job_id in ids] == ["waiting"] * 3
    assert await backend.list_workers() == []


async def test_a_second_signal_ends_the_grace_at_once(backend: CloudBackend) -> None:
    task, signals, (queue, *ids), remove = await _supervised(backend, seconds=30, grace=60)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert not task.done(), "the grace (60 s) still runs"
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)
        report = await asyncio.wait_for(task, 10)
    finally:
        remove()
    assert time.monotonic() - started < 5
    assert (report.signal, report.stopped_by, report.given_back) == ("SIGTERM", "second signal", 2)
    assert signals.received == ["SIGTERM", "SIGINT"]
    assert [await backend.get_job_state(queue, job_id) for job_id in ids] == ["waiting"] * 3


# -- a signal while the command starts ------------------------------------------------
async def test_a_sigterm_before_the_handlers_is_honoured_once_they_are_installed() -> None:
    from asyncmq_cloud.commands._signals import catch_early, early_signals, install_signal_handlers

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        catch_early()
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the command would still be importing
        await asyncio.sleep(0)
        signals = Signals()
        remove = signals.install()
        try:
            assert signals.first.is_set() and signals.received == ["SIGTERM"], "the worker drains at once"
        finally:
            remove()
        catch_early()
        os.kill(os.getpid(), signal.SIGTERM)
        stop = asyncio.Event()
        install_signal_handlers(stop)  # the scanner, the exporter and the dashboard
        assert stop.is_set() and early_signals() == []
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_short_command_stays_killable_by_a_signal_caught_early() -> None:
    import subprocess
    import sys

    code = (
        "import os, signal, time\n"
        "from asyncmq_cloud.commands._signals import catch_early, release_early\n"
        "catch_early(); os.kill(os.getpid(), signal.SIGTERM); release_early(); time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert done.returncode == -signal.SIGTERM
