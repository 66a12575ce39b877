//! Loading the static layers (file < environment < `--set`) and validating
//! dynamic broker configs and topic overrides.
//!
//! The TOML file uses Kafka's names as keys, flat (`"log.dirs" = "/data"`) or
//! nested (`[log] dirs = "/data"`); both are flattened to dotted names. Values may
//! be strings, integers, floats, booleans, or arrays of those (joined with `,`).
//!
//! Environment variables are `STRATA_` + the name upper-cased with `.` -> `_`
//! (`log.dirs` -> `STRATA_LOG_DIRS`). Every `STRATA_*` variable must name a broker
//! config, except those in [`ENV_ALLOW_LIST`], which belong to other parts of
//! Strata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::defs::{broker_def, topic_def, ConfigDef, BROKER_CONFIGS, TOPIC_CONFIGS};
use crate::error::{ConfigError, Origin};
use crate::value::check;

/// The prefix of every Strata environment variable.
pub const ENV_PREFIX: &str = "STRATA_";

/// `STRATA_*` variables that are not broker configs and are left alone:
/// `STRATA_LOG` (the tracing filter, like `RUST_LOG`), `STRATA_LOG_FORMAT`
/// (`json` for JSON lines), `STRATA_CONFIG` (the config file path, read by the
/// CLI), `STRATA_TIER_FAULTS` (object store fault injection, read by a broker
/// built with its `fault-injection` feature and refused by any other) and
/// `STRATA_BENCH_COPY_PATH` (benchmarks only: `1` restores the copying produce and
/// fetch paths, see `strata_log::bench_copy_path`).
pub const ENV_ALLOW_LIST: &[&str] = &[
    "STRATA_LOG",
    "STRATA_LOG_FORMAT",
    "STRATA_CONFIG",
    "STRATA_TIER_FAULTS",
    "STRATA_BENCH_COPY_PATH",
];

/// The loaded static layers; combine with dynamic configs and topic overrides
/// through [`Configs::broker`], [`Configs::topic`] and the `describe_*` methods.
#[derive(Debug, Clone, Default)]
pub struct Configs {
    /// Broker name -> (value as written, trimmed; where it was written).
    pub(crate) statics: BTreeMap<&'static str, (String, Origin)>,
    /// Per-listener overrides, `listener.name.<listener>.<setting>`: (listener name
    /// upper-cased, setting) -> (value, where it was written). The setting is a broker
    /// config marked `per_listener`, or `<mechanism>.sasl.jaas.config`.
    pub(crate) listener_statics: BTreeMap<(String, String), (String, Origin)>,
}

/// The prefix of Kafka's per-listener overrides.
pub const LISTENER_PREFIX: &str = "listener.name.";

/// The environment variable for config `name`: `log.dirs` -> `STRATA_LOG_DIRS`.
pub fn env_var_name(name: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        name.to_ascii_uppercase().replace('.', "_")
    )
}

/// Every `STRATA_*` variable of this process except [`ENV_ALLOW_LIST`], as
/// `(variable name, value)` pairs for [`Configs::load`], which maps them to
/// config names and rejects the ones that name no broker config.
pub fn env_pairs() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_ALLOW_LIST.contains(&k.as_str()))
        .collect()
}

