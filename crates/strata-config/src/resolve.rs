//! Resolving a value through the layers and synonyms, Kafka's way.
//!
//! For one broker name the order is dynamic > static > default. For a group of
//! names (`log.retention.ms`, `.minutes`, `.hours`) the first name that is set
//! explicitly (dynamically or statically) wins, in the group's order; only when
//! none is set does the first default in the group apply. A topic config puts its
//! per-topic override in front of its broker synonyms' chain.

use std::collections::BTreeMap;

use crate::defs::{broker_def, broker_group, ConfigDef, Synonym};
use crate::error::Origin;
use crate::{ConfigSource, Configs};

/// One candidate value for a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The name the value was set under (a topic name or a broker synonym).
    pub name: &'static str,
    /// As written, trimmed.
    pub raw: String,
    pub source: ConfigSource,
    /// Unit factor to the first name of the group (1 = as is).
    pub factor: i64,
}

impl Entry {
    /// The value in the unit of the group's first name. Negative times mean
    /// "forever" (-1), as in Kafka's conversion of `log.retention.hours`.
    pub fn converted(&self) -> String {
        if self.factor == 1 {
            return self.raw.clone();
        }
        match self.raw.trim().parse::<i64>() {
            Ok(v) if v < 0 => "-1".to_string(),
            Ok(v) => v.saturating_mul(self.factor).to_string(),
            Err(_) => self.raw.clone(),
        }
    }
}

impl Configs {
    /// Where the static value of `name` came from (file, env var or flag).
    pub(crate) fn static_origin(&self, name: &str) -> Option<&Origin> {
        self.statics.get(name).map(|(_, origin)| origin)
    }

    /// The origin of an entry, with the real file/env/flag for static values.
    pub(crate) fn entry_origin(&self, entry: &Entry) -> Origin {
        match entry.source {
            ConfigSource::TopicOverride => Origin::TopicOverride,
            ConfigSource::DynamicBroker => Origin::Dynamic,
            ConfigSource::StaticBroker => self
                .static_origin(entry.name)
                .cloned()
                .unwrap_or(Origin::Cli),
            ConfigSource::Default => Origin::Default,
            // Never a broker or topic entry; client-metrics settings are described apart.
            ConfigSource::ClientMetrics => Origin::Dynamic,
        }
    }

    /// The values set for one broker name, highest first, and its default.
    fn name_entries(
        &self,
        syn: Synonym,
        dynamic: &BTreeMap<String, String>,
    ) -> (Vec<Entry>, Option<Entry>) {
        let entry = |raw: &str, source| Entry {
            name: syn.name,
            raw: raw.trim().to_string(),
            source,
            factor: syn.factor,
        };
        let mut explicit = Vec::new();
        if let Some(raw) = dynamic.get(syn.name) {
            explicit.push(entry(raw, ConfigSource::DynamicBroker));
        }
        if let Some((raw, _)) = self.statics.get(syn.name) {
            explicit.push(entry(raw, ConfigSource::StaticBroker));
        }
        let default = broker_def(syn.name)
            .and_then(|d| d.default)
            .map(|raw| entry(raw, ConfigSource::Default));
        (explicit, default)
    }

    /// Every value of a group of broker names, in precedence order.
    pub(crate) fn group_chain(
        &self,
        group: &[Synonym],
        dynamic: &BTreeMap<String, String>,
    ) -> Vec<Entry> {
        let mut chain = Vec::new();
        let mut defaults = Vec::new();
        for syn in group {
            let (explicit, default) = self.name_entries(*syn, dynamic);
            chain.extend(explicit);
            defaults.extend(default);
        }
        chain.extend(defaults);
        chain
    }

    /// The chain for broker config `name`: its whole group if `name` leads one
    /// (`log.retention.ms`, `log.dirs`, ...), otherwise just its own values.
    pub(crate) fn broker_chain(
        &self,
        name: &'static str,
        dynamic: &BTreeMap<String, String>,
    ) -> Vec<Entry> {
        let group = broker_group(name);
        match group.first() {
            Some(first) if first.name == name => self.group_chain(group, dynamic),
            _ => self.group_chain(&[Synonym { name, factor: 1 }], dynamic),
        }
    }

    /// The chain for topic config `def`: override, then broker synonyms, then
    /// the topic config's own default.
    pub(crate) fn topic_chain(
        &self,
        def: &'static ConfigDef,
        dynamic: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<Entry> {
        let mut chain = Vec::new();
        if let Some(raw) = overrides.get(def.name) {
            chain.push(Entry {
                name: def.name,
                raw: raw.trim().to_string(),
                source: ConfigSource::TopicOverride,
                factor: 1,
            });
        }
        chain.extend(self.group_chain(def.synonyms, dynamic));
        if let Some(raw) = def.default {
            chain.push(Entry {
                name: def.name,
                raw: raw.to_string(),
                source: ConfigSource::Default,
                factor: 1,
            });
        }
        chain
    }
}
