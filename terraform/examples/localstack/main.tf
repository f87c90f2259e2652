# asyncmq-cloud against LocalStack (host mode or the compose file in ../../../localstack/):
# the same module, the AWS provider pointed at http://localhost:4566.
#
#   terraform init && terraform apply -auto-approve
#
# or, with LocalStack's wrapper (pip install terraform-local), `tflocal apply` on the AWS
# example instead of this one: it rewrites the endpoints itself.

terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
  }
}

variable "endpoint" {
  description = "LocalStack's edge endpoint."
  type        = string
  default     = "http://localhost:4566"
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true

  endpoints {
    dynamodb = var.endpoint
    iam      = var.endpoint
    kms      = var.endpoint
    sqs      = var.endpoint
    sts      = var.endpoint
  }
}

module "asyncmq" {
  source = "../../modules/asyncmq-cloud"

  name_prefix    = "dev-"
  queues         = ["default"]
  create_kms_key = false # LocalStack community: SQS-managed encryption keeps it simple
}

output "sqs_backend_settings" {
  description = "SQSBackend(**settings, endpoint_url=var.endpoint)."
  value       = module.asyncmq.sqs_backend_settings
}
