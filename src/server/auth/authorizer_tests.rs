use proptest::prelude::*;
use strata_config::AuthorizerConfig;

use super::*;

fn authz(super_users: &[&str], allow_if_no_acl: bool) -> Authorizer {
    Authorizer::new(&AuthorizerConfig {
        super_users: super_users.iter().map(|s| s.to_string()).collect(),
        allow_everyone_if_no_acl_found: allow_if_no_acl,
    })
}

fn binding(
    perm: AclPermission,
    principal: &str,
    op: AclOperation,
    pattern: PatternType,
    name: &str,
) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: WILDCARD.into(),
        operation: op,
        permission: perm,
    }
}

fn set(acls: &[AclBinding]) -> AclSet {
    acls.iter().cloned().collect()
}

const ALICE: &str = "User:alice";

fn can(
    a: &Authorizer,
    acls: &AclSet,
    who: &str,
    host: &str,
    op: AclOperation,
    topic: &str,
) -> bool {
    let p = Principal::user(who.trim_start_matches("User:"));
    let r = Requester {
        principal: &p,
        host,
    };
    a.authorize(acls, r, op, ResourceType::Topic, topic)
}

use AclOperation as O;
use AclPermission::{Allow, Deny};
use PatternType::{Literal, Prefixed};

#[test]
fn literal_and_prefixed_allow() {
    let a = authz(&[], false);
    let acls = set(&[
        binding(Allow, ALICE, O::Write, Literal, "orders"),
        binding(Allow, ALICE, O::Read, Prefixed, "logs-"),
    ]);
    assert!(can(&a, &acls, ALICE, "1.2.3.4", O::Write, "orders"));
    assert!(!can(&a, &acls, ALICE, "1.2.3.4", O::Write, "orders2"));
    assert!(can(&a, &acls, ALICE, "1.2.3.4", O::Read, "logs-app"));
    assert!(!can(&a, &acls, ALICE, "1.2.3.4", O::Read, "log"));
    assert!(!can(&a, &acls, "User:bob", "1.2.3.4", O::Read, "logs-app"));
    // READ and WRITE imply DESCRIBE; nothing implies CREATE.
    assert!(can(&a, &acls, ALICE, "1.2.3.4", O::Describe, "orders"));
    assert!(!can(&a, &acls, ALICE, "1.2.3.4", O::Create, "orders"));
}

#[test]
fn deny_wins_over_allow_of_any_pattern() {
    let a = authz(&[], true);
    let acls = set(&[
        binding(Allow, "User:*", O::All, Literal, "*"),
        binding(Deny, ALICE, O::Write, Prefixed, "secret"),
    ]);
    assert!(!can(&a, &acls, ALICE, "h", O::Write, "secret-x"));
    assert!(can(&a, &acls, ALICE, "h", O::Read, "secret-x"));
    assert!(can(&a, &acls, "User:bob", "h", O::Write, "secret-x"));
    // DENY ALL blocks every operation, DESCRIBE included.
    let acls = set(&[
        binding(Allow, ALICE, O::Read, Literal, "t"),
        binding(Deny, ALICE, O::All, Literal, "t"),
    ]);
    assert!(!can(&a, &acls, ALICE, "h", O::Describe, "t"));
}

#[test]
fn hosts_narrow_a_binding() {
    let a = authz(&[], false);
    let mut b = binding(Allow, ALICE, O::Read, Literal, "t");
    b.host = "10.0.0.1".into();
    let acls = set(&[b]);
    assert!(can(&a, &acls, ALICE, "10.0.0.1", O::Read, "t"));
    assert!(!can(&a, &acls, ALICE, "10.0.0.2", O::Read, "t"));
}

#[test]
fn no_acl_found_rule() {
    let acls = set(&[binding(Allow, ALICE, O::Read, Literal, "covered")]);
    assert!(can(
        &authz(&[], true),
        &acls,
        "User:bob",
        "h",
        O::Write,
        "free"
    ));
    assert!(!can(
        &authz(&[], false),
        &acls,
        "User:bob",
        "h",
        O::Write,
        "free"
    ));
    // A covered resource does not fall back to the rule.
    assert!(!can(
        &authz(&[], true),
        &acls,
        "User:bob",
        "h",
        O::Read,
        "covered"
    ));
}

