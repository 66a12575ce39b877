variable "name" {
  description = "Name prefix for every resource (e.g. \"strata-prod\")."
  type        = string
  default     = "strata"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 characters of lowercase letters, digits and dashes."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- network

variable "vpc_id" {
  description = "An existing VPC to use. Leave null to create a VPC with private subnets, a NAT gateway and an S3 gateway endpoint."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "With vpc_id: one existing private subnet per node (3 ids, ideally in 3 availability zones). Node i is placed in subnet_ids[i]."
  type        = list(string)
  default     = []

  validation {
    condition     = var.vpc_id == null || length(var.subnet_ids) > 0
    error_message = "With vpc_id set, pass subnet_ids (one private subnet per node, ideally in different availability zones)."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC (used only when vpc_id is null)."
  type        = string
  default     = "10.42.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones for the created subnets (used only when vpc_id is null). Empty: <region>a, <region>b and <region>c (set this in regions without those letters, e.g. ap-northeast-1)."
  type        = list(string)
  default     = []
}

variable "node_host_number" {
  description = "Host number of node 1 inside its subnet; node i gets node_host_number + i - 1 (fixed private IPs let every node know the quorum voters before it boots)."
  type        = number
  default     = 10
}

variable "kafka_client_cidrs" {
  description = "CIDRs allowed to reach the Kafka port (9092). Required: there is no open default."
  type        = list(string)

  validation {
    condition     = length(var.kafka_client_cidrs) > 0 && !contains(var.kafka_client_cidrs, "0.0.0.0/0")
    error_message = "kafka_client_cidrs must list at least one CIDR and must not be 0.0.0.0/0."
  }
}

variable "metrics_cidrs" {
  description = "CIDRs allowed to scrape the metrics port (9464), e.g. your Prometheus subnet. Empty: metrics reachable only inside the cluster."
  type        = list(string)
  default     = []
}

variable "kafka_port" {
  description = "Kafka listener port."
  type        = number
  default     = 9092
}

variable "controller_port" {
  description = "Controller (Raft quorum) port; opened only between the cluster's nodes."
  type        = number
  default     = 9093
}

variable "metrics_port" {
  description = "Prometheus metrics port."
  type        = number
  default     = 9464
}

# ---------------------------------------------------------------- storage

variable "bucket_name" {
  description = "Name of the S3 bucket created for the remote tier (globally unique)."
  type        = string
}

variable "bucket_prefix" {
  description = "Key prefix inside the bucket; the instances may only touch keys under it."
  type        = string
  default     = "strata"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.bucket_prefix))
    error_message = "bucket_prefix must be a non-empty key prefix without leading or trailing slashes."
  }
}

variable "bucket_force_destroy" {
  description = "Allow `terraform destroy` to delete a non-empty bucket. The bucket is the backup of every topic: keep false in production."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten or deleted object versions are removed."
  type        = number
  default     = 30
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads (crashed segment uploads) are aborted."
  type        = number
  default     = 2
}

variable "log_retention_days" {
  description = "Retention of the VPC flow log group (created VPC only)."
  type        = number
  default     = 365
}

# ---------------------------------------------------------------- instances

variable "node_count" {
  description = "Number of nodes; each is a broker and a controller voter. Use 3 or 5."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 3, 5], var.node_count)
    error_message = "node_count must be 1, 3 or 5 (an odd Raft quorum)."
  }
}

variable "instance_type" {
  description = "EC2 instance type (Nitro, so EBS volumes appear as NVMe devices)."
  type        = string
  default     = "m7g.large"
}

variable "ami_id" {
  description = "AMI for the nodes. Null: the latest Amazon Linux 2023 for the instance type's architecture."
  type        = string
  default     = null
}

variable "architecture" {
  description = "CPU architecture of instance_type and of the Strata binary: arm64 or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "root_volume_size_gb" {
  description = "Root volume size (GiB)."
  type        = number
  default     = 20
}

variable "data_volume_size_gb" {
  description = "gp3 data volume for log.dirs (GiB): hot segments only, older data lives in S3."
  type        = number
  default     = 200
}

variable "data_volume_iops" {
  description = "gp3 IOPS of the data volume (3000-16000)."
  type        = number
  default     = 3000
}

variable "data_volume_throughput" {
  description = "gp3 throughput of the data volume in MiB/s (125-1000)."
  type        = number
  default     = 250
}

variable "strata_download_url" {
  description = "HTTPS URL of the Strata release binary (a single executable or a .tar.gz holding `strata`) for the chosen architecture."
  type        = string

  validation {
    condition     = startswith(var.strata_download_url, "https://")
    error_message = "strata_download_url must be an https:// URL."
  }
}

