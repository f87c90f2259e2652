"""The app's tasks. Each run appends to ``$E2E_LOG_DIR/<marker>`` so a test can
count starts and completions per job across worker processes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from asyncmq.tasks import task


def _log(marker: str, event: str) -> None:
    path = Path(os.environ["E2E_LOG_DIR"]) / marker
    with path.open("a") as handle:
        handle.write(f"{event} {os.getpid()}\n")
    if event == "start":  # one shared, append-only line per start: the global start order
        with (Path(os.environ["E2E_LOG_DIR"]) / "_starts").open("a") as handle:
            handle.write(f"{marker}\n")


@task(queue="e2e")
async def work(marker: str, seconds: float = 0.0) -> str:
    _log(marker, "start")
    # A test may run a job long on one worker and short on the others (E2E_SECONDS_SCALE).
    seconds *= float(os.environ.get("E2E_SECONDS_SCALE", "1"))
    if seconds:
        await asyncio.sleep(seconds)
    _log(marker, "done")
    return f"done:{marker}"


@task(queue="e2e")
async def explode(marker: str) -> None:
    _log(marker, "start")
    raise RuntimeError(f"{marker} exploded")


@task(queue="e2e")
async def flaky(marker: str) -> str:
    """Fails on its first run, succeeds on the next."""
    _log(marker, "start")
    if (Path(os.environ["E2E_LOG_DIR"]) / marker).read_text().count("start") == 1:
        raise RuntimeError(f"{marker}: first run fails")
    _log(marker, "done")
    return f"done:{marker}"
