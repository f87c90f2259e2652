"""``asyncmq-cloud health [--queue Q ...] [--timeout S]``: a probe of backend connectivity.

Exit 0 when the backend's stores (and each ``--queue`` on the broker) answer within
``--timeout`` seconds (transient errors are retried inside it), else 1 with the reason
on stderr: a Kubernetes probe that does not depend on jobs existing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from asyncmq_cloud.commands._settings import load_backend
from asyncmq_cloud.core.lifecycle import CloudBackend
from asyncmq_cloud.errors import TransientError


class _Probe:
    """Asks the state store and the broker until both answer; keeps the last transient error."""

    def __init__(self, backend: CloudBackend, queues: list[str]) -> None:
        self.backend, self.queues = backend, queues
        self.last: TransientError | None = None

    async def answered(self) -> None:
        """Return once the store and the broker answered; every non-transient error propagates."""
        while True:  # a TransientError (e.g. a broker still electing its group coordinator) is retried
            try:
                await self.backend.list_queues()  # the state store answers
                for queue in self.queues:
                    await self.backend.transport.depth(queue)  # the broker has the queue
                return
            except TransientError as exc:
                self.last = exc
                await asyncio.sleep(0.5)


async def run_health(args: argparse.Namespace) -> int:
    """``asyncmq-cloud health``: 0 when the backend answers within ``--timeout``, else 1.

    Args:
        args: the parsed ``health`` arguments (``settings``, ``queue``, ``timeout``).
    """
    backend = load_backend(args.settings)
    probe = _Probe(backend, list(args.queue))
    try:
        async with asyncio.timeout(args.timeout):
            await probe.answered()
    except TimeoutError:
        last = probe.last
        reason = f" (last error: {type(last).__name__}: {last})" if last else ""
        print(f"unhealthy: no answer within {args.timeout}s{reason}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        try:
            await backend.close()
        except Exception:  # pragma: no cover - a probe must answer even if close fails
            pass
    print("healthy", flush=True)
    return 0
