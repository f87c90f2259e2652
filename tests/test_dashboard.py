"""``asyncmq-cloud dashboard``: AsyncMQ's own dashboard on our backends, in a real headless Chromium.

Each case seeds real data through the backend (waiting, completed, failed and dead-lettered,
delayed jobs, a cron repeatable, a registered worker), starts ``asyncmq-cloud dashboard`` as a
subprocess (``--port 0``: it prints the URL it bound) with ``tests/dashboard_app/settings.py``,
and runs ``tests/browser/dashboard.mjs`` (playwright-core driving ``/usr/bin/chromium``): it
visits the home, queues, queue, jobs (per state), job detail, DLQ, repeatables, workers and
metrics pages, checks they show the seeded ids/queue/cron/worker, retries one failed job from
the DLQ page and removes a waiting job from its detail page. Afterwards the backend itself must
show the change (the retried job waiting and delivered again, the removed job gone, the
repeatable paused, the new one stored), and SIGINT (SIGTERM in one case) must stop the
dashboard cleanly. Full-page screenshots go to
``.cache/artifacts/dashboard/``.

Chromium (Debian ``chromium``), node/npm and ``npm ci`` of ``tests/browser`` into
``.cache/tools/browser`` come from ``scripts/test.sh``; without them the tests skip locally
and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncmq.jobs import Job
from asyncmq.queues import Queue

from asyncmq_cloud.core.lifecycle import CloudBackend
from tests.plugins.backend_dynamodb import dynamodb_backend
from tests.plugins.backend_sqs import redis_stores, sqs_backend
from tests.plugins.store_dynamodb import drop_tables

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".cache" / "tools" / "browser"
SCRIPT = ROOT / "tests" / "browser" / "dashboard.mjs"
ARTIFACTS = ROOT / ".cache" / "artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CRON = "*/5 * * * *"
TASK = "dashboard.send_report"
NEW_TASK = "dashboard.cleanup"

CASES = [
    pytest.param("sqs-elasticmq", marks=[pytest.mark.elasticmq, pytest.mark.redis], id="sqs-elasticmq-redis"),
    pytest.param("sqs-moto", marks=pytest.mark.moto, id="sqs-moto-dynamodb"),
    pytest.param("dynamodb-moto", marks=pytest.mark.moto, id="dynamodb-moto"),
]


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true, so this fails)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser_tools() -> tuple[str, Path]:
    """``node`` and the driver script next to playwright-core's node_modules (skip/fail if missing)."""
    node = shutil.which("node")
    if node is None:
        _missing("the dashboard browser test needs node and npm (scripts/test.sh installs the rest)")
    if not CHROMIUM.exists():
        _missing(f"the dashboard browser test needs {CHROMIUM}: apt-get install -y chromium chromium-driver")
    if not (TOOLS / "node_modules" / "playwright-core").is_dir():
        _missing(f"the dashboard browser test needs `npm ci` of tests/browser in {TOOLS} (scripts/test.sh does it)")
    script = TOOLS / SCRIPT.name  # next to its node_modules, where its import resolves
    shutil.copyfile(SCRIPT, script)
    return str(node), script


