//! ACLs in the metadata image, as Kafka's StandardAuthorizer keeps them (KIP-801): a set of
//! bindings, each a resource pattern (type, name, LITERAL or PREFIXED) and an entry
//! (principal, host, operation, ALLOW or DENY).
//!
//! Owns: the ACL vocabulary with Kafka's wire codes ([`ResourceType`], [`PatternType`],
//! [`AclOperation`], [`AclPermission`]), [`AclBinding`], the filters of DescribeAcls and
//! DeleteAcls ([`AclFilter`]) and the two commands' transitions, called by `image::apply`.
//! Pure: the authorization decision itself lives with the broker (`server::auth::authorizer`),
//! which reads [`crate::MetadataImage::acls`].

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::image::{ApplyError, MetadataImage};

/// The literal name that matches every resource of a type (Kafka's `WILDCARD_RESOURCE`),
/// and the principal / host that match everyone (`User:*`, `*`).
pub const WILDCARD: &str = "*";
/// The one cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! coded_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),*];

            /// Kafka's wire code.
            pub fn code(&self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's upper-case name (`TOPIC`, `IDEMPOTENT_WRITE`).
            pub fn name(&self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Parses Kafka's name, case-insensitively, with `-` or `_`.
            pub fn from_name(name: &str) -> Option<$name> {
                let wanted = name.trim().replace('-', "_");
                Self::ALL_VALUES.iter().copied().find(|v| v.name().eq_ignore_ascii_case(&wanted))
            }
        }
    };
}

