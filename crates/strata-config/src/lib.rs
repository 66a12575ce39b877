//! Strata's configuration, under Kafka's own names.
//!
//! This crate owns the definition table of every setting Strata understands
//! ([`defs`]), how static values are layered and validated ([`Configs::load`]),
//! the typed views the broker reads ([`BrokerConfig`], [`TopicConfig`]), and the
//! `DescribeConfigs` view Kafka clients see ([`DescribedConfig`]).
//!
//! Layers, lowest to highest precedence:
//!
//! 1. defaults from the definition table;
//! 2. the TOML file (Kafka names as keys, flat `"log.dirs" = ...` or nested `[log] dirs = ...`);
//! 3. environment variables `STRATA_<NAME>` (`log.dirs` -> `STRATA_LOG_DIRS`), see [`env_pairs`];
//! 4. command-line overrides (`--set name=value`);
//! 5. dynamic broker configs (set through `IncrementalAlterConfigs`, stored by the
//!    controller and passed back in as a map);
//! 6. per-topic overrides (topic configs only).
//!
//! Where Kafka has several names for one value (`log.retention.ms`, `.minutes`,
//! `.hours`), the first name in Kafka's order that is *explicitly* set anywhere
//! wins; only when none is set does the first default apply. Within one name, a
//! dynamic value beats a static one. This is Kafka's rule, and the synonyms in
//! [`DescribedConfig`] are listed in exactly that precedence order.
//!
//! An unknown name or an invalid value is always an error naming the setting, the
//! value, where it came from, and what is allowed; nothing is ignored silently.
//!
//! ```
//! use std::collections::BTreeMap;
//! use strata_config::Configs;
//!
//! let cli = vec![("log.retention.hours".to_string(), "24".to_string())];
//! let env = Vec::new(); // the binary passes `env_pairs()`
//! let configs = Configs::load(None, &env, &cli)?;
//! let dynamic = BTreeMap::new(); // from the controller
//! let broker = configs.broker(&dynamic)?;
//! assert_eq!(broker.topic_defaults.retention_ms, 24 * 3_600_000);
//!
//! let overrides = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
//! configs.validate_topic(&overrides)?;
//! assert_eq!(configs.topic(&dynamic, &overrides)?.retention_ms, 1000);
//! # Ok::<(), strata_config::ConfigError>(())
//! ```
//!
//! This crate does no I/O except reading the config file and the process
//! environment in [`env_pairs`]; it depends on no other Strata crate. Kafka error
//! codes are chosen by the server, not here.

pub mod defs;
mod describe;
mod error;
pub mod jaas;
mod listener;
mod load;
mod resolve;
mod throttle;
mod typed;
mod value;
pub mod value_schema;

pub use defs::{
    ConfigDef, ConfigType, Importance, Synonym, Validator, BROKER_CONFIGS, TOPIC_CONFIGS,
};
pub use describe::DescribedConfig;
pub use error::{ConfigError, Origin};
pub use listener::Listener;
pub use load::{env_pairs, env_var_name, Configs, ENV_ALLOW_LIST, ENV_PREFIX, LISTENER_PREFIX};
pub use throttle::ThrottledReplicas;
pub use typed::security::{
    AuthorizerConfig, ClientAuth, ListenerSecurity, OAuthConfig, SaslConfig, Secret,
    SecurityConfig, SecurityProtocol, SslConfig,
};
pub use typed::{
    BrokerConfig, CleanerConfig, ConsumerGroupConfig, IcebergCatalog, RemoteEncryption,
    RemoteStorageConfig, S3Sse, TierPrices, TopicConfig, TxnConfig,
};

/// Where an effective value came from, as Kafka's `DescribeConfigs` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// A per-topic override (`DYNAMIC_TOPIC_CONFIG`).
    TopicOverride,
    /// A broker config set at runtime through the Kafka API (`DYNAMIC_BROKER_CONFIG`).
    DynamicBroker,
    /// The config file, an environment variable or a `--set` flag (`STATIC_BROKER_CONFIG`).
    StaticBroker,
    /// The definition table's default (`DEFAULT_CONFIG`).
    Default,
    /// A client-metrics subscription's setting (`CLIENT_METRICS_CONFIG`, KIP-714).
    ClientMetrics,
}

impl ConfigSource {
    /// Kafka's `DescribeConfigsResponse` source code: UNKNOWN 0, DYNAMIC_TOPIC_CONFIG 1,
    /// DYNAMIC_BROKER_CONFIG 2, DYNAMIC_DEFAULT_BROKER_CONFIG 3, STATIC_BROKER_CONFIG 4,
    /// DEFAULT_CONFIG 5, DYNAMIC_BROKER_LOGGER_CONFIG 6, CLIENT_METRICS_CONFIG 7.
    ///
    /// Strata keeps one map of dynamic broker configs, reported as
    /// DYNAMIC_BROKER_CONFIG (2).
    pub fn kafka_code(&self) -> i8 {
        match self {
            ConfigSource::TopicOverride => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::ClientMetrics => 7,
        }
    }
}