#[test]
fn super_users_bypass_denials() {
    let a = authz(&["User:admin"], false);
    let acls = set(&[binding(Deny, "User:*", O::All, Literal, "*")]);
    assert!(can(&a, &acls, "User:admin", "h", O::Delete, "t"));
    assert!(!can(&a, &acls, ALICE, "h", O::Read, "t"));
}

#[test]
fn authorize_any_follows_kafka() {
    let a = authz(&[], false);
    let p = Principal::user("alice");
    let who = Requester {
        principal: &p,
        host: "h",
    };
    let any = |acls: &AclSet| a.authorize_any(acls, who, O::Write, ResourceType::Topic);
    assert!(!any(&set(&[])));
    assert!(any(&set(&[binding(Allow, ALICE, O::Write, Literal, "t")])));
    assert!(!any(&set(&[
        binding(Allow, ALICE, O::Write, Literal, "t"),
        binding(Deny, ALICE, O::Write, Literal, "t"),
    ])));
    assert!(!any(&set(&[
        binding(Allow, ALICE, O::Write, Prefixed, "team-a"),
        binding(Deny, ALICE, O::Write, Prefixed, "team"),
    ])));
    assert!(any(&set(&[
        binding(Allow, ALICE, O::Write, Prefixed, "team"),
        binding(Deny, ALICE, O::Write, Prefixed, "team-a"),
    ])));
    assert!(!any(&set(&[
        binding(Allow, ALICE, O::Write, Literal, "t"),
        binding(Deny, ALICE, O::Write, Literal, "*"),
    ])));
}

fn arb_binding() -> impl Strategy<Value = AclBinding> {
    (
        prop::sample::select(vec![Allow, Deny]),
        prop::sample::select(vec![ALICE, "User:bob", "User:*"]),
        prop::sample::select(O::ALL_VALUES.to_vec()),
        prop::sample::select(vec![Literal, Prefixed]),
        prop::sample::select(vec!["a", "ab", "abc", "b", "*"]),
        prop::sample::select(vec!["*", "h1", "h2"]),
    )
        .prop_filter_map("prefixed *", |(perm, who, op, pat, name, host)| {
            if pat == Prefixed && name == "*" {
                return None;
            }
            let mut b = binding(perm, who, op, pat, name);
            b.host = host.into();
            Some(b)
        })
}

fn arb_case() -> impl Strategy<Value = (Vec<AclBinding>, O, &'static str, &'static str, bool)> {
    (
        prop::collection::vec(arb_binding(), 0..12),
        prop::sample::select(O::ALL_VALUES.to_vec()),
        prop::sample::select(vec!["a", "ab", "abc", "b", "c"]),
        prop::sample::select(vec!["h1", "h2"]),
        any::<bool>(),
    )
}

proptest! {
    /// A super user is allowed whatever the ACLs.
    #[test]
    fn super_user_always_allowed((acls, op, topic, host, no_acl) in arb_case()) {
        let a = authz(&[ALICE], no_acl);
        prop_assert!(can(&a, &set(&acls), ALICE, host, op, topic));
    }

    /// A DENY naming the principal, host, operation and resource always denies.
    #[test]
    fn matching_deny_always_denies((mut acls, op, topic, host, no_acl) in arb_case()) {
        acls.push(binding(Deny, ALICE, op, Literal, topic));
        prop_assert!(!can(&authz(&[], no_acl), &set(&acls), ALICE, host, op, topic));
    }

    /// Adding a DENY never allows more; adding an ALLOW never allows less, except
    /// where it makes a resource covered that `allow.everyone.if.no.acl.found` opened.
    #[test]
    fn monotonic((acls, op, topic, host, no_acl) in arb_case(), extra in arb_binding()) {
        let a = authz(&[], no_acl);
        let before = can(&a, &set(&acls), ALICE, host, op, topic);
        let mut more = acls.clone();
        more.push(extra.clone());
        let after = can(&a, &set(&more), ALICE, host, op, topic);
        match extra.permission {
            Deny => prop_assert!(before || !after),
            Allow if !no_acl => prop_assert!(!before || after),
            Allow => {}
        }
    }

    /// Without any ACL, the no-ACL rule alone decides.
    #[test]
    fn empty_set_is_the_no_acl_rule(op in prop::sample::select(O::ALL_VALUES.to_vec()), no_acl in any::<bool>()) {
        prop_assert_eq!(can(&authz(&[], no_acl), &AclSet::new(), ALICE, "h1", op, "t"), no_acl);
    }
}
