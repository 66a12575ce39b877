//! `DescribeConfigs` answers and the generated reference documentation.

use std::collections::BTreeMap;

use crate::defs::{ConfigDef, Importance, BROKER_CONFIGS, TOPIC_CONFIGS};
use crate::resolve::Entry;
use crate::{ConfigSource, Configs};

/// One config as `DescribeConfigs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    /// The effective value; `None` is Kafka's `null` (unset, no default).
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    /// `(name, value, source)` of every value that could apply, highest precedence first.
    pub synonyms: Vec<(String, Option<String>, ConfigSource)>,
    /// Kafka `ConfigType` code, see [`crate::ConfigType::kafka_code`].
    pub config_type: i8,
    pub documentation: String,
}

impl Configs {
    /// Every topic config of a topic with `overrides`, with its synonyms.
    ///
    /// Values that fail validation are still shown as given; use
    /// [`Configs::topic`] to get errors.
    pub fn describe_topic(
        &self,
        dynamic: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let chain = self.topic_chain(def, dynamic, overrides);
                described(def, &chain, false)
            })
            .collect()
    }

    /// Every broker config, with its synonyms. Settings that need a restart are
    /// read-only, as in Kafka.
    pub fn describe_broker(&self, dynamic: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
        BROKER_CONFIGS
            .iter()
            .map(|def| {
                let chain = self.broker_chain(def.name, dynamic);
                described(def, &chain, !def.dynamic)
            })
            .collect()
    }

    /// The body of `docs/configuration.md`, generated from the definition table.
    pub fn markdown_reference() -> String {
        let mut out = String::from(MARKDOWN_INTRO);
        out.push_str("\n## Broker configs\n\n");
        out.push_str(
            "| Name | Type | Default | Valid values | Dynamic | Importance | Description |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for def in BROKER_CONFIGS {
            let default = def
                .default
                .map_or("(unset)".to_string(), |d| format!("`{d}`"));
            row(
                &mut out,
                def,
                &default,
                if def.dynamic { "yes" } else { "no" },
            );
        }
        out.push_str("\n## Topic configs\n\n");
        out.push_str("| Name | Type | Default | Valid values | Broker synonyms | Importance | Description |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        let defaults = Configs::default();
        for def in TOPIC_CONFIGS {
            let default = defaults
                .topic_chain(def, &BTreeMap::new(), &BTreeMap::new())
                .first()
                .map(Entry::converted);
            let default = default.map_or("(unset)".to_string(), |d| format!("`{d}`"));
            let synonyms: Vec<String> = def
                .synonyms
                .iter()
                .map(|s| format!("`{}`", s.name))
                .collect();
            let synonyms = if synonyms.is_empty() {
                "-".to_string()
            } else {
                synonyms.join(", ")
            };
            row(&mut out, def, &default, &synonyms);
        }
        out
    }
}

fn described(def: &ConfigDef, chain: &[Entry], read_only: bool) -> DescribedConfig {
    let winner = chain.first();
    // Kafka answers `null` for the value of a password, and flags it sensitive.
    let sensitive = def.ty == crate::ConfigType::Password;
    DescribedConfig {
        name: def.name.to_string(),
        value: winner.map(Entry::converted).filter(|_| !sensitive),
        source: winner.map_or(ConfigSource::Default, |e| e.source),
        read_only,
        sensitive,
        synonyms: chain
            .iter()
            .map(|e| {
                (
                    e.name.to_string(),
                    Some(e.raw.clone()).filter(|_| !sensitive),
                    e.source,
                )
            })
            .collect(),
        config_type: def.ty.kafka_code(),
        documentation: def.doc.to_string(),
    }
}

fn row(out: &mut String, def: &ConfigDef, default: &str, column: &str) {
    let importance = match def.importance {
        Importance::High => "high",
        Importance::Medium => "medium",
        Importance::Low => "low",
    };
    let doc = if def.deprecated {
        format!(
            "{} *Deprecated and ignored, as Kafka 3.9 ignores it; setting it logs a warning.*",
            def.doc
        )
    } else if def.stored_only {
        format!(
            "{} *Accepted and stored; Strata does not act on it yet.*",
            def.doc
        )
    } else {
        def.doc.to_string()
    };
    let doc = if def.per_listener {
        format!(
            "{doc} *Also per listener: `listener.name.<listener>.{}`.*",
            def.name
        )
    } else {
        doc
    };
    out.push_str(&format!(
        "| `{}` | {} | {} | {} | {} | {} | {} |\n",
        def.name,
        def.ty.name(),
        default,
        crate::value::allowed(def).replace('|', "\\|"),
        column,
        importance,
        doc.replace('|', "\\|"),
    ));
}

const MARKDOWN_INTRO: &str = "\
# Configuration reference

<!-- Generated by `strata_config::Configs::markdown_reference()`; do not edit by hand. -->

Strata uses Kafka's config names. A broker reads, lowest to highest precedence:

1. the defaults below;
2. the TOML file given with `--config`, keyed by Kafka names, either flat
   (`\"log.dirs\" = \"/var/lib/strata\"`) or nested (`[log]` then `dirs = \"/var/lib/strata\"`);
   values may be strings, integers, booleans, or arrays (joined with commas);
3. environment variables `STRATA_<NAME>`, the name upper-cased with `.` replaced by `_`
   (`STRATA_LOG_DIRS`); any other `STRATA_*` variable is an error, except `STRATA_LOG`
   (log filter), `STRATA_LOG_FORMAT` (`json` for JSON log lines) and `STRATA_CONFIG`
   (config file path);
4. `--set name=value` flags;
5. dynamic broker configs set with `kafka-configs.sh --alter --entity-type brokers`
   (only the settings marked dynamic).

Topic configs can be overridden per topic; without an override a topic config takes the
value of its broker synonyms, the first one set explicitly winning, in the order listed
(so `log.retention.ms` beats `log.retention.minutes`, which beats `log.retention.hours`).
`flush.ms` falls back to `log.flush.scheduler.interval.ms` (never, by default), and
`log.dirs` to `log.dir`, when the first name is not set.

Settings marked \"also per listener\" may be set for one listener as
`listener.name.<listener>.<name>` (the listener name in lower case, as Kafka writes it:
`listener.name.sasl_ssl.ssl.keystore.location`), which beats the plain name on that
listener. PLAIN users are Kafka's JAAS line, per listener and mechanism:
`listener.name.<listener>.plain.sasl.jaas.config`. Per-listener settings are read from the
config file and `--set` (not from environment variables, whose names cannot tell the
listener from the setting).

An unknown name or an invalid value stops the broker with a message naming the setting,
the value, where it was set and what is allowed.
";
