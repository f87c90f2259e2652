"""The DelayStore contract: one suite, run against every delay store."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

import pytest

from asyncmq_cloud.errors import ConfigurationError, InvalidNameError


@pytest.fixture
def queue() -> str:
    return f"d-{uuid.uuid4().hex[:8]}"


async def test_schedule_list_count_cancel(delay_store: Any, queue: str) -> None:
    now = time.time()
    await delay_store.schedule(queue, "b", now + 20)
    await delay_store.schedule(queue, "a", now + 10)
    assert [job_id for job_id, _ in await delay_store.list(queue)] == ["a", "b"]
    assert await delay_store.count(queue) == 2
    await delay_store.schedule(queue, "b", now + 5)  # re-scheduling replaces the time
    listed = await delay_store.list(queue)
    assert [job_id for job_id, _ in listed] == ["b", "a"] and listed[0][1] == pytest.approx(now + 5)
    assert await delay_store.cancel(queue, "a")
    assert not await delay_store.cancel(queue, "a")
    assert await delay_store.count(queue) == 1


async def test_claim_due_takes_only_due_in_order_and_removes(delay_store: Any, queue: str) -> None:
    now = time.time()
    for i in range(5):
        await delay_store.schedule(queue, f"due{i}", now - 10 + i)
    await delay_store.schedule(queue, "later", now + 60)
    first = await delay_store.claim_due(queue, now, 3)
    assert [job_id for job_id, _ in first] == ["due0", "due1", "due2"]
    assert first[0][1] == pytest.approx(now - 10)
    rest = await delay_store.claim_due(queue, now, 100)
    assert [job_id for job_id, _ in rest] == ["due3", "due4"]
    assert await delay_store.claim_due(queue, now, 100) == []
    assert [job_id for job_id, _ in await delay_store.list(queue)] == ["later"]


async def test_concurrent_claimers_get_each_id_once(delay_store: Any, queue: str) -> None:
    now = time.time()
    ids = [f"j{i}" for i in range(300)]
    for job_id in ids:
        await delay_store.schedule(queue, job_id, now - 1)

    async def claimer() -> list[str]:
        got: list[str] = []
        while batch := await delay_store.claim_due(queue, time.time(), 7):
            got.extend(job_id for job_id, _ in batch)
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(*(claimer() for _ in range(8)))
    claimed = [job_id for got in results for job_id in got]
    assert sorted(claimed) == sorted(ids)  # 0 lost, 0 duplicates


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_non_finite_run_at_is_refused(delay_store: Any, queue: str, bad: float) -> None:
    with pytest.raises(ConfigurationError, match="finite"):
        await delay_store.schedule(queue, "x", bad)
    assert await delay_store.count(queue) == 0


async def test_invalid_queue_name(delay_store: Any) -> None:
    with pytest.raises(InvalidNameError):
        await delay_store.schedule("no spaces", "x", time.time())
