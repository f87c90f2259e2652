# -- Optional Amazon MSK (KafkaBackend) with IAM authentication -------------------------------
locals {
  msk_name        = replace("${local.base}-kafka", "_", "-")
  msk_serverless  = var.enable_msk && var.msk_mode == "serverless"
  msk_provisioned = var.enable_msk && var.msk_mode == "provisioned"
  msk_cluster_arn = local.msk_serverless ? aws_msk_serverless_cluster.this[0].arn : (local.msk_provisioned ? aws_msk_cluster.this[0].arn : null)
  # arn:...:cluster/NAME/UUID -> arn:...:topic/NAME/UUID/... and arn:...:group/NAME/UUID/...
  msk_topic_arn = local.msk_cluster_arn == null ? null : "${replace(local.msk_cluster_arn, ":cluster/", ":topic/")}/${var.msk_topic_prefix}*"
  msk_group_arn = local.msk_cluster_arn == null ? null : "${replace(local.msk_cluster_arn, ":cluster/", ":group/")}/${var.msk_topic_prefix}*"
}

resource "aws_msk_serverless_cluster" "this" {
  count        = local.msk_serverless ? 1 : 0
  cluster_name = local.msk_name

  vpc_config {
    subnet_ids         = var.msk_subnet_ids
    security_group_ids = var.msk_security_group_ids
  }

  client_authentication {
    sasl {
      iam {
        enabled = true
      }
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(var.msk_subnet_ids) > 0 && length(var.msk_security_group_ids) > 0
      error_message = "enable_msk needs msk_subnet_ids and msk_security_group_ids."
    }
  }
}

resource "aws_cloudwatch_log_group" "msk" {
  count             = local.msk_provisioned ? 1 : 0
  name              = "/aws/msk/${local.msk_name}"
  retention_in_days = 365
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_msk_cluster" "this" {
  count                  = local.msk_provisioned ? 1 : 0
  cluster_name           = local.msk_name
  kafka_version          = var.msk_kafka_version
  number_of_broker_nodes = var.msk_broker_count

  broker_node_group_info {
    instance_type   = var.msk_broker_instance_type
    client_subnets  = var.msk_subnet_ids
    security_groups = var.msk_security_group_ids

    storage_info {
      ebs_storage_info {
        volume_size = 100
      }
    }
  }

  client_authentication {
    unauthenticated = false
    sasl {
      iam = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = local.kms_key_arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(var.msk_subnet_ids) > 0 && length(var.msk_security_group_ids) > 0
      error_message = "enable_msk needs msk_subnet_ids and msk_security_group_ids."
    }
  }
}
