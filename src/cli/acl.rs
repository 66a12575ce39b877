//! `strata acl add|list|remove`: ACLs through CreateAcls, DescribeAcls and DeleteAcls, with
//! the options of Kafka's `kafka-acls.sh` (`--allow-principal`, `--deny-principal`,
//! `--operation`, `--topic`/`--group`/`--cluster`/`--transactional-id`,
//! `--resource-pattern-type`, `--host`).

use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use strata_controller::acl::{ANY_CODE, CLUSTER_NAME, MATCH_CODE, WILDCARD};
use strata_controller::{AclOperation, AclPermission, PatternType, ResourceType};

use super::{str_bytes, CliError, Client, Connection};

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Add ACLs: one per principal and operation, on the resource given.
    Add(AclArgs),
    /// List ACLs, all or those matching the options given (a --topic with the default
    /// --resource-pattern-type lists every ACL that applies to it: literal, * and prefixes).
    List(AclArgs),
    /// Remove the ACLs matching the options given (unset options match anything).
    Remove(AclArgs),
}

#[derive(Args, Debug)]
pub struct AclArgs {
    /// Principal to allow, User:name (User:* for everyone); repeatable.
    #[arg(long)]
    allow_principal: Vec<String>,
    /// Principal to deny; repeatable. A DENY always wins over an ALLOW.
    #[arg(long)]
    deny_principal: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite, All; repeatable.
    #[arg(long)]
    operation: Vec<String>,
    /// The IP address the ACL applies to (default: every host).
    #[arg(long)]
    host: Option<String>,
    #[arg(long, group = "resource")]
    topic: Option<String>,
    #[arg(long, group = "resource")]
    group: Option<String>,
    #[arg(long, group = "resource")]
    cluster: bool,
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    /// literal or prefixed (add); also any or match (list, remove).
    #[arg(long)]
    resource_pattern_type: Option<String>,
}

pub async fn run(mut client: Client, _conn: Connection, cmd: AclCommand) -> Result<(), CliError> {
    match cmd {
        AclCommand::Add(a) => add(&mut client, a).await,
        AclCommand::List(a) => list(&mut client, a).await,
        AclCommand::Remove(a) => remove(&mut client, a).await,
    }
}

impl AclArgs {
    fn resource(&self) -> Option<(ResourceType, String)> {
        if let Some(t) = &self.topic {
            Some((ResourceType::Topic, t.clone()))
        } else if let Some(g) = &self.group {
            Some((ResourceType::Group, g.clone()))
        } else if let Some(t) = &self.transactional_id {
            Some((ResourceType::TransactionalId, t.clone()))
        } else {
            self.cluster
                .then(|| (ResourceType::Cluster, CLUSTER_NAME.to_string()))
        }
    }

    fn operations(&self) -> Result<Vec<AclOperation>, CliError> {
        self.operation
            .iter()
            .map(|o| {
                let snake = camel_to_snake(o);
                AclOperation::from_name(&snake)
                    .ok_or_else(|| CliError::Usage(format!("unknown --operation {o}")))
            })
            .collect()
    }

    /// (permission, principal) pairs.
    fn principals(&self) -> Vec<(AclPermission, String)> {
        let allow = self
            .allow_principal
            .iter()
            .map(|p| (AclPermission::Allow, p.clone()));
        let deny = self
            .deny_principal
            .iter()
            .map(|p| (AclPermission::Deny, p.clone()));
        allow.chain(deny).collect()
    }
}

/// `IdempotentWrite` -> `Idempotent_Write`, so Kafka's CamelCase names parse too.
fn camel_to_snake(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if prev_lower && c.is_ascii_uppercase() {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase();
        out.push(c);
    }
    out
}

