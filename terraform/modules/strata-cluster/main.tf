# Strata cluster on EC2: node_count nodes, each a broker and a Raft controller voter,
# with an S3 bucket as the remote tier. See docs/operations.md.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

# Pinned by name so the set never grows on its own when AWS adds a zone.
data "aws_availability_zones" "chosen" {
  state = "available"
  filter {
    name   = "zone-name"
    values = length(var.availability_zones) > 0 ? var.availability_zones : [for s in ["a", "b", "c"] : "${data.aws_region.current.name}${s}"]
  }
}

locals {
  create_vpc = var.vpc_id == null
  azs        = data.aws_availability_zones.chosen.names
  tags       = merge({ "strata:cluster" = var.name, "managed-by" = "terraform" }, var.tags)

  vpc_id     = local.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  subnet_ids = local.create_vpc ? aws_subnet.private[*].id : var.subnet_ids

  # Fixed private IPs: every node's address is known before any node boots, so the
  # quorum voters can be written into each node's configuration.
  # Node i runs in subnet i (round robin when there are fewer subnets than nodes). The
  # created subnets' CIDRs are known at plan time; given subnets are looked up.
  node_subnet_ids = [for i in range(var.node_count) : local.subnet_ids[i % length(local.subnet_ids)]]
  node_subnet_cidrs = local.create_vpc ? [
    for i in range(var.node_count) : cidrsubnet(var.vpc_cidr, 8, (i % length(local.azs)) + 1)
  ] : data.aws_subnet.node[*].cidr_block
  node_ips = [
    for i in range(var.node_count) :
    cidrhost(local.node_subnet_cidrs[i], var.node_host_number + i)
  ]
  node_ids = [for i in range(var.node_count) : i + 1]
  quorum_voters = join(",", [
    for i in range(var.node_count) : "${local.node_ids[i]}@${local.node_ips[i]}:${var.controller_port}"
  ])
  bootstrap_servers = join(",", [for ip in local.node_ips : "${ip}:${var.kafka_port}"])
}

data "aws_subnet" "node" {
  count = local.create_vpc ? 0 : var.node_count
  id    = var.subnet_ids[count.index % length(var.subnet_ids)]
}