impl Configs {
    /// Loads defaults < `file` < `env` < `cli` and checks every value.
    ///
    /// `env` holds `(variable, value)` pairs as from [`env_pairs`]; variables
    /// without the `STRATA_` prefix and those in [`ENV_ALLOW_LIST`] are skipped.
    /// `cli` holds `(config name, value)` pairs from `--set name=value`.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        cli: &[(String, String)],
    ) -> Result<Configs, ConfigError> {
        let mut configs = Configs::default();
        if let Some(path) = file {
            for (name, value) in read_file(path)? {
                configs.set(&name, &value, Origin::File(path.to_path_buf()))?;
            }
        }
        for (var, value) in env {
            if !var.starts_with(ENV_PREFIX) || ENV_ALLOW_LIST.contains(&var.as_str()) {
                continue;
            }
            let def = BROKER_CONFIGS
                .iter()
                .find(|d| env_var_name(d.name) == *var)
                .ok_or_else(|| unknown_env(var))?;
            configs.set(def.name, value, Origin::Env(var.clone()))?;
        }
        for (name, value) in cli {
            configs.set(name, value, Origin::Cli)?;
        }
        // Surface cross-setting problems (e.g. unusable advertised listeners) now.
        configs.broker(&BTreeMap::new())?;
        Ok(configs)
    }

    fn set(&mut self, name: &str, value: &str, origin: Origin) -> Result<(), ConfigError> {
        if let Some(rest) = name.strip_prefix(LISTENER_PREFIX) {
            let (listener, setting) = split_listener_setting(name, rest, &origin)?;
            if let Some(def) = broker_def(&setting) {
                check_value(def, value, &origin).map_err(|e| match e {
                    ConfigError::Invalid {
                        value,
                        reason,
                        origin,
                        ..
                    } => ConfigError::Invalid {
                        name: name.to_string(),
                        value,
                        reason,
                        origin,
                    },
                    other => other,
                })?;
            }
            self.listener_statics
                .insert((listener, setting), (value.trim().to_string(), origin));
            return Ok(());
        }
        let def = broker_def(name).ok_or_else(|| unknown(name, origin.clone()))?;
        check_value(def, value, &origin)?;
        self.statics
            .insert(def.name, (value.trim().to_string(), origin));
        Ok(())
    }

    /// Checks updates to dynamic broker configs: each must be a known broker
    /// config that Kafka allows to change at runtime, with a valid value.
    pub fn validate_broker_dynamic(
        &self,
        updates: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        for (name, value) in updates {
            let def = broker_def(name).ok_or_else(|| unknown(name, Origin::Dynamic))?;
            if !def.dynamic {
                return Err(ConfigError::NotDynamic { name: name.clone() });
            }
            check_value(def, value, &Origin::Dynamic)?;
        }
        Ok(())
    }

    /// The names among `settings` that Kafka deprecated and ignores (see
    /// [`ConfigDef::deprecated`]); the caller logs a warning for each.
    pub fn deprecated_names<'a>(settings: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
        settings
            .into_iter()
            .map(String::as_str)
            .filter(|n| {
                topic_def(n)
                    .or_else(|| broker_def(n))
                    .is_some_and(|d| d.deprecated)
            })
            .collect()
    }

    /// The deprecated, ignored broker configs set in the file, environment or flags.
    pub fn deprecated_statics(&self) -> Vec<&'static str> {
        self.statics
            .keys()
            .copied()
            .filter(|n| broker_def(n).is_some_and(|d| d.deprecated))
            .collect()
    }

    /// Checks per-topic overrides: known topic config names with valid values.
    pub fn validate_topic(&self, overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        for (name, value) in overrides {
            let def = topic_def(name).ok_or_else(|| unknown_topic(name))?;
            check_value(def, value, &Origin::TopicOverride)?;
        }
        // The table is written from the remote tier's copy: without one there is nothing
        // to write it from, so the setting could not take effect.
        let on = |name: &str| {
            overrides
                .get(name)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        if on("iceberg.enable") && !on("remote.storage.enable") {
            return Err(ConfigError::Invalid {
                name: "iceberg.enable".into(),
                value: "true".into(),
                reason: "the Iceberg table is written from the remote tier: set remote.storage.enable=true too".into(),
                origin: Origin::TopicOverride,
            });
        }
        let json = overrides
            .get("iceberg.value.format")
            .is_some_and(|v| v == "json");
        let schema = overrides
            .get("iceberg.value.schema")
            .filter(|s| !s.is_empty());
        let invalid = |name: &str, value: &str, reason: String| ConfigError::Invalid {
            name: name.into(),
            value: value.into(),
            reason,
            origin: Origin::TopicOverride,
        };
        match (json, schema) {
            (true, None) => {
                return Err(invalid(
                    "iceberg.value.format",
                    "json",
                    "set iceberg.value.schema to the fields to project".into(),
                ))
            }
            (true, Some(s)) => {
                crate::value_schema::parse(s)
                    .map_err(|why| invalid("iceberg.value.schema", s, why))?;
            }
            (false, Some(s)) => {
                return Err(invalid(
                    "iceberg.value.schema",
                    s,
                    "it applies only with iceberg.value.format=json".into(),
                ))
            }
            (false, None) => {}
        }
        Ok(())
    }
}

