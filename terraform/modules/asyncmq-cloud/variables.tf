variable "name_prefix" {
  description = "Prefix of every SQS queue name (the backend's `queue_prefix`), e.g. \"myapp-\". Letters, digits, '-' and '_'."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]*$", var.name_prefix)) && length(var.name_prefix) <= 70
    error_message = "name_prefix may only contain letters, digits, '-' and '_' (at most 70 characters), like SQS queue names."
  }
}

variable "queues" {
  description = "AsyncMQ queue names. With enable_sqs, each gets an SQS queue `<name_prefix><queue>` and its dead-letter queue `<name_prefix><queue>-dlq` (`.fifo` appended for FIFO)."
  type        = list(string)
  default     = ["default"]

  validation {
    condition     = alltrue([for q in var.queues : can(regex("^[A-Za-z0-9_-]{1,128}$", q))])
    error_message = "Queue names used with SQS may only contain letters, digits, '-' and '_' (SQS forbids '.')."
  }
}

variable "enable_sqs" {
  description = "Create the SQS queues and DLQs (SQSBackend). Off for DynamoDBBackend or KafkaBackend alone."
  type        = bool
  default     = true
}

variable "fifo" {
  description = "Create FIFO queues (the backend's `fifo=True`). Every FIFO delay then goes through the delay table."
  type        = bool
  default     = false
}

variable "priority_lanes" {
  description = "SQS queues per AsyncMQ queue, one per band of AsyncMQ priorities (SQSBackend priority_lanes); 1 = one queue. The lane of the default priority (5) is the queue itself, the others <queue>-p<i>."
  type        = number
  default     = 1
  validation {
    condition     = var.priority_lanes >= 1 && var.priority_lanes <= 10 && floor(var.priority_lanes) == var.priority_lanes
    error_message = "priority_lanes must be a whole number from 1 to 10."
  }
}

variable "lane_bounds" {
  description = "The highest AsyncMQ priority of each lane but the last, ascending (SQSBackend lane_bounds); null = spread over 1 .. 10."
  type        = list(number)
  default     = null
}

variable "visibility_timeout_seconds" {
  description = "Default visibility timeout of the queues (the backend's `visibility_timeout`)."
  type        = number
  default     = 30

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be within 0..43200 (12 hours), the SQS limit."
  }
}

variable "max_receive_count" {
  description = "Receives after which SQS moves a message to the DLQ (RedrivePolicy maxReceiveCount; the backend's `max_receive_count`)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be within 1..1000."
  }
}

variable "message_retention_seconds" {
  description = "Message retention of the queues (DLQs always keep 14 days)."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be within 60..1209600 (14 days)."
  }
}

variable "create_kms_key" {
  description = "Create a customer-managed KMS key (with rotation) for the queues and tables. Ignored when kms_key_arn is set."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "An existing KMS key ARN for SSE of queues and tables (the backend's `kms_key_id`). null = the created key."
  type        = string
  default     = null
}

variable "kms_data_key_reuse_seconds" {
  description = "How long SQS reuses a KMS data key (fewer KMS calls, 60..86400)."
  type        = number
  default     = 300

  validation {
    condition     = var.kms_data_key_reuse_seconds >= 60 && var.kms_data_key_reuse_seconds <= 86400
    error_message = "kms_data_key_reuse_seconds must be within 60..86400."
  }
}

variable "jobs_table_name" {
  description = "The jobs table (`store=\"dynamodb://NAME\"`, DynamoDBBackend `table=`)."
  type        = string
  default     = "asyncmq-jobs"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.jobs_table_name))
    error_message = "Table names are 3 to 255 of letters, digits, '_', '.' and '-'."
  }
}

variable "delay_table_name" {
  description = "The delay table (`delay_store=\"dynamodb://NAME\"`)."
  type        = string
  default     = "asyncmq-delays"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.delay_table_name))
    error_message = "Table names are 3 to 255 of letters, digits, '_', '.' and '-'."
  }
}

variable "billing_mode" {
  description = "DynamoDB billing: PAY_PER_REQUEST (on-demand) or PROVISIONED."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "read_capacity" {
  description = "Read capacity of each table and index with PROVISIONED billing."
  type        = number
  default     = 5
}

variable "write_capacity" {
  description = "Write capacity of each table and index with PROVISIONED billing."
  type        = number
  default     = 5
}

variable "point_in_time_recovery" {
  description = "Enable DynamoDB point-in-time recovery on both tables."
  type        = bool
  default     = true
}

variable "enable_msk" {
  description = "Create an Amazon MSK cluster with IAM authentication for KafkaBackend."
  type        = bool
  default     = false
}

variable "msk_mode" {
  description = "MSK flavour: \"serverless\" or \"provisioned\"."
  type        = string
  default     = "serverless"

  validation {
    condition     = contains(["serverless", "provisioned"], var.msk_mode)
    error_message = "msk_mode must be \"serverless\" or \"provisioned\"."
  }
}

variable "msk_subnet_ids" {
  description = "Subnets of the MSK cluster (required with enable_msk; provisioned: one per broker AZ)."
  type        = list(string)
  default     = []
}

variable "msk_security_group_ids" {
  description = "Security groups of the MSK cluster (required with enable_msk)."
  type        = list(string)
  default     = []
}

variable "msk_kafka_version" {
  description = "Kafka version of a provisioned MSK cluster."
  type        = string
  default     = "3.6.0"
}

variable "msk_broker_instance_type" {
  description = "Broker instance type of a provisioned MSK cluster."
  type        = string
  default     = "kafka.m5.large"
}

variable "msk_broker_count" {
  description = "Number of brokers of a provisioned MSK cluster (a multiple of the subnets)."
  type        = number
  default     = 3
}

variable "msk_topic_prefix" {
  description = "Topic prefix of KafkaBackend (its `topic_prefix`); IAM is scoped to these topics and their groups."
  type        = string
  default     = "asyncmq."
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "offload_bucket_name" {
  description = "S3 bucket of the claim check (the backends' `offload`): job payloads and results above the threshold live there. null = no bucket."
  type        = string
  default     = null

  validation {
    condition     = var.offload_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.offload_bucket_name))
    error_message = "offload_bucket_name must be 3 to 63 lower-case letters, digits, '.' and '-', beginning and ending with a letter or digit."
  }
}

variable "offload_prefix" {
  description = "Key prefix of the bodies in the offload bucket (the `prefix` of S3Offload)."
  type        = string
  default     = "asyncmq/"
}

variable "offload_expire_days" {
  description = "Days after its last write a body expires (the lifecycle rule; S3Offload expire_days): longer than any job lives (delay, wait, retention)."
  type        = number
  default     = 30

  validation {
    condition     = var.offload_expire_days >= 1 && floor(var.offload_expire_days) == var.offload_expire_days
    error_message = "offload_expire_days must be a whole number of days, at least 1."
  }
}
