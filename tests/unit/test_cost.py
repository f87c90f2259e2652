"""``asyncmq-cloud cost``: its size and unit rules, its arithmetic, its meter and the command.

The meter is checked on the embedded moto server the command itself runs on (over a
socket), write by write against DynamoDB's published capacity rules; the arithmetic on a
fixed count worked out by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from asyncmq_cloud.commands.cost import units as u
from asyncmq_cloud.commands.cost.bill import per_month, price
from asyncmq_cloud.commands.cost.meter import QUIET_KEY, Meter
from asyncmq_cloud.commands.cost.prices import PRICES, PriceTable
from asyncmq_cloud.commands.demo._moto import threaded_moto

ROOT = Path(__file__).resolve().parents[2]
FIXED = PriceTable("2026-01-01", "test", 0.40, 0.50, 0.10, 0.625, 0.125, ())


def test_item_sizes_follow_dynamodb_rules() -> None:
    assert u.item_size({"pk": {"S": "abc"}}) == 5  # name 2 + 3 UTF-8 bytes
    assert u.item_size({"n": {"N": "123.45"}}) == 1 + 4  # 5 significant digits: 3 bytes + 1
    assert u.item_size({"n": {"N": "-0.0100"}}) == 1 + 2  # zeros trimmed: 1 digit
    assert u.item_size({"é": {"S": "ü"}}) == 4  # UTF-8, not characters
    assert u.item_size({"b": {"B": "AAEC"}}) == 1 + 3  # base64 on the wire, 3 bytes stored
    assert u.item_size({"m": {"M": {"k": {"BOOL": True}}}}) == 1 + 3 + (1 + 1 + 1)
    assert u.item_size({"l": {"L": [{"NULL": True}, {"S": "xy"}]}}) == 1 + 3 + (1 + 1) + (1 + 2)
    assert u.item_size({"s": {"SS": ["a", "bc"]}}) == 1 + 3
    assert u.item_size(None) == 0
    with pytest.raises(ValueError, match="unknown DynamoDB value type"):
        u.item_size({"x": {"Q": "?"}})


SHAPE = u.TableShape(keys=("pk",), indexes=(u.Index("by-state", ("state", "at")),))


def _item(state: str | None, at: str = "1", pad: int = 0) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": "job"}, "at": {"N": at}, "pad": {"S": "x" * pad}}
    if state is not None:
        item["state"] = {"S": state}
    return item


@pytest.mark.parametrize(
    ("old", "new", "transactional", "expected"),
    [
        (None, _item("waiting"), False, (1, 1)),  # a new item entering the index
        (_item(None), _item(None, pad=10), False, (1, 0)),  # not in the index before or after
        (_item("waiting"), _item("waiting", pad=10), False, (1, 1)),  # its entry changes in place
        (_item("waiting"), _item("active"), False, (1, 2)),  # index key changed: delete + put
        (_item("waiting"), _item(None), False, (1, 1)),  # leaving the index
        (_item("waiting"), _item("waiting"), False, (1, 0)),  # a failed condition: the item, no index
        (_item("waiting", pad=1500), _item("waiting", pad=10), True, (4, 2)),  # 2 KB before, twice in a transaction
    ],
)
def test_write_units(old: Any, new: Any, transactional: bool, expected: tuple[int, int]) -> None:
    assert u.write_units(SHAPE, old, new, transactional) == expected


def test_read_units_and_sqs_chunks() -> None:
    assert u.read_units([100], consistent=False) == 0.5
    assert u.read_units([4096, 1], consistent=True) == 2.0  # one read of 4,097 bytes
    assert u.read_units([10], consistent=True, transactional=True) == 2.0
    assert u.sqs_request_units(0) == 1
    assert u.sqs_request_units(64 * 1024) == 1
    assert u.sqs_request_units(64 * 1024 + 1) == 2
    message = {"MessageBody": "abc", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "vv"}}}
    assert u.sqs_message_size(message) == 3 + 1 + 6 + 2


def test_the_arithmetic_on_a_fixed_count() -> None:
    # 1,000 jobs: 1,300 SQS requests, 3,000 + 9,000 write units, 400 read units.
    billed = {"sqs_requests": 1300, "wru_table": 3000, "wru_index": 9000, "rru": 400}
    bill = price(billed, 1000, FIXED)
    assert bill.sqs == pytest.approx(1.3 * 0.40)  # $ per million jobs
    assert bill.dynamodb_writes == pytest.approx(12 * 0.625)
    assert bill.dynamodb_reads == pytest.approx(0.4 * 0.125)
    assert bill.total == pytest.approx(0.52 + 7.5 + 0.05)
    assert price(billed, 1000, FIXED, fifo=True).sqs == pytest.approx(1.3 * 0.50)
    # Only message actions are FIFO-priced: 100 GetQueueUrl/GetQueueAttributes stay standard.
    assert price({**billed, "sqs_other_requests": 100}, 1000, FIXED, fifo=True).sqs == pytest.approx(
        1.3 * 0.50 + 0.1 * 0.40
    )
    # Idle: 3 SQS requests and 15 read units in 30 s, for a 30-day month (2,592,000 s).
    month = per_month(price({"sqs_requests": 3, "rru": 15}, 30, FIXED))
    assert month.sqs == pytest.approx(0.1 * 2_592_000 * 0.40 / 1e6)
    assert month.dynamodb_reads == pytest.approx(0.5 * 2_592_000 * 0.125 / 1e6)
    assert month.dynamodb_writes == 0
    with pytest.raises(ValueError, match="positive"):
        price(billed, 0, FIXED)


def test_the_price_table_is_dated_and_sourced() -> None:
    assert PRICES.as_of and PRICES.region == "us-east-1"
    assert all(source.startswith("https://aws.amazon.com/") for source in PRICES.sources)


async def test_the_meter_bills_each_write_by_the_items_and_indexes_it_changed() -> None:
    meter = Meter()
    credentials = {"aws_access_key_id": "m", "aws_secret_access_key": "m", "region_name": "us-east-1"}
    with threaded_moto(wrap=meter.wrap) as url:
        session = get_session()
        async with session.create_client("dynamodb", endpoint_url=url, **credentials) as ddb:
            await ddb.create_table(
                TableName="t-metered",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "state", "AttributeType": "S"},
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": "by-state",
                        "KeySchema": [{"AttributeName": "state", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            meter.reset("t-metered")
            key = {"pk": {"S": "a"}}
            await ddb.put_item(TableName="t-metered", Item={**key, "state": {"S": "waiting"}, "big": {"S": "x" * 1500}})
            assert _last(meter) == (1, 2, 1, 0.0), "2 KB item; KEYS_ONLY entry of a few bytes"
            await ddb.update_item(
                TableName="t-metered",
                Key=key,
                UpdateExpression="SET big = :s",
                ExpressionAttributeValues={":s": {"S": "y"}},
            )
            assert _last(meter)[1:3] == (2, 0), "billed at the larger size (before); a non-projected change"
            await ddb.update_item(
                TableName="t-metered",
                Key=key,
                UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":s": {"S": "active"}},
            )
            assert _last(meter)[1:3] == (1, 2), "index key changed: old entry deleted, new one written"
            with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
                await ddb.delete_item(TableName="t-metered", Key=key, ConditionExpression="attribute_not_exists(pk)")
            assert _last(meter)[1:3] == (1, 0), "a failed condition costs the item and changes no index"
            await ddb.transact_write_items(
                TransactItems=[{"Delete": {"TableName": "t-metered", "Key": key}}],
            )
            assert _last(meter)[1:3] == (2, 1), "transactional: twice; the entry leaves the index"
            await ddb.get_item(TableName="t-metered", Key=key, ConsistentRead=True)
            assert _last(meter)[3] == 1.0
            big = {"pk": {"S": "big"}, "blob": {"S": "x" * 5000}}
            await ddb.put_item(TableName="t-metered", Item=big)
            found = {"TableName": "t-metered", "KeyConditionExpression": "pk = :k"}
            found["ExpressionAttributeValues"] = {":k": {"S": "big"}}
            await ddb.query(**found)
            _last(meter)
            await ddb.query(**found)
            assert _last(meter)[3] == 1.0, "5 KB read eventually consistent: 2 units halved"
            await ddb.query(**found, Select="COUNT")
            assert _last(meter)[3] == 1.0, "a count pays for what it evaluated, though it returns no item"
            calls, _ = meter.snapshot()
            assert calls["dynamodb.PutItem"] == 2 and calls["dynamodb.UpdateItem"] == 2 and calls["dynamodb.Query"] == 3
        quiet = {**credentials, "aws_access_key_id": QUIET_KEY}
        async with session.create_client("dynamodb", endpoint_url=url, **quiet) as ddb:
            await ddb.get_item(TableName="t-metered", Key=key)
        assert meter.snapshot()[0]["dynamodb.GetItem"] == 1, "requests signed with the quiet key are not counted"
        async with session.create_client("sqs", endpoint_url=url, **credentials) as sqs:
            queue = (await sqs.create_queue(QueueName="t-metered"))["QueueUrl"]
            before = meter.snapshot()[1]["sqs_requests"]
            await sqs.send_message(QueueUrl=queue, MessageBody="z" * (100 * 1024))
            assert meter.snapshot()[1]["sqs_requests"] - before == 2, "a 100 KB message is two 64 KB chunks"


_seen: dict[int, tuple[float, ...]] = {}


def _last(meter: Meter) -> tuple[float, ...]:
    """(calls, table write units, index write units, read units) of the calls since the last look."""
    calls, billed = meter.snapshot()
    now = (sum(calls.values()), billed["wru_table"], billed["wru_index"], billed["rru"])
    before = _seen.get(id(meter), (0, 0, 0, 0.0))
    _seen[id(meter)] = now
    return tuple(a - b for a, b in zip(now, before, strict=True))


def test_the_command_prices_a_workload_on_each_backend(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-m", "asyncmq_cloud.cli", "cost", "--jobs", "12", "--idle-seconds", "2", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "$ / million jobs" in done.stdout and PRICES.as_of in done.stdout
    report = json.loads(out.read_text())
    assert report["prices"]["as_of"] == PRICES.as_of
    by_backend = {entry["backend"]: entry for entry in report["backends"]}
    assert set(by_backend) == {"sqs", "dynamodb"}
    for name, entry in by_backend.items():
        billed, usd = entry["billed_per_job"], entry["usd_per_million_jobs"]
        assert entry["jobs"] == 12
        assert entry["calls_per_job_by_operation"]["dynamodb.UpdateItem"] >= 2, f"{name}: a claim and an end per job"
        assert billed["wru_table"] >= 3, f"{name}: the add, the claim and the end write the job"
        assert usd["dynamodb_writes"] == pytest.approx((billed["wru_table"] + billed["wru_index"]) * 0.625)
        assert usd["total"] == pytest.approx(usd["sqs"] + usd["dynamodb_writes"] + usd["dynamodb_reads"])
        assert entry["idle_calls_per_s"] >= 0
    assert by_backend["sqs"]["billed_per_job"]["sqs_requests"] >= 1, "each job is sent once at least"
    sqs_ops = by_backend["sqs"]["calls_per_job_by_operation"]
    assert sqs_ops.get("sqs.SendMessageBatch", 0) + sqs_ops.get("sqs.SendMessage", 0) > 0


def test_bad_options_are_refused_before_anything_runs() -> None:
    for args, message in (
        (["--backend", "rabbit"], "--backend takes"),
        (["--jobs", "0"], "--jobs must be between"),
        (["--backend", "kafka"], "needs a broker"),
    ):
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        done = subprocess.run(
            [sys.executable, "-m", "asyncmq_cloud.cli", "cost", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr[-500:])