variable "strata_sha256" {
  description = "SHA-256 of the file at strata_download_url; the node refuses to install anything else."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.strata_sha256))
    error_message = "strata_sha256 must be 64 lowercase hex digits."
  }
}

variable "strata_settings" {
  description = "Extra Kafka-named broker settings written to strata.toml, e.g. { \"log.retention.hours\" = \"168\" }. Values are written as TOML strings."
  type        = map(string)
  default     = {}
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore so operators reach nodes with Session Manager (no SSH port is opened)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- security

variable "security_enabled" {
  description = "Clients on SASL_SSL (kafka_port), replication on an SSL listener (internal_port) and the Raft transport on SSL (controller_port), both with client certificates from the cluster CA, and (security_authorizer_enabled) ACLs. No plaintext port is opened."
  type        = bool
  default     = false
}

variable "security_secret_store" {
  description = "Where the security material lives: \"secretsmanager\" (the *_secret variables are secret ARNs) or \"ssm\" (they are SecureString parameter names)."
  type        = string
  default     = "secretsmanager"

  validation {
    condition     = contains(["secretsmanager", "ssm"], var.security_secret_store)
    error_message = "security_secret_store must be secretsmanager or ssm."
  }
}

variable "security_ca_certificate_secret" {
  description = "Secret ARN or SSM parameter name holding the cluster CA certificate (PEM): clients' and nodes' certificates are verified against it."
  type        = string
  default     = null

  validation {
    condition     = !var.security_enabled || var.security_ca_certificate_secret != null
    error_message = "security_enabled needs security_ca_certificate_secret."
  }
}

variable "security_node_keystore_secrets" {
  description = "One secret ARN or SSM parameter name per node, in node id order: that node's private key and certificate chain (PEM, unencrypted key), issued by the cluster CA with the node's private IP (node_private_ips) as a subject alternative name."
  type        = list(string)
  default     = []

  validation {
    condition     = !var.security_enabled || length(var.security_node_keystore_secrets) == var.node_count
    error_message = "security_enabled needs one keystore secret per node (node_count entries)."
  }
}

variable "security_sasl_mechanisms" {
  description = "SASL mechanisms of the client listener, comma-separated: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN (needs security_plain_jaas_secret), OAUTHBEARER (set its sasl.oauthbearer.* settings in strata_settings)."
  type        = string
  default     = "SCRAM-SHA-512"
}

variable "security_plain_jaas_secret" {
  description = "Optional secret ARN or SSM parameter name holding a PlainLoginModule JAAS line with user_<name>=\"<password>\" entries: the PLAIN users of the client listener (e.g. a bootstrap admin to create SCRAM users with `strata user scram set`)."
  type        = string
  default     = null
}

variable "security_authorizer_enabled" {
  description = "With security_enabled: turn on ACLs (Kafka's StandardAuthorizer rules); manage them with `strata acl`."
  type        = bool
  default     = true
}

variable "security_super_users" {
  description = "Principals allowed everything, e.g. [\"User:admin\", \"User:CN=strata-node,O=Acme\"]. Include the nodes' certificate subject (as ssl.principal.mapping.rules maps it): their replica fetchers need CLUSTER_ACTION."
  type        = list(string)
  default     = []

  validation {
    condition     = !(var.security_enabled && var.security_authorizer_enabled) || length(var.security_super_users) > 0
    error_message = "With ACLs on, list at least the nodes' principal in security_super_users, or replication is refused."
  }
}

variable "security_secrets_kms_key_arn" {
  description = "Customer-managed KMS key encrypting the secrets or parameters, if any (the AWS-managed keys need no grant)."
  type        = string
  default     = null
}

variable "internal_port" {
  description = "With security_enabled: the SSL listener the nodes replicate over; opened only between the cluster's nodes."
  type        = number
  default     = 9091
}

variable "client_encryption_kms" {
  description = "Client-side encryption of the remote tier with data keys from AWS KMS (remote.storage.encryption.kms.key.id): every object is AES-256-GCM encrypted by the broker before upload, its data key wrapped by KMS. The nodes' role gets kms:GenerateDataKey and kms:Decrypt on the key, for the broker's encryption context only."
  type        = bool
  default     = false
}

variable "client_encryption_kms_key_arn" {
  description = "With client_encryption_kms: the KMS key wrapping the data keys; null means the cluster's key (the one that also encrypts the bucket, volumes and logs). Its key policy must let this account's IAM policies grant its use."
  type        = string
  default     = null
}
