"""Read-ahead: a queue's next receive starts while the last references of the previous one are claimed.

AsyncMQ's worker takes one job per ``dequeue``; the lease keeper receives up to
``prefetch`` references at a time and claims them one by one. Without read-ahead a
worker whose jobs are short waits a whole broker round trip each time its buffer runs
dry (with no-op jobs on SQS, a third of the drain's time here: ``benchmarks/peers.py``).
With it, once the buffer is low, one receive per queue runs in the background and what
it gets joins the buffer; the ``dequeue`` that finds the buffer empty waits for that
receive instead of starting its own.

Nothing changes in what a worker may hold: a read-ahead asks only for what the free
capacity leaves (the registered concurrency minus the jobs running here and the
references already buffered, capped by ``prefetch``), and starts only when at least
half of ``prefetch`` is free. ``prefetch=1`` turns it off, as does a transport that does
not declare ``read_ahead`` (DynamoDB: its receive is a query whose candidates other
workers race for; Kafka: its consumer prefetches already).

A read-ahead goes through :class:`Receives`, so a drain ends it at once. What it gets
after a drain began goes straight back to the broker; what it raises (an outage) is
raised by the ``dequeue`` that would have made the receive itself, and a cancelled
``dequeue`` that was waiting for it cancels it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from asyncmq_cloud.core.protocols import Components
from asyncmq_cloud.core.receives import Receives
from asyncmq_cloud.core.records import Delivery


class Keeper(Protocol):
    """What a read-ahead needs of its lease keeper (:class:`~asyncmq_cloud.core.leases.LeaseKeeper`)."""

    buffer: dict[str, deque[Delivery]]
    receives: Receives

    @property
    def closing(self) -> bool: ...

    def receive_size(self, queue: str, extra: int = 0, floor: int = 1) -> int: ...

    async def return_buffered(self, timeout: float | None = None, queues: tuple[str, ...] | None = None) -> None: ...


class ReadAhead:
    """The background receive of each queue (at most one per queue)."""

    def __init__(self, parts: Components, keeper: Keeper) -> None:
        self._parts, self._keeper = parts, keeper
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: What a read-ahead raised, kept for the next take that finds the buffer empty.
        self._failed: dict[str, Exception] = {}

    def start(self, queue: str, held: int) -> bool:
        """Start a receive of ``queue`` if it is worth one (``held``: the references this keeper
        holds of it beyond its running jobs: buffered, or being claimed); True if started."""
        parts = self._parts
        if not parts.transport.capabilities.read_ahead or self._keeper.closing:
            return False
        if queue in self._tasks or queue in self._failed:  # one at a time; a failure is raised first
            return False
        free = self._keeper.receive_size(queue, extra=held, floor=0)
        if free < max(1, parts.config.prefetch // 2):
            return False
        task = asyncio.get_running_loop().create_task(self._fill(queue, free), name=f"asyncmq-cloud read-ahead {queue}")
        self._tasks[queue] = task
        return True

    async def _fill(self, queue: str, want: int) -> None:
        parts, keeper = self._parts, self._keeper
        try:
            got = await keeper.receives.wait(parts.transport.receive(queue, want, parts.config.receive_wait))
        except Exception as exc:  # raised by the next take, as its own receive would have raised it
            self._failed[queue] = exc
            return
        finally:
            if self._tasks.get(queue) is asyncio.current_task():
                del self._tasks[queue]
        keeper.buffer.setdefault(queue, deque()).extend(got)
        if got and keeper.closing:  # a drain began after its own return of the buffer: return these too
            await keeper.return_buffered(queues=(queue,))

    async def join(self, queue: str) -> bool:
        """Wait for ``queue``'s read-ahead, if one was started; True if there was one (its
        references, if any, are in the buffer). Raises what it raised. Cancelling the caller
        cancels it, as a caller's own receive would be."""
        task = self._tasks.get(queue)
        if task is not None:
            try:
                await task
            except asyncio.CancelledError:
                caller = asyncio.current_task()
                if caller is None or caller.cancelling():
                    raise
                # the read-ahead itself was stopped (the backend closes): nothing came of it
        failure = self._failed.pop(queue, None)
        if failure is not None:
            raise failure
        return task is not None

    async def cancel(self) -> None:
        """Stop every read-ahead in flight (the backend closes); what they had is dropped
        unacknowledged, so the broker redelivers it after its lease."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._failed.clear()

    def reset(self) -> None:
        """Forget everything: the event loop these tasks ran on ended."""
        self._tasks.clear()
        self._failed.clear()
