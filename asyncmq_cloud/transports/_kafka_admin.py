"""The topic side of :class:`~asyncmq_cloud.transports.kafka.KafkaTransport`: admin and offset calls.

* :func:`create_topics`: ``provision``'s idempotent ``CreateTopics`` of a queue's topic and
  dead-letter topic;
* :func:`ensure_topic`: a queue's topic, checked to exist once per process (or created with
  ``create_missing``, else :class:`~asyncmq_cloud.errors.ResourceMissingError`);
* :func:`topic_lags` / :func:`purge_topic`: the group's lag on each partition of the topic
  and ``DeleteRecords`` over every partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.errors import for_code

from asyncmq_cloud.errors import ResourceMissingError
from asyncmq_cloud.resources import KafkaTopicSpec
from asyncmq_cloud.transports._kafka_errors import kafka_errors, translate_kafka_error

if TYPE_CHECKING:
    from asyncmq_cloud.transports.kafka import KafkaTransport

#: Error code of CreateTopics for a topic that exists (Kafka protocol: TOPIC_ALREADY_EXISTS).
TOPIC_ALREADY_EXISTS = 36


async def create_topics(admin: AIOKafkaAdminClient, spec: KafkaTopicSpec, resource: str) -> list[str]:
    """Create the topic and dead-letter topic of ``spec`` unless they exist; their names."""
    topics = [spec.name, spec.dlq_name]
    new = [NewTopic(t, spec.partitions, spec.replication_factor, topic_configs=dict(spec.config)) for t in topics]
    with kafka_errors(resource, "CreateTopics"):
        reply = await admin.create_topics(new)
    for name, code, *rest in reply.topic_errors:
        if code and code != TOPIC_ALREADY_EXISTS:
            message = rest[0] if rest and rest[0] else ""
            raise translate_kafka_error(for_code(code)(message), f"Kafka topic {name!r}")
    return topics


async def ensure_topic(transport: KafkaTransport, queue: str) -> str:
    """The queue's topic, checked to exist once per process (or created with ``create_missing``)."""
    topic = transport.topic(queue)
    if topic in transport._topics_ok:
        return topic
    admin = await transport._admin_client()
    with kafka_errors(transport._resource(queue), "Metadata"):
        existing = set(await admin.list_topics())
    if topic in existing:
        transport._topics_ok.add(topic)
    elif transport.config.create_missing:
        await transport.provision(queue)
    else:
        raise ResourceMissingError(
            f"{transport._resource(queue)} does not exist: create it with `asyncmq-cloud provision --queue {queue}` "
            "or `await backend.provision([...])` (development), your topic tooling (production), "
            "or set create_missing=True"
        )
    return topic


async def _partitions(transport: KafkaTransport, queue: str) -> list[TopicPartition]:
    topic = await ensure_topic(transport, queue)
    admin = await transport._admin_client()
    with kafka_errors(transport._resource(queue), "Metadata"):
        described = await admin.describe_topics([topic])
    return [TopicPartition(topic, p["partition"]) for t in described for p in t["partitions"]]


async def _end_offsets(
    transport: KafkaTransport, queue: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    client = await transport._offsets_client()
    with kafka_errors(transport._resource(queue), "ListOffsets"):
        return dict(await client.end_offsets(partitions))


async def topic_lags(transport: KafkaTransport, queue: str) -> dict[int, int]:
    """The queue's group lag (records not yet committed) on each partition of its topic."""
    partitions = await _partitions(transport, queue)
    ends = await _end_offsets(transport, queue, partitions)
    admin = await transport._admin_client()
    with kafka_errors(transport._resource(queue), "OffsetFetch"):
        committed = await admin.list_consumer_group_offsets(transport.config.group(queue), partitions=partitions)
        starts = await (await transport._offsets_client()).beginning_offsets(partitions)
    lags = {}
    for tp in partitions:
        meta = committed.get(tp)
        start = meta.offset if meta is not None and meta.offset >= 0 else starts.get(tp, 0)
        lags[tp.partition] = max(0, ends.get(tp, 0) - max(start, starts.get(tp, 0)))
    return lags


async def purge_topic(transport: KafkaTransport, queue: str) -> None:
    """Delete every record of the queue's topic (Kafka ``DeleteRecords`` up to the end offsets)."""
    partitions = await _partitions(transport, queue)
    ends = await _end_offsets(transport, queue, partitions)
    admin = await transport._admin_client()
    with kafka_errors(transport._resource(queue), "DeleteRecords"):
        await admin.delete_records({tp: RecordsToDelete(end) for tp, end in ends.items() if end > 0})


__all__ = ["TOPIC_ALREADY_EXISTS", "create_topics", "ensure_topic", "purge_topic", "topic_lags"]
