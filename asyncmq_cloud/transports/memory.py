"""In-process reference :class:`~asyncmq_cloud.core.protocols.Transport`.

Models the semantics the lifecycle must survive on a real broker: at-least-once
delivery, a visibility timeout after which an un-acked message is delivered
again, optional native delays up to ``max_native_delay`` and a dead-letter list.
Single process only; for unit tests and the reference contract runs.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asyncmq_cloud._component import Component
from asyncmq_cloud.core.records import Delivery, TransportCapabilities
from asyncmq_cloud.errors import ClosedError

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec


@dataclass
class _Message:
    mid: int
    job_id: str
    visible_at: float
    receive_count: int = 0


class MemoryTransport(Component):
    """A list-per-queue broker with visibility timeouts.

    Args:
        max_native_delay: longest delay (s) held by the broker itself; 0 sends
            every delay through the delay store, like Kafka or SQS FIFO.
        visibility_timeout: seconds a received message stays invisible.
    """

    _closed_hint = ""

    def __init__(self, *, max_native_delay: float = 0.0, visibility_timeout: float = 30.0) -> None:
        super().__init__()
        self.capabilities = TransportCapabilities(max_native_delay=max_native_delay)
        self.visibility_timeout = visibility_timeout
        self._queues: dict[str, list[_Message]] = {}
        self._ids = itertools.count(1)
        self.dead_letters: list[tuple[str, str, str]] = []
        self._wakeup = asyncio.Event()
        self.calls: dict[str, int] = {}

    async def provision(self, queue: str) -> None:
        self._queues.setdefault(queue, [])

    def check_queue(self, queue: str) -> None:
        """Raise ``InvalidNameError`` if ``queue`` cannot be carried (no I/O)."""
        return None  # no broker names

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing: queues live in process memory."""
        return []

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def send(
        self, queue: str, job_ids: Sequence[str], delay: float = 0.0, priorities: Any = None, groups: Any = None
    ) -> None:
        if self._closed:
            raise ClosedError("MemoryTransport is closed")
        self._count("send")
        visible_at = time.time() + max(0.0, min(delay, self.capabilities.max_native_delay))
        messages = self._queues.setdefault(queue, [])
        messages.extend(_Message(next(self._ids), job_id, visible_at) for job_id in job_ids)
        self._wakeup.set()

    def _take(self, queue: str, max_messages: int) -> list[Delivery]:
        now = time.time()
        out: list[Delivery] = []
        for message in self._queues.get(queue, []):
            if len(out) >= max_messages:
                break
            if message.visible_at <= now:
                message.visible_at = now + self.visibility_timeout
                message.receive_count += 1
                lease_until = time.monotonic() + self.visibility_timeout
                out.append(Delivery(queue, message.job_id, message.mid, message.receive_count, lease_until=lease_until))
        return out

    async def receive(self, queue: str, max_messages: int, wait: float) -> list[Delivery]:
        if self._closed:
            raise ClosedError("MemoryTransport is closed")
        self._count("receive")
        deadline = time.monotonic() + wait
        while True:
            found = self._take(queue, max_messages)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=min(remaining, 0.05))
            except TimeoutError:
                pass

    def _remove(self, delivery: Delivery) -> _Message | None:
        messages = self._queues.get(delivery.queue, [])
        for index, message in enumerate(messages):
            if message.mid == delivery.receipt:
                return messages.pop(index)
        return None

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._count("ack")
        for delivery in deliveries:
            self._remove(delivery)

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        self._count("extend")
        for message in self._queues.get(delivery.queue, []):
            if message.mid == delivery.receipt:
                message.visible_at = time.time() + seconds
                delivery.lease_until = time.monotonic() + seconds

    async def release(self, delivery: Delivery, delay: float = 0.0) -> None:
        await self.extend(delivery, delay)
        self._wakeup.set()

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._remove(delivery)
        self.dead_letters.append((delivery.queue, delivery.job_id, reason))

    async def depth(self, queue: str) -> int:
        return len(self._queues.get(queue, []))

    async def stats(self, queue: str) -> dict[str, int]:
        """No breakdown beyond ``depth`` (``capabilities.has_stats`` is False)."""
        return {}

    async def purge(self, queue: str) -> None:
        self._queues[queue] = []
