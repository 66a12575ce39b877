variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Cluster name, used as a prefix for every resource."
  type        = string
  default     = "strata-demo"
}

variable "instance_type" {
  description = "EC2 instance type of the nodes."
  type        = string
  default     = "m7g.large"
}

variable "architecture" {
  description = "arm64 or x86_64, matching instance_type and the release binary."
  type        = string
  default     = "arm64"
}

variable "kafka_client_cidrs" {
  description = "CIDRs allowed to reach Kafka on port 9092."
  type        = list(string)
}

variable "metrics_cidrs" {
  description = "CIDRs allowed to scrape metrics on port 9464."
  type        = list(string)
  default     = []
}

variable "bucket_name" {
  description = "Globally unique name of the remote-tier bucket to create."
  type        = string
}

variable "strata_download_url" {
  description = "HTTPS URL of the Strata binary for the architecture."
  type        = string
}

variable "strata_sha256" {
  description = "SHA-256 of the binary at strata_download_url."
  type        = string
}
