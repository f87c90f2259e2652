"""The SQS queues behind :class:`~asyncmq_cloud.transports.sqs.SQSTransport`: their description and URLs.

* :func:`queue_spec`: the queue + DLQ description ``provision`` creates;
* :func:`queue_url`: a queue's URL, resolved once per transport (created on first use
  with ``create_missing``, else a missing queue raises ``ResourceMissingError``);
* :func:`provision_queue`: create or update the DLQ, then the queue with its redrive policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncmq_cloud.aws import error_code, translate_error
from asyncmq_cloud.resources import SqsQueueSpec
from asyncmq_cloud.transports._sqs_calls import MISSING, create_or_update
from asyncmq_cloud.transports._sqs_config import SQSTransportConfig

if TYPE_CHECKING:
    from asyncmq_cloud.transports.sqs import SQSTransport


def queue_spec(config: SQSTransportConfig, name: str, lanes: tuple[str, ...] = ()) -> SqsQueueSpec:
    """The queue + DLQ (+ priority ``lanes``) description of the SQS queue ``name`` under ``config``."""
    c = config
    return SqsQueueSpec(
        name=name,
        lanes=lanes,
        fifo=c.fifo,
        visibility_timeout=c.visibility_timeout,
        max_receive_count=c.max_receive_count,
        retention_seconds=c.retention_seconds,
        kms_key_id=c.kms_key_id,
        kms_data_key_reuse_seconds=c.kms_data_key_reuse_seconds,
        attributes=tuple(sorted(c.queue_attributes.items())),
    )


def _url_key(queue: str, lane: int | None) -> str:
    return queue if lane is None else f"{queue}\0p{lane}"


async def queue_url(transport: SQSTransport, queue: str, lane: int | None = None) -> str:
    """The URL of the SQS queue of AsyncMQ queue ``queue`` (of its priority ``lane``: ``None``
    is the queue's own), cached on the transport."""
    key = _url_key(queue, lane)
    url = transport._urls.get(key)
    if url is not None:
        return url
    name = transport.queue_name(queue, lane)
    async with transport._url_lock:
        if key not in transport._urls:
            client = await transport._client()
            try:
                transport._urls[key] = (await client.get_queue_url(QueueName=name))["QueueUrl"]
            except Exception as exc:
                resource = f"SQS queue {name!r} of AsyncMQ queue {queue!r}"
                error = translate_error(exc, resource=resource, create=transport._create_hint(queue))
                if not (transport.config.create_missing and error_code(exc) in MISSING):
                    raise error from exc
                await provision_queue(transport, queue)
        return transport._urls[key]


async def provision_queue(transport: SQSTransport, queue: str) -> str:
    """Create (or update) the DLQ, then the queue (and its priority lanes) with its redrive policy;
    the queue's URL."""
    spec = transport.spec(queue)
    client = await transport._client()
    with transport._translated(queue):
        dlq_url = await create_or_update(client, spec.dlq_name, spec.dlq_attributes())
        transport._urls[f"\0dlq:{queue}"] = dlq_url
        arn = (await client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))["Attributes"]
        attributes = spec.queue_attributes(arn["QueueArn"])
        for lane, name in transport.lane_names(queue).items():
            if name != spec.name:
                transport._urls[_url_key(queue, lane)] = await create_or_update(client, name, attributes)
        url = await create_or_update(client, spec.name, attributes)
        transport._urls[queue] = url
        for lane, name in transport.lane_names(queue).items():
            if name == spec.name:
                transport._urls[_url_key(queue, lane)] = url
        return url


__all__ = ["provision_queue", "queue_spec", "queue_url"]
