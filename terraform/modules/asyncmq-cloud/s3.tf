# -- The S3 claim check (the backends' `offload`): payload and result bodies above the threshold ---
# As asyncmq_cloud/resources/s3.py describes the bucket: every public access blocked, SSE-KMS
# (the module's key when there is one, else aws/s3) with a Bucket Key, and a lifecycle rule that
# expires bodies under the prefix `offload_expire_days` after their last write (the safety net
# for bodies whose record is gone without a `remove`) and aborts incomplete uploads.

locals {
  offload         = var.offload_bucket_name != null
  offload_prefix  = var.offload_prefix == "" ? "" : "${trim(var.offload_prefix, "/")}/"
  offload_arn     = local.offload ? aws_s3_bucket.offload[0].arn : null
  offload_objects = local.offload ? "${aws_s3_bucket.offload[0].arn}/${local.offload_prefix}*" : null
}

resource "aws_s3_bucket" "offload" {
  #checkov:skip=CKV_AWS_18:access logs need a second bucket; every access is in CloudTrail data events when enabled
  #checkov:skip=CKV_AWS_144:bodies live as long as their job (days); a replica in a second region is not needed
  #checkov:skip=CKV2_AWS_62:nothing consumes events of this bucket: the backends read bodies by key
  count         = local.offload ? 1 : 0
  bucket        = var.offload_bucket_name
  force_destroy = false
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "offload" {
  count                   = local.offload ? 1 : 0
  bucket                  = aws_s3_bucket.offload[0].id
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "offload" {
  count  = local.offload ? 1 : 0
  bucket = aws_s3_bucket.offload[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

# Versioning keeps a deleted body as a noncurrent version for one day only (the lifecycle
# rule below), so `remove_job` still removes the data within a day.
resource "aws_s3_bucket_versioning" "offload" {
  count  = local.offload ? 1 : 0
  bucket = aws_s3_bucket.offload[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "offload" {
  count  = local.offload ? 1 : 0
  bucket = aws_s3_bucket.offload[0].id
  rule {
    id     = "asyncmq-cloud-offload-expiry"
    status = "Enabled"
    filter {
      prefix = local.offload_prefix
    }
    expiration {
      days = var.offload_expire_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }
  rule {
    id     = "asyncmq-cloud-abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  depends_on = [aws_s3_bucket_versioning.offload]
}
