# -- Least-privilege IAM: producers, workers (the runtime), and provisioning -------------------
# No wildcard actions; every resource is one of this module's ARNs (DynamoDB indexes as
# TABLE/index/*, MSK topics and groups under msk_topic_prefix). The producer and worker
# policies are the runtime: no Create*, no Delete* of a resource, no ListQueues,
# SetQueueAttributes, UpdateTable or CreateTopic (objects of the offload bucket are deleted with
# their jobs, under its prefix only). The provisioner policy adds what
# `asyncmq-cloud provision`, `create_missing=True` and `asyncmq-cloud doctor` need.
# asyncmq_cloud/resources/iam.py holds the same action lists (`provision --print-iam`).

locals {
  table_arns = [
    aws_dynamodb_table.jobs.arn,
    "${aws_dynamodb_table.jobs.arn}/index/*",
    aws_dynamodb_table.delays.arn,
    "${aws_dynamodb_table.delays.arn}/index/*",
  ]
  queue_arns = concat([for q in aws_sqs_queue.queue : q.arn], [for q in aws_sqs_queue.lane : q.arn])
  dlq_arns   = [for q in aws_sqs_queue.dlq : q.arn]
  # Job records and delays: enqueue, inspect, cancel/remove/retry (producers and workers alike).
  dynamodb_actions = [
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
  ]
}

data "aws_iam_policy_document" "producer" {
  statement {
    sid       = "JobRecords"
    actions   = local.dynamodb_actions
    resources = local.table_arns
  }

  dynamic "statement" {
    for_each = local.offload ? [1] : []
    content {
      sid       = "JobBodies"
      actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
      resources = [local.offload_objects]
    }
  }

  dynamic "statement" {
    for_each = local.offload ? [1] : []
    content {
      sid       = "ListJobBodies"
      actions   = ["s3:ListBucket"]
      resources = [local.offload_arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.offload_prefix}*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.enable_sqs ? [1] : []
    content {
      sid       = "SendJobs"
      actions   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]
      resources = local.queue_arns
    }
  }

  dynamic "statement" {
    for_each = local.kms_key_arn != null ? [1] : []
    content {
      sid       = "EncryptedQueuesAndTables"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [local.kms_key_arn]
    }
  }

  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid       = "KafkaConnect"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
      resources = [local.msk_cluster_arn]
    }
  }

  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid       = "KafkaProduce"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
      resources = [local.msk_topic_arn]
    }
  }

  # `asyncmq queue info` reports the group's lag (committed offsets).
  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid       = "KafkaGroupLag"
      actions   = ["kafka-cluster:DescribeGroup"]
      resources = [local.msk_group_arn]
    }
  }
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "JobRecords"
    actions   = local.dynamodb_actions
    resources = local.table_arns
  }

  dynamic "statement" {
    for_each = local.offload ? [1] : []
    content {
      sid       = "JobBodies"
      actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
      resources = [local.offload_objects]
    }
  }

  dynamic "statement" {
    for_each = local.offload ? [1] : []
    content {
      sid       = "ListJobBodies"
      actions   = ["s3:ListBucket"]
      resources = [local.offload_arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.offload_prefix}*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.enable_sqs ? [1] : []
    content {
      sid = "ConsumeJobs"
      actions = [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
      ]
      resources = local.queue_arns
    }
  }

  dynamic "statement" {
    for_each = var.enable_sqs ? [1] : []
    content {
      sid       = "DeadLetterPoisonMessages"
      actions   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]
      resources = local.dlq_arns
    }
  }

  dynamic "statement" {
    for_each = local.kms_key_arn != null ? [1] : []
    content {
      sid       = "EncryptedQueuesAndTables"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [local.kms_key_arn]
    }
  }

  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid       = "KafkaConnect"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
      resources = [local.msk_cluster_arn]
    }
  }

  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid = "KafkaTopics"
      # No CreateTopic: topics come from provisioning, not from running workers.
      actions = [
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:ReadData",
        "kafka-cluster:WriteData",
      ]
      resources = [local.msk_topic_arn]
    }
  }

  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid       = "KafkaConsumerGroups"
      actions   = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"]
      resources = [local.msk_group_arn]
    }
  }
}

resource "aws_iam_policy" "producer" {
  name        = "${local.base}-producer"
  description = "asyncmq-cloud ${local.base}: enqueue and inspect jobs"
  policy      = data.aws_iam_policy_document.producer.json
  tags        = local.tags
}

resource "aws_iam_policy" "worker" {
  name        = "${local.base}-worker"
  description = "asyncmq-cloud ${local.base}: run jobs (asyncmq worker, scanners)"
  policy      = data.aws_iam_policy_document.worker.json
  tags        = local.tags
}

data "aws_iam_policy_document" "provisioner" {
  statement {
    sid = "CreateTables"
    actions = [
      "dynamodb:CreateTable",
      "dynamodb:DescribeTable",
      "dynamodb:DescribeTimeToLive",
      "dynamodb:UpdateTimeToLive",
    ]
    resources = [aws_dynamodb_table.jobs.arn, aws_dynamodb_table.delays.arn]
  }

  dynamic "statement" {
    for_each = local.offload ? [1] : []
    content {
      sid = "CreateBodyBucket"
      actions = [
        "s3:CreateBucket",
        "s3:GetLifecycleConfiguration",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutEncryptionConfiguration",
        "s3:PutLifecycleConfiguration",
      ]
      resources = [local.offload_arn]
    }
  }

  dynamic "statement" {
    for_each = var.enable_sqs ? [1] : []
    content {
      sid       = "CreateQueues"
      actions   = ["sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SetQueueAttributes"]
      resources = concat(local.queue_arns, local.dlq_arns)
    }
  }

  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid       = "KafkaConnect"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
      resources = [local.msk_cluster_arn]
    }
  }

  dynamic "statement" {
    for_each = local.msk_cluster_arn != null ? [1] : []
    content {
      sid       = "KafkaCreateTopics"
      actions   = ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic"]
      resources = [local.msk_topic_arn]
    }
  }
}

resource "aws_iam_policy" "provisioner" {
  name        = "${local.base}-provisioner"
  description = "asyncmq-cloud ${local.base}: create queues, tables and topics (asyncmq-cloud provision, doctor)"
  policy      = data.aws_iam_policy_document.provisioner.json
  tags        = local.tags
}
