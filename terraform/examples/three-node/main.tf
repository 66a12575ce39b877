# A 3-node Strata cluster in a new VPC, with its S3 remote tier.
#
#   terraform init
#   terraform apply -var bucket_name=my-strata-tier \
#       -var 'kafka_client_cidrs=["10.0.0.0/8"]' \
#       -var strata_download_url=https://example.com/strata-aarch64-linux \
#       -var strata_sha256=<sha256 of that file>
#   terraform output bootstrap_servers

terraform {
  required_version = ">= 1.9.0" # validations that refer to other variables

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = { project = "strata" }
  }
}

module "strata" {
  source = "../../modules/strata-cluster"

  name                = var.name
  node_count          = 3
  instance_type       = var.instance_type
  architecture        = var.architecture
  kafka_client_cidrs  = var.kafka_client_cidrs
  metrics_cidrs       = var.metrics_cidrs
  bucket_name         = var.bucket_name
  bucket_prefix       = "cluster/${var.name}"
  strata_download_url = var.strata_download_url
  strata_sha256       = var.strata_sha256
  data_volume_size_gb = 200

  strata_settings = {
    "log.retention.hours"    = "168"
    "log.local.retention.ms" = "3600000"
    "log.segment.bytes"      = "268435456"
  }
}
