"""The lifecycle every client-owning component shares (stores, delay stores, transports, clients).

A :class:`Component` is created unstarted, started once, closed once::

    async with RedisClients("redis://127.0.0.1:6379/0") as clients:   # start() ... close()
        ...

* ``start()`` and ``close()`` are idempotent; ``close()`` runs shielded from cancellation,
  so a cancelled worker still releases its connections;
* a closed component is never reopened: ``start()`` and every call raise
  :class:`~asyncmq_cloud.errors.ClosedError` ("<Class> is closed; create a new one");
* what ``_open(stack)`` opens goes on an ``AsyncExitStack`` that ``close()`` unwinds; if
  ``_open`` fails half way, what it opened is closed again and ``start()`` may be retried;
* children the component built for itself (:meth:`Component._adopt`) are closed with it,
  children the caller gave it (borrowed) are left open;
* a class with ``_warn_unclosed = True`` warns (``ResourceWarning``) when it is garbage
  collected started but not closed.

Subclasses implement the hooks ``_open(stack)`` (connect) and ``_shutdown()`` (flush and
release what is not on the stack); both default to nothing.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, ClassVar, Protocol, Self, TypeVar

import anyio

from asyncmq_cloud.errors import ClosedError


class Closeable(Protocol):
    """Anything with an async ``close()`` (a child component, a client)."""

    async def close(self) -> None: ...


_C = TypeVar("_C", bound=Closeable)


class Component:
    """Base of the client-owning components (see the module docstring).

    Class attributes a subclass may set:
        _closed_hint: appended to "<Class> is closed" in :class:`ClosedError` messages.
        _warn_unclosed: warn (``ResourceWarning``) when collected started but not closed.
    """

    _closed_hint: ClassVar[str] = "; create a new one"
    _warn_unclosed: ClassVar[bool] = False
    _unclosed_advice: ClassVar[str] = "; call close() or use 'async with'"

    _stack: AsyncExitStack
    _owned: list[Closeable]
    _started: bool
    _closed: bool

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._owned = []
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False

    # -- state -------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """True between a successful ``start()`` and ``close()``."""
        return self._started and not self._closed

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (for good)."""
        return self._closed

    def _closed_error(self) -> ClosedError:
        return ClosedError(f"{type(self).__name__} is closed{self._closed_hint}")

    def _check_open(self) -> None:
        """Raise :class:`ClosedError` after ``close()``."""
        if self._closed:
            raise self._closed_error()

    def _adopt(self, child: _C) -> _C:
        """Make ``child`` (built by this component for itself) close with it; returns ``child``."""
        self._owned.append(child)
        return child

    def _warns_unclosed(self) -> bool:
        """Whether collecting this started, unclosed instance warns (default: ``_warn_unclosed``)."""
        return self._warn_unclosed

    # -- hooks ---------------------------------------------------------------------------
    async def _open(self, stack: AsyncExitStack) -> None:
        """Connect; push what must be released onto ``stack``."""

    async def _shutdown(self) -> None:
        """Flush and release what is not on the stack (runs before the stack unwinds)."""

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the component (idempotent); :class:`ClosedError` after ``close()``."""
        self._check_open()
        if self._started:
            return
        async with self._start_lock:
            self._check_open()
            if self._started:
                return
            async with AsyncExitStack() as opened:
                await self._open(opened)
                self._stack.push_async_callback(opened.pop_all().aclose)
            self._started = True

    async def _ensure_started(self) -> None:
        """Start on first use; :class:`ClosedError` after ``close()``."""
        if not self._started or self._closed:
            await self.start()

    async def close(self) -> None:
        """Flush, close what was opened and the adopted children (idempotent, shielded)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            try:
                await self._shutdown()
            finally:
                try:
                    await self._stack.aclose()
                finally:
                    await _close_all(self._owned)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self, _warn: Callable[..., Any] = warnings.warn) -> None:
        if getattr(self, "_started", False) and not getattr(self, "_closed", True) and self._warns_unclosed():
            _warn(f"unclosed {self!r}{self._unclosed_advice}", ResourceWarning, source=self)


async def _close_all(children: list[Closeable]) -> None:
    """Close ``children`` last first; every one is closed even if an earlier close raised."""
    errors: list[BaseException] = []
    while children:
        try:
            await children.pop().close()
        except BaseException as exc:  # keep closing the rest, then raise the first
            errors.append(exc)
    if errors:
        raise errors[0]


__all__ = ["Closeable", "Component"]
