"""The IAM documents ``provision --print-iam`` prints, built from the resource specs (no I/O)."""

from __future__ import annotations

import fnmatch

import pytest

from asyncmq_cloud.resources import KafkaTopicSpec, SqsQueueSpec, jobs_table
from asyncmq_cloud.resources.iam import (
    Scope,
    allowed,
    call_actions,
    check_account,
    check_msk_cluster,
    check_region,
    policies,
)

SCOPE = Scope(region="eu-west-1", account="123456789012")
CLUSTER = "arn:aws:kafka:eu-west-1:123456789012:cluster/jobs/0000aaaa-1111-2222-3333-444455556666-2"


def _statement(document: dict, sid: str) -> dict:
    return next(s for s in document["Statement"] if s["Sid"] == sid)


def test_tables_queues_lanes_and_dlqs_get_their_own_arns() -> None:
    specs = [jobs_table("app-jobs"), SqsQueueSpec("app-emails", lanes=("app-emails-p0", "app-emails-p2"))]
    runtime, provisioning = policies(specs, SCOPE).values()
    records = _statement(runtime, "JobRecords")
    assert records["Resource"] == [
        "arn:aws:dynamodb:eu-west-1:123456789012:table/app-jobs",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/app-jobs/index/*",
    ]
    consume = _statement(runtime, "ConsumeJobs")
    assert consume["Resource"] == [f"arn:aws:sqs:eu-west-1:123456789012:app-emails{s}" for s in ("", "-p0", "-p2")]
    assert "sqs:ReceiveMessage" in consume["Action"]
    poison = _statement(runtime, "DeadLetterPoisonMessages")
    assert poison["Resource"] == ["arn:aws:sqs:eu-west-1:123456789012:app-emails-dlq"]
    assert "sqs:ReceiveMessage" not in poison["Action"]
    creates = _statement(provisioning, "CreateQueues")
    assert "arn:aws:sqs:eu-west-1:123456789012:app-emails-dlq" in creates["Resource"]
    assert {a for a, _ in allowed(runtime)}.isdisjoint({"sqs:CreateQueue", "dynamodb:CreateTable"})
    assert "Condition" not in consume


def test_fifo_names_and_statements_merge_across_queues() -> None:
    specs = [SqsQueueSpec("a.fifo", fifo=True), SqsQueueSpec("b.fifo", fifo=True)]
    runtime = policies(specs, SCOPE)["runtime"]
    assert [s["Sid"] for s in runtime["Statement"]] == ["ConsumeJobs", "DeadLetterPoisonMessages"]
    assert _statement(runtime, "DeadLetterPoisonMessages")["Resource"] == [
        "arn:aws:sqs:eu-west-1:123456789012:a-dlq.fifo",
        "arn:aws:sqs:eu-west-1:123456789012:b-dlq.fifo",
    ]


@pytest.mark.parametrize(
    ("key", "resource", "condition"),
    [
        ("arn:aws:kms:eu-west-1:123456789012:key/k1", "arn:aws:kms:eu-west-1:123456789012:key/k1", None),
        ("k1", "arn:aws:kms:eu-west-1:123456789012:key/k1", None),
        ("alias/jobs", "arn:aws:kms:eu-west-1:123456789012:key/*", {"kms:ResourceAliases": "alias/jobs"}),
        (
            "arn:aws:kms:eu-west-1:123456789012:alias/jobs",
            "arn:aws:kms:eu-west-1:123456789012:key/*",
            {"kms:ResourceAliases": "alias/jobs"},
        ),
    ],
)
def test_a_customer_managed_key_is_granted_data_keys(key: str, resource: str, condition: dict | None) -> None:
    runtime = policies([SqsQueueSpec("q", kms_key_id=key)], SCOPE)["runtime"]
    kms = _statement(runtime, "EncryptionKeys")
    assert kms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms["Resource"] == [resource]
    assert kms.get("Condition", {}).get("ForAnyValue:StringEquals") == condition


def test_kafka_statements_need_the_msk_cluster() -> None:
    topic = KafkaTopicSpec("asyncmq.emails", "asyncmq.emails-dlq", "asyncmq-emails", 4, 3)
    assert policies([topic], SCOPE) == {
        "runtime": {"Version": "2012-10-17", "Statement": []},
        "provisioning": {"Version": "2012-10-17", "Statement": []},
    }
    runtime, provisioning = policies([topic], Scope("eu-west-1", "123456789012", msk_cluster_arn=CLUSTER)).values()
    topics = _statement(runtime, "KafkaTopics")["Resource"]
    assert topics == [
        "arn:aws:kafka:eu-west-1:123456789012:topic/jobs/0000aaaa-1111-2222-3333-444455556666-2/asyncmq.emails",
        "arn:aws:kafka:eu-west-1:123456789012:topic/jobs/0000aaaa-1111-2222-3333-444455556666-2/asyncmq.emails-dlq",
    ]
    group = _statement(runtime, "KafkaConsumerGroups")["Resource"][0]
    assert group.endswith(":group/jobs/0000aaaa-1111-2222-3333-444455556666-2/asyncmq-emails")
    assert "kafka-cluster:CreateTopic" in _statement(provisioning, "KafkaCreateTopics")["Action"]
    assert "kafka-cluster:CreateTopic" not in {a for a, _ in allowed(runtime)}


def test_any_region_and_account_are_wildcards_iam_matches() -> None:
    runtime = policies([jobs_table("tbl")], Scope())["runtime"]
    (table, index) = _statement(runtime, "JobRecords")["Resource"]
    assert table == "arn:aws:dynamodb:*:*:table/tbl"
    assert fnmatch.fnmatchcase("arn:aws:dynamodb:us-east-1:123456789012:table/tbl/index/by_state", index)


def test_call_actions_name_the_action_iam_checks() -> None:
    assert call_actions("sqs", "SendMessageBatch", {}) == ["sqs:SendMessage"]
    assert call_actions("sqs", "DeleteMessageBatch", {}) == ["sqs:DeleteMessage"]
    assert call_actions("sqs", "ReceiveMessage", {}) == ["sqs:ReceiveMessage"]
    items = {"TransactItems": [{"Put": {}}, {"Update": {}}, {"ConditionCheck": {}}, {"Update": {}}]}
    assert call_actions("dynamodb", "TransactWriteItems", items) == [
        "dynamodb:ConditionCheckItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    assert call_actions("dynamodb", "TransactGetItems", {}) == ["dynamodb:GetItem"]


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (check_region, ["eu-west-1", "us-gov-west-1", "*"], ["EU", "eu_west_1", "", "eu-west"]),
        (check_account, ["123456789012", "*"], ["12345", "12345678901a", ""]),
        (check_msk_cluster, [CLUSTER], ["arn:aws:sqs:eu-west-1:123456789012:q", "cluster/jobs/x", ""]),
    ],
)
def test_scope_values_are_checked(check, good: list[str], bad: list[str]) -> None:  # type: ignore[no-untyped-def]
    for value in good:
        assert check(value) == value
    for value in bad:
        with pytest.raises(ValueError, match="is not"):
            check(value)
