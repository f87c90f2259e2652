"""Shared plumbing of :class:`~asyncmq_cloud.stores.dynamodb.DynamoDBStateStore` and its mixins.

One place turns SDK calls into answers: :meth:`~asyncmq_cloud.aws.AwsComponent._call`
translates errors, :meth:`DynamoDBBase._conditional` turns a failed condition into ``None``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from asyncmq_cloud.aws import AwsComponent, is_conditional_failure, translate_error
from asyncmq_cloud.errors import FlowTooLargeError, TransientError
from asyncmq_cloud.stores import _dynamodb_codec as codec

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

#: Items per ``BatchWriteItem`` call (DynamoDB's limit).
BATCH_WRITE_MAX_ITEMS = 25

T = TypeVar("T")


class DynamoDBBase(AwsComponent):
    """Client access, error handling, transactions and the queue registry."""

    table_name: str
    _known_queues: set[str]
    _registering: dict[str, asyncio.Future[None]]

    async def _client(self) -> DynamoDBClient:
        return await self._dynamodb()

    async def _conditional(self, call: Awaitable[T]) -> T | None:
        """Await an SDK call whose failed condition is an answer (``None``), not an error."""
        try:
            return await call
        except Exception as exc:
            if is_conditional_failure(exc):
                return None
            raise translate_error(exc, resource=self._aws_resource) from exc

    async def _update(self, key: Mapping[str, Any], expression: str, **kwargs: Any) -> dict[str, Any] | None:
        """One ``UpdateItem``; returns its response, ``None`` when its condition failed."""
        client = await self._client()
        response = await self._conditional(
            client.update_item(TableName=self.table_name, Key=dict(key), UpdateExpression=expression, **kwargs)
        )
        return dict(response) if response is not None else None

    async def _transact(self, updates: Sequence[Mapping[str, Any]], total_bytes: int) -> None:
        """Write every ``UpdateItem`` argument set in one ``TransactWriteItems`` (all or nothing).

        Raises:
            FlowTooLargeError: more than 100 items or 4 MB; nothing is written.
        """
        if len(updates) > codec.TRANSACT_MAX_ACTIONS or total_bytes > codec.TRANSACT_MAX_BYTES:
            raise FlowTooLargeError(
                f"{len(updates)} items / {total_bytes} bytes do not fit in one DynamoDB transaction "
                f"(≤ {codec.TRANSACT_MAX_ACTIONS} items: jobs plus one dependency item per job with "
                f"parents or children; ≤ {codec.TRANSACT_MAX_BYTES} bytes); nothing was written"
            )
        items: Any = [{"Update": {"TableName": self.table_name, **u}} for u in updates]
        client = await self._client()
        await self._call(client.transact_write_items(TransactItems=items))

    async def _until_processed(
        self, call: Callable[..., Awaitable[Any]], pending: Any, action: str, unprocessed: str
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Each reply of a batch call (``BatchGetItem``, ``BatchWriteItem``), sending the
        ``unprocessed`` part (throttling) again with backoff, up to 10 calls.

        Raises:
            TransientError: the batch kept coming back unprocessed.
        """
        for attempt in range(10):
            response = await self._call(call(RequestItems=pending))
            yield response
            pending = response.get(unprocessed) or {}
            if not pending:
                return
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))  # throttled: back off, then send the rest
        raise TransientError(f"{action} on {self._aws_resource} kept returning {unprocessed} (throttled)")

    async def _batch_put(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Put whole ``items`` with ``BatchWriteItem``, 25 per call (not all or nothing).

        Raises:
            TransientError: a batch kept coming back unprocessed; the items already put stay.
        """
        client = await self._client()
        for first in range(0, len(items), BATCH_WRITE_MAX_ITEMS):
            chunk = items[first : first + BATCH_WRITE_MAX_ITEMS]
            pending = {self.table_name: [{"PutRequest": {"Item": dict(item)}} for item in chunk]}
            async for _ in self._until_processed(
                client.batch_write_item, pending, "BatchWriteItem", "UnprocessedItems"
            ):
                pass

    async def _register_queues(self, queues: Collection[str]) -> None:
        """Add queue names to the registry item (once per queue per process).

        Single-flight: concurrent first writes to a new queue share one ``UpdateItem``
        (100 concurrent producers must not cost 100 registry writes). Callers that
        find a write in flight wait for it and look again; if it failed, the next
        of them writes (and sees its own error, if it persists).
        """
        loop = asyncio.get_running_loop()
        while True:
            new = set(queues) - self._known_queues
            if not new:
                return
            in_flight = {
                f for q in new if (f := self._registering.get(q)) is not None and f.get_loop() is loop and not f.done()
            }
            if in_flight:
                await asyncio.wait(in_flight)
                continue
            mine = sorted(new)
            done: asyncio.Future[None] = loop.create_future()
            self._registering.update(dict.fromkeys(mine, done))
            try:
                await self._update(
                    codec.registry_key(), "ADD queues :q", ExpressionAttributeValues={":q": {"SS": mine}}
                )
                self._known_queues.update(mine)
            finally:
                done.set_result(None)
                for q in mine:
                    if self._registering.get(q) is done:
                        del self._registering[q]
            return

    async def list_queues(self) -> list[str]:
        """Every queue that has held a job, a flag or a repeatable (one ``GetItem``)."""
        item = await self._get_item(codec.registry_key())
        return sorted(codec.get_set(item or {}, "queues"))

    async def _query_pages(self, **query: Any) -> AsyncIterator[dict[str, Any]]:
        """Every page of a ``Query`` (follows ``LastEvaluatedKey``)."""
        client = await self._client()
        start: Any = None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            page = await self._call(client.query(TableName=self.table_name, **query, **extra))
            yield dict(page)
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    async def _query_items(self, **query: Any) -> list[dict[str, Any]]:
        """Every item a ``Query`` returns, over all pages, in order."""
        return [dict(i) async for page in self._query_pages(**query) for i in page.get("Items", [])]

    async def _get_item(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        client = await self._client()
        response = await self._call(client.get_item(TableName=self.table_name, Key=dict(key), ConsistentRead=True))
        item = response.get("Item")
        return dict(item) if item else None

    async def _delete_item(self, key: Mapping[str, Any], **kwargs: Any) -> dict[str, Any] | None:
        """``DeleteItem``; returns the old item (``ReturnValues=ALL_OLD``), ``None`` if a condition failed."""
        client = await self._client()
        response = await self._conditional(
            client.delete_item(TableName=self.table_name, Key=dict(key), ReturnValues="ALL_OLD", **kwargs)
        )
        if response is None:
            return None
        return dict(response.get("Attributes") or {})
