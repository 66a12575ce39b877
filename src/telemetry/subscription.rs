//! Client-metrics subscriptions: Kafka's `CLIENT_METRICS` config resources (KIP-714).
//!
//! An operator names a subscription and gives it three settings with
//! IncrementalAlterConfigs, exactly as for Kafka (`kafka-client-metrics.sh` or
//! `Admin.incrementalAlterConfigs` on resource type 16):
//! - `metrics`: metric name prefixes to collect, `*` for all, empty for none;
//! - `interval.ms`: how often a matching client pushes (100 ms to 1 hour, default 5 min);
//! - `match`: `selector=regex` pairs a client must all match (empty matches every client),
//!   the selectors being `client_instance_id`, `client_id`, `client_software_name`,
//!   `client_software_version`, `client_source_address` and `client_source_port`. A regex
//!   must match the whole value, as Java's `Matcher.matches` does.
//!
//! The settings are validated here before they are proposed to the controller, so a bad
//! name or value is INVALID_CONFIG and never stored. This module is pure.

use std::collections::BTreeMap;

use regex::Regex;

/// `metrics`: the subscribed metric name prefixes.
pub const METRICS: &str = "metrics";
/// `interval.ms`: the push interval of the subscription.
pub const INTERVAL_MS: &str = "interval.ms";
/// `match`: the client selectors.
pub const MATCH: &str = "match";
/// Every setting of a subscription, in describe order.
pub const NAMES: [&str; 3] = [METRICS, INTERVAL_MS, MATCH];
/// Kafka's default push interval: 5 minutes.
pub const DEFAULT_INTERVAL_MS: i32 = 300_000;
const MIN_INTERVAL_MS: i32 = 100;
const MAX_INTERVAL_MS: i32 = 3_600_000;
/// The `metrics` value that subscribes to every metric.
pub const ALL_METRICS: &str = "*";

/// The client selectors `match` may use (KIP-714).
pub const SELECTORS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("client metrics subscription '{name}': unknown setting '{setting}'; the settings are metrics, interval.ms and match")]
    UnknownSetting { name: String, setting: String },
    #[error("client metrics subscription '{name}': invalid interval.ms '{value}'; it must be an integer from 100 to 3600000 (1 hour)")]
    Interval { name: String, value: String },
    #[error("client metrics subscription '{name}': invalid match '{entry}': {reason}")]
    Match {
        name: String,
        entry: String,
        reason: String,
    },
    #[error("client metrics subscription name must not be empty")]
    EmptyName,
}

/// What a client is matched on: who it says it is and where it connects from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMeta {
    pub client_instance_id: String,
    pub client_id: String,
    pub client_software_name: String,
    pub client_software_version: String,
    pub client_source_address: String,
    pub client_source_port: String,
}

impl ClientMeta {
    fn get(&self, selector: &str) -> &str {
        match selector {
            "client_instance_id" => &self.client_instance_id,
            "client_id" => &self.client_id,
            "client_software_name" => &self.client_software_name,
            "client_software_version" => &self.client_software_version,
            "client_source_address" => &self.client_source_address,
            _ => &self.client_source_port,
        }
    }
}

/// One validated subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub name: String,
    /// Metric name prefixes; [`ALL_METRICS`] for all.
    pub metrics: Vec<String>,
    pub interval_ms: i32,
    /// `(selector, anchored regex)`.
    matchers: Vec<(&'static str, Regex)>,
}

impl Subscription {
    /// Validates `configs` (the stored or proposed settings of subscription `name`).
    pub fn parse(
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<Subscription, SubscriptionError> {
        if name.is_empty() {
            return Err(SubscriptionError::EmptyName);
        }
        if let Some(unknown) = configs.keys().find(|k| !NAMES.contains(&k.as_str())) {
            return Err(SubscriptionError::UnknownSetting {
                name: name.to_string(),
                setting: unknown.clone(),
            });
        }
        let metrics = list(configs.get(METRICS));
        let interval_ms = match configs.get(INTERVAL_MS) {
            None => DEFAULT_INTERVAL_MS,
            Some(v) => v
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|ms| (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(ms))
                .ok_or_else(|| SubscriptionError::Interval {
                    name: name.to_string(),
                    value: v.clone(),
                })?,
        };
        let mut matchers = Vec::new();
        for entry in list(configs.get(MATCH)) {
            let bad = |reason: String| SubscriptionError::Match {
                name: name.to_string(),
                entry: entry.clone(),
                reason,
            };
            let (selector, pattern) = entry
                .split_once('=')
                .ok_or_else(|| bad("expected selector=regex".into()))?;
            let selector = SELECTORS
                .iter()
                .find(|s| **s == selector.trim())
                .ok_or_else(|| bad(format!("unknown selector; use one of {SELECTORS:?}")))?;
            if matchers.iter().any(|(s, _)| s == selector) {
                return Err(bad(format!("{selector} is given twice")));
            }
            let regex = Regex::new(&format!("^(?:{})$", pattern.trim()))
                .map_err(|e| bad(format!("bad regular expression: {e}")))?;
            matchers.push((*selector, regex));
        }
        Ok(Subscription {
            name: name.to_string(),
            metrics,
            interval_ms,
            matchers,
        })
    }

    /// Whether the client matches every selector.
    pub fn matches(&self, client: &ClientMeta) -> bool {
        self.matchers
            .iter()
            .all(|(selector, re)| re.is_match(client.get(selector)))
    }
}

/// A comma-separated list, trimmed, empty items dropped.
fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// What a client is asked to send: the union of its matching subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// Prefixes as sent in GetTelemetrySubscriptions: empty for none, `[""]` for all.
    pub metrics: Vec<String>,
    /// The shortest interval of the matching subscriptions, or the default.
    pub interval_ms: i32,
}

