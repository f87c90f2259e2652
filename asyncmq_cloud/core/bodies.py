"""Whether a store read needs the job's whole payload or only its metadata.

A store that keeps large payload bodies elsewhere (the S3 claim check,
:mod:`asyncmq_cloud.stores.offload`) fetches them on every read that returns a record,
unless the read runs inside :func:`metadata_only`: the lifecycle marks the reads that look
only at a job's state, timestamps and ids (``clean``/``purge`` listings, the repair pass,
the state and cancel checks, dependency checks), so those never download a body. Other
stores ignore it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_METADATA_ONLY: ContextVar[bool] = ContextVar("asyncmq_cloud_metadata_only", default=False)


@contextmanager
def metadata_only() -> Iterator[None]:
    """Within the block (and the tasks it starts), store reads may leave bodies unfetched."""
    token = _METADATA_ONLY.set(True)
    try:
        yield
    finally:
        _METADATA_ONLY.reset(token)


async def metadata_of(call: Awaitable[T]) -> T:
    """Await ``call`` (a store read not started yet) inside :func:`metadata_only`."""
    with metadata_only():
        return await call


def wants_bodies() -> bool:
    """False inside :func:`metadata_only`."""
    return not _METADATA_ONLY.get()


__all__ = ["metadata_of", "metadata_only", "wants_bodies"]
