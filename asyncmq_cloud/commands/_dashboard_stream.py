"""The dashboard's event stream (``GET {prefix}/events``) served from the shared :class:`Overview`.

It sends the events of AsyncMQ's ``SSEController`` with the same names, shapes and order
(a tick's events in one chunk), so the dashboard's pages work unchanged: ``overview``,
``jobdist``, ``metrics``, ``queues``, ``workers``, ``latest_jobs``, ``latest_queues``. Only
where the figures come from differs (:mod:`asyncmq_cloud.commands._overview`). The route
replaces AsyncMQ's in place, so the dashboard's middleware (login, same-origin checks) stays
in front of it; :class:`ActionWatch` wraps the whole app to tell the overview which queue an
action changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import anyio
from asyncmq.contrib.dashboard.metrics_history import record_metrics_snapshot
from lilya.requests import Request
from lilya.responses import StreamingResponse
from lilya.routing import Include, RoutePath
from lilya.types import ASGIApp, Receive, Scope, Send

from asyncmq_cloud.commands._overview import SHOWN_STATES, Overview, Snapshot

#: An SSE comment (browsers ignore it) sent after each tick: Lilya's ``StreamingResponse``
#: holds every chunk back until the next one is produced, which left the last event of
#: each of AsyncMQ's ticks (``latest_queues``) a tick late.
FLUSH = ": tick\n\n"
#: The name of AsyncMQ's event-stream route.
EVENTS_ROUTE = "events"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def events(snapshot: Snapshot) -> list[str]:
    """The event-stream messages of one tick, as AsyncMQ's stream builds them."""
    views = snapshot.queues
    dist = {state: sum(v.counts[state] for v in views.values()) for state in SHOWN_STATES}
    overview = {
        "total_queues": len(views),
        "total_jobs": sum(dist.values()),
        "total_workers": len(snapshot.workers),
    }
    jobdist = {state: dist[state] for state in ("waiting", "active", "delayed", "completed", "failed")}
    metrics = {
        "throughput": dist["completed"],
        "avg_duration": None,
        "retries": dist["failed"],
        "failures": dist["failed"],
    }
    record_metrics_snapshot(
        metrics=metrics, counts=jobdist, total_queues=len(views), total_workers=len(snapshot.workers)
    )
    rows = [{"name": name, "paused": v.paused, **v.counts} for name, v in views.items()]
    newest = sorted(
        ((ts, job_id, name, state) for name, v in views.items() for ts, job_id, state in v.newest), reverse=True
    )
    latest_jobs = [
        {"id": job_id, "queue": name, "state": state, "time": _when(ts)} for ts, job_id, name, state in newest[:10]
    ]
    active = sorted(((v.newest[0][0], name) for name, v in views.items() if v.newest), reverse=True)
    latest_queues = [{"name": name, "time": _when(ts)} for ts, name in active[:5]]
    return [
        _event("overview", overview),
        _event("jobdist", jobdist),
        _event("metrics", metrics),
        _event("queues", rows),
        _event("workers", snapshot.workers),
        _event("latest_jobs", latest_jobs),
        _event("latest_queues", latest_queues),
    ]


def stream_route(overview: Overview) -> RoutePath:
    """``GET /events`` answered from ``overview`` every ``overview.tick`` seconds."""

    async def stream(request: Request) -> StreamingResponse:
        async def ticks() -> AsyncIterator[str]:
            while True:
                yield "".join(events(await overview.snapshot()))
                yield FLUSH  # Lilya sends a chunk when the next one comes: this one lets the tick out
                await anyio.sleep(overview.tick)

        return StreamingResponse(ticks(), media_type="text/event-stream")

    return RoutePath("/events", stream, methods=["GET"], name=EVENTS_ROUTE)


def replace_stream(routes: list[Any], route: RoutePath) -> bool:
    """Put ``route`` in place of AsyncMQ's event-stream route in ``routes`` or its sub-routers."""
    for index, existing in enumerate(routes):
        if isinstance(existing, RoutePath) and existing.name == EVENTS_ROUTE and existing.path == "/events":
            routes[index] = route
            return True
        if (
            isinstance(existing, Include)
            and isinstance(existing.routes, list)
            and replace_stream(existing.routes, route)
        ):
            return True
    return False


_QUEUE_PATH = re.compile(r"/queues/([^/]+)")


class ActionWatch:
    """ASGI middleware: after a request that may change a queue (any method but GET, HEAD and
    OPTIONS on a path under ``/queues/{name}``), mark that queue changed in ``overview``."""

    def __init__(self, app: ASGIApp, overview: Overview) -> None:
        self.app = app
        self.overview = overview

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
            found = _QUEUE_PATH.search(str(scope.get("path", "")))
            if found:
                self.overview.mark_changed(unquote(found.group(1)))