@asynccontextmanager
async def backend_for(case: str, request: pytest.FixtureRequest) -> AsyncIterator[tuple[CloudBackend, dict[str, str]]]:
    """A started backend on fresh queues/tables and the environment that names the same ones."""
    run = uuid.uuid4().hex[:8]
    backend: CloudBackend
    async with AsyncExitStack() as stack:
        if case == "sqs-elasticmq":
            endpoint = str(request.getfixturevalue("elasticmq_endpoint"))
            store = await stack.enter_async_context(redis_stores(str(request.getfixturevalue("redis_url"))))
            prefix = f"dash{run}-"
            backend = await stack.enter_async_context(
                sqs_backend(endpoint, store=store, queue_prefix=prefix, create_missing=True)
            )
            env = {"AWS_ENDPOINT_URL_SQS": endpoint, "DASH_QUEUE_PREFIX": prefix, "DASH_STORE": store}
            env["DASH_SETTINGS"] = "tests.dashboard_app.settings.SQSSettings"
        elif case == "sqs-moto":
            endpoint = str(request.getfixturevalue("moto_endpoint"))
            jobs, delays, prefix = f"dash-jobs-{run}", f"dash-delays-{run}", f"dash{run}-"
            stack.push_async_callback(drop_tables, endpoint, jobs, delays)
            backend = await stack.enter_async_context(
                sqs_backend(
                    endpoint,
                    store=f"dynamodb://{jobs}",
                    delay_store=f"dynamodb://{delays}",
                    queue_prefix=prefix,
                    create_missing=True,
                )
            )
            env = {"AWS_ENDPOINT_URL_SQS": endpoint, "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "DASH_QUEUE_PREFIX": prefix}
            env |= {"DASH_STORE": f"dynamodb://{jobs}", "DASH_DELAY_STORE": f"dynamodb://{delays}"}
            env["DASH_SETTINGS"] = "tests.dashboard_app.settings.SQSSettings"
        else:
            endpoint = str(request.getfixturevalue("moto_endpoint"))
            backend = await stack.enter_async_context(dynamodb_backend(endpoint))
            env = {
                "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
                "DASH_TABLE": backend.store.spec.name,  # type: ignore[attr-defined]
                "DASH_DELAY_STORE": f"dynamodb://{backend.delay_store.spec.name}",  # type: ignore[attr-defined]
                "DASH_SETTINGS": "tests.dashboard_app.settings.DynamoDBSettings",
            }
        yield backend, env


def _job(n: int) -> dict[str, Any]:
    return Job(task_id=TASK, args=[n], kwargs={"to": f"user{n}@example.com"}, max_retries=0).to_dict()


async def _dequeue(
    backend: CloudBackend, queue: str, wanted: str | None = None, within: float = 30.0
) -> dict[str, Any]:
    """The next delivered job (``wanted``, skipping others) as a worker gets it, within ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            payload = await backend.dequeue(queue)
            if payload is not None and (wanted is None or payload["id"] == wanted):
                return payload


async def seed(backend: CloudBackend, queue: str, worker: str) -> dict[str, Any]:
    """Real data through the backend's own operations, as AsyncMQ's workers would leave it."""
    first = [await backend.enqueue(queue, _job(n)) for n in range(3)]
    done, failed, dead = [await _dequeue(backend, queue) for _ in first]
    assert sorted(job["id"] for job in (done, failed, dead)) == sorted(first)
    await backend.complete_active_job(queue, done, {"sent": True})
    error = {"last_error": "ValueError: boom", "error_traceback": "Traceback ...\nValueError: boom\n"}
    await backend.fail_active_job(queue, {**failed, "status": "failed", **error})
    await backend.move_to_dlq(queue, {**dead, "status": "failed", **error})
    waiting = [await backend.enqueue(queue, _job(n)) for n in (3, 4)]
    delayed = _job(5)
    await backend.enqueue_delayed(queue, delayed, time.time() + 3600)
    await Queue(queue, backend=backend).upsert_repeatable(TASK, cron=CRON)
    # Alive for as long as the dashboard process counts it (its settings: heartbeat_ttl = 600), however
    # long the browser takes to reach the workers page.
    backend.config = backend.config.model_copy(update={"worker_ttl": 600.0})
    await backend.register_worker(worker, queue, 3, time.time())
    return {
        "jobs": {
            "waiting": waiting,
            "completed": [done["id"]],
            "failed": [failed["id"], dead["id"]],
            "delayed": [delayed["id"]],
        },
        "retry": failed["id"],
        "remove": waiting[0],
    }


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def _write(path: Path, text: str) -> None:
    path.write_text(text)


@asynccontextmanager
async def dashboard(env: dict[str, str], log: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``asyncmq-cloud dashboard --port 0`` as a subprocess; yields its URL. Killed if still running."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1", **env}
    full_env.setdefault("AWS_ACCESS_KEY_ID", "test")
    full_env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    command = [sys.executable, "-m", "asyncmq_cloud.cli", "--settings", env["DASH_SETTINGS"]]
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            *command,
            "dashboard",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            cwd=ROOT,
            env=full_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
        try:
            assert process.stdout is not None
            url = ""
            async with asyncio.timeout(60):
                while not url:
                    line = (await process.stdout.readline()).decode()
                    if not line:
                        pytest.fail(f"the dashboard exited before serving: {_tail(log)}")
                    if "asyncmq-cloud dashboard: http://" in line:
                        url = line.split("dashboard: ", 1)[1].split()[0]
            yield url.rstrip("/"), process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def run_browser(tools: tuple[str, Path], spec: dict[str, Any], spec_path: Path) -> list[dict[str, Any]]:
    _write(spec_path, json.dumps(spec))
    node, script = tools
    process = await asyncio.create_subprocess_exec(
        node, str(script), str(spec_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(240):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert lines and lines[-1].get("done"), f"the browser script did not finish: {out.decode()}\n{err.decode()}"
    return lines


@pytest.mark.parametrize("case", CASES)
async def test_dashboard_pages_and_actions_in_chromium(
    browser_tools: tuple[str, Path], case: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    began = time.monotonic()
    async with backend_for(case, request) as (backend, env):
        run = uuid.uuid4().hex[:6]
        queue, worker = f"dash{run}", f"dash-worker-{run}"
        seeded = await seed(backend, queue, worker)
        log = tmp_path / "dashboard.log"
        async with dashboard(env, log) as (url, process):
            spec = {
                **seeded,
                "base": url,
                "label": case,
                "queue": queue,
                "cron": CRON,
                "repeatableTask": TASK,
                "newRepeatableTask": NEW_TASK,
                "worker": worker,
                "screenshots": str(ARTIFACTS),
                "chromium": str(CHROMIUM),
                "timeoutMs": 20000,
            }
            lines = await run_browser(browser_tools, spec, tmp_path / "spec.json")
            process.send_signal(signal.SIGTERM if case == "dynamodb-moto" else signal.SIGINT)
            async with asyncio.timeout(30):
                rest = (await process.stdout.read()).decode() if process.stdout else ""
                code = await process.wait()
        steps = {line["step"]: line for line in lines if "step" in line}
        for line in lines:
            if line.get("screenshot"):
                print(f"screenshot ({case}, {line['step']}): {line['screenshot']}")
        final = lines[-1]
        assert final["failures"] == [], json.dumps([s for s in lines if not s.get("ok", True)], indent=1)
        assert not final["pageErrors"], final["pageErrors"]
        for step in ("events-stream", "queues", "jobs-waiting", "jobs-completed", "jobs-failed", "jobs-delayed", "dlq"):
            assert steps[step]["ok"], steps[step]
        for step in ("repeatables", "workers", "dlq-retry", "job-remove", "jobs-waiting-after", "repeatable-pause"):
            assert steps[step]["ok"], steps[step]
        assert code == 0 and "asyncmq-cloud dashboard stopped" in rest, (code, rest, _tail(log))

        # The backend itself shows what the browser did.
        assert await backend.get_job(queue, seeded["remove"]) is None
        assert await backend.get_job_state(queue, seeded["retry"]) == "waiting"
        assert await backend.get_job_state(queue, seeded["jobs"]["failed"][1]) == "failed"
        repeatables = {r.job_def["task_id"]: r for r in await backend.list_repeatables(queue)}
        assert repeatables[TASK].paused and repeatables[TASK].job_def["cron"] == CRON
        assert repeatables[NEW_TASK].job_def["every"] == 120 and not repeatables[NEW_TASK].paused
        assert steps["repeatable-create"]["ok"], steps["repeatable-create"]
        assert steps["queue-pause"]["ok"] and steps["queue-resume"]["ok"] and steps["audit"]["ok"]
        assert not await backend.is_queue_paused(queue)
        again = await _dequeue(backend, queue, wanted=seeded["retry"])  # sent to the broker again
        assert again["id"] == seeded["retry"]
        await backend.deregister_worker(worker)
    print(f"{case}: seeded, browsed, acted and checked in {time.monotonic() - began:.1f}s")


async def test_repeatable_actions_take_the_dashboards_short_definition() -> None:
    """The dashboard posts only ``task_id``/``cron``/``queue`` of a repeatable (not its args,
    kwargs, retries): pause, resume and remove still find the one stored definition it shows,
    and refuse to guess between two that both match."""
    from asyncmq.contrib.dashboard.controllers.repeatables import build_repeatable_action_definition

    from asyncmq_cloud.delays.memory import MemoryDelayStore
    from asyncmq_cloud.stores.memory import MemoryStateStore
    from asyncmq_cloud.transports.memory import MemoryTransport

    backend = CloudBackend(MemoryStateStore(), MemoryTransport(), MemoryDelayStore())
    try:
        queue = Queue("reports", backend=backend)
        await queue.upsert_repeatable(TASK, cron=CRON, args=[1], kwargs={"to": "ops"}, retries=2)
        [stored] = await backend.list_repeatables("reports")
        short = build_repeatable_action_definition("reports", stored.job_def)
        assert set(short) == {"task_id", "cron", "queue"}

        await backend.pause_repeatable("reports", short)
        assert [r.paused for r in await backend.list_repeatables("reports")] == [True]
        await backend.resume_repeatable("reports", short)
        assert [r.paused for r in await backend.list_repeatables("reports")] == [False]
        await backend.pause_repeatable("reports", {**short, "cron": "0 0 * * *"})  # names nothing stored
        assert [r.paused for r in await backend.list_repeatables("reports")] == [False]

        await queue.upsert_repeatable(TASK, cron=CRON, args=[2])  # a second one the short form also names
        with pytest.raises(KeyError, match="2 repeatables"):
            await backend.pause_repeatable("reports", short)
        await backend.remove_repeatable("reports", {**short, "args": [2]})
        await backend.remove_repeatable("reports", short)
        assert await backend.list_repeatables("reports") == []
    finally:
        await backend.close()


async def _asgi_get(app: Any, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET through an ASGI app, no server (the way a host application would call it)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"dash.test")],
        "client": ("127.0.0.1", 1),
        "server": ("dash.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), {k.decode(): v.decode() for k, v in start["headers"]}, body


@pytest.mark.parametrize("prefix", [None, "/ops"])
async def test_build_dashboard_app_is_a_mountable_asgi_app(prefix: str | None) -> None:
    from asyncmq_cloud.commands.dashboard import build_dashboard_app

    app = build_dashboard_app(**({"url_prefix": prefix} if prefix else {}))
    mount = prefix or "/admin"  # AsyncMQ's default dashboard_url_prefix
    status, headers, _ = await _asgi_get(app, "/")
    assert (status, headers["location"]) == (307, f"{mount}/")
    status, _, body = await _asgi_get(app, f"{mount}/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


async def test_build_dashboard_app_takes_asyncmqs_login_options() -> None:
    from asyncmq.contrib.dashboard.admin import SimpleUsernamePasswordBackend, User

    from asyncmq_cloud.commands.dashboard import build_dashboard_app

    def verify(username: str, password: str) -> User | None:
        return User(id=username, name=username, is_admin=True) if (username, password) == ("ops", "pw") else None

    auth = SimpleUsernamePasswordBackend(verify)  # type: ignore[abstract]  # AsyncMQ 0.10.1 types it so
    app = build_dashboard_app(enable_login=True, backend=auth)
    status, headers, _ = await _asgi_get(app, "/admin/queues")
    assert (status, headers["location"]) == (303, "/admin/login?next=/admin/queues")
    status, _, body = await _asgi_get(app, "/admin/login")
    assert status == 200 and b"<form" in body


@pytest.mark.moto
async def test_dashboard_on_a_taken_port_exits_one_with_the_reason(moto_endpoint: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
            "DASH_TABLE": f"dash-unused-{uuid.uuid4().hex[:8]}",
        }
        command = [
            sys.executable,
            "-m",
            "asyncmq_cloud.cli",
            "--settings",
            "tests.dashboard_app.settings.DynamoDBSettings",
        ]
        process = await asyncio.create_subprocess_exec(
            *command,
            "dashboard",
            "--port",
            str(port),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(60):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 1, (out, err)
    assert f"could not serve on 127.0.0.1:{port}" in err.decode() and b"http://" not in out
