# Offline plan/apply against a mocked AWS provider: `terraform test` (see ../README.md).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:mocked" }
  }
  mock_resource "aws_msk_serverless_cluster" {
    defaults = { arn = "arn:aws:kafka:us-east-1:123456789012:cluster/asyncmq-kafka/11111111-2222-3333-4444-555555555555-s1" }
  }
}

run "standard_queues_with_redrive_and_kms" {
  command = apply

  variables {
    name_prefix = "app-"
    queues      = ["default", "emails"]
  }

  assert {
    condition     = aws_sqs_queue.queue["emails"].name == "app-emails" && aws_sqs_queue.dlq["emails"].name == "app-emails-dlq"
    error_message = "queue names must be <prefix><queue> and <prefix><queue>-dlq, as SQSTransport expects"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.queue["default"].redrive_policy).maxReceiveCount == 5
    error_message = "the queue must redrive to its DLQ after max_receive_count receives"
  }
  assert {
    condition     = aws_sqs_queue.dlq["default"].message_retention_seconds == 1209600
    error_message = "DLQs keep messages 14 days"
  }
  assert {
    condition     = aws_sqs_queue.queue["default"].kms_master_key_id == aws_kms_key.this[0].arn
    error_message = "queues are encrypted with the module's KMS key"
  }
  assert {
    condition     = aws_kms_key.this[0].enable_key_rotation
    error_message = "the KMS key rotates"
  }
  assert {
    condition     = output.sqs_backend_settings.queue_prefix == "app-" && output.store == "dynamodb://asyncmq-jobs"
    error_message = "outputs map one-to-one onto the backend settings"
  }
  assert {
    condition     = toset([for i in aws_dynamodb_table.jobs.global_secondary_index : i.name]) == toset(["by_state", "active", "ready"])
    error_message = "the jobs table has exactly the indexes resources.py describes"
  }
  assert {
    condition     = aws_dynamodb_table.jobs.ttl[0].attribute_name == "expires_at" && aws_dynamodb_table.delays.ttl[0].attribute_name == "expires_at"
    error_message = "TTL attribute is expires_at on both tables"
  }
  assert {
    condition     = aws_dynamodb_table.jobs.point_in_time_recovery[0].enabled && aws_dynamodb_table.jobs.billing_mode == "PAY_PER_REQUEST"
    error_message = "on-demand tables with point-in-time recovery by default"
  }
}

run "fifo_queues" {
  command = apply

  variables {
    fifo = true
  }

  assert {
    condition     = aws_sqs_queue.queue["default"].name == "default.fifo" && aws_sqs_queue.dlq["default"].name == "default-dlq.fifo"
    error_message = "FIFO queues and their DLQs end in .fifo"
  }
  assert {
    condition     = aws_sqs_queue.queue["default"].fifo_queue && aws_sqs_queue.dlq["default"].fifo_queue
    error_message = "a FIFO queue needs a FIFO DLQ"
  }
}

run "dynamodb_only_without_kms_key" {
  command = apply

  variables {
    enable_sqs     = false
    create_kms_key = false
    billing_mode   = "PROVISIONED"
  }

  assert {
    condition     = length(aws_sqs_queue.queue) == 0 && length(aws_kms_key.this) == 0
    error_message = "no queues and no key when not asked for"
  }
  assert {
    condition     = aws_dynamodb_table.jobs.read_capacity == 5 && aws_dynamodb_table.jobs.server_side_encryption[0].enabled
    error_message = "provisioned capacity and encryption at rest"
  }
  assert {
    condition     = output.dynamodb_backend_settings.table == "asyncmq-jobs"
    error_message = "DynamoDBBackend settings output"
  }
}

run "msk_serverless_with_iam" {
  command = apply

  variables {
    enable_msk             = true
    msk_subnet_ids         = ["subnet-1", "subnet-2"]
    msk_security_group_ids = ["sg-1"]
  }

  assert {
    condition     = aws_msk_serverless_cluster.this[0].client_authentication[0].sasl[0].iam[0].enabled
    error_message = "MSK uses IAM authentication"
  }
  assert {
    condition     = output.msk_cluster_arn == aws_msk_serverless_cluster.this[0].arn
    error_message = "the cluster ARN is an output"
  }
}

run "invalid_prefix_is_refused" {
  command = plan

  variables {
    name_prefix = "bad.prefix"
  }

  expect_failures = [var.name_prefix]
}

run "msk_needs_its_network" {
  command = plan

  variables {
    enable_msk = true
  }

  expect_failures = [aws_msk_serverless_cluster.this]
}

run "priority_lanes_add_queues_that_share_the_dlq" {
  command = apply

  variables {
    name_prefix    = "app-"
    queues         = ["emails"]
    priority_lanes = 3
  }

  assert {
    condition     = toset(keys(aws_sqs_queue.lane)) == toset(["emails-p0", "emails-p2"]) && aws_sqs_queue.lane["emails-p0"].name == "app-emails-p0"
    error_message = "the lanes other than the default priority's are <prefix><queue>-p<i>, as SQSTransport names them"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.lane["emails-p2"].redrive_policy).deadLetterTargetArn == aws_sqs_queue.dlq["emails"].arn
    error_message = "every lane redrives to the queue's one DLQ"
  }
  assert {
    condition     = output.sqs_backend_settings.priority_lanes == 3 && jsonencode(output.sqs_backend_settings.lane_bounds) == "[2,5]"
    error_message = "the lane settings map onto SQSBackend (bounds as SQSTransportConfig.bounds computes them)"
  }
}

run "priority_lanes_refuse_fifo" {
  command = plan

  variables {
    queues         = ["emails"]
    fifo           = true
    priority_lanes = 2
  }

  expect_failures = [aws_sqs_queue.lane]
}
