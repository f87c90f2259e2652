"""The worker's HTTP endpoint (``--health-port``): a tiny HTTP/1.1 server on ``asyncio.start_server``.

No web framework (no new dependency): GET/HEAD only, one request per connection,
``text/plain`` answers. Routes are a table (:meth:`HealthServer.add_route`), so further
endpoints (``/metrics``) are one ``add_route`` each. :class:`Probes` gives the two
Kubernetes probes:

* ``/livez``: 200 ``ok`` when the event loop answers (it runs the handler) and the
  backend's lease keeper is fine (``backend.liveness()`` is None), else 503 with the reason;
* ``/readyz``: 200 when ``backend.health_check()`` (one store read) answers within
  ``ready_timeout`` (the answer is reused for ``cache_seconds``), 503 while the worker
  drains or when the backend does not answer. Readiness never depends on jobs existing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

logger = logging.getLogger("asyncmq_cloud.worker.http")

#: A route: an async function answering ``(status, body)``.
Handler = Callable[[], Awaitable[tuple[int, str]]]
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
#: The answers' content type (a route may declare its own: ``/metrics``).
TEXT = "text/plain; charset=utf-8"
#: Longest wait (s) for a client's request head; bytes of it read at most.
READ_TIMEOUT = 5.0
MAX_HEAD = 8192


class HealthServer:
    """An HTTP server with a route table (path -> :data:`Handler`)."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}
        self._types: dict[str, str] = {}
        self._server: asyncio.Server | None = None

    def add_route(self, path: str, handler: Handler, content_type: str = TEXT) -> None:
        """Answer GET/HEAD ``path`` with ``handler``.

        Args:
            path: the exact path (``/livez``); the query string is ignored.
            handler: async function returning ``(status, text body)``.
            content_type: the ``Content-Type`` of its 200 answers.
        """
        self._routes[path] = handler
        self._types[path] = content_type

    @property
    def routes(self) -> list[str]:
        """The paths served."""
        return sorted(self._routes)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port.

        Args:
            host: the address to bind.
            port: the TCP port.
        """
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, body, method, content_type = await self._answer(head[:MAX_HEAD])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            status, body, method, content_type = 400, "bad request\n", "GET", TEXT
        except Exception:
            logger.exception("health endpoint failed")
            status, body, method, content_type = 500, "internal error\n", "GET", TEXT
        payload = body.encode()
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}",
            "Connection: close",
        ]
        with contextlib.suppress(ConnectionError):
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else payload))
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[int, str, str, str]:
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3:
            return 400, "bad request\n", "GET", TEXT
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "method not allowed\n", method, TEXT
        handler = self._routes.get(target)
        if handler is None:
            return 404, "not found\n", method, TEXT
        status, body = await handler()
        return status, body, method, self._types[target] if status == 200 else TEXT


class ProbedBackend(Protocol):
    """What the probes read from the backend (``CloudBackend`` has all of it)."""

    @property
    def draining(self) -> bool: ...

    def liveness(self) -> str | None: ...

    async def health_check(self) -> None: ...


class Probes:
    """``/livez`` and ``/readyz`` of a worker backend.

    Args:
        backend: the worker's backend.
        ready_timeout: bound (s) on the store read of ``/readyz``.
        cache_seconds: how long (s) a ``/readyz`` answer is reused.
    """

    def __init__(self, backend: ProbedBackend, *, ready_timeout: float = 2.0, cache_seconds: float = 1.0) -> None:
        self._backend = backend
        self._timeout = ready_timeout
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, tuple[int, str]] | None = None
        self._lock = asyncio.Lock()

    def install(self, server: HealthServer) -> None:
        """Add ``/livez`` and ``/readyz`` to ``server``.

        Args:
            server: the worker's HTTP server.
        """
        server.add_route("/livez", self.livez)
        server.add_route("/readyz", self.readyz)

    async def livez(self) -> tuple[int, str]:
        """200 when the loop runs this and the lease keeper is fine, else 503 with the reason."""
        reason = self._backend.liveness()
        return (200, "ok\n") if reason is None else (503, f"{reason}\n")

    async def readyz(self) -> tuple[int, str]:
        """503 while draining; else the (cached) outcome of one bounded backend read."""
        if self._backend.draining:
            return 503, "draining\n"
        async with self._lock:  # one read in flight; concurrent probes share its answer
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
                return cached[1]
            answer = await self._check()
            self._cached = (time.monotonic(), answer)
            return answer

    async def _check(self) -> tuple[int, str]:
        try:
            await asyncio.wait_for(self._backend.health_check(), self._timeout)
        except TimeoutError:
            return 503, f"the backend did not answer within {self._timeout:g} s\n"
        except Exception as exc:  # the reason by type only: a message may carry an endpoint
            return 503, f"the backend failed: {type(exc).__name__}\n"
        return 200, "ok\n"
