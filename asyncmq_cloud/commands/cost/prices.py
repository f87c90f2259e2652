"""The price table ``asyncmq-cloud cost`` uses: one place, dated, with its sources.

Request-priced services only, us-east-1, list prices after the free tiers and below the
volume tiers:

* SQS: every API action is a request, and each 64 KB chunk of a request's payload is billed
  as one request (a 100 KB ``SendMessageBatch`` is 2). Standard queues $0.40 per million
  requests, FIFO $0.50 for the message actions (send, receive, delete, change visibility;
  the others at the standard rate). Fair queues (standard queues with a ``MessageGroupId``) add $0.10
  per million to the standard rate.
* DynamoDB on demand (standard table class): a write request unit (WRU) writes up to 1 KB
  of an item (the larger of the item before and after the write); a read request unit (RRU)
  reads up to 4 KB strongly consistent, an eventually consistent read is half of one.
  Transactional reads and writes cost twice. Each global secondary index an item write
  changes is written too, at the index's projected item size. $0.625 per million WRU,
  $0.125 per million RRU (the prices since AWS halved on-demand throughput in November 2024).

Not here, because they are not per request: Amazon MSK (broker-hours and storage),
ElastiCache for the Redis store (node-hours), DynamoDB storage ($0.25 per GB-month) and data
transfer. A job on ``KafkaBackend`` or on the Redis store costs those hours whatever the
traffic; ``cost`` prices the DynamoDB part of a Kafka backend.

Sources: https://aws.amazon.com/sqs/pricing/ and
https://aws.amazon.com/dynamodb/pricing/on-demand/ (the table was written without network
access, from the published list prices as they stood in 2025-2026: check them, and your
region's, before you budget; every figure ``cost`` prints scales linearly with them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PriceTable:
    """US dollars per million billed units."""

    as_of: str
    region: str
    sqs_standard_per_million: float
    sqs_fifo_per_million: float
    sqs_fair_surcharge_per_million: float
    dynamodb_wru_per_million: float
    dynamodb_rru_per_million: float
    sources: tuple[str, ...]

    def sqs_per_million(self, fifo: bool) -> float:
        return self.sqs_fifo_per_million if fifo else self.sqs_standard_per_million


PRICES = PriceTable(
    as_of="2026-12-07",
    region="us-east-1",
    sqs_standard_per_million=0.40,
    sqs_fifo_per_million=0.50,
    sqs_fair_surcharge_per_million=0.10,
    dynamodb_wru_per_million=0.625,
    dynamodb_rru_per_million=0.125,
    sources=("https://aws.amazon.com/sqs/pricing/", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
)

#: Seconds in the month the idle figures are priced for (30 days).
MONTH_SECONDS = 30 * 24 * 3600
#: One SQS billing chunk (bytes).
SQS_CHUNK = 64 * 1024
#: One write request unit, one read request unit (bytes).
WRITE_UNIT, READ_UNIT = 1024, 4096
