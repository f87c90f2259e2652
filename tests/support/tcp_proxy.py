"""A TCP proxy in front of a real service, to make it unreachable and reachable again.

Restarting an emulator loses its data (moto, ElasticMQ keep everything in memory), so an
outage is simulated here instead: :meth:`TcpProxy.cut` closes the listening socket and
aborts every open connection (clients get resets, then "connection refused"), and
:meth:`TcpProxy.restore` listens again on the same port. The proxy runs its own event loop
in a daemon thread, so worker processes and the test's own clients can use it while the
test blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

HOST = "127.0.0.1"


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port``.

    Args:
        target_host: the service's host.
        target_port: the service's port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = int(probe.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tcp-proxy-{self.port}", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        #: Connections accepted since the start (a test can check its clients went through).
        self.accepted = 0

    def start(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    def restore(self) -> None:
        """Listen (again) on :attr:`port`."""
        self._call(self._listen())

    def cut(self) -> None:
        """Close the listener and abort every open connection: the service is unreachable."""
        self._call(self._cut())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, HOST, self.port, reuse_address=True)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        links = (client_writer, upstream_writer)
        self._links.update(links)
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))
        finally:
            for writer in links:
                self._links.discard(writer)
                writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()  # a half-close goes through; the other direction goes on
                return
        except (ConnectionError, OSError):
            pass
        writer.transport.abort()


@contextlib.contextmanager
def proxied(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    """A started :class:`TcpProxy`, stopped afterwards."""
    proxy = TcpProxy(target_host, target_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
