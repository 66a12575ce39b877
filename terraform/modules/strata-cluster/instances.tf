# node_count instances. Node i (1-based) has node.id = i, a fixed private IP, an
# encrypted gp3 data volume mounted at /var/lib/strata, and runs `strata serve` under
# systemd with the quorum voters and the bucket wired in.

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.al2023[0].insecure_value

  remote_storage_url = "s3://${aws_s3_bucket.tier.bucket}/${var.bucket_prefix}"

  # Client-side encryption with KMS data keys; region and credentials are the S3
  # backend's (AWS_REGION from the unit, the instance profile).
  client_encryption_kms_key = var.client_encryption_kms_key_arn != null ? var.client_encryption_kms_key_arn : aws_kms_key.this.arn
  client_encryption_settings = var.client_encryption_kms ? {
    "remote.storage.encryption.enable"     = "true"
    "remote.storage.encryption.kms.key.id" = local.client_encryption_kms_key
  } : {}

  strata_settings = [
    for i in range(var.node_count) : merge(var.strata_settings, local.security_settings, local.client_encryption_settings, {
      "node.id"                    = tostring(local.node_ids[i])
      "process.roles"              = "broker,controller"
      "listeners"                  = local.listeners
      "advertised.listeners"       = local.advertised[i]
      "controller.listener.names"  = "CONTROLLER"
      "controller.quorum.voters"   = local.quorum_voters
      "log.dirs"                   = "/var/lib/strata/data"
      "metrics.listener"           = "0.0.0.0:${var.metrics_port}"
      "remote.storage.url"         = local.remote_storage_url
      "default.replication.factor" = tostring(min(3, var.node_count))
      "min.insync.replicas"        = tostring(min(2, var.node_count))
    })
  ]
}

resource "aws_instance" "node" {
  count                  = var.node_count
  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = local.node_subnet_ids[count.index]
  private_ip             = local.node_ips[count.index]
  vpc_security_group_ids = [aws_security_group.node.id]
  iam_instance_profile   = aws_iam_instance_profile.node.name
  ebs_optimized          = true
  monitoring             = true

  associate_public_ip_address = false

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    kms_key_id            = aws_kms_key.this.arn
    delete_on_termination = true
  }

  # Hot segments. Kept when the instance is replaced only if you detach it first:
  # the bucket, not this volume, is the durable copy of closed segments.
  ebs_block_device {
    device_name           = "/dev/sdf"
    volume_type           = "gp3"
    volume_size           = var.data_volume_size_gb
    iops                  = var.data_volume_iops
    throughput            = var.data_volume_throughput
    encrypted             = true
    kms_key_id            = aws_kms_key.this.arn
    delete_on_termination = true
  }

  user_data_replace_on_change = false
  user_data = templatefile("${path.module}/templates/user-data.sh.tftpl", {
    node_id      = local.node_ids[count.index]
    region       = data.aws_region.current.name
    download_url = var.strata_download_url
    sha256       = var.strata_sha256
    strata_toml  = join("\n", [for k, v in local.strata_settings[count.index] : "${jsonencode(k)} = ${jsonencode(v)}"])
    data_device  = "/dev/sdf"
    mount_point  = "/var/lib/strata"
    # Security material fetched at boot (security.tf); comments only when it is off.
    fetch_secrets = local.fetch_secrets[count.index]
    append_config = local.append_config
  })

  tags        = merge(local.tags, { Name = "${var.name}-${local.node_ids[count.index]}", "strata:node-id" = tostring(local.node_ids[count.index]) })
  volume_tags = merge(local.tags, { Name = "${var.name}-${local.node_ids[count.index]}" })

  lifecycle {
    ignore_changes = [ami]
  }
}
