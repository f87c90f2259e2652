"""The uvicorn server behind ``asyncmq-cloud dashboard`` (imported only when uvicorn is installed)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import uvicorn


class Server(uvicorn.Server):
    """uvicorn's server minus its own signal handling: ours stops it, then closes the backend.

    Args:
        config: uvicorn's configuration.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()  # set once it listens

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.up.set()

    async def serve_or_fail(self) -> None:
        """``serve()``; a port it cannot bind ends it quietly (``started`` stays false)."""
        try:
            await self.serve()
        except SystemExit:  # uvicorn exits this way when it cannot bind; reported by the command
            pass


async def serve_until_stopped(
    server: Server, stop: asyncio.Event, announce: Callable[[], None], *, grace: float
) -> None:
    """Serve until ``stop`` is set or the server ends; ``announce()`` once it listens.

    Args:
        server: the server to run.
        stop: set (by SIGINT/SIGTERM) to stop it gracefully.
        announce: called once the server listens.
        grace: seconds open connections get after ``stop`` before the server is forced down.
    """
    serving = asyncio.create_task(server.serve_or_fail())
    waits = [asyncio.create_task(server.up.wait()), asyncio.create_task(stop.wait())]
    try:
        await asyncio.wait({serving, waits[0]}, return_when=asyncio.FIRST_COMPLETED)
        if server.started:
            announce()
        await asyncio.wait({serving, waits[1]}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(serving), grace + 5)
        except TimeoutError:
            server.force_exit = True
            await asyncio.wait_for(serving, 5)
    finally:
        for wait in waits:
            wait.cancel()


def bound_port(server: Server, asked: int) -> int:
    """The port ``server`` listens on (``--port 0`` asks the OS for a free one), else ``asked``.

    Args:
        server: a started server.
        asked: the port asked for.
    """
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    return asked
