"""What every doctor check shares: the report, the time bound and the clean-up stack."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import TypeVar

from asyncmq_cloud.redact import mask_url

T = TypeVar("T")


class Report:
    """Prints ``LEVEL [check] text`` (and ``fix: ...``) lines and counts them by level."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, level: str, check: str, text: str, fix: str = "") -> None:
        self.counts[level] += 1
        print(f"{level:<4} [{check}] {text}" + (f"\n     fix: {fix}" if fix else ""), flush=True)

    def finish(self) -> int:
        c = self.counts
        verdict = "problems found" if c["FAIL"] else "all checks passed"
        print(f"doctor: {verdict} ({c['ok']} ok, {c['FAIL']} failed, {c['warn']} warnings)", flush=True)
        return 1 if c["FAIL"] else 0


class Checks:
    """The context of one doctor run: where to report, how long each call may take, what to close.

    Args:
        say: the report.
        queues: the ``--queue`` names to check.
        timeout: seconds for each call.
        stack: closes the probe clients when the run ends.
    """

    def __init__(self, say: Report, queues: list[str], timeout: float, stack: AsyncExitStack) -> None:
        self.say, self.queues, self.timeout, self.stack = say, queues, timeout, stack

    async def bounded(self, call: Awaitable[T]) -> T:
        """``await call``, at most ``timeout`` seconds (:class:`TimeoutError`)."""
        async with asyncio.timeout(self.timeout):
            return await call


def masked(url: str) -> str:
    """``url`` with its password and secret query values masked (:func:`asyncmq_cloud.redact.mask_url`)."""
    return mask_url(url)


def error_text(exc: BaseException) -> str:
    return "no answer within --timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"


def key_text(schema: list[dict[str, str]]) -> str:
    return "(" + ", ".join(f"{k['AttributeName']} {k['KeyType']}" for k in schema) + ")"