/// `sasl_ssl.ssl.keystore.location` -> (`SASL_SSL`, `ssl.keystore.location`); only
/// settings that Kafka allows per listener, and `<mechanism>.sasl.jaas.config`.
fn split_listener_setting(
    name: &str,
    rest: &str,
    origin: &Origin,
) -> Result<(String, String), ConfigError> {
    let bad = |reason: String| ConfigError::Unknown {
        name: name.to_string(),
        origin: origin.clone(),
        hint: format!(" ({reason})"),
    };
    let (listener, setting) = rest
        .split_once('.')
        .filter(|(l, s)| !l.is_empty() && !s.is_empty())
        .ok_or_else(|| bad("expected listener.name.<listener>.<setting>".to_string()))?;
    if let Some(mechanism) = setting.strip_suffix(".sasl.jaas.config") {
        let known = crate::defs::SASL_MECHANISMS
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism));
        if !known {
            return Err(bad(format!(
                "`{mechanism}` is not a SASL mechanism Strata serves ({})",
                crate::defs::SASL_MECHANISMS.join(", ")
            )));
        }
        return Ok((
            listener.to_ascii_uppercase(),
            format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase()),
        ));
    }
    match broker_def(setting) {
        Some(def) if def.per_listener => Ok((listener.to_ascii_uppercase(), setting.to_string())),
        Some(_) => Err(bad(format!(
            "`{setting}` cannot be set per listener; set it for the broker"
        ))),
        None => Err(bad(format!(
            "`{setting}` is not a broker config{}",
            did_you_mean(setting, BROKER_CONFIGS.iter().map(|d| d.name.to_string()))
        ))),
    }
}

fn check_value(def: &ConfigDef, value: &str, origin: &Origin) -> Result<(), ConfigError> {
    check(def, value).map_err(|reason| ConfigError::Invalid {
        name: def.name.to_string(),
        value: value.to_string(),
        reason,
        origin: origin.clone(),
    })
}

/// Kafka's intra-broker log-directory move throttle (KIP-113): Strata has no
/// AlterReplicaLogDirs, so it is refused with a hint rather than accepted and ignored. (The
/// KIP-73 replication throttles, `*.replication.throttled.*`, are served: `replica::throttle`.)
const REPLICATION_THROTTLES: &[&str] = &["replica.alter.log.dirs.io.max.bytes.per.second"];

const THROTTLE_HINT: &str = " (Strata does not move replicas between log directories, so there \
     is nothing to throttle; see docs/operations.md)";

fn unknown(name: &str, origin: Origin) -> ConfigError {
    if REPLICATION_THROTTLES.contains(&name) {
        return ConfigError::Unknown {
            name: name.to_string(),
            origin,
            hint: THROTTLE_HINT.to_string(),
        };
    }
    let hint = match topic_def(name) {
        Some(def) if !def.synonyms.is_empty() => format!(
            " (`{name}` is a topic config: set its broker default `{}` instead, or override it per topic)",
            def.synonyms[0].name
        ),
        Some(_) => format!(" (`{name}` is a topic config: override it per topic)"),
        None => did_you_mean(name, BROKER_CONFIGS.iter().map(|d| d.name.to_string())),
    };
    ConfigError::Unknown {
        name: name.to_string(),
        origin,
        hint,
    }
}

fn unknown_topic(name: &str) -> ConfigError {
    if REPLICATION_THROTTLES.contains(&name) {
        return ConfigError::Unknown {
            name: name.to_string(),
            origin: Origin::TopicOverride,
            hint: THROTTLE_HINT.to_string(),
        };
    }
    let hint = match broker_def(name) {
        Some(_) => match TOPIC_CONFIGS
            .iter()
            .find(|t| t.synonyms.first().is_some_and(|s| s.name == name))
        {
            Some(t) => format!(
                " (`{name}` is a broker config; the topic config is `{}`)",
                t.name
            ),
            None => format!(" (`{name}` is a broker config, not a topic config)"),
        },
        None => did_you_mean(name, TOPIC_CONFIGS.iter().map(|d| d.name.to_string())),
    };
    ConfigError::Unknown {
        name: name.to_string(),
        origin: Origin::TopicOverride,
        hint,
    }
}

