"""The SQS calls behind :class:`~asyncmq_cloud.transports.sqs.SQSTransport` that need care.

* :func:`batch_call`: one ``SendMessageBatch``/``DeleteMessageBatch``, per-entry results,
  re-sending entries SQS failed without sender fault;
* :func:`create_or_update`: idempotent ``CreateQueue`` (an existing queue gets the attributes);
* :func:`is_stale`: "this receipt handle no longer holds the message", which the emulators
  spell differently (ElasticMQ/moto ``ReceiptHandleIsInvalid``, LocalStack
  ``InvalidParameterValue ... not available``); :func:`drop_stale` and
  :func:`change_visibility` treat such a receipt as nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.aws import error_code, translate_error
from asyncmq_cloud.errors import PermanentError, TransientError
from asyncmq_cloud.transports._sqs_direct import send_message

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

    from asyncmq_cloud.core.records import Delivery
    from asyncmq_cloud.transports._sqs_messages import SQSReceipt
    from asyncmq_cloud.transports.sqs import SQSTransport

logger = logging.getLogger("asyncmq_cloud.transports.sqs")

#: Tries for a batch entry that SQS reports failed without sender fault (server-side).
BATCH_ENTRY_ATTEMPTS = 3

#: Error codes meaning "this receipt handle no longer holds the message" (deleted or re-received).
STALE_RECEIPT = re.compile(r"ReceiptHandleIsInvalid|InvalidReceiptHandle|MessageNotInflight", re.IGNORECASE)


MISSING = frozenset({"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})
_EXISTS = frozenset({"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"})
STATS = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}
#: Attributes SQS will not change on an existing queue.
_IMMUTABLE = frozenset({"FifoQueue"})


def log_failed_delete(exc: BaseException) -> None:
    logger.warning("SQS delete failed; the message will reappear and be dropped by the claim: %s", exc)


def is_stale(exc: BaseException) -> bool:
    code = error_code(exc)
    if STALE_RECEIPT.search(code):
        return True
    # LocalStack: InvalidParameterValue "... Message does not exist or is not available for visibility timeout change"
    return code.startswith("InvalidParameterValue") and "not available" in str(exc)


def drop_stale(results: list[BaseException | None], url: str) -> list[BaseException | None]:
    """``DeleteMessageBatch`` results with stale-receipt failures counted as done (logged)."""
    for index, result in enumerate(results):
        if result is not None and STALE_RECEIPT.search(str(result)):
            # Deleted already, or received again by another worker (whose claim drops it).
            logger.warning("SQS delete on %s: receipt no longer valid (%s); nothing to delete", url, result)
            results[index] = None
    return results


async def change_visibility(transport: SQSTransport, delivery: Delivery, timeout: int) -> bool:
    """``ChangeMessageVisibility``; False (logged) when the receipt no longer holds the message."""
    receipt: SQSReceipt = delivery.receipt
    client = await transport._client()
    try:
        await client.change_message_visibility(
            QueueUrl=receipt.url, ReceiptHandle=receipt.handle, VisibilityTimeout=timeout
        )
    except Exception as exc:
        if is_stale(exc):
            logger.warning("job %s/%s: SQS message no longer held (%s)", delivery.queue, delivery.job_id, exc)
            return False
        raise translate_error(
            exc, resource=transport._resource(delivery.queue), create=transport._create_hint(delivery.queue)
        ) from exc
    return True


async def create_or_update(client: SQSClient, name: str, attributes: dict[str, str]) -> str:
    """``CreateQueue``; an existing queue with other attributes gets them set instead."""
    try:
        return (await client.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]  # type: ignore[arg-type]
    except Exception as exc:
        if error_code(exc) not in _EXISTS:
            raise
    url = (await client.get_queue_url(QueueName=name))["QueueUrl"]
    mutable = {k: v for k, v in attributes.items() if k not in _IMMUTABLE}
    await client.set_queue_attributes(QueueUrl=url, Attributes=mutable)  # type: ignore[arg-type]
    logger.info("SQS queue %r existed with other attributes; set %s", name, ", ".join(sorted(mutable)))
    return url


async def send_one(client: Any, url: str, entry: dict[str, Any], direct: bool = True) -> list[BaseException | None]:
    """A send of one message: ``SendMessage``, about 12 % less wall time and CPU than a batch of
    one (decision 75), sent directly where it may (``_sqs_direct``, decision 80); the result as
    :func:`batch_call` gives it."""
    try:
        await send_message(client, {"QueueUrl": url, **{k: v for k, v in entry.items() if k != "Id"}}, direct)
    except Exception as exc:
        return [_call_failed(exc, url)]
    return [None]


def _call_failed(exc: Exception, url: str) -> Exception:
    """The error a whole SQS call failed with, sorted (transient or permanent), for each of its entries."""
    error = translate_error(exc, resource=f"SQS queue {url}")
    error.__cause__ = exc
    return error


async def batch_call(call: Any, url: str, entries: list[dict[str, Any]], action: str) -> list[BaseException | None]:
    """One batch call; per-entry results, re-sending entries that failed without sender fault."""
    results: list[BaseException | None] = [None] * len(entries)
    todo = list(range(len(entries)))
    for attempt in range(BATCH_ENTRY_ATTEMPTS):
        for i in todo:
            results[i] = None
        try:
            reply = await call(QueueUrl=url, Entries=[{**entries[i], "Id": str(i)} for i in todo])
        except Exception as exc:
            error = _call_failed(exc, url)
            for i in todo:
                results[i] = error
            return results
        retry: list[int] = []
        for failed in reply.get("Failed", []) or []:
            index = int(failed["Id"])
            text = f"{action} entry failed on SQS queue {url}: {failed.get('Code')}: {failed.get('Message', '')}"
            sender = bool(failed.get("SenderFault")) or STALE_RECEIPT.search(str(failed.get("Code", "")))
            results[index] = PermanentError(text) if sender else TransientError(text)
            if not sender:
                retry.append(index)
        if not retry or attempt == BATCH_ENTRY_ATTEMPTS - 1:
            return results
        todo = retry
        await asyncio.sleep(0.05 * 2**attempt)
    return results  # pragma: no cover - the loop always returns
