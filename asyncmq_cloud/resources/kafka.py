"""Kafka resources: :class:`KafkaTopicSpec` (a queue's topic, its dead-letter topic and group)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KafkaTopicSpec:
    """A Kafka topic and its dead-letter topic, as ``provision`` creates them.

    Attributes:
        name: the topic of the queue.
        dlq_name: its dead-letter topic.
        group: the consumer group that runs the queue.
        partitions: the partition count of both topics.
        replication_factor: the replication factor of both topics.
        config: further topic configs (``retention.ms`` ...).
    """

    name: str
    dlq_name: str
    group: str
    partitions: int
    replication_factor: int
    config: tuple[tuple[str, str], ...] = ()
