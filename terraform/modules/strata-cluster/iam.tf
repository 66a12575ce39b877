# The nodes' instance profile: read and write under the bucket prefix, list only that
# prefix, use the cluster key for it, and (with client_encryption_kms) have KMS make
# and open the data keys of the broker's own client-side encryption. Nothing else.

resource "aws_iam_role" "node" {
  name = "${var.name}-node"
  tags = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "tier" {
  name = "strata-remote-tier"
  role = aws_iam_role.node.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListOwnPrefix"
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
        Resource = [aws_s3_bucket.tier.arn]
        Condition = {
          StringLike = { "s3:prefix" = [var.bucket_prefix, "${var.bucket_prefix}/*"] }
        }
      },
      {
        Sid    = "ObjectsUnderPrefix"
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          "s3:DeleteObject",
          "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts",
        ]
        Resource = ["${aws_s3_bucket.tier.arn}/${var.bucket_prefix}/*"]
      },
      {
        Sid      = "ClusterKeyThroughS3"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [aws_kms_key.this.arn]
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${data.aws_region.current.name}.amazonaws.com" }
        }
      },
    ]
  })
}

# remote.storage.encryption.kms.key.id: the broker calls KMS itself (not through S3),
# always with the encryption context {"strata:object" = <object path>}, so the grant is
# limited to calls that carry that context key.
resource "aws_iam_role_policy" "client_encryption" {
  count = var.client_encryption_kms ? 1 : 0
  name  = "strata-client-side-encryption"
  role  = aws_iam_role.node.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "DataKeysForTierObjects"
      Effect   = "Allow"
      Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource = [local.client_encryption_kms_key]
      Condition = {
        "ForAllValues:StringEquals" = { "kms:EncryptionContextKeys" = ["strata:object"] }
        "Null"                      = { "kms:EncryptionContextKeys" = "false" }
      }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count      = var.enable_ssm ? 1 : 0
  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-node"
  role = aws_iam_role.node.name
  tags = local.tags
}
