# Security (off unless security_enabled): clients on SASL_SSL, replication between nodes on
# an SSL listener and the Raft transport on an SSL controller listener, both with client
# certificates from the cluster CA (mutual TLS), and the ACL authorizer. The CA, each
# node's key and certificate, and optionally the PLAIN users' JAAS line come from AWS
# Secrets Manager or SSM Parameter Store: user data fetches them at boot into
# /etc/strata/tls (mode 0600, owned by strata); nothing secret is in the Terraform state or
# the user data. See docs/operations.md, "Security" and "Terraform".

locals {
  security = var.security_enabled

  # Secrets Manager: the ids are ARNs. SSM: the ids are parameter names, made ARNs here.
  ssm_arn = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter"
  secret_ids = local.security ? compact(concat(
    [var.security_ca_certificate_secret],
    var.security_node_keystore_secrets,
    [var.security_plain_jaas_secret],
  )) : []
  secret_arns = [
    for id in local.secret_ids :
    var.security_secret_store == "ssm" ? "${local.ssm_arn}/${trimprefix(id, "/")}" : id
  ]

  # Listeners: CLIENT (SASL_SSL) on kafka_port for clients, INTERNAL (SSL, client
  # certificates required) on internal_port for the other nodes' replica fetchers,
  # CONTROLLER (SSL, client certificates required) on controller_port for Raft.
  listeners = local.security ? "CLIENT://0.0.0.0:${var.kafka_port},INTERNAL://0.0.0.0:${var.internal_port},CONTROLLER://0.0.0.0:${var.controller_port}" : "PLAINTEXT://0.0.0.0:${var.kafka_port},CONTROLLER://0.0.0.0:${var.controller_port}"
  advertised = [
    for ip in local.node_ips :
    local.security ? "CLIENT://${ip}:${var.kafka_port},INTERNAL://${ip}:${var.internal_port}" : "PLAINTEXT://${ip}:${var.kafka_port}"
  ]

  tls_dir = "/etc/strata/tls"

  # The files each node fetches: the CA, its own key and certificate, the PLAIN users.
  node_secrets = [
    for i in range(var.node_count) : local.security ? merge(
      {
        "ca.pem"   = var.security_ca_certificate_secret
        "node.pem" = var.security_node_keystore_secrets[i]
      },
      var.security_plain_jaas_secret == null ? {} : { "plain.jaas" = var.security_plain_jaas_secret },
    ) : {}
  ]
  fetch_command = (var.security_secret_store == "ssm"
    ? "aws ssm get-parameter --region %s --with-decryption --name %s --query Parameter.Value --output text"
  : "aws secretsmanager get-secret-value --region %s --secret-id %s --query SecretString --output text")
  # Shell lines for user data (plain text: check.sh parses the rendered script with bash -n).
  fetch_secrets = [
    for i in range(var.node_count) : local.security ? join("\n", concat(
      ["mkdir -p ${local.tls_dir}", "chmod 0700 ${local.tls_dir}"],
      [for file, id in local.node_secrets[i] :
        "${format(local.fetch_command, data.aws_region.current.name, jsonencode(id))} > ${local.tls_dir}/${file}.tmp && chmod 0600 ${local.tls_dir}/${file}.tmp && mv -f ${local.tls_dir}/${file}.tmp ${local.tls_dir}/${file}"
      ],
      ["chown -R strata:strata ${local.tls_dir}"],
    )) : "# security_enabled = false: no TLS material"
  ]
  # The PLAIN users' JAAS line goes into strata.toml on the node, never into user data.
  append_config = (local.security && var.security_plain_jaas_secret != null
    ? "printf '\"listener.name.client.plain.sasl.jaas.config\" = %s\\n' \"$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read().strip()))' ${local.tls_dir}/plain.jaas)\" >> /etc/strata/strata.toml"
  : "# no PLAIN users from a secret")
  security_settings = local.security ? merge(
    {
      "listener.security.protocol.map"               = "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL"
      "inter.broker.listener.name"                   = "INTERNAL"
      "ssl.keystore.location"                        = "${local.tls_dir}/node.pem"
      "ssl.truststore.location"                      = "${local.tls_dir}/ca.pem"
      "listener.name.internal.ssl.client.auth"       = "required"
      "listener.name.controller.ssl.client.auth"     = "required"
      "listener.name.client.sasl.enabled.mechanisms" = var.security_sasl_mechanisms
    },
    var.security_authorizer_enabled ? {
      "authorizer.class.name" = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
      "super.users"           = join(";", var.security_super_users)
    } : {},
  ) : {}
}

# Read access to exactly the configured secrets or parameters (and their KMS key, if a
# customer-managed one encrypts them).
resource "aws_iam_role_policy" "security_secrets" {
  count = local.security ? 1 : 0
  name  = "strata-security-secrets"
  role  = aws_iam_role.node.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "ReadSecurityMaterial"
        Effect   = "Allow"
        Action   = var.security_secret_store == "ssm" ? ["ssm:GetParameter"] : ["secretsmanager:GetSecretValue"]
        Resource = local.secret_arns
      }],
      var.security_secrets_kms_key_arn == null ? [] : [{
        Sid      = "DecryptSecurityMaterial"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.security_secrets_kms_key_arn]
        Condition = {
          StringEquals = {
            "kms:ViaService" = var.security_secret_store == "ssm" ? "ssm.${data.aws_region.current.name}.amazonaws.com" : "secretsmanager.${data.aws_region.current.name}.amazonaws.com"
          }
        }
      }],
    )
  })
}

# Replication between nodes on the INTERNAL listener (security on only; otherwise the
# nodes replicate over the Kafka port, opened between them in network.tf).
resource "aws_vpc_security_group_ingress_rule" "internal_peers" {
  count                        = local.security ? 1 : 0
  security_group_id            = aws_security_group.node.id
  description                  = "Replication between nodes (mutual TLS)"
  ip_protocol                  = "tcp"
  from_port                    = var.internal_port
  to_port                      = var.internal_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "internal_peers" {
  count                        = local.security ? 1 : 0
  security_group_id            = aws_security_group.node.id
  description                  = "internal port of the other nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.internal_port
  to_port                      = var.internal_port
  referenced_security_group_id = aws_security_group.node.id
}
