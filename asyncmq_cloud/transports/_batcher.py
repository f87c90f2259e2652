"""A linger batcher: concurrent callers share one batch API call, each awaits its own result.

SQS charges per request and accepts up to 10 entries per ``SendMessageBatch`` /
``DeleteMessageBatch``. AsyncMQ's ``Queue.add_bulk`` loops over ``add`` and its
workers ack one job at a time, so batching only happens if concurrent calls
made within a short *linger* are merged here:

* ``submit(key, entries)`` adds entries to the open batch of ``key`` (e.g. a
  queue URL) and waits until the batch that holds *each* of them was sent;
* a batch is sent when it reaches ``max_size`` entries or ``linger`` seconds
  after its first entry arrived, whichever comes first;
* if a call for the key is still in flight when a batch opens, that batch waits
  ``busy_linger`` instead: entries that arrive while the previous call is under
  way come from concurrent callers (a sequential caller awaits its own call
  before it submits again), so a stream of staggered callers fills batches while
  a lone sequential caller never waits longer than ``linger``;
* ``adaptive`` (the SQS sends): such a batch also goes as soon as no call of its
  key is in flight any more, so ``busy_linger`` is only a cap; with ``linger`` 0 a
  lone caller's entry goes in the next turn of the event loop (entries submitted
  in the same turn share its call);
* ``flush`` returns one result per entry: a value, or an exception that is
  raised to the caller that submitted that entry (never dropped). If the whole
  call fails, every caller of that batch gets the error;
* a caller that is cancelled while waiting does not take its entries back: they
  are sent anyway (for sends and acks, "sent late" beats "lost");
* ``post(key, entries, on_error)`` is the fire-and-forget variant (acks): the
  caller does not wait and failures go to ``on_error``;
* ``close()`` sends everything still pending and waits for in-flight batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from asyncmq_cloud.errors import ClosedError

K = TypeVar("K", bound=Hashable)
E = TypeVar("E")
R = TypeVar("R")

Flush = Callable[[K, list[E]], Awaitable[Sequence[R | BaseException]]]


class LingerBatcher(Generic[K, E, R]):
    """Merges concurrent submissions per key into calls of at most ``max_size`` entries.

    Args:
        flush: sends one batch for a key; returns one result (or exception) per entry, in order.
        max_size: most entries per call (SQS: 10).
        linger: seconds a batch waits for more entries after its first one.
        busy_linger: the wait of a batch opened while a call of its key is in
            flight (``None`` = ``linger``).
        name: used in error messages.
        adaptive: a batch waiting because a call of its key was in flight goes as
            soon as none is (``busy_linger`` is then a cap).
    """

    def __init__(
        self,
        flush: Flush[K, E, R],
        *,
        max_size: int,
        linger: float,
        name: str,
        busy_linger: float | None = None,
        adaptive: bool = False,
    ) -> None:
        self._flush = flush
        self.adaptive = adaptive
        self.max_size = max_size
        self.linger = linger
        self.busy_linger = linger if busy_linger is None else busy_linger
        self.name = name
        self._in_flight: dict[K, int] = {}
        self._pending: dict[K, list[tuple[E, asyncio.Future[R]]]] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Entries waiting for their batch to be sent."""
        return sum(len(batch) for batch in self._pending.values())

    async def submit(self, key: K, entries: Sequence[E]) -> list[R]:
        """Send ``entries`` in the next batches of ``key``; raise the first failed entry's error."""
        if self._closed:
            raise ClosedError(f"{self.name} is closed")
        futures = [self._add(key, entry) for entry in entries]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)  # type: ignore[arg-type]  # no exceptions left

    def post(self, key: K, entries: Sequence[E], on_error: Callable[[BaseException], None]) -> None:
        """Add ``entries`` without waiting; a failed entry is passed to ``on_error`` instead of raised."""
        if self._closed:
            raise ClosedError(f"{self.name} is closed")
        for entry in entries:
            self._add(key, entry).add_done_callback(lambda f: _report(f, on_error))

    def _add(self, key: K, entry: E) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        batch = self._pending.setdefault(key, [])
        batch.append((entry, future))
        if len(batch) >= self.max_size:
            self._send_now(key)
        elif len(batch) == 1:
            wait = self.busy_linger if self._in_flight.get(key) else self.linger
            self._timers[key] = loop.call_later(wait, self._send_now, key)
        return future

    def _send_now(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        batch = self._pending.pop(key, None)
        if batch:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            task = asyncio.get_running_loop().create_task(self._run(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, key: K, batch: list[tuple[E, asyncio.Future[R]]]) -> None:
        try:
            await self._run_batch(key, batch)
        finally:
            left = self._in_flight.pop(key, 1) - 1
            if left > 0:
                self._in_flight[key] = left
            elif self.adaptive and key in self._pending:  # it waited for the calls in flight: they are back
                self._send_now(key)

    async def _run_batch(self, key: K, batch: list[tuple[E, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush(key, [entry for entry, _ in batch])
            if len(results) != len(batch):  # pragma: no cover - a bug in the flush function
                raise RuntimeError(f"{self.name}: flush returned {len(results)} results for {len(batch)} entries")
        except BaseException as exc:  # every waiting caller must hear about it, even on cancellation
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled; the entry was sent anyway
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def drain(self) -> None:
        """Send every pending entry now and wait for all in-flight batches."""
        for key in list(self._pending):
            self._send_now(key)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Refuse new entries, then :meth:`drain` (idempotent)."""
        self._closed = True
        await self.drain()


def _report(future: asyncio.Future[R], on_error: Callable[[BaseException], None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        on_error(future.exception())  # type: ignore[arg-type]  # checked just above
