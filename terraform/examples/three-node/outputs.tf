output "bootstrap_servers" {
  description = "bootstrap.servers for Kafka clients."
  value       = module.strata.bootstrap_servers
}

output "controller_quorum_voters" {
  description = "controller.quorum.voters of the cluster."
  value       = module.strata.controller_quorum_voters
}

output "bucket_name" {
  description = "The remote-tier bucket."
  value       = module.strata.bucket_name
}

output "remote_storage_url" {
  description = "remote.storage.url of the nodes."
  value       = module.strata.remote_storage_url
}

output "instance_ids" {
  description = "EC2 instance ids, in node id order."
  value       = module.strata.instance_ids
}
