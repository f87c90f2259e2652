output "queue_prefix" {
  description = "The backends' `queue_prefix`."
  value       = var.name_prefix
}

output "fifo" {
  description = "The SQSBackend's `fifo`."
  value       = var.fifo
}

output "visibility_timeout" {
  description = "The SQSBackend's `visibility_timeout`."
  value       = var.visibility_timeout_seconds
}

output "max_receive_count" {
  description = "The SQSBackend's `max_receive_count`."
  value       = var.max_receive_count
}

output "kms_key_id" {
  description = "The SQSBackend's `kms_key_id` (null: SQS-managed encryption)."
  value       = local.kms_key_arn
}

output "store" {
  description = "The backends' `store` URL (DynamoDBBackend: `table` is jobs_table_name)."
  value       = "dynamodb://${aws_dynamodb_table.jobs.name}"
}

output "delay_store" {
  description = "The backends' `delay_store` URL."
  value       = "dynamodb://${aws_dynamodb_table.delays.name}"
}

output "jobs_table_name" {
  description = "The jobs table (DynamoDBBackend `table`)."
  value       = aws_dynamodb_table.jobs.name
}

output "delay_table_name" {
  description = "The delay table."
  value       = aws_dynamodb_table.delays.name
}

output "queue_urls" {
  description = "SQS queue URL per AsyncMQ queue."
  value       = { for q, queue in aws_sqs_queue.queue : q => queue.url }
}

output "dead_letter_queue_urls" {
  description = "SQS dead-letter queue URL per AsyncMQ queue."
  value       = { for q, queue in aws_sqs_queue.dlq : q => queue.url }
}

output "queue_arns" {
  description = "SQS queue ARN per AsyncMQ queue (KEDA aws-sqs-queue scaler, alarms)."
  value       = { for q, queue in aws_sqs_queue.queue : q => queue.arn }
}

output "producer_policy_arn" {
  description = "IAM policy for producers: attach to the role of the services that enqueue."
  value       = aws_iam_policy.producer.arn
}

output "worker_policy_arn" {
  description = "IAM policy for workers and scanners: the runtime policy (nothing created, deleted or reconfigured)."
  value       = aws_iam_policy.worker.arn
}

output "provisioner_policy_arn" {
  description = "IAM policy for `asyncmq-cloud provision`, `create_missing=True` and `asyncmq-cloud doctor`; never for workers."
  value       = aws_iam_policy.provisioner.arn
}

output "worker_policy_json" {
  description = "The worker (runtime) policy document, for roles managed outside this module."
  value       = data.aws_iam_policy_document.worker.json
}

output "provisioner_policy_json" {
  description = "The provisioner policy document, for roles managed outside this module."
  value       = data.aws_iam_policy_document.provisioner.json
}

output "msk_cluster_arn" {
  description = "The MSK cluster (null without enable_msk)."
  value       = local.msk_cluster_arn
}

output "msk_bootstrap_brokers_iam" {
  description = "KafkaBackend `bootstrap_servers` with IAM auth (null without enable_msk)."
  value = (
    local.msk_provisioned ? aws_msk_cluster.this[0].bootstrap_brokers_sasl_iam :
    local.msk_serverless ? aws_msk_serverless_cluster.this[0].bootstrap_brokers_sasl_iam : null
  )
}

output "sqs_backend_settings" {
  description = "Keyword arguments of SQSBackend, one-to-one."
  value = {
    queue_prefix       = var.name_prefix
    store              = "dynamodb://${aws_dynamodb_table.jobs.name}"
    delay_store        = "dynamodb://${aws_dynamodb_table.delays.name}"
    fifo               = var.fifo
    visibility_timeout = var.visibility_timeout_seconds
    max_receive_count  = var.max_receive_count
    kms_key_id         = local.kms_key_arn
    priority_lanes     = var.priority_lanes
    lane_bounds        = local.lane_bounds
  }
}

output "dynamodb_backend_settings" {
  description = "Keyword arguments of DynamoDBBackend, one-to-one."
  value = {
    table       = aws_dynamodb_table.jobs.name
    delay_store = "dynamodb://${aws_dynamodb_table.delays.name}"
  }
}

output "offload" {
  description = "The `offload` setting of the backends (s3://BUCKET/PREFIX), or null without an offload bucket."
  value       = local.offload ? "s3://${aws_s3_bucket.offload[0].id}/${local.offload_prefix}" : null
}
