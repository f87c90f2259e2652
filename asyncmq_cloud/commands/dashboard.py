"""AsyncMQ's own dashboard (``asyncmq.contrib.dashboard``) on an asyncmq-cloud backend.

The dashboard reads ``asyncmq.monkay.settings.backend`` on every request, so it shows
whatever backend the settings name (``SQSBackend``, ``DynamoDBBackend``, ``KafkaBackend``)
with nothing cloud-specific in it: the overview, queues with their counts (from the state
store), pause/resume, jobs by state with retry/cancel/remove, the dead-letter view (jobs in
``failed``) with retry/remove, repeatables (list, create, pause/resume, remove), registered
workers, metrics (also ``/metrics/prometheus``), the audit trail and ``/health``/``/ready``.

Serve it from the command line (binds 127.0.0.1 unless told otherwise)::

    export ASYNCMQ_SETTINGS_MODULE=myapp.settings.Settings   # or: asyncmq-cloud --settings ...
    asyncmq-cloud dashboard --host 127.0.0.1 --port 8000
    # asyncmq-cloud dashboard: http://127.0.0.1:8000/admin/ (SIGINT or SIGTERM to stop)

The path is ``settings.dashboard_config.dashboard_url_prefix`` (AsyncMQ's default
``/admin``; ``/`` redirects there); ``--port 0`` takes a free port and prints it. SIGINT or
SIGTERM stops it: open connections (the pages' event stream included) get
``GRACEFUL_SHUTDOWN_SECONDS``, then the backend is closed. A port it cannot bind exits 1.

Or mount it in your own ASGI application::

    from asyncmq_cloud.commands.dashboard import build_dashboard_app

    dashboard = build_dashboard_app()    # an ASGI app; its routes under /admin, "/" redirects there
    # Starlette/FastAPI: app.mount("/", dashboard); Lilya: Include("/", app=dashboard);
    # or serve it alone: uvicorn.run(dashboard)

    # AsyncMQ's own wrapper works just as well:
    from asyncmq.contrib.dashboard.admin import AsyncMQAdmin
    AsyncMQAdmin(enable_login=False).include_in(lilya_app)

Authentication is yours to configure, as AsyncMQ documents it: the command serves the
dashboard **without a login** (whoever reaches the port can retry, cancel and remove jobs
and pause queues), so keep it on 127.0.0.1, behind your own authenticating proxy, or build
the app yourself with AsyncMQ's login options. ``build_dashboard_app(**options)`` passes
them to ``AsyncMQAdmin`` unchanged::

    from asyncmq.contrib.dashboard.admin import SimpleUsernamePasswordBackend, User

    def verify(username: str, password: str) -> User | None:   # your user check
        return User(id=username, name=username, is_admin=True) if check(username, password) else None

    app = build_dashboard_app(enable_login=True, backend=SimpleUsernamePasswordBackend(verify))

Other options: ``backend`` may be any ``AuthBackend`` (AsyncMQ also ships
``asyncmq.contrib.dashboard.admin.backends.jwt.JWTAuthBackend``), ``url_prefix``,
``require_admin``/``required_roles``, ``enforce_same_origin``, ``trusted_proxies``,
``include_cors``/``cors_allow_origins``, ``include_security``/``content_security_policy``,
``include_session``. Sessions are signed with ``settings.dashboard_config.secret_key``: set
it in production (otherwise AsyncMQ makes a random one per process, so logins do not survive
a restart or span replicas).

Costs: each open page keeps an event stream that AsyncMQ's dashboard repeats every 5 s. On
these backends ``build_dashboard_app`` (and so this command) serves that stream from one
shared overview (``commands/_overview.py``): per tick, the state counts and newest jobs of at
most ``queues_per_tick`` queues (``--queues-per-tick``, default 2; the least recently read
first) from the state indexes, the paused flags in one read and the workers, for all open
pages at once. On ``DynamoDBBackend`` that is 14 requests per tick (15 once a minute, with the
queue list) whatever the number of jobs or pages, against 96 for AsyncMQ's own stream on 3
queues of 1,000 jobs (``benchmarks/dashboard_cost.py``); a queue's figures are then up to
``ceil(queues / queues_per_tick)`` ticks old. The job lists read a count and one page
(``inspect_jobs``); a search filter reads every job of the state, as AsyncMQ does. The other
pages (overview, queues, queue detail) still count through ``queue_stats`` and list the
``active`` and ``completed`` jobs per view. See docs/dashboard.md.

The backend's clients belong to the event loop that serves the dashboard: the command starts
the backend on uvicorn's loop. Mounted in your own server, the backend starts lazily on that
server's loop at the first request, and closing it (``await settings.backend.close()``) is
your application's shutdown hook.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from lilya.types import ASGIApp

from asyncmq_cloud.commands._overview import QUEUES_PER_TICK
from asyncmq_cloud.commands._settings import load_backend
from asyncmq_cloud.commands._signals import install_signal_handlers
from asyncmq_cloud.core.lifecycle import CloudBackend

logger = logging.getLogger("asyncmq_cloud.dashboard")

#: Seconds open connections get to finish after SIGINT/SIGTERM before they are dropped.
GRACEFUL_SHUTDOWN_SECONDS = 5.0


def build_dashboard_app(*, queues_per_tick: int = QUEUES_PER_TICK, **admin_options: Any) -> ASGIApp:
    """AsyncMQ's dashboard as an ASGI app, its routes under the dashboard URL prefix.

    ``admin_options`` go to ``AsyncMQAdmin`` unchanged (login, auth backend, prefix,
    CORS, CSP...). ``GET /`` redirects to the dashboard when the prefix is not ``/``.
    On an asyncmq-cloud backend the pages' event stream reads the shared, budgeted
    overview (``queues_per_tick`` queues re-read per tick; ``_overview.py``) instead of
    listing every job per page and tick.
    """
    from asyncmq import monkay
    from asyncmq.contrib.dashboard.admin import AsyncMQAdmin
    from lilya.apps import Lilya
    from lilya.responses import RedirectResponse
    from lilya.routing import Include, RoutePath

    from asyncmq_cloud.commands._dashboard_stream import ActionWatch, replace_stream, stream_route
    from asyncmq_cloud.commands._overview import Overview

    admin = AsyncMQAdmin(**admin_options)
    app: ASGIApp = admin.child_app
    prefix = admin.url_prefix or ""
    if prefix:

        async def home() -> RedirectResponse:
            return RedirectResponse(f"{prefix}/", status_code=307)

        app = Lilya(routes=[RoutePath("/", home, methods=["GET"]), Include(path=prefix, app=admin.child_app)])
    backend = monkay.settings.backend
    if not isinstance(backend, CloudBackend):
        return app
    overview = Overview(backend, queues_per_tick=queues_per_tick)
    if not replace_stream(admin.child_app.routes, stream_route(overview)):  # pragma: no cover - AsyncMQ moved it
        logger.warning("AsyncMQ's dashboard has no /events route here: its own event stream stays")
        return app
    # Outermost: the routes stay Lilya's own, so the templates' url_for still finds them.
    return ActionWatch(app, overview)


def dashboard_url(host: str, port: int, prefix: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{prefix.rstrip('/')}/"


async def _start_backend(args: argparse.Namespace) -> tuple[CloudBackend, ASGIApp]:
    """The settings' backend, started on this loop (fail fast if unreachable), and the dashboard app."""
    backend = load_backend(args.settings)
    try:
        await backend.start()  # fail fast (and on this loop) if the stores or broker are unreachable
        return backend, build_dashboard_app(queues_per_tick=args.queues_per_tick)
    except BaseException:
        await backend.close()
        raise