fn unknown_env(var: &str) -> ConfigError {
    let guess = var[ENV_PREFIX.len()..]
        .to_ascii_lowercase()
        .replace('_', ".");
    let hint = match topic_def(&guess).and_then(|def| def.synonyms.first()) {
        Some(broker) => format!(
            "; `{guess}` is a topic config: set its broker default with {} instead",
            env_var_name(broker.name)
        ),
        None => did_you_mean(var, BROKER_CONFIGS.iter().map(|d| env_var_name(d.name))),
    };
    let hint = format!(
        "{hint} (STRATA_* variables must name a broker config; {} are reserved for other uses)",
        ENV_ALLOW_LIST.join(", ")
    );
    ConfigError::Unknown {
        name: var.to_string(),
        origin: Origin::Env(var.to_string()),
        hint,
    }
}

/// `"; did you mean `x`?"` for the closest candidate within a small edit distance.
fn did_you_mean(name: &str, candidates: impl Iterator<Item = String>) -> String {
    let normalized = name.replace(['_', '-'], ".").to_ascii_lowercase();
    candidates
        .map(|c| {
            (
                edit_distance(&normalized, &c.to_ascii_lowercase().replace('_', ".")),
                c,
            )
        })
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, c)| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Reads and flattens the TOML file into `(dotted name, value)` pairs.
fn read_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut out = BTreeMap::new();
    flatten("", &table, path, &mut out)?;
    Ok(out.into_iter().collect())
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    path: &Path,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let toml::Value::Table(inner) = value {
            flatten(&name, inner, path, out)?;
            continue;
        }
        let text = scalar_text(value).map_err(|reason| ConfigError::Invalid {
            name: name.clone(),
            value: value.to_string(),
            reason,
            origin: Origin::File(PathBuf::from(path)),
        })?;
        if out.insert(name.clone(), text).is_some() {
            return Err(ConfigError::Duplicate {
                name,
                origin: Origin::File(path.to_path_buf()),
            });
        }
    }
    Ok(())
}

fn scalar_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) => {
            let parts: Result<Vec<_>, _> = items
                .iter()
                .map(|v| match v {
                    toml::Value::Array(_) | toml::Value::Table(_) => {
                        Err("arrays may hold only plain values".to_string())
                    }
                    other => scalar_text(other),
                })
                .collect();
            Ok(parts?.join(","))
        }
        toml::Value::Datetime(_) => {
            Err("dates are not config values; quote it if you meant a string".to_string())
        }
        toml::Value::Table(_) => Err("expected a value, found a table".to_string()),
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[test]
    fn the_log_dir_throttle_is_refused_with_a_hint() {
        for name in REPLICATION_THROTTLES {
            let e = unknown(name, Origin::TopicOverride).to_string();
            assert!(e.contains("log directories"), "{e}");
            let e = unknown_topic(name).to_string();
            assert!(e.contains("log directories"), "{e}");
        }
        // The KIP-73 throttles are served, so they are known names.
        assert!(broker_def("leader.replication.throttled.rate").is_some());
        assert!(topic_def("follower.replication.throttled.replicas").is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(env_var_name("log.dirs"), "STRATA_LOG_DIRS");
        assert_eq!(
            env_var_name("log.retention.check.interval.ms"),
            "STRATA_LOG_RETENTION_CHECK_INTERVAL_MS"
        );
    }

    #[test]
    fn env_names_are_unambiguous() {
        let mut names: Vec<_> = BROKER_CONFIGS
            .iter()
            .map(|d| env_var_name(d.name))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BROKER_CONFIGS.len());
        for allowed in ENV_ALLOW_LIST {
            assert!(!names.contains(&allowed.to_string()));
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("log.dir.s", ["log.dirs".to_string()].into_iter()),
            "; did you mean `log.dirs`?"
        );
        assert_eq!(
            did_you_mean("log_dirs", ["log.dirs".to_string()].into_iter()),
            "; did you mean `log.dirs`?"
        );
        assert_eq!(
            did_you_mean("totally.else", ["log.dirs".to_string()].into_iter()),
            ""
        );
    }
}
