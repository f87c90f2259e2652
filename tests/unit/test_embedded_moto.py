"""The demo's embedded moto applies DynamoDB requests, and SQS sends and deletes, one at a time.

Plain ``ThreadedMotoServer`` serves requests on threads with no lock in its DynamoDB
backend, so two concurrent conditional ``UpdateItem`` calls on one item can both pass
their condition; the demo's Kafka run once lost its delayed job to it (the scanner's
promotion overwrote the worker's claim of the same due job). The race is too narrow to
reproduce on demand, so the middleware is tested for what it promises (DynamoDB
requests never overlap, nor SQS sends and deletes; others do), and the server the demo
starts is raced over a socket. The SQS delete race (concurrent deletes undoing each
other's) was seen once in CI and not reproduced on demand (1,000 bystander messages and
8 concurrent batch deletes, 10 rounds: none lost), so only the middleware is tested for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiobotocore.session import get_session

from asyncmq_cloud.commands.demo import embedded_moto
from asyncmq_cloud.commands.demo._moto import serialized_writes

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


def _overlap(target: str) -> int:
    """How many of 8 concurrent requests with ``X-Amz-Target: target`` were inside the app at once."""
    inside, most, guard = 0, 0, threading.Lock()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with guard:
            inside -= 1
        return [b"{}"]

    wrapped = serialized_writes(app)
    threads = [
        threading.Thread(target=lambda: list(wrapped({"HTTP_X_AMZ_TARGET": target}, lambda *_: None))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return most


def test_dynamodb_requests_never_overlap_and_others_do() -> None:
    assert _overlap("DynamoDB_20120810.UpdateItem") == 1
    assert _overlap("AmazonSQS.ReceiveMessage") > 1  # an SQS long poll never blocks DynamoDB
    assert _overlap("AmazonSQS.GetQueueAttributes") > 1


def test_sqs_sends_and_deletes_never_overlap() -> None:
    # moto rebuilds a queue's message list on each delete without a lock: concurrent deletes
    # undid each other's (5 of 25 acked messages stayed in a CI run), and a send could be dropped.
    assert _overlap("AmazonSQS.DeleteMessageBatch") == 1
    assert _overlap("AmazonSQS.SendMessage") == 1


async def test_concurrent_conditional_updates_on_the_embedded_endpoint_have_one_winner() -> None:
    with embedded_moto() as url:
        async with get_session().create_client("dynamodb", endpoint_url=url, **CREDENTIALS) as client:
            await client.create_table(
                TableName="race",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )

            async def claim(item: str, caller: int) -> bool:
                try:
                    await client.update_item(
                        TableName="race",
                        Key={"pk": {"S": item}},
                        UpdateExpression="SET #owner = :me",
                        ConditionExpression="#state = :waiting AND attribute_not_exists(#owner)",
                        ExpressionAttributeNames={"#owner": "owner", "#state": "state"},
                        ExpressionAttributeValues={":me": {"N": str(caller)}, ":waiting": {"S": "waiting"}},
                    )
                except client.exceptions.ConditionalCheckFailedException:
                    return False
                return True

            for round_ in range(2):
                item = f"job-{round_}"
                await client.put_item(TableName="race", Item={"pk": {"S": item}, "state": {"S": "waiting"}})
                won = await asyncio.gather(*(claim(item, caller) for caller in range(40)))
                assert sum(won) == 1, f"round {round_}: {sum(won)} callers won one item"
                stored = await client.get_item(TableName="race", Key={"pk": {"S": item}}, ConsistentRead=True)
                assert stored["Item"]["owner"]["N"] == str(won.index(True))