async def serve_dashboard(args: argparse.Namespace) -> int:
    """``asyncmq-cloud dashboard``: serve until SIGINT/SIGTERM, then close the backend.

    Args:
        args: the parsed ``dashboard`` arguments (``settings``, ``host``, ``port``).
    """
    try:
        import uvicorn

        from asyncmq_cloud.commands._dashboard_server import Server, bound_port, serve_until_stopped
    except ImportError:  # pragma: no cover - the extra is missing
        print('asyncmq-cloud dashboard needs uvicorn: pip install "asyncmq-cloud[dashboard]"', file=sys.stderr)
        return 2
    from asyncmq import monkay

    backend, app = await _start_backend(args)
    config = monkay.settings.dashboard_config
    prefix = config.dashboard_url_prefix if config is not None else "/"
    server = Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="info",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_SECONDS),
        )
    )

    def announce() -> None:
        url = dashboard_url(args.host, bound_port(server, args.port), prefix)
        print(f"asyncmq-cloud dashboard: {url} (SIGINT or SIGTERM to stop)", flush=True)

    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await serve_until_stopped(server, stop, announce, grace=GRACEFUL_SHUTDOWN_SECONDS)
    finally:
        await backend.close()
    if not server.started:
        print(f"asyncmq-cloud dashboard: could not serve on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    print("asyncmq-cloud dashboard stopped", flush=True)
    return 0
