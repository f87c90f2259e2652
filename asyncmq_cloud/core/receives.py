"""Receives in flight, so that a drain ends a long poll at once instead of waiting it out.

A receive may wait up to ``LifecycleConfig.receive_wait`` (SQS: 20 s long polls by
default) for a message to arrive. ``WorkerStops.drain`` calls :meth:`Receives.interrupt`:
each receive in flight is cancelled and its caller gets no deliveries. A message the
broker handed out as the receive was cancelled is not lost: it is redelivered once its
visibility timeout runs out (SQS), its offset is still uncommitted (Kafka), or it was
never taken from the table (DynamoDB).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from asyncmq_cloud.core.records import Delivery


class Receives:
    """The receives in flight of one lease keeper."""

    def __init__(self) -> None:
        self._running: set[asyncio.Future[list[Delivery]]] = set()
        self._interrupted: set[asyncio.Future[list[Delivery]]] = set()

    async def wait(self, receive: Coroutine[Any, Any, list[Delivery]]) -> list[Delivery]:
        """What ``receive`` returns; ``[]`` if :meth:`interrupt` ended it. A cancellation of
        the caller itself cancels the receive and propagates, as before."""
        task = asyncio.ensure_future(receive)
        self._running.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if task in self._interrupted and (caller is None or caller.cancelling() == 0):
                return []
            raise
        finally:
            self._running.discard(task)
            self._interrupted.discard(task)

    def interrupt(self) -> int:
        """Cancel every receive in flight; returns how many."""
        for task in self._running:
            self._interrupted.add(task)
            task.cancel()
        return len(self._running)