/// The metrics and push interval for `client` under `subscriptions`.
pub fn requested(subscriptions: &[Subscription], client: &ClientMeta) -> Requested {
    let mut metrics: Vec<String> = Vec::new();
    let mut interval_ms = None::<i32>;
    let mut all = false;
    for s in subscriptions.iter().filter(|s| s.matches(client)) {
        if s.metrics.is_empty() {
            continue;
        }
        all |= s.metrics.iter().any(|m| m == ALL_METRICS);
        for m in &s.metrics {
            if !metrics.contains(m) {
                metrics.push(m.clone());
            }
        }
        interval_ms = Some(interval_ms.map_or(s.interval_ms, |i| i.min(s.interval_ms)));
    }
    if all {
        metrics = vec![String::new()];
    }
    metrics.sort();
    Requested {
        metrics,
        interval_ms: interval_ms.unwrap_or(DEFAULT_INTERVAL_MS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn client(id: &str, software: &str) -> ClientMeta {
        ClientMeta {
            client_id: id.into(),
            client_software_name: software.into(),
            client_source_address: "127.0.0.1".into(),
            client_source_port: "50000".into(),
            ..Default::default()
        }
    }

    #[test]
    fn settings_are_validated() {
        let s = Subscription::parse("s", &configs(&[])).unwrap();
        assert_eq!(s.interval_ms, DEFAULT_INTERVAL_MS);
        assert!(s.metrics.is_empty());
        for bad in [
            configs(&[("interval.ms", "99")]),
            configs(&[("interval.ms", "3600001")]),
            configs(&[("interval.ms", "soon")]),
            configs(&[("retention.ms", "1")]),
            configs(&[("match", "client_id")]),
            configs(&[("match", "client_name=x")]),
            configs(&[("match", "client_id=(")]),
            configs(&[("match", "client_id=a,client_id=b")]),
        ] {
            assert!(Subscription::parse("s", &bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Subscription::parse("", &configs(&[])).unwrap_err(),
            SubscriptionError::EmptyName
        );
    }

    #[test]
    fn regexes_match_the_whole_value() {
        let s = Subscription::parse(
            "s",
            &configs(&[("match", "client_id=app-.*, client_software_name=librdkafka")]),
        )
        .unwrap();
        assert!(s.matches(&client("app-1", "librdkafka")));
        assert!(!s.matches(&client("my-app-1", "librdkafka")));
        assert!(!s.matches(&client("app-1", "librdkafka-x")));
        assert!(!s.matches(&client("app-1", "apache-kafka-java")));
    }

    #[test]
    fn requested_is_the_union_with_the_shortest_interval() {
        let a = Subscription::parse(
            "a",
            &configs(&[
                ("metrics", "org.apache.kafka.producer."),
                ("interval.ms", "5000"),
            ]),
        )
        .unwrap();
        let b = Subscription::parse(
            "b",
            &configs(&[
                (
                    "metrics",
                    "org.apache.kafka.consumer., org.apache.kafka.producer.",
                ),
                ("interval.ms", "1000"),
                ("match", "client_id=b.*"),
            ]),
        )
        .unwrap();
        let none = Subscription::parse("none", &configs(&[("interval.ms", "100")])).unwrap();
        let subs = [a.clone(), b, none];
        let r = requested(&subs, &client("b1", "x"));
        assert_eq!(
            r.metrics,
            ["org.apache.kafka.consumer.", "org.apache.kafka.producer."]
        );
        assert_eq!(r.interval_ms, 1000);
        let r = requested(&subs, &client("a1", "x"));
        assert_eq!(r.metrics, ["org.apache.kafka.producer."]);
        assert_eq!(r.interval_ms, 5000);
        let all = Subscription::parse("all", &configs(&[("metrics", "*")])).unwrap();
        assert_eq!(requested(&[a, all], &client("x", "x")).metrics, [""]);
        let r = requested(&[], &client("x", "x"));
        assert!(r.metrics.is_empty());
        assert_eq!(r.interval_ms, DEFAULT_INTERVAL_MS);
    }
}
