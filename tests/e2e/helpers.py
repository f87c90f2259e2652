"""Helpers of the end-to-end tests: worker processes under the real ``asyncmq`` CLI, run logs."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ASYNCMQ = str(Path(sys.executable).parent / "asyncmq")
QUEUE = "e2e"
TASK = "tests.e2e.app.tasks."


class Workers:
    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **extra_env: str) -> subprocess.Popen[bytes]:
        with (self.logdir / f"worker-{len(self.procs)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [ASYNCMQ, "worker", "start", QUEUE, "--concurrency", "4"],
                env={**self.env, **extra_env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logdir.glob("worker-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def runs(app_env: dict[str, str], marker: str) -> list[str]:
    path = Path(app_env["E2E_LOG_DIR"]) / marker
    return path.read_text().split("\n")[:-1] if path.exists() else []


async def wait_states(backend: Any, ids: list[str], state: str, timeout: float, workers: Workers) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = [await backend.get_job_state(QUEUE, job_id) for job_id in ids]
        if all(s == state for s in states):
            return
        assert time.monotonic() < deadline, f"states {states[:10]}...\n{workers.logs()}"
        await asyncio.sleep(0.25)


def cli(app_env: dict[str, str], *args: str) -> str:
    done = subprocess.run([ASYNCMQ, *args], env=app_env, cwd=ROOT, capture_output=True, timeout=120, check=False)
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, output
    return output
