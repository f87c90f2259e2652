"""What the keyword-built backends (``SQSBackend``, ``DynamoDBBackend``) share.

Each builds its own :class:`AwsClients` unless given shared ones, creates missing
tables on ``start()`` with ``create_missing``, rebuilds itself when AsyncMQ's CLI
calls it from a new event loop, and closes the clients it created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiobotocore.config import AioConfig

from asyncmq_cloud.aws import AwsClients, RetryMode
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import ConfigurationError


def own_clients(
    clients: AwsClients | None,
    *,
    endpoint_url: str | None,
    region_name: str | None,
    retry_mode: RetryMode,
    max_attempts: int | None,
    aio_config: AioConfig | None,
    client_kwargs: Mapping[str, Any] | None,
) -> tuple[AwsClients, bool]:
    """The clients to use and whether the backend owns (and so closes) them."""
    if clients is not None:
        if endpoint_url or region_name or aio_config or client_kwargs:
            raise ConfigurationError("pass endpoint_url/region_name/aio_config/client_kwargs to the shared clients")
        return clients, False
    extra: dict[str, Any] = {} if max_attempts is None else {"max_attempts": max_attempts}
    built = AwsClients(
        endpoint_url=endpoint_url,
        region_name=region_name,
        retry_mode=retry_mode,
        aio_config=aio_config,
        client_kwargs=client_kwargs,
        **extra,
    )
    return built, True


class PresetBackend(CloudBackend):
    """A :class:`CloudBackend` built from keywords (see the module docstring).

    Subclasses set ``_init_kwargs`` (their constructor arguments), ``clients``,
    ``create_missing`` and ``_owns_clients`` before calling ``CloudBackend.__init__``,
    and name in ``_loop_bound_args`` the arguments that may hold loop-bound objects.
    """

    _loop_bound_args: tuple[str, ...] = ()
    _init_kwargs: dict[str, Any]
    clients: AwsClients
    create_missing: bool
    _owns_clients: bool
    _provisioned: bool = False

    def _take_arguments(self, arguments: dict[str, Any], extra: Mapping[str, Any] | None = None) -> AwsClients:
        """Keep the constructor ``arguments`` (``locals()``) for rebuilding; set up the AWS clients.

        Reads ``clients``, ``create_missing`` and the client-building arguments
        (``endpoint_url``, ``region_name``, ``retry_mode``, ``max_attempts``,
        ``aio_config``, ``client_kwargs``); returns the clients to build the stores with.
        """
        skip = ("self", "__class__", "transport_options")
        self._init_kwargs = {k: v for k, v in arguments.items() if k not in skip} | dict(extra or {})
        args = self._init_kwargs
        self.clients, self._owns_clients = own_clients(
            args["clients"],
            endpoint_url=args["endpoint_url"],
            region_name=args["region_name"],
            retry_mode=args["retry_mode"],
            max_attempts=args["max_attempts"],
            aio_config=args["aio_config"],
            client_kwargs=args["client_kwargs"],
        )
        self.create_missing = bool(args["create_missing"])
        return self.clients

    async def start(self) -> None:
        """Start everything; with ``create_missing`` also create the tables (idempotent)."""
        await super().start()
        if self.create_missing and not self._provisioned:
            self._provisioned = True
            await self.store.provision()
            await self.delay_store.provision()

    def _rebind(self) -> None:
        """Rebuild clients, stores and transport for a new event loop (AsyncMQ's CLI).

        Only possible when this backend built them (stores given as URLs, no shared
        ``clients``); the abandoned ones belong to a finished loop.
        """
        given = [name for name in self._loop_bound_args if not _rebuildable(self._init_kwargs[name])]
        if given:
            raise ConfigurationError(
                f"{type(self).__name__} was used from a second event loop, but its {', '.join(given)} were given "
                "as objects bound to the first one; pass URLs (store='dynamodb://...') or one backend per loop"
            )
        super()._rebind()
        fresh = type(self)(**self._init_kwargs)
        self.clients, self.store, self.delay_store = fresh.clients, fresh.store, fresh.delay_store
        self.transport = fresh.transport
        self._provisioned = False

    async def close(self) -> None:
        """Flush and close the stores and transport, then the clients this backend created."""
        try:
            await super().close()
        finally:
            if self._owns_clients:
                await self.clients.close()


def _rebuildable(value: Any) -> bool:
    return value is None or isinstance(value, str)
