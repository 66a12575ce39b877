#!/bin/bash
# LocalStack ready hook (docker-compose.yml mounts it into /etc/localstack/init/ready.d):
# creates the bucket Strata tiers into.
set -euo pipefail
awslocal s3api head-bucket --bucket strata 2>/dev/null || awslocal s3 mb s3://strata
