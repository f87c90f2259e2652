# The AWS resources asyncmq-cloud's backends expect, exactly as asyncmq_cloud/resources/
# describes them (tests/test_terraform.py fails on any drift between the two).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  base        = "${var.name_prefix}asyncmq"
  suffix      = var.fifo ? ".fifo" : ""
  provisioned = var.billing_mode == "PROVISIONED"
  sqs_queues  = var.enable_sqs ? toset(var.queues) : toset([])
  # Priority lanes, as SQSTransportConfig.bounds() and _sqs_lanes.lane_suffix compute them.
  lane_bounds = var.lane_bounds != null ? var.lane_bounds : [for i in range(1, var.priority_lanes) : floor(i * 10 / var.priority_lanes) - 1]
  base_lane   = length([for b in local.lane_bounds : b if b < 5])
  sqs_lanes = {
    for pair in setproduct(local.sqs_queues, range(var.priority_lanes)) : "${pair[0]}-p${pair[1]}" => pair[0]
    if pair[1] != local.base_lane
  }
  kms_key_arn = var.kms_key_arn != null ? var.kms_key_arn : (var.create_kms_key ? aws_kms_key.this[0].arn : null)
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  tags        = merge({ "app.kubernetes.io/part-of" = "asyncmq-cloud" }, var.tags)
}

# -- KMS ----------------------------------------------------------------------------------
resource "aws_kms_key" "this" {
  count                   = var.kms_key_arn == null && var.create_kms_key ? 1 : 0
  description             = "asyncmq-cloud ${local.base}: SQS queues and DynamoDB tables"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The account administers the key; principals get use through their IAM policies
        # (the producer/worker policies below grant kms:GenerateDataKey and kms:Decrypt).
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "SqsAndDynamoDBUse"
        Effect    = "Allow"
        Principal = { Service = ["sqs.amazonaws.com", "dynamodb.amazonaws.com"] }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })
  tags = local.tags
}

resource "aws_kms_alias" "this" {
  count         = var.kms_key_arn == null && var.create_kms_key ? 1 : 0
  name          = "alias/${local.base}"
  target_key_id = aws_kms_key.this[0].key_id
}

# -- SQS: a queue and its dead-letter queue per AsyncMQ queue -----------------------------------
resource "aws_sqs_queue" "dlq" {
  for_each                          = local.sqs_queues
  name                              = "${var.name_prefix}${each.key}-dlq${local.suffix}"
  fifo_queue                        = var.fifo
  message_retention_seconds         = 1209600
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_key_arn != null ? var.kms_data_key_reuse_seconds : null
  sqs_managed_sse_enabled           = local.kms_key_arn == null ? true : null
  tags                              = local.tags
}

resource "aws_sqs_queue" "queue" {
  for_each                          = local.sqs_queues
  name                              = "${var.name_prefix}${each.key}${local.suffix}"
  fifo_queue                        = var.fifo
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_key_arn != null ? var.kms_data_key_reuse_seconds : null
  sqs_managed_sse_enabled           = local.kms_key_arn == null ? true : null
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = local.tags
}

# The other priority lanes of each queue (priority_lanes > 1), redriving to the queue's DLQ.
resource "aws_sqs_queue" "lane" {
  for_each                          = local.sqs_lanes
  name                              = "${var.name_prefix}${each.key}${local.suffix}"
  fifo_queue                        = var.fifo
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_key_arn != null ? var.kms_data_key_reuse_seconds : null
  sqs_managed_sse_enabled           = local.kms_key_arn == null ? true : null
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.value].arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = local.tags

  lifecycle {
    precondition {
      condition     = !var.fifo
      error_message = "priority_lanes needs standard queues: a FIFO queue keeps its own order."
    }
    precondition {
      condition     = length(local.lane_bounds) == var.priority_lanes - 1 && alltrue([for i in range(1, length(local.lane_bounds)) : local.lane_bounds[i] > local.lane_bounds[i - 1]])
      error_message = "lane_bounds must hold priority_lanes - 1 strictly ascending priorities, as SQSBackend requires."
    }
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each  = local.sqs_queues
  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns = concat(
      [aws_sqs_queue.queue[each.key].arn],
      [for name, lane in aws_sqs_queue.lane : lane.arn if local.sqs_lanes[name] == each.key],
    )
  })
}

# -- DynamoDB: the jobs table (state store; the queue of DynamoDBBackend) ---------------------
resource "aws_dynamodb_table" "jobs" {
  name           = var.jobs_table_name
  billing_mode   = var.billing_mode
  read_capacity  = local.provisioned ? var.read_capacity : null
  write_capacity = local.provisioned ? var.write_capacity : null
  hash_key       = "pk"
  range_key      = "sk"

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "gsi1pk"
    type = "S"
  }
  attribute {
    name = "gsi1sk"
    type = "N"
  }
  attribute {
    name = "act_pk"
    type = "S"
  }
  attribute {
    name = "act_sk"
    type = "N"
  }
  attribute {
    name = "rdy_pk"
    type = "S"
  }
  attribute {
    name = "rdy_sk"
    type = "N"
  }

  global_secondary_index {
    name            = "by_state"
    hash_key        = "gsi1pk"
    range_key       = "gsi1sk"
    projection_type = "KEYS_ONLY"
    read_capacity   = local.provisioned ? var.read_capacity : null
    write_capacity  = local.provisioned ? var.write_capacity : null
  }
  global_secondary_index {
    name            = "active"
    hash_key        = "act_pk"
    range_key       = "act_sk"
    projection_type = "KEYS_ONLY"
    read_capacity   = local.provisioned ? var.read_capacity : null
    write_capacity  = local.provisioned ? var.write_capacity : null
  }
  global_secondary_index {
    name            = "ready"
    hash_key        = "rdy_pk"
    range_key       = "rdy_sk"
    projection_type = "KEYS_ONLY"
    read_capacity   = local.provisioned ? var.read_capacity : null
    write_capacity  = local.provisioned ? var.write_capacity : null
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = local.kms_key_arn
  }
  tags = local.tags
}

# -- DynamoDB: the delay table (due-time index; TTL only cleans up orphans) ----------------------
resource "aws_dynamodb_table" "delays" {
  name           = var.delay_table_name
  billing_mode   = var.billing_mode
  read_capacity  = local.provisioned ? var.read_capacity : null
  write_capacity = local.provisioned ? var.write_capacity : null
  hash_key       = "pk"
  range_key      = "sk"

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "due_pk"
    type = "S"
  }
  attribute {
    name = "run_at"
    type = "N"
  }

  global_secondary_index {
    name            = "due"
    hash_key        = "due_pk"
    range_key       = "run_at"
    projection_type = "KEYS_ONLY"
    read_capacity   = local.provisioned ? var.read_capacity : null
    write_capacity  = local.provisioned ? var.write_capacity : null
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = local.kms_key_arn
  }
  tags = local.tags
}