coded_enum!(
    /// Kafka's `ResourceType` (ANY = 1 only appears in filters).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

coded_enum!(
    /// Kafka's `PatternType` of a stored binding (ANY = 1 and MATCH = 2 only in filters).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

coded_enum!(
    /// Kafka's `AclOperation` (ANY = 1 only in filters).
    AclOperation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

coded_enum!(
    /// Kafka's `AclPermissionType` (ANY = 1 only in filters).
    AclPermission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// Kafka's wire code for ANY in every filter field.
pub const ANY_CODE: i8 = 1;
/// Kafka's wire code for the MATCH pattern type filter.
pub const MATCH_CODE: i8 = 2;

/// One ACL: who (`principal`, `host`) may or may not (`permission`) do `operation` on the
/// resources the pattern names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// An IP address, or `*` for every host.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBinding {
    /// Whether this binding's pattern covers the resource `name` of `resource_type`:
    /// the same name or `*` for LITERAL, a prefix of it for PREFIXED.
    pub fn pattern_matches(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// Why Kafka would refuse to store this binding, if it would.
    pub fn invalid_reason(&self) -> Option<String> {
        if self.resource_name.is_empty() {
            return Some("the resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Some(format!("the cluster resource is named {CLUSTER_NAME}"));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return Some("a PREFIXED pattern cannot be the wildcard *; use LITERAL *".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Some(format!(
                    "principal {:?} is not of the form Type:name (User:alice, User:*)",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Some("the host is empty; use * for every host".into());
        }
        None
    }
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} from {} on {}:{}:{}",
            self.permission.name(),
            self.principal,
            self.operation.name(),
            self.host,
            self.resource_type.name(),
            self.pattern_type.name(),
            self.resource_name
        )
    }
}

/// A DescribeAcls / DeleteAcls filter (Kafka's `AclBindingFilter`); `None` is ANY (or, for
/// names, principal and host, null).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

/// The pattern-type part of a filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PatternFilter {
    /// Either pattern type, with the resource name (if given) taken literally.
    #[default]
    Any,
    /// Every pattern that applies to the named resource: the same literal, the literal `*`,
    /// and prefixes of it.
    Match,
    Exactly(PatternType),
}

impl PatternFilter {
    pub fn from_code(code: i8) -> Option<PatternFilter> {
        match code {
            ANY_CODE => Some(PatternFilter::Any),
            MATCH_CODE => Some(PatternFilter::Match),
            c => PatternType::from_code(c).map(PatternFilter::Exactly),
        }
    }
}

impl AclFilter {
    /// Whether `acl` is one this filter selects.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let resource = self.resource_type.is_none_or(|t| t == acl.resource_type)
            && match (self.pattern, &self.resource_name) {
                (PatternFilter::Match, Some(name)) => match_applies(acl, name),
                (PatternFilter::Match, None) | (PatternFilter::Any, _) => {
                    eq(&self.resource_name, &acl.resource_name)
                }
                (PatternFilter::Exactly(p), _) => {
                    p == acl.pattern_type && eq(&self.resource_name, &acl.resource_name)
                }
            };
        resource
            && eq(&self.principal, &acl.principal)
            && eq(&self.host, &acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

fn match_applies(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
        PatternType::Prefixed => name.starts_with(&acl.resource_name),
    }
}

/// The stored set: ordered, so every voter serializes it the same way.
pub type AclSet = BTreeSet<AclBinding>;

/// Calls `f` with every binding whose pattern covers the resource `name` of `rtype` (the
/// same name, the literal `*`, or a prefix of `name`), as [`AclBinding::pattern_matches`]
/// would select them, until `f` breaks.
///
/// The set is ordered by resource type, then name, so this is a handful of range lookups
/// rather than a scan of every ACL (Kafka's `StandardAuthorizerData` walks its sorted set
/// the same way): look up the greatest name not above `name`; if it is a prefix of `name`,
/// its bindings may cover it, and the walk goes on below that name; if it is not, no name
/// between it and the longest prefix it shares with `name` can be a prefix of `name` either,
/// so the walk jumps down to that shared prefix. Each step shortens the part of `name`
/// still to consider or reports a prefix of it, so there are at most 2 × `name.len()`
/// lookups, whatever the number of ACLs.
pub fn for_each_covering<'a>(
    acls: &'a AclSet,
    rtype: ResourceType,
    name: &str,
    mut f: impl FnMut(&'a AclBinding) -> ControlFlow<()>,
) -> ControlFlow<()> {
    if acls.is_empty() {
        return ControlFlow::Continue(());
    }
    // One search key, whose name is rewritten at each step: the lookups allocate nothing
    // once its name has grown to `name`'s length.
    let mut key = first_with(rtype);
    if name != WILDCARD {
        set_name(&mut key, WILDCARD, false);
        for acl in with_name(acls, &key) {
            if acl.pattern_type == PatternType::Literal {
                f(acl)?;
            }
        }
    }
    // The walk's bound: names strictly below the key's remain to be looked at.
    set_name(&mut key, name, true);
    while let Some(last) = acls.range(..&key).next_back() {
        if last.resource_type != rtype {
            break;
        }
        let found = last.resource_name.as_str();
        if name.starts_with(found) {
            set_name(&mut key, found, false);
            for acl in with_name(acls, &key) {
                if acl.pattern_type == PatternType::Prefixed || found == name {
                    f(acl)?;
                }
            }
        } else {
            set_name(&mut key, common_prefix(found, name), true);
        }
    }
    ControlFlow::Continue(())
}

/// The bindings on resources of `rtype`.
pub fn of_type(acls: &AclSet, rtype: ResourceType) -> impl Iterator<Item = &AclBinding> {
    acls.range(first_with(rtype)..)
        .take_while(move |a| a.resource_type == rtype)
}

/// The bindings on the resource type and name of `key` (made by [`first_with`]), of either
/// pattern type.
fn with_name<'a, 'k>(
    acls: &'a AclSet,
    key: &'k AclBinding,
) -> impl Iterator<Item = &'a AclBinding> + 'k
where
    'a: 'k,
{
    acls.range(key..).take_while(move |a| {
        a.resource_type == key.resource_type && a.resource_name == key.resource_name
    })
}

/// A search key that sorts before every stored binding on its resource (type and name)
/// and after every binding on a smaller one: the other fields take their least values (a
/// stored binding's principal and host are never empty). The name starts empty.
fn first_with(rtype: ResourceType) -> AclBinding {
    AclBinding {
        resource_type: rtype,
        resource_name: String::new(),
        pattern_type: PatternType::ALL_VALUES[0],
        principal: String::new(),
        host: String::new(),
        operation: AclOperation::ALL_VALUES[0],
        permission: AclPermission::ALL_VALUES[0],
    }
}

/// Sets the key's name to `s`, or with `successor` to the least string greater than `s`
/// (`s` then NUL), so that a range up to the key includes the bindings on the name `s`.
fn set_name(key: &mut AclBinding, s: &str, successor: bool) {
    key.resource_name.clear();
    key.resource_name.push_str(s);
    if successor {
        key.resource_name.push('\u{0}');
    }
}

fn common_prefix<'a>(a: &str, b: &'a str) -> &'a str {
    let len = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    &b[..len]
}

/// Adds `acls` (adding one already present is not an error, as in Kafka).
pub(crate) fn create(image: &mut MetadataImage, acls: &[AclBinding]) -> Result<(), ApplyError> {
    if let Some((acl, reason)) = acls.iter().find_map(|a| a.invalid_reason().map(|r| (a, r))) {
        return Err(ApplyError::InvalidAcl {
            acl: acl.to_string(),
            reason,
        });
    }
    image.acls.extend(acls.iter().cloned());
    Ok(())
}

