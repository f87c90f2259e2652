"""Tasks used by the contract and end-to-end suites (task ids are ``tests.tasks.<name>``)."""

from __future__ import annotations

import asyncio
from collections import Counter

from asyncmq.tasks import task

CALLS: Counter[str] = Counter()
ORDER: list[str] = []


@task(queue="contract")
async def add(a: int, b: int) -> int:
    CALLS[f"add:{a}:{b}"] += 1
    return a + b


@task(queue="contract")
async def record(key: str) -> str:
    CALLS[key] += 1
    ORDER.append(key)
    return key


@task(queue="contract")
async def flaky(key: str, fail_times: int) -> str:
    CALLS[key] += 1
    if CALLS[key] <= fail_times:
        raise RuntimeError(f"planned failure {CALLS[key]} of {key}")
    return "ok"


@task(queue="contract")
async def fail_always(key: str) -> None:
    CALLS[key] += 1
    raise RuntimeError(f"{key} always fails")


@task(queue="contract")
async def sleep_then(key: str, seconds: float) -> str:
    await asyncio.sleep(seconds)
    CALLS[key] += 1
    return key


@task(queue="contract")
async def big(key: str, size: int) -> str:
    CALLS[key] += 1
    return "x" * size


@task(queue="contract")
async def echo(key: str, value: object) -> object:
    """Returns ``value`` as the task received it (after the payload's round trip)."""
    CALLS[key] += 1
    return value


@task(queue="contract")
async def unencodable(key: str) -> object:
    """Returns a value no JSON encoder accepts."""
    CALLS[key] += 1
    return {"handle": object()}


@task(queue="default")
async def traced(key: str) -> str:
    """Opens a span of its own: its parent shows where the task's context came from."""
    from opentelemetry import trace

    with trace.get_tracer("tests.tasks").start_as_current_span(f"task {key}"):
        return key
