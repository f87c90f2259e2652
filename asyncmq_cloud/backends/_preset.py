"""What the keyword-built backends (``SQSBackend``, ``KafkaBackend``, ``DynamoDBBackend``) share.

Each keeps its settings as two typed values, the AWS client keywords
(:class:`~asyncmq_cloud.aws.AwsOptions`) and its own frozen settings dataclass; it
builds its own :class:`AwsClients` from the first unless given shared ones, creates
missing tables on ``start()`` with ``create_missing``, rebuilds its parts from both
values when AsyncMQ's CLI calls it from a new event loop, and closes the clients it created.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.aws import AwsClients, AwsOptions
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import ConfigurationError

logger = logging.getLogger("asyncmq_cloud.lifecycle")

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import DelayStore, StateStore, Transport


class PresetBackend(CloudBackend):
    """A :class:`CloudBackend` built from keywords (see the module docstring).

    Subclasses keep their own settings in ``settings`` (a frozen dataclass), call
    :meth:`_use_aws` and then build their parts with :meth:`_build` before calling
    ``CloudBackend.__init__``; ``_loop_bound_args`` names the settings (and ``clients``)
    that may hold objects bound to an event loop.
    """

    _loop_bound_args: tuple[str, ...] = ()
    settings: Any
    aws: AwsOptions
    clients: AwsClients
    create_missing: bool
    _given_clients: AwsClients | None
    _owns_clients: bool
    _provisioned: bool = False
    _ender: AsyncIterator[None] | None = None
    _ender_loop: asyncio.AbstractEventLoop | None = None

    def _use_aws(self, aws: AwsOptions, clients: AwsClients | None, *, create_missing: bool) -> AwsClients:
        """Keep the AWS options; borrow ``clients`` or build (and own) new ones; returns the clients in use."""
        self.aws = aws
        self._given_clients = clients
        self.clients, self._owns_clients = aws.use(clients)
        self.create_missing = create_missing
        return self.clients

    def _build(self, config: LifecycleConfig) -> tuple[StateStore, Transport, DelayStore]:
        """The store, transport and delay store, from ``settings`` and ``clients``."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start everything; with ``create_missing`` also create the tables (idempotent)."""
        await super().start()
        await self._close_at_loop_end()
        if self.create_missing and not self._provisioned:
            self._provisioned = True
            await self.store.provision()
            await self.delay_store.provision()

    async def _close_at_loop_end(self) -> None:
        """Close what this loop opened when the loop ends, if nobody closed the backend before.

        AsyncMQ never calls ``close()`` and scripts often forget it; the clients would then be
        collected after their loop closed, and aiohttp reports every one of them on stderr at
        exit. An async generator started in the loop is finalised by the loop's
        ``shutdown_asyncgens()`` (``asyncio.run``, ``anyio.run`` and AsyncMQ's CLI all call it
        before closing the loop): its ``finally`` closes the backend's clients there. The
        backend stays usable: a later call on another loop starts it again (decision 26).
        Only where every part can be rebuilt (nothing loop-bound was given).
        """
        loop = asyncio.get_running_loop()
        if self._ender_loop is loop or not self._rebuildable():
            return

        async def ender() -> AsyncIterator[None]:
            try:
                yield
            finally:
                await self._end_of_loop(loop)

        self._ender, self._ender_loop = ender(), loop  # the loop tracks it weakly: keep it alive
        await anext(self._ender)

    async def _end_of_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close what this loop opened (``close()``); the backend is rebuilt for the next loop.

        By now ``asyncio.run`` has cancelled every task: a transport that needs a background
        task of its own to close gracefully (Kafka: the reply to its LeaveGroup is read by a
        connection task) would wait for its request timeout, so a preset may close it another
        way first (``_close_transport_at_loop_end``); ``close()`` then leaves it alone.
        """
        if self._closed or self._loop is not loop:
            return  # closed by its user, or started again on another loop meanwhile
        try:
            await self._close_transport_at_loop_end()
            await self.close()
            self._closed = False  # not closed for good: the next event loop starts it again
            self._rebind()
        except Exception as exc:  # the loop is ending: report, never raise into its shutdown
            logger.warning("closing %s at the end of its event loop failed: %s", type(self).__name__, exc)

    async def _close_transport_at_loop_end(self) -> None:
        """Close the transport where ``close()`` could not at the end of a loop (default: nothing)."""

    def _given_loop_bound(self) -> list[str]:
        """The loop-bound settings given as objects (they cannot be rebuilt for another loop)."""
        return [name for name in self._loop_bound_args if not _rebuildable(self._setting(name))]

    def _rebuildable(self) -> bool:
        return not self._given_loop_bound()

    def _rebind(self) -> None:
        """Rebuild clients, stores and transport for a new event loop (AsyncMQ's CLI).

        Only possible when this backend built them (stores given as URLs, no shared
        ``clients``); the abandoned ones belong to a finished loop.
        """
        given = self._given_loop_bound()
        if given:
            raise ConfigurationError(
                f"{type(self).__name__} was used from a second event loop, but its {', '.join(given)} were given "
                "as objects bound to the first one; pass URLs (store='dynamodb://...') or one backend per loop"
            )
        super()._rebind()
        self.clients, self._owns_clients = self.aws.use(None)
        self.store, self.transport, self.delay_store = self._build(self.config)
        self._provisioned = False

    def _setting(self, name: str) -> Any:
        return self._given_clients if name == "clients" else getattr(self.settings, name)

    async def close(self) -> None:
        """Flush and close the stores and transport, then the clients this backend created."""
        try:
            await super().close()
        finally:
            if self._owns_clients:
                await self.clients.close()


def _rebuildable(value: Any) -> bool:
    return value is None or isinstance(value, str)
