"""The Component base: idempotent start/close, no reopen, owned vs borrowed children, rollback, warnings.

Also the components built on it keep their public behaviour: AwsClients and the stores
close their own clients and leave borrowed ones open; AwsOptions carries the preset keywords.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from contextlib import AsyncExitStack

import anyio
import pytest

from asyncmq_cloud._component import Component
from asyncmq_cloud.aws import AwsClients, AwsOptions
from asyncmq_cloud.delays.dynamodb import DynamoDBDelayStore
from asyncmq_cloud.delays.memory import MemoryDelayStore
from asyncmq_cloud.errors import ClosedError, ConfigurationError
from asyncmq_cloud.stores.dynamodb import DynamoDBStateStore
from asyncmq_cloud.stores.memory import MemoryStateStore


class Probe(Component):
    """Counts its hook calls; ``fail`` makes the next ``_open`` fail after opening a resource."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.opened = 0
        self.released = 0
        self.shutdowns = 0

    async def _open(self, stack: AsyncExitStack) -> None:
        self.opened += 1
        stack.callback(self._release)
        if self.fail:
            self.fail = False
            raise RuntimeError("refused")

    def _release(self) -> None:
        self.released += 1

    async def _shutdown(self) -> None:
        self.shutdowns += 1


class Warner(Probe):
    _warn_unclosed = True


async def test_start_and_close_are_idempotent() -> None:
    probe = Probe()
    await probe.start()
    await probe.start()
    assert probe.started and probe.opened == 1
    await probe.close()
    await probe.close()
    assert probe.closed and not probe.started
    assert (probe.shutdowns, probe.released) == (1, 1)


async def test_concurrent_starts_open_once() -> None:
    probe = Probe()
    await asyncio.gather(*(probe.start() for _ in range(5)))
    assert probe.opened == 1
    await probe.close()


async def test_a_closed_component_is_never_reopened() -> None:
    probe = Probe()
    async with probe:
        pass
    with pytest.raises(ClosedError, match=r"^Probe is closed; create a new one$"):
        await probe.start()
    with pytest.raises(ClosedError, match="Probe is closed"):
        await probe._ensure_started()
    assert probe.opened == 1


async def test_a_failed_start_closes_what_it_opened_and_may_be_retried() -> None:
    probe = Probe(fail=True)
    with pytest.raises(RuntimeError, match="refused"):
        await probe.start()
    assert not probe.started and probe.released == 1
    await probe.start()
    assert probe.started and probe.opened == 2
    await probe.close()
    assert probe.released == 2


async def test_owned_children_close_with_it_borrowed_ones_stay_open() -> None:
    parent, owned, borrowed = Probe(), Probe(), Probe()
    parent._adopt(owned)
    await owned.start()
    await borrowed.start()
    await parent.close()  # never started: its owned children close all the same
    assert owned.closed and not borrowed.closed
    await borrowed.close()


async def test_close_is_shielded_from_cancellation() -> None:
    release = asyncio.Event()

    class Slow(Probe):
        async def _shutdown(self) -> None:
            await release.wait()
            await super()._shutdown()

    slow = Slow()
    await slow.start()
    asyncio.get_running_loop().call_later(0.05, release.set)
    async with anyio.create_task_group() as group:  # how AsyncMQ cancels a worker
        group.start_soon(slow.close)
        await asyncio.sleep(0.01)
        group.cancel_scope.cancel()
    assert slow.shutdowns == 1 and slow.released == 1  # the close finished despite the cancel


async def test_an_unclosed_started_component_warns_only_where_asked() -> None:
    for cls, expected in ((Warner, 1), (Probe, 0)):
        component = cls()
        await component.start()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del component
            gc.collect()
        assert len([w for w in caught if issubclass(w.category, ResourceWarning)]) == expected, cls
    closed = Warner()
    await closed.start()
    await closed.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del closed
        gc.collect()


async def test_memory_components_keep_their_messages() -> None:
    store, delays = MemoryStateStore(), MemoryDelayStore()
    await store.close()
    await delays.close()
    with pytest.raises(ClosedError, match=r"^MemoryStateStore is closed$"):
        await store.start()
    with pytest.raises(ClosedError, match=r"^MemoryDelayStore is closed$"):
        await delays.start()


async def test_aws_stores_close_own_clients_and_leave_shared_ones_open() -> None:
    endpoint = "http://127.0.0.1:9"  # start/close open no connection
    async with AwsClients(endpoint_url=endpoint, region_name="us-east-1") as shared:
        for store in (DynamoDBStateStore(clients=shared), DynamoDBDelayStore(clients=shared)):
            async with store:
                assert store.clients is shared
            with pytest.raises(ClosedError, match=f"{type(store).__name__} is closed; create a new one"):
                await store.start()
            assert shared.started and not shared.closed
    own = DynamoDBStateStore(endpoint_url=endpoint, region_name="us-east-1")
    async with own:
        assert own.clients.started
    assert own.clients.closed
    with pytest.raises(ConfigurationError, match="not to the store"):
        DynamoDBDelayStore(clients=AwsClients(region_name="r"), region_name="r")


def test_aws_options_validate_and_build_clients() -> None:
    options = AwsOptions(endpoint_url="http://127.0.0.1:9", region_name="eu-west-1", max_attempts=2)
    clients, owned = options.use(None)
    assert owned and (clients.endpoint_url, clients.region_name, clients.max_attempts) == (
        "http://127.0.0.1:9",
        "eu-west-1",
        2,
    )
    assert AwsOptions().clients().max_attempts == 4  # None: botocore's default of the package
    shared = AwsClients(region_name="r")
    assert AwsOptions(retry_mode="adaptive").use(shared) == (shared, False)
    with pytest.raises(ConfigurationError, match="to the shared clients"):
        options.use(shared)
    with pytest.raises(ConfigurationError, match="retry_mode"):
        AwsOptions(retry_mode="eventually")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_attempts"):
        AwsOptions(max_attempts=-1)
