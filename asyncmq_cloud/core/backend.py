"""The backend object: its three components, a lazy start on any event loop, and the administrative hooks.

:class:`BackendCore` holds the :class:`StateStore`, :class:`Transport` and
:class:`DelayStore`, starts them on first use (and again on a new event loop, see
:func:`lazily_started`), closes them, and answers AsyncMQ's administrative hooks
(job data, listing, pause/resume, repeatables, workers, locks, events) by
delegating to small collaborators it owns: :class:`JobAdmin`, :class:`PauseFlags`,
:class:`Repeatables` and :class:`WorkerRegistry`. The job lifecycle itself is
``CloudBackend`` (``core/lifecycle.py``).

Reads AsyncMQ asks for often, and what answers them:

* ``is_queue_paused`` (every worker loop iteration): a per-queue cache no older than
  ``pause_cache_ttl`` (1 s); pause/resume through this backend update it at once,
  another process's pause is seen within 1 s. At most one store read per second.
* ``get_due_repeatables`` then ``list_repeatables`` (each scheduler pass): one read,
  the second call reuses it (see ``core/repeatables.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

import anyio
from asyncmq.backends.base import BaseBackend, DelayedInfo, RepeatableInfo, WorkerInfo
from asyncmq.core.event import event_emitter
from asyncmq.core.inspection import JobInspectionPage

from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.core.admin import JobAdmin, SchedulerLock, StoreLock, scheduler_queue
from asyncmq_cloud.core.bodies import metadata_only
from asyncmq_cloud.core.protocols import DelayStore, StateStore, StateSummary, Transport
from asyncmq_cloud.core.registry import PauseFlags, WorkerRegistry
from asyncmq_cloud.core.repeatables import Repeatables
from asyncmq_cloud.core.validation import validate_queue_name
from asyncmq_cloud.errors import ClosedError, TransientError

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec

logger = logging.getLogger("asyncmq_cloud.lifecycle")

B = TypeVar("B", bound="BackendCore")
P = ParamSpec("P")
R = TypeVar("R")


def lazily_started(
    method: Callable[Concatenate[B, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[B, P], Coroutine[Any, Any, R]]:
    """Start the backend (or start it again on a new event loop) before ``method`` runs.

    AsyncMQ's CLI runs each backend call in a fresh event loop: clients bound to a
    finished loop can be neither used nor closed, so the backend forgets them and
    starts again (decision 26). Methods that can answer from memory (cached flags,
    a fresh claim) call :meth:`BackendCore._ensure_started` themselves, after that
    answer.

    Args:
        method: an async method of a :class:`BackendCore`.
    """

    @functools.wraps(method)
    async def started(self: B, /, *args: P.args, **kwargs: P.kwargs) -> R:
        await self._ensure_started()
        return await method(self, *args, **kwargs)

    return started


class BackendCore(BaseBackend):
    """Components, lazy start and the administrative hooks of a ``CloudBackend``.

    Args:
        store: the job state store.
        transport: the broker that carries job references.
        delay_store: where delayed ids wait when the broker cannot hold them.
        config: lifecycle knobs (see :class:`LifecycleConfig`).
    """

    def __init__(
        self,
        store: StateStore,
        transport: Transport,
        delay_store: DelayStore,
        *,
        config: LifecycleConfig | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.delay_store = delay_store
        self.config = config or LifecycleConfig()
        self._jobs = JobAdmin(self)
        self._pauses = PauseFlags(self)
        self._repeatables = Repeatables(self)
        self._workers = WorkerRegistry(self)
        self._started = False
        self._closed = False
        self._start_lock = anyio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle of the backend object ------------------------------------------
    async def start(self) -> None:
        """Start the store, delay store and transport (idempotent)."""
        if self._closed:
            raise ClosedError(f"{type(self).__name__} is closed; create a new one")
        async with self._start_lock:
            if self._started:
                return
            await self.store.start()
            await self.delay_store.start()
            await self.transport.start()
            self._loop = asyncio.get_running_loop()
            self._started = True

    async def _ensure_started(self) -> None:
        """Start on first use; after the loop that started the backend ended, forget it and start again."""
        if self._started and self._loop is not None and self._loop.is_closed():
            self._rebind()
        if not self._started:
            await self.start()

    def _rebind(self) -> None:
        """Forget the components' loop-bound state after their event loop ended.

        Presets that build their components (``SQSBackend``) rebuild them; the
        memory pieces need nothing. Components given as objects that hold
        loop-bound clients cannot be rebuilt here: create the backend per loop.
        """
        logger.debug("%s: event loop changed; starting again", type(self).__name__)
        self._started = False
        self._start_lock = anyio.Lock()

    def resources(self, queues: Sequence[str] = ()) -> list[ResourceSpec]:
        """Every table, queue and topic ``provision(queues)`` creates, each once, in that order (no I/O).

        Args:
            queues: the AsyncMQ queues whose queue/topic on the broker is wanted.
        """
        names = [validate_queue_name(queue) for queue in queues]
        parts = (self.store, self.delay_store, self.transport)
        return list(dict.fromkeys(spec for part in parts for spec in part.resources(names)))

    @lazily_started
    async def provision(self, queues: Sequence[str] = ()) -> None:
        """Create every table/key/queue the backend needs (idempotent, for local development)."""
        await self.store.provision()
        await self.delay_store.provision()
        for queue in queues:
            await self.transport.provision(validate_queue_name(queue))

    async def close(self) -> None:
        """Close the transport, the delay store and the store (idempotent, shielded).

        No early return when not started: a start that failed half-way (the transport
        refused, the stores were up) left components open; each close is idempotent.
        """
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self.transport.close()
            await self.delay_store.close()
            await self.store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- job data ------------------------------------------------------------------------
    @lazily_started
    async def update_job_state(self, queue_name: str, job_id: str, state: str) -> None:
        await self.store.set_state(queue_name, job_id, state)

    @lazily_started
    async def get_job_state(self, queue_name: str, job_id: str) -> str | None:
        return await self._jobs.state(queue_name, job_id)

    @lazily_started
    async def save_job_result(self, queue_name: str, job_id: str, result: Any) -> None:
        await self._jobs.patch(queue_name, job_id, {"result": result})

    @lazily_started
    async def get_job_result(self, queue_name: str, job_id: str) -> Any | None:
        return await self._jobs.result(queue_name, job_id)

    @lazily_started
    async def save_job_progress(self, queue_name: str, job_id: str, progress: float) -> None:
        await self._jobs.patch(queue_name, job_id, {"progress": progress})

    @lazily_started
    async def save_job_payload(self, queue_name: str, payload: dict[str, Any]) -> None:
        await self._jobs.save_payload(queue_name, payload)

    @lazily_started
    async def get_job(self, queue_name: str, job_id: str) -> dict[str, Any] | None:
        return await self._jobs.get(queue_name, job_id)

    # -- listing and counting -----------------------------------------------------------
    @lazily_started
    async def list_jobs(self, queue: str, state: str) -> list[dict[str, Any]]:
        return await self._jobs.list_jobs(queue, state)

    @lazily_started
    async def inspect_jobs(
        self,
        queue_name: str,
        state: str,
        *,
        page: int = 1,
        size: int = 20,
        q: str = "",
        task: str = "",
        job_id: str = "",
        sort: str = "newest",
    ) -> JobInspectionPage:
        """One page of a state's jobs (AsyncMQ's dashboard job lists): without a filter, the
        count and the page's records only, newest (or oldest) added first; decision 65."""
        filters = {"q": q, "task": task, "job_id": job_id}
        return await self._jobs.inspect(queue_name, state, page, size, filters, sort)

    @lazily_started
    async def summarize_states(
        self, queue_name: str, states: Sequence[str], newest: int = 0
    ) -> dict[str, StateSummary]:
        """Count and newest ``newest`` jobs of each of ``states`` from the state indexes (not a
        ``BaseBackend`` method; the dashboard overview reads it)."""
        return await self._jobs.summarize(queue_name, states, newest)

    @lazily_started
    async def get_job_counts(self, queue_name: str, *types: str) -> dict[str, int]:
        return await self._jobs.counts(queue_name, types)

    @lazily_started
    async def list_delayed(self, queue_name: str) -> list[DelayedInfo]:
        return await self._jobs.list_delayed(queue_name)

    @lazily_started
    async def queue_stats(self, queue_name: str) -> dict[str, int]:
        return await self._jobs.queue_stats(queue_name)

    @lazily_started
    async def broker_stats(self, queue_name: str) -> dict[str, int]:
        """What the broker itself reports for ``queue_name`` (not a ``BaseBackend`` method):
        ``depth``, the references it holds, and on SQS ``visible``, ``in_flight``, ``delayed``
        (one ``GetQueueAttributes``), on Kafka each partition's lag (``partition-N``).
        ``queue_stats`` keeps AsyncMQ's keys: decision 59."""
        return await self._jobs.broker_stats(queue_name)

    @lazily_started
    async def list_queues(self) -> list[str]:
        return await self.store.list_queues()

    async def purge(self, queue_name: str, state: str, older_than: float | None = None) -> None:
        with metadata_only():  # ids and timestamps: no payload body is fetched to delete a job
            await self._purge_jobs_by_state(queue_name, state, older_than)

    async def obliterate_queue(self, queue_name: str, *, force: bool = False) -> list[str]:
        with metadata_only():
            return await super().obliterate_queue(queue_name, force=force)

    async def clean_jobs(
        self, queue_name: str, *, state: str = "completed", grace: float = 0, limit: int = 0
    ) -> list[str]:
        with metadata_only():
            return await super().clean_jobs(queue_name, state=state, grace=grace, limit=limit)

    # -- pause / resume -----------------------------------------------------------------
    @lazily_started
    async def pause_queue(self, queue_name: str) -> None:
        await self._pauses.set(validate_queue_name(queue_name), True)

    @lazily_started
    async def resume_queue(self, queue_name: str) -> None:
        await self._pauses.set(queue_name, False)

    async def is_queue_paused(self, queue_name: str) -> bool:
        """From the flag cache when fresh (no start needed), else one store read."""
        cached = self._pauses.fresh(queue_name)
        if cached is not None:
            return cached
        await self._ensure_started()
        return await self._pauses.read(queue_name)

    @lazily_started
    async def paused_queues(self, queue_names: Sequence[str]) -> set[str]:
        """Those of ``queue_names`` that are paused, in one store read (not a ``BaseBackend``
        method; the dashboard overview reads it)."""
        return await self.store.paused_queues(list(queue_names))

    # -- repeatables ------------------------------------------------------------------------
    @lazily_started
    async def upsert_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> float:
        return await self._repeatables.upsert(queue_name, job_def)

    @lazily_started
    async def list_repeatables(self, queue_name: str) -> list[RepeatableInfo]:
        return await self._repeatables.listed(queue_name)

    @lazily_started
    async def get_due_repeatables(self, queue_name: str) -> list[RepeatableInfo]:
        return await self._repeatables.due(queue_name)

    @lazily_started
    async def advance_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> float:
        return await self._repeatables.advance(queue_name, job_def)

    @lazily_started
    async def remove_repeatable(self, queue_name: str, job_def: dict[str, Any] | str) -> None:
        await self._repeatables.remove(queue_name, job_def)

    @lazily_started
    async def pause_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> None:
        await self._repeatables.pause(queue_name, job_def)

    @lazily_started
    async def resume_repeatable(self, queue_name: str, job_def: dict[str, Any]) -> float:
        return await self._repeatables.resume(queue_name, job_def)

    # -- workers ------------------------------------------------------------------------------
    @lazily_started
    async def register_worker(self, worker_id: str, queue: str, concurrency: int, timestamp: float) -> None:
        """A store outage is logged, not raised: AsyncMQ's first registration is outside its
        error handling, and the next heartbeat registers the worker again."""
        try:
            await self._workers.register(worker_id, queue, concurrency, timestamp)
        except TransientError as exc:
            logger.warning("registering worker %s failed (retried at its next heartbeat): %s", worker_id, exc)

    async def deregister_worker(self, worker_id: str) -> None:
        """Shielded and bounded: AsyncMQ calls this from an already-cancelled scope. A store
        outage is logged: the entry then expires with its heartbeat."""
        self._workers.forget(worker_id)
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.deregister_timeout) as bound:
            try:
                await self._ensure_started()
                await self._workers.deregister(worker_id)
            except TransientError as exc:
                logger.warning("deregistering worker %s failed (its entry expires): %s", worker_id, exc)
        if bound.cancelled_caught:
            logger.warning(
                "deregistering worker %s took over %.1fs (deregister_timeout); its entry expires with its heartbeat",
                worker_id,
                self.config.deregister_timeout,
            )

    def local_worker_ids(self) -> list[str]:
        """The workers registered through this backend object and not deregistered yet."""
        return self._workers.ids()

    @lazily_started
    async def list_workers(self) -> list[WorkerInfo]:
        return await self._workers.live()

    # -- locks, events, health -------------------------------------------------------------
    @lazily_started
    async def create_lock(self, key: str, ttl: int) -> StoreLock:
        """A store lock; AsyncMQ's repeatable-scheduler lock of a queue with no repeatable is
        taken in process (``core/repeatables.py``, ``LifecycleConfig.repeatables_refresh``)."""
        queue = scheduler_queue(key)
        if queue is not None:
            return SchedulerLock(self.store, key, float(ttl), queue, self._repeatables)
        return StoreLock(self.store, key, float(ttl))

    async def emit_event(self, event: str, data: dict[str, Any]) -> None:
        """Events go to AsyncMQ's in-process emitter (as its own backends do)."""
        await event_emitter.emit(event, data)

    @lazily_started
    async def health_check(self) -> None:
        await self.store.is_paused("__health__")
