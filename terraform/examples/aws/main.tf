# asyncmq-cloud on AWS: SQS queues + DLQs (KMS), DynamoDB tables, IAM policies for a
# worker role. `terraform init && terraform apply`, then copy the outputs into the
# backend settings (see ../../modules/asyncmq-cloud/README.md).

terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "worker_role_name" {
  description = "An existing IAM role of the workers (EKS pod identity / IRSA); null = attach nothing."
  type        = string
  default     = null
}

module "asyncmq" {
  source = "../../modules/asyncmq-cloud"

  name_prefix = "myapp-"
  queues      = ["default", "emails"]
  tags        = { project = "myapp" }
}

resource "aws_iam_role_policy_attachment" "worker" {
  count      = var.worker_role_name == null ? 0 : 1
  role       = var.worker_role_name
  policy_arn = module.asyncmq.worker_policy_arn
}

output "sqs_backend_settings" {
  description = "SQSBackend(**settings)."
  value       = module.asyncmq.sqs_backend_settings
}
