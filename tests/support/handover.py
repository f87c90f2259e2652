"""Helpers of the delayed-job hand-over tests: scanner processes and the send log.

Used by ``tests/test_delay_handover.py`` (Redis stores) and
``tests/test_delay_handover_dynamodb.py`` (DynamoDB stores); both observe the
hand-over through :class:`~tests.support.redis_transport.RedisListTransport`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.redis_transport import sent_log

ROOT = Path(__file__).resolve().parents[2]


class Scanners:
    """Scanner processes (``asyncmq-cloud scanner run``) of one test; all stopped (or killed) at the end.

    Args:
        settings: the AsyncMQ settings class path every scanner loads.
        env: extra environment for the processes (service addresses, key prefixes).
        tmp: where each scanner's log is written.
    """

    def __init__(self, settings: str, env: Mapping[str, str], tmp: Path) -> None:
        self.settings = settings
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, queue: str, *, grace: float = 3600, interval: float = 0.2) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"scanner-{len(self.procs)}.log").open("wb")
        cmd = [sys.executable, "-m", "asyncmq_cloud.cli", "--settings", self.settings, "scanner", "run"]
        cmd += ["--queue", queue, "--interval", str(interval), "--report-every", "1"]
        env = {**self.env, "HANDOVER_REPAIR_GRACE": str(grace)}
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=15))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("scanner-*.log")))


async def wait_for_sent(client: Any, prefix: str, queue: str, expected: set[str], timeout: float) -> list[Any]:
    """The send log once it names every id of ``expected`` (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        log = await sent_log(client, prefix, queue)
        if {entry["id"] for entry in log} >= expected or time.monotonic() > deadline:
            return log
        await asyncio.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
