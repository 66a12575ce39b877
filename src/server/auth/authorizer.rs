//! The authorization decision, with the semantics of Kafka's `StandardAuthorizer`.
//!
//! A pure function of (principal, host, operation, resource, ACL set, settings): no I/O, no
//! clock. The handlers call it through `server::Ctx`, at the edge, before calling a
//! component, so nothing below `server/` knows who is asking.
//!
//! The rules, in order (Kafka's `StandardAuthorizerData.authorize`):
//! 1. A super user (`super.users`) may do anything.
//! 2. Among the bindings whose pattern covers the resource (the same literal name, the
//!    literal `*`, or a prefix of the name), those for this principal (or `User:*`) and
//!    host (or `*`) decide: a DENY for the operation (or ALL) wins over everything; else an
//!    ALLOW for the operation, for ALL, or for an operation that implies it (READ, WRITE,
//!    DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows.
//! 3. No binding covers the resource at all: `allow.everyone.if.no.acl.found` decides.
//! 4. Otherwise: denied.
//!
//! The covering bindings are found with range lookups in the ordered ACL set
//! ([`for_each_covering`]), not by scanning it, so a decision costs about the same with
//! 10,000 ACLs as with ten (see `benches/authorize.rs`).

use std::ops::ControlFlow;

use strata_controller::acl::{for_each_covering, of_type, AclSet, CLUSTER_NAME, WILDCARD};
use strata_controller::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};

use super::Principal;

/// The authorizer's settings (`super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    super_users: Vec<String>,
    allow_if_no_acl: bool,
}

/// Who asks, from where.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a Principal,
    /// The client's IP address as text (`127.0.0.1`), compared with ACL hosts.
    pub host: &'a str,
}

impl Authorizer {
    pub fn new(cfg: &strata_config::AuthorizerConfig) -> Authorizer {
        Authorizer {
            super_users: cfg.super_users.clone(),
            allow_if_no_acl: cfg.allow_everyone_if_no_acl_found,
        }
    }

    fn is_super(&self, who: Requester<'_>) -> bool {
        self.super_users
            .iter()
            .any(|s| s.split_once(':') == Some((&who.principal.kind, &who.principal.name)))
    }

    /// Whether `who` may do `op` on the resource `name` of type `rtype`.
    pub fn authorize(
        &self,
        acls: &AclSet,
        who: Requester<'_>,
        op: AclOperation,
        rtype: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super(who) {
            return true;
        }
        let mut covered = false;
        let mut allowed = false;
        let decided = for_each_covering(acls, rtype, name, |acl| {
            covered = true;
            let applies = principal_matches(&acl.principal, who.principal)
                && (acl.host == who.host || acl.host == WILDCARD);
            match acl.permission {
                AclPermission::Deny if applies && denies(acl.operation, op) => {
                    return ControlFlow::Break(())
                }
                AclPermission::Allow if applies && allows(acl.operation, op) => allowed = true,
                _ => {}
            }
            ControlFlow::Continue(())
        });
        if decided.is_break() {
            return false;
        }
        allowed || (!covered && self.allow_if_no_acl)
    }

    /// Whether `who` may do `op` on the cluster (`kafka-cluster`).
    pub fn authorize_cluster(&self, acls: &AclSet, who: Requester<'_>, op: AclOperation) -> bool {
        self.authorize(acls, who, op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Kafka's `authorizeByResourceType`: whether `who` may do `op` on at least one resource
    /// of `rtype` (some ALLOW that no DENY of the same or a shorter pattern cancels). Used by
    /// InitProducerId: an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE
    /// on some topic (KIP-679).
    pub fn authorize_any(
        &self,
        acls: &AclSet,
        who: Requester<'_>,
        op: AclOperation,
        rtype: ResourceType,
    ) -> bool {
        // A name no ACL can mention, as Kafka does: super users and the no-ACL rule pass.
        if self.authorize(acls, who, op, rtype, "\u{0}hardcode") {
            return true;
        }
        let mine = |a: &&AclBinding| {
            principal_matches(&a.principal, who.principal)
                && (a.host == who.host || a.host == WILDCARD)
        };
        let denials: Vec<&AclBinding> = of_type(acls, rtype)
            .filter(mine)
            .filter(|a| a.permission == AclPermission::Deny && denies(a.operation, op))
            .collect();
        if denials
            .iter()
            .any(|d| d.pattern_type == PatternType::Literal && d.resource_name == WILDCARD)
        {
            return false;
        }
        of_type(acls, rtype)
            .filter(mine)
            .filter(|a| a.permission == AclPermission::Allow && allows(a.operation, op))
            .any(|a| {
                !denials.iter().any(|d| match d.pattern_type {
                    PatternType::Prefixed => a.resource_name.starts_with(&d.resource_name),
                    PatternType::Literal => {
                        a.pattern_type == PatternType::Literal && a.resource_name == d.resource_name
                    }
                })
            })
    }
}

/// An ACL's principal (`User:alice`, `User:*`) names `p`; compared without allocating,
/// since every request runs this for every ACL that covers its resources.
fn principal_matches(acl_principal: &str, p: &Principal) -> bool {
    match acl_principal.split_once(':') {
        Some((kind, name)) => kind == p.kind && (name == p.name || name == WILDCARD),
        None => false,
    }
}

/// A DENY for `acl_op` blocks `op`: the same operation, or ALL.
fn denies(acl_op: AclOperation, op: AclOperation) -> bool {
    acl_op == op || acl_op == AclOperation::All
}

/// An ALLOW for `acl_op` grants `op`: the same, ALL, or an operation implying it.
fn allows(acl_op: AclOperation, op: AclOperation) -> bool {
    use AclOperation as O;
    acl_op == op
        || acl_op == O::All
        || match op {
            O::Describe => matches!(acl_op, O::Read | O::Write | O::Delete | O::Alter),
            O::DescribeConfigs => acl_op == O::AlterConfigs,
            _ => false,
        }
}

#[cfg(test)]
#[path = "authorizer_tests.rs"]
mod tests;