async fn add(client: &mut Client, a: AclArgs) -> Result<(), CliError> {
    let (rtype, name) = a.resource().ok_or_else(|| {
        CliError::Usage("name a resource: --topic, --group, --cluster or --transactional-id".into())
    })?;
    let p = a.resource_pattern_type.as_deref().unwrap_or("literal");
    let pattern = PatternType::from_name(p).ok_or_else(|| {
        CliError::Usage(format!("--resource-pattern-type {p}: literal or prefixed"))
    })?;
    let ops = a.operations()?;
    let principals = a.principals();
    if ops.is_empty() || principals.is_empty() {
        return Err(CliError::Usage(
            "give at least one --operation and one --allow-principal or --deny-principal".into(),
        ));
    }
    let host = a.host.clone().unwrap_or_else(|| WILDCARD.to_string());
    let mut creations = Vec::new();
    for (perm, principal) in &principals {
        for op in &ops {
            creations.push(
                AclCreation::default()
                    .with_resource_type(rtype.code())
                    .with_resource_name(str_bytes(name.clone()))
                    .with_resource_pattern_type(pattern.code())
                    .with_principal(str_bytes(principal.clone()))
                    .with_host(str_bytes(host.clone()))
                    .with_operation(op.code())
                    .with_permission_type(perm.code()),
            );
        }
    }
    let resp = client
        .send(CreateAclsRequest::default().with_creations(creations))
        .await?;
    for r in resp.results {
        if r.error_code != 0 {
            return Err(CliError::kafka(
                "adding ACLs",
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    for (perm, principal) in principals {
        for op in &ops {
            println!(
                "added {} {principal} {} from {host} on {}:{}:{name}",
                perm.name(),
                op.name(),
                rtype.name(),
                pattern.name()
            );
        }
    }
    Ok(())
}

/// The wire filter of the options: unset means ANY (or null).
struct WireFilter {
    rtype: i8,
    name: Option<String>,
    pattern: i8,
    principal: Option<String>,
    host: Option<String>,
    operation: i8,
    permission: i8,
}

fn wire_filter(a: &AclArgs, default_pattern: i8) -> Result<Vec<WireFilter>, CliError> {
    let (rtype, name) = match a.resource() {
        Some((t, n)) => (t.code(), Some(n)),
        None => (ANY_CODE, None),
    };
    let pattern = match a.resource_pattern_type.as_deref() {
        None => default_pattern,
        Some(p) if p.eq_ignore_ascii_case("any") => ANY_CODE,
        Some(p) if p.eq_ignore_ascii_case("match") => MATCH_CODE,
        Some(p) => PatternType::from_name(p).map(|p| p.code()).ok_or_else(|| {
            CliError::Usage(format!(
                "--resource-pattern-type {p}: any, match, literal or prefixed"
            ))
        })?,
    };
    let ops: Vec<i8> = match a.operations()? {
        o if o.is_empty() => vec![ANY_CODE],
        o => o.iter().map(|o| o.code()).collect(),
    };
    let principals: Vec<(i8, Option<String>)> = match a.principals() {
        p if p.is_empty() => vec![(ANY_CODE, None)],
        p => p
            .into_iter()
            .map(|(perm, who)| (perm.code(), Some(who)))
            .collect(),
    };
    let mut out = Vec::new();
    for (permission, principal) in &principals {
        for op in &ops {
            out.push(WireFilter {
                rtype,
                name: name.clone(),
                pattern,
                principal: principal.clone(),
                host: a.host.clone(),
                operation: *op,
                permission: *permission,
            });
        }
    }
    Ok(out)
}

async fn list(client: &mut Client, a: AclArgs) -> Result<(), CliError> {
    // A named resource lists what applies to it, as kafka-acls.sh --list --topic does.
    let default_pattern = if a.resource().is_some() {
        MATCH_CODE
    } else {
        ANY_CODE
    };
    for f in wire_filter(&a, default_pattern)? {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(f.rtype)
            .with_resource_name_filter(f.name.map(str_bytes))
            .with_pattern_type_filter(f.pattern)
            .with_principal_filter(f.principal.map(str_bytes))
            .with_host_filter(f.host.map(str_bytes))
            .with_operation(f.operation)
            .with_permission_type(f.permission);
        let resp = client.send(req).await?;
        if resp.error_code != 0 {
            return Err(CliError::kafka(
                "listing ACLs",
                resp.error_code,
                resp.error_message.as_ref(),
            ));
        }
        for r in resp.resources {
            for acl in r.acls {
                println!(
                    "{}:{}:{}\t{}\t{}\t{}\t{}",
                    name_of(ResourceType::from_code(r.resource_type).map(|t| t.name())),
                    name_of(PatternType::from_code(r.pattern_type).map(|p| p.name())),
                    r.resource_name,
                    acl.principal,
                    acl.host,
                    name_of(AclOperation::from_code(acl.operation).map(|o| o.name())),
                    name_of(AclPermission::from_code(acl.permission_type).map(|p| p.name())),
                );
            }
        }
    }
    Ok(())
}

fn name_of(n: Option<&'static str>) -> &'static str {
    n.unwrap_or("UNKNOWN")
}

async fn remove(client: &mut Client, a: AclArgs) -> Result<(), CliError> {
    // Removal takes patterns literally unless asked: a --topic removes that topic's own ACLs.
    let filters = wire_filter(&a, ANY_CODE)?
        .into_iter()
        .map(|f| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(f.rtype)
                .with_resource_name_filter(f.name.map(str_bytes))
                .with_pattern_type_filter(f.pattern)
                .with_principal_filter(f.principal.map(str_bytes))
                .with_host_filter(f.host.map(str_bytes))
                .with_operation(f.operation)
                .with_permission_type(f.permission)
        })
        .collect();
    let resp = client
        .send(DeleteAclsRequest::default().with_filters(filters))
        .await?;
    let mut removed = 0;
    for r in resp.filter_results {
        if r.error_code != 0 {
            return Err(CliError::kafka(
                "removing ACLs",
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
        removed += r.matching_acls.len();
    }
    println!("removed {removed} ACLs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_operation_names_parse() {
        for (given, want) in [
            ("Read", AclOperation::Read),
            ("READ", AclOperation::Read),
            ("IdempotentWrite", AclOperation::IdempotentWrite),
            ("idempotent-write", AclOperation::IdempotentWrite),
            ("DESCRIBE_CONFIGS", AclOperation::DescribeConfigs),
            ("ClusterAction", AclOperation::ClusterAction),
        ] {
            assert_eq!(
                AclOperation::from_name(&camel_to_snake(given)),
                Some(want),
                "{given}"
            );
        }
    }
}
