//! The definition table: every setting Strata accepts, in one place.
//!
//! [`BROKER_CONFIGS`] and [`TOPIC_CONFIGS`] are plain static data; loading,
//! resolving, describing and `docs/configuration.md` are all derived from them.
//! Adding a setting means adding one entry here (with a one-line doc) and, if the
//! broker reads it, one field in [`crate::BrokerConfig`] or [`crate::TopicConfig`].

mod broker;
mod security;
mod topic;

pub use broker::{BROKER_GROUPS, RACK_AWARE_SELECTOR};

/// Every broker config: the core table, then listeners and security.
pub static BROKER_CONFIGS: &[ConfigDef] = &ALL_BROKER;

// A static, not a const: a const array this large would be copied into every use.
static ALL_BROKER: [ConfigDef; broker::CORE.len() + security::SECURITY.len()] =
    concat(broker::CORE, security::SECURITY);

/// `a` then `b`, at compile time: the tables live in two files but are one list.
const fn concat<const N: usize>(a: &[ConfigDef], b: &[ConfigDef]) -> [ConfigDef; N] {
    let mut out = [BASE; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}
pub use security::{SASL_MECHANISMS, SECURITY_PROTOCOLS};
pub use topic::TOPIC_CONFIGS;

/// Kafka's `ConfigType` as reported by `DescribeConfigs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Password,
}

impl ConfigType {
    /// Kafka's wire code: BOOLEAN 1, STRING 2, INT 3, SHORT 4, LONG 5, DOUBLE 6,
    /// LIST 7, CLASS 8, PASSWORD 9.
    pub fn kafka_code(&self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Password => 9,
        }
    }

    /// The lower-case name used in documentation.
    pub fn name(&self) -> &'static str {
        match self {
            ConfigType::Boolean => "boolean",
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Short => "short",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::List => "list",
            ConfigType::Password => "password",
        }
    }
}

/// Kafka's importance levels, used only for documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

/// What a value must satisfy beyond parsing as its [`ConfigType`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    /// Anything that parses as the type.
    Any,
    /// An integer `>= min`.
    AtLeast(i64),
    /// An integer in `min..=max`.
    Between(i64, i64),
    /// A double in `min..=max`.
    DoubleBetween(f64, f64),
    /// One of these strings, exactly (Kafka's `ValidString`, case-sensitive).
    OneOf(&'static [&'static str]),
    /// A non-empty comma-separated list of these strings (Kafka's `ValidList`).
    ListOf(&'static [&'static str]),
    /// A non-empty comma-separated list of non-empty strings.
    NonEmptyList,
    /// A comma-separated list of `NAME://host:port` listeners with distinct names.
    Listeners,
    /// Empty, `*`, or a comma-separated list of `partition:broker` (Kafka's
    /// `ThrottledReplicaListValidator`, see [`crate::ThrottledReplicas`]).
    ThrottledReplicas,
}

/// One broker name that feeds a value, with the factor that converts its unit
/// to the unit of the first name (hours -> ms is 3_600_000; 1 means "as is").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synonym {
    pub name: &'static str,
    pub factor: i64,
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigDef {
    /// Kafka's name, e.g. `log.retention.ms`.
    pub name: &'static str,
    pub ty: ConfigType,
    /// The default as Kafka would print it; `None` means unset (Kafka's `null`).
    /// Topic configs with broker synonyms take their default from the synonyms.
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub importance: Importance,
    /// Broker configs only: may be changed at runtime with IncrementalAlterConfigs.
    /// (Every topic config may be overridden per topic.)
    pub dynamic: bool,
    /// Topic configs only: the broker configs that supply the default, in
    /// Kafka's precedence order.
    pub synonyms: &'static [Synonym],
    /// One line for `docs/configuration.md` and `DescribeConfigs`.
    pub doc: &'static str,
    /// Accepted and stored, but Strata does not act on it yet.
    pub stored_only: bool,
    /// Deprecated in Kafka 3.x and ignored by Kafka itself (removed in 4.0): accepted,
    /// stored and ignored with a logged warning, so that tools written for Kafka 3.x that
    /// set it keep working.
    pub deprecated: bool,
    /// Broker configs only: may also be set for one listener as
    /// `listener.name.<listener>.<name>` (Kafka's per-listener override), which beats the
    /// plain name on that listener.
    pub per_listener: bool,
}

/// A template for table entries; every entry overrides what it needs.
pub(crate) const BASE: ConfigDef = ConfigDef {
    name: "",
    ty: ConfigType::String,
    default: None,
    validator: Validator::Any,
    importance: Importance::Medium,
    dynamic: false,
    synonyms: &[],
    doc: "",
    stored_only: false,
    deprecated: false,
    per_listener: false,
};

/// `i64::MAX` as Kafka prints `Long.MAX_VALUE`.
pub(crate) const LONG_MAX: &str = "9223372036854775807";

pub(crate) const fn syn(name: &'static str) -> Synonym {
    Synonym { name, factor: 1 }
}

pub(crate) const fn syn_x(name: &'static str, factor: i64) -> Synonym {
    Synonym { name, factor }
}

/// The broker config definition named `name`.
pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// The topic config definition named `name`.
pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The names resolved together with broker config `name` (e.g. the three
/// `log.retention.*` names), or just `name` itself.
pub fn broker_group(name: &str) -> &'static [Synonym] {
    BROKER_GROUPS
        .iter()
        .copied()
        .find(|group| group.iter().any(|s| s.name == name))
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::check;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = HashSet::new();
        for def in BROKER_CONFIGS.iter().chain(TOPIC_CONFIGS) {
            assert!(
                seen.insert(def.name) || topic_def(def.name).is_some(),
                "{} twice",
                def.name
            );
            assert!(
                !def.doc.is_empty() && !def.doc.contains('\n'),
                "{} needs a one-line doc",
                def.name
            );
        }
        let broker: HashSet<_> = BROKER_CONFIGS.iter().map(|d| d.name).collect();
        assert_eq!(broker.len(), BROKER_CONFIGS.len());
        let topic: HashSet<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        assert_eq!(topic.len(), TOPIC_CONFIGS.len());
    }

    #[test]
    fn defaults_pass_their_own_validators() {
        for def in BROKER_CONFIGS.iter().chain(TOPIC_CONFIGS) {
            if let Some(default) = def.default {
                check(def, default).unwrap_or_else(|e| panic!("{}: {e}", def.name));
            }
        }
    }

    #[test]
    fn synonyms_name_broker_configs_and_groups_are_consistent() {
        for def in TOPIC_CONFIGS {
            assert!(
                !def.synonyms.is_empty() || def.default.is_some(),
                "{} has neither synonyms nor a default",
                def.name
            );
            for s in def.synonyms {
                assert!(broker_def(s.name).is_some(), "{} -> {}", def.name, s.name);
                if def.synonyms.len() > 1 {
                    assert_eq!(broker_group(s.name), def.synonyms, "{}", def.name);
                }
            }
        }
        for group in BROKER_GROUPS {
            for s in *group {
                assert!(broker_def(s.name).is_some(), "{}", s.name);
            }
        }
    }

    #[test]
    fn dynamic_configs_are_the_topic_synonyms() {
        // Kafka's rule (DynamicLogConfig): the broker defaults of topic configs
        // are cluster-wide dynamic; everything else here needs a restart.
        for def in TOPIC_CONFIGS {
            for s in def.synonyms {
                assert!(broker_def(s.name).is_some_and(|b| b.dynamic), "{}", s.name);
            }
        }
    }
}
