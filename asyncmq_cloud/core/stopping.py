"""What a worker process asks of its backend when it stops, and what it runs."""

from __future__ import annotations

from collections import Counter

from asyncmq_cloud.core.leases import LeaseKeeper

#: Bound (s) on giving back the jobs still running when a worker stops.
RELEASE_TIMEOUT = 10.0


class WorkerStops:
    """Draining and giving back, over the backend's :class:`LeaseKeeper` (``_leases``)."""

    _leases: LeaseKeeper

    async def drain(self) -> None:
        """Stop taking jobs: ``dequeue`` answers None from now on, a receive in flight ends at
        once (a long poll is not waited out), a claim in flight gives back what it got, and the
        prefetched references go back to the broker at once."""
        self._leases.stopping = True
        self._leases.receives.interrupt()
        await self._leases.return_buffered(RELEASE_TIMEOUT)  # bounded: a broker away must not eat the grace

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` was called."""
        return self._leases.stopping

    @property
    def running(self) -> int:
        """Jobs this backend holds (claimed, their run not ended)."""
        return len(self._leases.held)

    def running_by_queue(self) -> Counter[str]:
        """The jobs this backend holds, counted by queue (the ``asyncmq_jobs_running`` gauge)."""
        return Counter(queue for queue, _ in list(self._leases.held))

    async def release_running(self, timeout: float = RELEASE_TIMEOUT) -> int:
        """Give back every job still held (call it once their runs were stopped): each goes
        ``active -> waiting`` (owner-checked) and its reference is released for immediate
        redelivery, so another worker takes it at once. Returns how many went back."""
        return await self._leases.release_running(timeout)

    def liveness(self) -> str | None:
        """None when the lease keeper runs wherever jobs are held, else what is wrong."""
        task = self._leases.task
        if self._leases.held and (task is None or task.done()):
            return f"the lease keeper is not running while {len(self._leases.held)} job(s) are held"
        return None
