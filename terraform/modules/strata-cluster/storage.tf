# The remote tier: one bucket, encrypted with a customer-managed key, private,
# versioned, with incomplete multipart uploads aborted. The bucket is also the
# cluster's backup (docs/operations.md), which is why versioning is on and
# force_destroy is off by default.

resource "aws_kms_key" "this" {
  description             = "Strata ${var.name}: S3 remote tier, EBS data volumes, logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  tags                    = local.tags

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsFlowLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/strata/${var.name}/*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_s3_bucket" "tier" {
  #checkov:skip=CKV_AWS_18:Server access logs need a separate log bucket that is account policy, not cluster policy; CloudTrail data events cover this bucket when enabled account-wide.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage cost and is a disaster-recovery choice per deployment; versioning protects against deletes (docs/operations.md).
  #checkov:skip=CKV2_AWS_62:Strata does not consume bucket events; nothing would subscribe to them.
  bucket        = var.bucket_name
  force_destroy = var.bucket_force_destroy
  tags          = merge(local.tags, { Name = var.bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "tier" {
  bucket = aws_s3_bucket.tier.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "tier" {
  bucket                  = aws_s3_bucket.tier.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "tier" {
  bucket = aws_s3_bucket.tier.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "tier" {
  bucket = aws_s3_bucket.tier.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "tier" {
  bucket     = aws_s3_bucket.tier.id
  depends_on = [aws_s3_bucket_versioning.tier]

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  # Segments deleted by retention stay recoverable for a while, then go.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
}

resource "aws_s3_bucket_policy" "tier" {
  bucket     = aws_s3_bucket.tier.id
  depends_on = [aws_s3_bucket_public_access_block.tier]

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.tier.arn, "${aws_s3_bucket.tier.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}
