"""IAM policies of a configured backend: what it needs at runtime, and what provisioning adds.

Built from the same specs ``provision`` creates (:meth:`CloudBackend.resources`), so the
tables, queues, lanes, dead-letter queues and topics named here are exactly the backend's.
``asyncmq-cloud provision --print-iam`` prints both documents; the Terraform module's
``worker`` policy grants the same runtime actions and its ``provisioner`` policy the same
provisioning actions (``tests/test_terraform.py`` checks the two against each other).

* **runtime** (workers, scanners, producers; the producer policy of the Terraform module
  is a subset): item reads and writes on the tables and their indexes, send / receive /
  delete / visibility on the queues, sends to the dead-letter queues (poison messages),
  KMS data keys for a customer-managed key, and on MSK with IAM: connect, read and write
  the topics, commit in the groups. No ``Create*``, ``Delete*`` of a resource,
  ``ListQueues``, ``SetQueueAttributes``, ``UpdateTable`` or ``CreateTopic``:
  a backend with ``create_missing=False`` never calls them (tested with a recording
  endpoint on every backend, ``tests/test_runtime_iam.py``).
* **provisioning** (``asyncmq-cloud provision``, ``create_missing=True``, ``doctor``'s
  table and TTL checks): create and describe the tables and their TTL, create the queues
  and set their attributes, create the topics, create the claim-check bucket and set its
  public access block, encryption and lifecycle rule.
* with the S3 claim check (``offload``), runtime adds put / get / delete of objects under
  the bucket's prefix and listing of that prefix only (``s3:prefix`` condition).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.resources.dynamodb import TableSpec
from asyncmq_cloud.resources.kafka import KafkaTopicSpec
from asyncmq_cloud.resources.s3 import S3BucketSpec
from asyncmq_cloud.resources.sqs import SqsQueueSpec

TABLE_RUNTIME = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
TABLE_PROVISIONING = (
    "dynamodb:CreateTable",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:UpdateTimeToLive",
)
QUEUE_RUNTIME = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
)
DLQ_RUNTIME = ("sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage")
QUEUE_PROVISIONING = ("sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SetQueueAttributes")
KMS_RUNTIME = ("kms:Decrypt", "kms:GenerateDataKey")
MSK_CLUSTER = ("kafka-cluster:Connect", "kafka-cluster:DescribeCluster")
MSK_TOPIC_RUNTIME = ("kafka-cluster:DescribeTopic", "kafka-cluster:ReadData", "kafka-cluster:WriteData")
MSK_GROUP_RUNTIME = ("kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup")
MSK_TOPIC_PROVISIONING = ("kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic")
BODY_RUNTIME = ("s3:DeleteObject", "s3:GetObject", "s3:PutObject")
BUCKET_RUNTIME = ("s3:ListBucket",)
BUCKET_PROVISIONING = (
    "s3:CreateBucket",
    "s3:GetLifecycleConfiguration",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
)

#: The IAM action of each batch or transaction call whose action is not its own name.
#: ``TransactWriteItems`` is authorised per item (``Put`` → ``PutItem``, ``Update`` →
#: ``UpdateItem``, ``Delete`` → ``DeleteItem``, ``ConditionCheck`` → ``ConditionCheckItem``).
CALL_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "dynamodb:TransactGetItems": "dynamodb:GetItem",
    "s3:HeadObject": "s3:GetObject",
    "s3:DeleteObjects": "s3:DeleteObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "s3:GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
}
#: The MSK IAM actions of each Kafka request the backends make (``observe`` names them);
#: ``CreateTopics`` only with ``create_missing``/``provision``. ``DeleteRecords``
#: (``KafkaTransport.purge``, never called by the backend) is in neither policy.
KAFKA_REQUEST_ACTIONS = {
    "Metadata": ("kafka-cluster:DescribeTopic",),
    "Produce": ("kafka-cluster:WriteData",),
    "Fetch": ("kafka-cluster:ReadData",),
    "ListOffsets": ("kafka-cluster:DescribeTopic",),
    "JoinGroup": ("kafka-cluster:AlterGroup",),
    "OffsetCommit": ("kafka-cluster:AlterGroup", "kafka-cluster:ReadData"),
    "OffsetFetch": ("kafka-cluster:DescribeGroup",),
    "CreateTopics": ("kafka-cluster:CreateTopic",),
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_MSK_CLUSTER = re.compile(r"^arn:aws(-cn|-us-gov)?:kafka:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9-]+/[A-Za-z0-9-]+$")
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


def check_region(value: str) -> str:
    """``value`` if it is an AWS region (``eu-west-1``) or ``*``, else :class:`ConfigurationError` saying so."""
    if value != "*" and not _REGION.match(value):
        raise ConfigurationError(f"{value[:40]!r} is not an AWS region (like eu-west-1) or '*'")
    return value


def check_account(value: str) -> str:
    """``value`` if it is a 12-digit AWS account id or ``*``, else :class:`ConfigurationError` saying so."""
    if value != "*" and not _ACCOUNT.match(value):
        raise ConfigurationError(f"{value[:40]!r} is not a 12-digit AWS account id or '*'")
    return value


def check_msk_cluster(value: str) -> str:
    """``value`` if it is an MSK cluster ARN, else :class:`ConfigurationError` saying so."""
    if not _MSK_CLUSTER.match(value):
        raise ConfigurationError(
            f"{value[:100]!r} is not an MSK cluster ARN (arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID)"
        )
    return value


def call_actions(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """The IAM actions one API call needs (``"sqs"``, ``"SendMessageBatch"`` → ``["sqs:SendMessage"]``).

    Args:
        service: the IAM service prefix (``sqs``, ``dynamodb``).
        operation: the API operation's name.
        params: the call's parameters (read for ``TransactWriteItems``).
    """
    name = f"{service}:{operation}"
    if name == "dynamodb:TransactWriteItems":
        return sorted({TRANSACT_ITEM_ACTIONS[kind] for item in params.get("TransactItems", []) for kind in item})
    return [CALL_ACTIONS.get(name, name)]


@dataclass(frozen=True)
class Scope:
    """Where the ARNs point: partition, region and account (``*`` = any), the MSK cluster.

    Attributes:
        region: the AWS region (``*`` when unknown).
        account: the account id (``*`` when unknown).
        partition: ``aws``, ``aws-cn``, ``aws-us-gov``.
        msk_cluster_arn: the MSK cluster (``arn:aws:kafka:R:A:cluster/NAME/UUID``); ``None``
            leaves the Kafka statements out (a broker without MSK IAM takes no IAM policy).
    """

    region: str = "*"
    account: str = "*"
    partition: str = "aws"
    msk_cluster_arn: str | None = None

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def kafka(self, kind: str, name: str) -> str:
        """The ARN of topic or group ``name`` on the MSK cluster."""
        assert self.msk_cluster_arn is not None  # callers check
        return f"{self.msk_cluster_arn.replace(':cluster/', f':{kind}/', 1)}/{name}"


@dataclass
class _Policy:
    """Statements by ``Sid``, their resources merged as specs add them."""

    statements: dict[str, dict[str, Any]] = field(default_factory=dict)

    def allow(
        self, sid: str, actions: Iterable[str], resources: Iterable[str], condition: dict[str, Any] | None = None
    ) -> None:
        statement = self.statements.setdefault(sid, {"Sid": sid, "Effect": "Allow", "Action": set(), "Resource": set()})
        statement["Action"].update(actions)
        statement["Resource"].update(resources)
        if condition:
            statement["Condition"] = condition

    def document(self) -> dict[str, Any]:
        return {
            "Version": "2012-10-17",
            "Statement": [
                {**s, "Action": sorted(s["Action"]), "Resource": sorted(s["Resource"])}
                for s in self.statements.values()
            ],
        }


def _table_arns(spec: TableSpec, scope: Scope) -> list[str]:
    table = scope.arn("dynamodb", f"table/{spec.name}")
    return [table, f"{table}/index/*"] if spec.indexes else [table]


def _kms_statement(policy: _Policy, key: str, scope: Scope) -> None:
    alias = key if key.startswith("alias/") else ("alias/" + key.split(":alias/", 1)[1] if ":alias/" in key else "")
    if alias:  # KMS authorises the key, not its alias: allow the keys that carry the alias
        condition = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}
        policy.allow("EncryptionKeys", KMS_RUNTIME, [scope.arn("kms", "key/*")], condition)
    elif key.startswith("arn:"):
        policy.allow("EncryptionKeys", KMS_RUNTIME, [key])
    else:
        policy.allow("EncryptionKeys", KMS_RUNTIME, [scope.arn("kms", f"key/{key}")])


def _bucket_arn(spec: S3BucketSpec, scope: Scope) -> str:
    return f"arn:{scope.partition}:s3:::{spec.name}"  # S3 ARNs name neither region nor account


def _bodies(policy: _Policy, spec: S3BucketSpec, scope: Scope) -> None:
    bucket = _bucket_arn(spec, scope)
    policy.allow("JobBodies", BODY_RUNTIME, [f"{bucket}/{spec.prefix}*"])
    policy.allow("ListJobBodies", BUCKET_RUNTIME, [bucket], {"StringLike": {"s3:prefix": [f"{spec.prefix}*"]}})
    if spec.kms_key_id:
        _kms_statement(policy, spec.kms_key_id, scope)


def _queue_arns(spec: SqsQueueSpec, scope: Scope) -> list[str]:
    return [scope.arn("sqs", name) for name in (spec.name, *spec.lanes)]


def _runtime(policy: _Policy, spec: object, scope: Scope) -> None:
    if isinstance(spec, TableSpec):
        policy.allow("JobRecords", TABLE_RUNTIME, _table_arns(spec, scope))
    elif isinstance(spec, SqsQueueSpec):
        policy.allow("ConsumeJobs", QUEUE_RUNTIME, _queue_arns(spec, scope))
        policy.allow("DeadLetterPoisonMessages", DLQ_RUNTIME, [scope.arn("sqs", spec.dlq_name)])
        if spec.kms_key_id:
            _kms_statement(policy, spec.kms_key_id, scope)
    elif isinstance(spec, S3BucketSpec):
        _bodies(policy, spec, scope)
    elif isinstance(spec, KafkaTopicSpec) and scope.msk_cluster_arn:
        policy.allow("KafkaConnect", MSK_CLUSTER, [scope.msk_cluster_arn])
        policy.allow("KafkaTopics", MSK_TOPIC_RUNTIME, [scope.kafka("topic", t) for t in (spec.name, spec.dlq_name)])
        policy.allow("KafkaConsumerGroups", MSK_GROUP_RUNTIME, [scope.kafka("group", spec.group)])


def _provisioning(policy: _Policy, spec: object, scope: Scope) -> None:
    if isinstance(spec, TableSpec):
        table = scope.arn("dynamodb", f"table/{spec.name}")
        policy.allow("CreateTables", TABLE_PROVISIONING, [table])
    elif isinstance(spec, SqsQueueSpec):
        names = [scope.arn("sqs", spec.dlq_name), *_queue_arns(spec, scope)]
        policy.allow("CreateQueues", QUEUE_PROVISIONING, names)
    elif isinstance(spec, S3BucketSpec):
        policy.allow("CreateBodyBucket", BUCKET_PROVISIONING, [_bucket_arn(spec, scope)])
    elif isinstance(spec, KafkaTopicSpec) and scope.msk_cluster_arn:
        policy.allow("KafkaConnect", MSK_CLUSTER, [scope.msk_cluster_arn])
        topics = [scope.kafka("topic", t) for t in (spec.name, spec.dlq_name)]
        policy.allow("KafkaCreateTopics", MSK_TOPIC_PROVISIONING, topics)


def policies(specs: Sequence[object], scope: Scope) -> dict[str, dict[str, Any]]:
    """``{"runtime": document, "provisioning": document}`` for ``specs`` (IAM JSON, sorted).

    Args:
        specs: what :meth:`CloudBackend.resources` returns (tables, SQS queues, Kafka topics).
        scope: partition, region, account and MSK cluster of the ARNs.
    """
    runtime, provisioning = _Policy(), _Policy()
    for spec in specs:
        _runtime(runtime, spec, scope)
        _provisioning(provisioning, spec, scope)
    return {"runtime": runtime.document(), "provisioning": provisioning.document()}


def allowed(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource) pair ``document`` allows, as written (wildcards unexpanded)."""
    return {(a, r) for s in document["Statement"] for a in s["Action"] for r in s["Resource"]}


def render(documents: dict[str, dict[str, Any]]) -> str:
    """Both documents as ``provision --print-iam`` prints them."""
    return json.dumps(documents, indent=2)


__all__ = [
    "CALL_ACTIONS",
    "KAFKA_REQUEST_ACTIONS",
    "PARTITIONS",
    "Scope",
    "allowed",
    "call_actions",
    "check_account",
    "check_msk_cluster",
    "check_region",
    "policies",
    "render",
]
