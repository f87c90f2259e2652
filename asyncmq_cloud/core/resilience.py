"""Riding out transient errors while a job runs (decision 50).

AsyncMQ 0.10.1's ``handle_job`` catches nothing around the backend calls it makes
while a job runs: a :class:`~asyncmq_cloud.errors.TransientError` raised by a
completion write sends the job down AsyncMQ's failure path (a successful job
recorded ``failed``), and one raised from there ends the worker. So those calls
retry here, with capped exponential backoff and jitter, for as long as the job's
lease is ours: until ``lease_timeout`` after the last lease renewal the store
accepted (minus a margin), the moment another worker may take the job over.
A write still failing then is given up with one log line and the job is left to
that takeover (at-least-once); it is never turned into a failure. Permanent
errors are not retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from asyncmq_cloud.errors import TransientError

logger = logging.getLogger("asyncmq_cloud.lifecycle")

T = TypeVar("T")

#: First pause between two attempts (s); doubled per attempt up to :data:`BACKOFF_CAP`.
BACKOFF_BASE = 0.1
#: Longest pause between two attempts (s).
BACKOFF_CAP = 5.0
#: Retry window (s) where no lease bounds it (``lease_timeout`` 0: nothing takes a job over).
UNBOUNDED_LEASE_WINDOW = 60.0


class GaveUp(Exception):
    """A transient error outlasted the retry window.

    Args:
        what: what was being done (for the log line).
        last: the last transient error.
    """

    def __init__(self, what: str, last: TransientError) -> None:
        super().__init__(f"{what}: gave up after transient errors ({type(last).__name__}: {last})")
        self.what = what
        self.last = last


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Pause before retry ``attempt`` (0-based): capped exponential, jittered to 50-100 %.

    Args:
        attempt: how many attempts failed before this pause, minus one.
        rng: a uniform [0, 1) source (tests pass a fixed one).
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * float(2 ** min(attempt, 16)))
    return ceiling * (0.5 + rng() / 2)


async def retry_transient(op: Callable[[], Awaitable[T]], *, deadline: Callable[[], float], what: str) -> T:
    """Run ``op`` until it succeeds, retrying transient errors until ``deadline()``.

    Args:
        op: the call, made again on each attempt.
        deadline: returns the ``time.monotonic()`` value after which no attempt starts; asked
            after each failure, so a lease renewed meanwhile extends it.
        what: what is being done, for the log lines.

    Raises:
        GaveUp: a transient error outlasted ``deadline`` (logged by the caller).
        Exception: any non-transient error of ``op``, at once.
    """
    attempt = 0
    while True:
        try:
            result = await op()
        except TransientError as exc:
            pause, end = backoff(attempt), deadline()
            if time.monotonic() + pause >= end:
                raise GaveUp(what, exc) from exc
            if attempt == 0:
                left = end - time.monotonic()
                logger.warning("%s failed (%s: %s); retrying for up to %.0f s", what, type(exc).__name__, exc, left)
            attempt += 1
            await asyncio.sleep(pause)
        else:
            if attempt:
                logger.warning("%s succeeded after %d retr%s", what, attempt, "y" if attempt == 1 else "ies")
            return result


def window_from_now(seconds: float) -> Callable[[], float]:
    """A fixed deadline ``seconds`` from now, for :func:`retry_transient`."""
    end = time.monotonic() + seconds
    return lambda: end


class OutageLog:
    """Logs a run of failed dequeues once per :data:`interval` seconds, and the recovery once."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._logged = 0.0  # monotonic time of the last warning; 0 = no outage

    def failed(self, queue: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._logged >= self.interval:
            self._logged = now
            logger.warning("dequeue from %r failed, retrying: %s: %s", queue, type(exc).__name__, exc)

    def recovered(self, queue: str) -> None:
        if self._logged:
            self._logged = 0.0
            logger.warning("dequeue from %r works again", queue)
