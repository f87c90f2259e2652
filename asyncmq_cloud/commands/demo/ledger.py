"""AWS calls per job: every API call the demo's clients make, attributed to jobs.

One hook on the aiobotocore session (``before-parameter-build``, once per API
call; botocore's own retries of a call are not counted) records the operation
and its parameters. A call whose parameters name a job id is that job's cost
(shared evenly when one batch call names several jobs); the rest — empty
receives, worker registry, repeatable scheduler, delay-store scans — is the
*background* cost of running at all. Calls the demo makes only to watch the
jobs (its progress display) are not counted: they run under :meth:`quiet`.
"""

from __future__ import annotations

import contextvars
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("asyncmq_cloud_demo_quiet", default=False)


class CallLedger:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (service.Operation, parameters as JSON text)

    def register(self, session: Any) -> None:
        session.register("before-parameter-build", self._record)

    def _record(self, event_name: str = "", params: Any = None, **_: Any) -> None:
        if _quiet.get():
            return
        operation = event_name.removeprefix("before-parameter-build.")
        self.calls.append((operation, json.dumps(params, default=str, sort_keys=True)))

    @contextmanager
    def quiet(self) -> Iterator[None]:
        token = _quiet.set(True)
        try:
            yield
        finally:
            _quiet.reset(token)

    def by_operation(self) -> Counter[str]:
        return Counter(operation for operation, _ in self.calls)

    def attribute(self, job_ids: Iterable[str]) -> tuple[dict[str, float], float]:
        """Calls per job id (fractional for batch calls) and the background remainder."""
        ids = list(job_ids)
        per_job = dict.fromkeys(ids, 0.0)
        background = 0.0
        for _, text in self.calls:
            named = [job_id for job_id in ids if job_id in text]
            if not named:
                background += 1
                continue
            for job_id in named:
                per_job[job_id] += 1 / len(named)
        return per_job, background
