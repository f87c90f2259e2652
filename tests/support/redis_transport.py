"""A test-only Transport over Redis lists, so separate processes share one broker.

``send`` appends ``{"id", "t"}`` to ``{prefix}:sent:{queue}`` (a permanent log
the hand-over tests count) and to ``{prefix}:ready:{queue}`` (what ``receive``
pops). No visibility timeout and no native delay: it exists to observe the
delayed-job hand-off across real processes, not as a product transport.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from asyncmq_cloud.core.protocols import Delivery, TransportCapabilities

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec


class RedisListTransport:
    capabilities = TransportCapabilities(max_native_delay=0.0, redelivers=True)

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None

    async def start(self) -> None:
        if self._redis is None:
            self._redis = aioredis.from_url(self.url)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def provision(self, queue: str) -> None:
        return None

    def check_queue(self, queue: str) -> None:
        return None  # Redis keys take any AsyncMQ queue name

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """Nothing: Redis lists appear on first write."""
        return []

    @property
    def client(self) -> aioredis.Redis:
        assert self._redis is not None, "transport not started"
        return self._redis

    async def send(
        self, queue: str, job_ids: Sequence[str], delay: float = 0.0, priorities: Any = None, groups: Any = None
    ) -> None:
        now = time.time()
        entries = [json.dumps({"id": job_id, "t": now}) for job_id in job_ids]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(f"{self.prefix}:sent:{queue}", *entries)
            pipe.rpush(f"{self.prefix}:ready:{queue}", *entries)
            await pipe.execute()

    async def receive(self, queue: str, max_messages: int, wait: float) -> list[Delivery]:
        raw: Any = await self.client.lpop(f"{self.prefix}:ready:{queue}", max_messages)
        received = time.monotonic()
        return [Delivery(queue, json.loads(item)["id"], received_at=received) for item in raw or []]

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        return None

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        return None

    async def release(self, delivery: Delivery, delay: float = 0.0) -> None:
        await self.send(delivery.queue, [delivery.job_id])

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        return None

    async def depth(self, queue: str) -> int:
        return int(await self.client.llen(f"{self.prefix}:ready:{queue}"))

    async def stats(self, queue: str) -> dict[str, int]:
        return {}

    async def purge(self, queue: str) -> None:
        await self.client.delete(f"{self.prefix}:ready:{queue}")


async def sent_log(client: aioredis.Redis, prefix: str, queue: str) -> list[dict[str, Any]]:
    """Every reference ever sent on ``queue`` (id and send time)."""
    return [json.loads(item) for item in await client.lrange(f"{prefix}:sent:{queue}", 0, -1)]
