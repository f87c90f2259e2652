"""From counted units to dollars: per million jobs and per idle worker-month."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from asyncmq_cloud.commands.cost.prices import MONTH_SECONDS, PriceTable


@dataclass(frozen=True)
class Bill:
    """US dollars, split by what is billed."""

    sqs: float
    dynamodb_writes: float
    dynamodb_reads: float

    @property
    def total(self) -> float:
        return self.sqs + self.dynamodb_writes + self.dynamodb_reads


def price(billed: Mapping[str, float], per: float, prices: PriceTable, fifo: bool = False) -> Bill:
    """What ``billed`` units cost, divided by ``per`` and scaled to a million of it.

    ``billed``: ``sqs_requests`` (message actions: FIFO-priced on a FIFO queue),
    ``sqs_other_requests`` (always the standard rate), ``wru_table``, ``wru_index`` and ``rru``
    (missing: 0).
    Per million jobs: ``per`` = the jobs counted. Per million seconds: the seconds counted.
    """
    if per <= 0:
        raise ValueError("per must be positive")
    scale = 1.0 / per  # units per job (or second); a price per million units is $ per million jobs
    writes = billed.get("wru_table", 0) + billed.get("wru_index", 0)
    return Bill(
        sqs=(
            billed.get("sqs_requests", 0) * prices.sqs_per_million(fifo)
            + billed.get("sqs_other_requests", 0) * prices.sqs_standard_per_million
        )
        * scale,
        dynamodb_writes=writes * scale * prices.dynamodb_wru_per_million,
        dynamodb_reads=billed.get("rru", 0) * scale * prices.dynamodb_rru_per_million,
    )


def per_month(per_million_seconds: Bill) -> Bill:
    """An idle rate priced per million seconds, as dollars per 30-day month."""
    factor = MONTH_SECONDS / 1_000_000
    return Bill(
        sqs=per_million_seconds.sqs * factor,
        dynamodb_writes=per_million_seconds.dynamodb_writes * factor,
        dynamodb_reads=per_million_seconds.dynamodb_reads * factor,
    )
