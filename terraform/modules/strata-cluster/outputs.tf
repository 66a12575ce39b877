output "bootstrap_servers" {
  description = "Comma-separated host:port list for Kafka clients' bootstrap.servers."
  value       = local.bootstrap_servers
}

output "controller_quorum_voters" {
  description = "The controller.quorum.voters string every node runs with."
  value       = local.quorum_voters
}

output "node_ids" {
  description = "node.id of each instance, in order."
  value       = local.node_ids
}

output "node_private_ips" {
  description = "Private IP of each node, in node id order."
  value       = local.node_ips
}

output "instance_ids" {
  description = "EC2 instance ids, in node id order."
  value       = aws_instance.node[*].id
}

output "bucket_name" {
  description = "The remote-tier bucket."
  value       = aws_s3_bucket.tier.bucket
}

output "remote_storage_url" {
  description = "remote.storage.url the nodes use."
  value       = local.remote_storage_url
}

output "kms_key_arn" {
  description = "Key encrypting the bucket, the volumes and the flow logs."
  value       = aws_kms_key.this.arn
}

output "security_group_id" {
  description = "Security group of the nodes; add rules to it to admit more clients."
  value       = aws_security_group.node.id
}

output "vpc_id" {
  description = "The VPC the nodes run in (created or given)."
  value       = local.vpc_id
}

output "subnet_ids" {
  description = "Subnets the nodes run in."
  value       = local.subnet_ids
}

output "client_security_protocol" {
  description = "security.protocol clients use on bootstrap_servers: SASL_SSL with security_enabled, else PLAINTEXT."
  value       = var.security_enabled ? "SASL_SSL" : "PLAINTEXT"
}
