"""The one description of every AWS resource the code expects.

``provision`` (development), the tests and the Terraform drift test all read the
specs below; nothing else spells a table, index or TTL attribute name.

Resources described here:

* the DynamoDB **jobs table** (:func:`jobs_table`, used by
  :class:`~asyncmq_cloud.stores.dynamodb.DynamoDBStateStore`): single-table
  design with string keys ``pk``/``sk``, the ``by_state`` GSI
  (``{queue}#{state}`` / created time, keys only) and the sparse ``active``
  GSI (``ACTIVE#{shard}`` / heartbeat, keys only); TTL attribute ``expires_at``;
  on-demand billing.
* the DynamoDB **delay table** (:func:`delay_table`, used by
  :class:`~asyncmq_cloud.delays.dynamodb.DynamoDBDelayStore`): string keys
  ``pk`` (``Q#{queue}#S#{shard}``) / ``sk`` (job id), the ``due`` GSI
  (``due_pk = "{queue}#{bucket}"`` / ``run_at`` as a number, keys only); TTL
  attribute ``expires_at`` for clean-up of orphans only, never as the timer;
  on-demand billing.

* an **SQS queue** per AsyncMQ queue and its dead-letter queue
  (:class:`SqsQueueSpec`, used by :class:`~asyncmq_cloud.transports.sqs.SQSTransport`):
  ``{prefix}{queue}`` (+ ``.fifo``) and ``{prefix}{queue}-dlq`` (+ ``.fifo``), both
  ≤ 80 of ``[A-Za-z0-9_-]``; the queue's ``RedrivePolicy`` points at the DLQ with
  ``maxReceiveCount``; visibility timeout, retention and optional KMS.

* a **Kafka topic** per AsyncMQ queue and its dead-letter topic (:class:`KafkaTopicSpec`,
  used by :class:`~asyncmq_cloud.transports.kafka.KafkaTransport`): ``{prefix}{queue}`` and
  ``{prefix}{queue}-dlq``, ≤ 249 of ``[A-Za-z0-9._-]``, with the configured partitions,
  replication factor and topic configs; consumer group ``{group_prefix}{queue}``.
"""

from __future__ import annotations

from asyncmq_cloud.resources.dynamodb import (
    ACTIVE_INDEX,
    ACTIVE_PK,
    ACTIVE_SK,
    BY_STATE_INDEX,
    BY_STATE_PK,
    BY_STATE_SK,
    DELAY_TABLE_NAME,
    DUE_INDEX,
    DUE_PK,
    DUE_SK,
    JOBS_TABLE_NAME,
    PK,
    READY_INDEX,
    READY_PK,
    READY_SK,
    RESOURCES,
    SK,
    TABLE_NAME_MAX,
    TABLE_NAME_MIN,
    TABLE_NAME_RE,
    TTL_ATTRIBUTE,
    IndexSpec,
    KeyAttribute,
    TableSpec,
    delay_table,
    jobs_table,
    provision_table,
    validate_table_name,
)
from asyncmq_cloud.resources.kafka import KafkaTopicSpec
from asyncmq_cloud.resources.sqs import (
    SQS_DLQ_SUFFIX,
    SQS_FIFO_SUFFIX,
    SQS_MAX_RETENTION_SECONDS,
    SQS_QUEUE_NAME_MAX,
    SQS_QUEUE_NAME_RE,
    SqsQueueSpec,
    validate_sqs_queue_name,
)

__all__ = [
    "ACTIVE_INDEX",
    "ACTIVE_PK",
    "ACTIVE_SK",
    "BY_STATE_INDEX",
    "BY_STATE_PK",
    "BY_STATE_SK",
    "DELAY_TABLE_NAME",
    "DUE_INDEX",
    "DUE_PK",
    "DUE_SK",
    "JOBS_TABLE_NAME",
    "PK",
    "READY_INDEX",
    "READY_PK",
    "READY_SK",
    "RESOURCES",
    "SK",
    "SQS_DLQ_SUFFIX",
    "SQS_FIFO_SUFFIX",
    "SQS_MAX_RETENTION_SECONDS",
    "SQS_QUEUE_NAME_MAX",
    "SQS_QUEUE_NAME_RE",
    "TABLE_NAME_MAX",
    "TABLE_NAME_MIN",
    "TABLE_NAME_RE",
    "TTL_ATTRIBUTE",
    "IndexSpec",
    "KafkaTopicSpec",
    "KeyAttribute",
    "SqsQueueSpec",
    "TableSpec",
    "delay_table",
    "jobs_table",
    "provision_table",
    "validate_sqs_queue_name",
    "validate_table_name",
]
