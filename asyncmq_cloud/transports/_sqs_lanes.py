"""Priority lanes of :class:`~asyncmq_cloud.transports.sqs.SQSTransport` (``priority_lanes > 1``).

An AsyncMQ queue gets one SQS queue per band of AsyncMQ priorities (a lower number is more
urgent, as in AsyncMQ). Lane ``i`` takes priorities up to ``bounds[i]``, the last lane the
rest (``SQSTransportConfig.bounds``: with 3 lanes ``-2 | 3-5 | 6-``). The lane of AsyncMQ's
default priority (5) is the queue's own SQS queue, so turning lanes on keeps its messages;
the others are ``{queue}-p{i}``. Every lane redrives to the queue's one dead-letter queue.

A receive reads the lanes most urgent first, each with a short poll, until it has what it
asked for; a lane found empty is not polled again for :data:`EMPTY_LANE_RECHECK` seconds
(a send to it from this process clears that). Only when nothing was received does it
long-poll, on the most urgent lane. Every
:data:`LOWER_LANE_EVERY`-th receive of a queue starts at the next lower lane instead (in
turn), so a backlog of urgent jobs never starves the others: they get at least that share of
receives. The order is by lane, not exact within one (SQS standard queues do not keep order).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING

from asyncmq_cloud.transports._sqs_calls import STATS
from asyncmq_cloud.transports._sqs_config import MAX_RECEIVE_MESSAGES
from asyncmq_cloud.transports._sqs_queues import queue_url

if TYPE_CHECKING:
    from asyncmq_cloud.core.records import Delivery
    from asyncmq_cloud.transports.sqs import SQSTransport

#: AsyncMQ's default job priority: its lane is the queue's own SQS queue.
DEFAULT_PRIORITY = 5
#: Seconds a lane found empty by a short poll is not polled again (a send from this process
#: clears it): at most this much extra pick-up latency for a job arriving in an empty lane.
EMPTY_LANE_RECHECK = 0.25
#: One receive in this many starts at a lower lane (in turn): the share no backlog can take away.
LOWER_LANE_EVERY = 5


def lane_of(bounds: tuple[int, ...], priority: object) -> int:
    """The lane of a job with AsyncMQ ``priority`` (a non-number counts as the default)."""
    value = priority if isinstance(priority, int | float) and not isinstance(priority, bool) else DEFAULT_PRIORITY
    return bisect_left(bounds, value)


def base_lane(bounds: tuple[int, ...]) -> int:
    """The lane whose SQS queue is the queue's own (the default priority's lane)."""
    return lane_of(bounds, DEFAULT_PRIORITY)


def lane_suffix(bounds: tuple[int, ...], lane: int) -> str:
    """What lane ``lane``'s SQS queue name adds to the queue's (``""`` for the base lane)."""
    return "" if lane == base_lane(bounds) else f"-p{lane}"


def receive_order(lanes: int, turn: int) -> list[int]:
    """The lanes a receive reads, in order: most urgent first, except every
    :data:`LOWER_LANE_EVERY`-th ``turn``, which starts at a lower lane (each in turn)."""
    order = list(range(lanes))
    if lanes > 1 and turn % LOWER_LANE_EVERY == LOWER_LANE_EVERY - 1:
        start = 1 + (turn // LOWER_LANE_EVERY) % (lanes - 1)
        order = order[start:] + order[:start]
    return order


async def receive_lanes(transport: SQSTransport, queue: str, max_messages: int, wait: float) -> list[Delivery]:
    """A receive over the lanes of ``queue`` (see the module docstring): short polls in
    :func:`receive_order` until ``max_messages`` are in; a long poll of the most urgent lane
    only if every lane was empty."""
    turn = transport.turns.get(queue, 0)
    transport.turns[queue] = turn + 1
    got: list[Delivery] = []
    empty = transport.empty_until
    for lane in receive_order(transport.config.priority_lanes, turn):
        if empty.get((queue, lane), 0.0) > time.monotonic():
            continue  # found empty a moment ago: not asked again before EMPTY_LANE_RECHECK
        received = await transport.receive_from(queue, lane, max_messages - len(got), 0.0)
        if not received:
            empty[(queue, lane)] = time.monotonic() + EMPTY_LANE_RECHECK
        got += received
        if len(got) >= min(max_messages, MAX_RECEIVE_MESSAGES):
            return got
    if got:
        return got
    return await transport.receive_from(queue, 0, max_messages, wait)


def by_lane(
    bounds: tuple[int, ...], job_ids: Sequence[str], priorities: Sequence[object] | None
) -> dict[int | None, list[str]]:
    """``job_ids`` by the lane of their priority (``None``: the queue's own SQS queue)."""
    lanes: dict[int | None, list[str]] = {}
    for i, job_id in enumerate(job_ids):
        lane = None if priorities is None or not bounds else lane_of(bounds, priorities[i])
        lanes.setdefault(lane, []).append(job_id)
    return lanes


async def lane_stats(transport: SQSTransport, queue: str) -> dict[str, int]:
    """SQS's approximate counts of ``queue``, summed over its lanes."""
    client = await transport._client()
    totals = dict.fromkeys(STATS.values(), 0)
    for lane in transport.lane_names(queue) or [None]:
        url = await queue_url(transport, queue, lane)
        with transport._translated(queue):
            reply = await client.get_queue_attributes(QueueUrl=url, AttributeNames=list(STATS))  # type: ignore[arg-type]
        attributes: dict[str, str] = {str(k): v for k, v in reply.get("Attributes", {}).items()}
        for name, key in STATS.items():
            totals[key] += int(attributes.get(name, "0"))
    return totals


__all__ = [
    "DEFAULT_PRIORITY",
    "EMPTY_LANE_RECHECK",
    "LOWER_LANE_EVERY",
    "base_lane",
    "by_lane",
    "lane_of",
    "lane_stats",
    "lane_suffix",
    "receive_lanes",
    "receive_order",
]