/// Removes `acls`; ones already gone are skipped (a concurrent delete took them).
pub(crate) fn delete(image: &mut MetadataImage, acls: &[AclBinding]) {
    for acl in acls {
        image.acls.remove(acl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{apply, MetadataCommand};

    pub(crate) fn acl(pattern: PatternType, name: &str, principal: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn create_is_idempotent_and_delete_skips_missing() {
        let mut image = MetadataImage::default();
        let a = acl(PatternType::Literal, "orders", "User:alice");
        let create = MetadataCommand::CreateAcls {
            acls: vec![a.clone()],
        };
        apply(&mut image, &create).unwrap();
        apply(&mut image, &create).unwrap();
        assert_eq!(image.acls.len(), 1);
        let delete = MetadataCommand::DeleteAcls {
            acls: vec![a.clone(), acl(PatternType::Prefixed, "x", "User:bob")],
        };
        apply(&mut image, &delete).unwrap();
        assert!(image.acls.is_empty());
    }

    #[test]
    fn invalid_bindings_are_refused_whole() {
        let mut image = MetadataImage::default();
        let good = acl(PatternType::Literal, "orders", "User:alice");
        for bad in [
            acl(PatternType::Literal, "orders", "alice"),
            acl(PatternType::Prefixed, "*", "User:alice"),
            acl(PatternType::Literal, "", "User:alice"),
            AclBinding {
                resource_type: ResourceType::Cluster,
                ..acl(PatternType::Literal, "other", "User:a")
            },
        ] {
            let cmd = MetadataCommand::CreateAcls {
                acls: vec![good.clone(), bad],
            };
            assert!(matches!(
                apply(&mut image, &cmd),
                Err(ApplyError::InvalidAcl { .. })
            ));
            assert!(image.acls.is_empty());
        }
    }

    #[test]
    fn filters_select_as_kafka_does() {
        let lit = acl(PatternType::Literal, "orders", "User:alice");
        let star = acl(PatternType::Literal, "*", "User:alice");
        let pre = acl(PatternType::Prefixed, "ord", "User:bob");
        let other = acl(PatternType::Literal, "payments", "User:alice");
        let all = [&lit, &star, &pre, &other];
        let pick = |f: &AclFilter| {
            all.iter()
                .filter(|a| f.matches(a))
                .map(|a| (*a).clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&AclFilter::default()).len(), 4);
        let name = |n: &str, pattern| AclFilter {
            resource_name: Some(n.into()),
            pattern,
            ..AclFilter::default()
        };
        assert_eq!(pick(&name("orders", PatternFilter::Any)), vec![lit.clone()]);
        assert_eq!(
            pick(&name("orders", PatternFilter::Match)),
            vec![lit.clone(), star.clone(), pre.clone()]
        );
        assert_eq!(
            pick(&name("ord", PatternFilter::Exactly(PatternType::Prefixed))),
            vec![pre.clone()]
        );
        let bob = AclFilter {
            principal: Some("User:bob".into()),
            ..AclFilter::default()
        };
        assert_eq!(pick(&bob), vec![pre]);
    }

    #[test]
    fn codes_and_names_round_trip() {
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_code(op.code()), Some(*op));
            assert_eq!(AclOperation::from_name(op.name()), Some(*op));
        }
        assert_eq!(
            AclOperation::from_name("idempotent-write"),
            Some(AclOperation::IdempotentWrite)
        );
        assert_eq!(ResourceType::from_code(ANY_CODE), None);
    }

    /// Names over a small alphabet, so that prefixes, shared prefixes and `*` all occur.
    fn arb_name() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("[ab*\u{0}]{0,4}").unwrap()
    }

    proptest::proptest! {
        /// The range walk selects exactly the bindings a scan with `pattern_matches` does.
        #[test]
        fn covering_walk_equals_a_scan(
            names in proptest::collection::vec((arb_name(), proptest::bool::ANY), 0..24),
            name in arb_name(),
        ) {
            let acls: AclSet = names
                .iter()
                .filter(|(n, _)| !n.is_empty())
                .map(|(n, prefixed)| {
                    let p = if *prefixed && n != WILDCARD { PatternType::Prefixed } else { PatternType::Literal };
                    acl(p, n, "User:alice")
                })
                .collect();
            let scan: Vec<&AclBinding> = acls.iter().filter(|a| a.pattern_matches(ResourceType::Topic, &name)).collect();
            let mut walk = Vec::new();
            let _ = for_each_covering(&acls, ResourceType::Topic, &name, |a| {
                walk.push(a);
                ControlFlow::Continue(())
            });
            walk.sort();
            proptest::prop_assert_eq!(walk, scan);
        }
    }
}
