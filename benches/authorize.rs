//! The authorizer's decision on the request path: one `authorize` call (what a Produce or
//! Fetch does per topic) for a principal allowed by a literal ACL, with 0, 100, 1,000 and
//! 10,000 unrelated ACLs in the set, and for a super user (which skips the scan).
//!
//! `cargo bench --bench authorize`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use strata::server::auth::authorizer::{Authorizer, Requester};
use strata::server::Principal;
use strata_config::AuthorizerConfig;
use strata_controller::acl::AclSet;
use strata_controller::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};

fn acl(name: &str, principal: &str, op: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    }
}

fn bench(c: &mut Criterion) {
    let authz = Authorizer::new(&AuthorizerConfig {
        super_users: vec!["User:admin".into()],
        allow_everyone_if_no_acl_found: false,
    });
    let alice = Principal::user("alice");
    let admin = Principal::user("admin");
    let mut g = c.benchmark_group("authorize");
    for unrelated in [0usize, 100, 1_000, 10_000] {
        let mut acls: AclSet = (0..unrelated)
            .map(|i| {
                acl(
                    &format!("other-{i}"),
                    &format!("User:u{i}"),
                    AclOperation::Read,
                )
            })
            .collect();
        acls.insert(acl("orders", "User:alice", AclOperation::Write));
        g.bench_with_input(
            BenchmarkId::new("write_allowed", unrelated),
            &acls,
            |b, acls| {
                let who = Requester {
                    principal: &alice,
                    host: "10.0.0.1",
                };
                b.iter(|| {
                    assert!(authz.authorize(
                        acls,
                        who,
                        AclOperation::Write,
                        ResourceType::Topic,
                        "orders"
                    ))
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("super_user", unrelated),
            &acls,
            |b, acls| {
                let who = Requester {
                    principal: &admin,
                    host: "10.0.0.1",
                };
                b.iter(|| {
                    assert!(authz.authorize(
                        acls,
                        who,
                        AclOperation::Write,
                        ResourceType::Topic,
                        "orders"
                    ))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
