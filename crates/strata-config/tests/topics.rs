//! Topic resolution, Kafka's synonym precedence, dynamic validation, describe, docs.

use std::collections::BTreeMap;

use strata_config::{ConfigError, ConfigSource, Configs, Validator, BROKER_CONFIGS, TOPIC_CONFIGS};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cli(items: &[(&str, &str)]) -> Configs {
    Configs::load(None, &[], &pairs(items)).unwrap()
}

fn retention(statics: &[(&str, &str)], dynamic: &[(&str, &str)]) -> i64 {
    cli(statics)
        .topic(&map(dynamic), &map(&[]))
        .unwrap()
        .retention_ms
}

#[test]
fn retention_ms_beats_minutes_beats_hours() {
    const H: i64 = 3_600_000;
    assert_eq!(retention(&[], &[]), 168 * H);
    assert_eq!(retention(&[("log.retention.hours", "1")], &[]), H);
    assert_eq!(
        retention(
            &[("log.retention.hours", "1"), ("log.retention.minutes", "2")],
            &[]
        ),
        120_000
    );
    assert_eq!(
        retention(
            &[
                ("log.retention.hours", "1"),
                ("log.retention.minutes", "2"),
                ("log.retention.ms", "3")
            ],
            &[]
        ),
        3
    );
    assert_eq!(retention(&[("log.retention.hours", "-1")], &[]), -1);
    assert_eq!(retention(&[("log.retention.minutes", "-1")], &[]), -1);
    // Kafka's rule: an explicit earlier name wins even over a dynamic later name.
    assert_eq!(
        retention(
            &[("log.retention.ms", "5")],
            &[("log.retention.hours", "2")]
        ),
        5
    );
    assert_eq!(
        retention(
            &[("log.retention.hours", "1")],
            &[("log.retention.hours", "2")]
        ),
        2 * H
    );
    assert_eq!(
        retention(
            &[("log.retention.hours", "1")],
            &[("log.retention.minutes", "3")]
        ),
        180_000
    );
}

#[test]
fn segment_ms_and_flush_ms_fall_back_like_kafka() {
    let t = cli(&[("log.roll.hours", "2")])
        .topic(&map(&[]), &map(&[]))
        .unwrap();
    assert_eq!(t.segment_ms, 2 * 3_600_000);
    let t = cli(&[("log.roll.hours", "2"), ("log.roll.ms", "10")])
        .topic(&map(&[]), &map(&[]))
        .unwrap();
    assert_eq!(t.segment_ms, 10);
    let t = cli(&[("log.flush.scheduler.interval.ms", "7")])
        .topic(&map(&[]), &map(&[]))
        .unwrap();
    assert_eq!(t.flush_ms, 7);
    let t = cli(&[
        ("log.flush.scheduler.interval.ms", "7"),
        ("log.flush.interval.ms", "8"),
    ])
    .topic(&map(&[]), &map(&[]))
    .unwrap();
    assert_eq!(t.flush_ms, 8);
}

#[test]
fn override_beats_dynamic_beats_static_beats_default() {
    let configs = cli(&[("log.segment.bytes", "1000")]);
    let seg = |dynamic: &[(&str, &str)], overrides: &[(&str, &str)]| {
        configs
            .topic(&map(dynamic), &map(overrides))
            .unwrap()
            .segment_bytes
    };
    assert_eq!(
        cli(&[]).topic(&map(&[]), &map(&[])).unwrap().segment_bytes,
        1073741824
    );
    assert_eq!(seg(&[], &[]), 1000);
    assert_eq!(seg(&[("log.segment.bytes", "2000")], &[]), 2000);
    assert_eq!(
        seg(
            &[("log.segment.bytes", "2000")],
            &[("segment.bytes", "3000")]
        ),
        3000
    );
}

#[test]
fn topic_overrides_typed() {
    let overrides = map(&[
        ("message.timestamp.type", "LogAppendTime"),
        ("cleanup.policy", "delete, compact"),
        ("remote.storage.enable", "true"),
        ("local.retention.ms", "60000"),
        ("local.retention.bytes", "1024"),
        ("max.message.bytes", "100"),
        ("min.insync.replicas", "2"),
        ("flush.messages", "1"),
        ("compression.type", "zstd"),
    ]);
    let t = cli(&[]).topic(&map(&[]), &overrides).unwrap();
    assert!(t.log_append_time);
    assert_eq!(t.cleanup_policy, "compact,delete");
    assert!(t.remote_storage_enable);
    assert_eq!(
        (t.local_retention_ms, t.local_retention_bytes),
        (60000, 1024)
    );
    assert_eq!(t.max_message_bytes, 100);
    assert_eq!(t.min_insync_replicas, 2);
    assert_eq!(t.flush_messages, 1);
    assert_eq!(t.compression_type, "zstd");
}

#[test]
fn validate_topic_rejects_unknown_and_invalid() {
    let configs = cli(&[]);
    let err = configs
        .validate_topic(&map(&[("retention.msec", "1")]))
        .unwrap_err();
    assert!(
        err.to_string().contains("did you mean `retention.ms`"),
        "{err}"
    );
    let err = configs
        .validate_topic(&map(&[("log.retention.ms", "1")]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the topic config is `retention.ms`"),
        "{err}"
    );
    let err = configs
        .validate_topic(&map(&[("segment.bytes", "13")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value `13` for `segment.bytes` in topic config override: expected an int >= 14"
    );
    let err = configs
        .validate_topic(&map(&[("preallocate", "true")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value `true` for `preallocate` in topic config override: expected only false"
    );
    assert!(configs
        .validate_topic(&map(&[("preallocate", "FALSE")]))
        .is_ok());
    assert!(configs
        .validate_topic(&map(&[
            ("retention.ms", "-1"),
            ("cleanup.policy", "compact")
        ]))
        .is_ok());
    assert!(configs
        .topic(&map(&[]), &map(&[("retention.ms", "-7")]))
        .is_err());
}

#[test]
fn validate_broker_dynamic_rules() {
    let configs = cli(&[]);
    assert!(configs
        .validate_broker_dynamic(&map(&[
            ("log.retention.ms", "1000"),
            ("min.insync.replicas", "2")
        ]))
        .is_ok());
    let err = configs
        .validate_broker_dynamic(&map(&[("log.dirs", "/x")]))
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::NotDynamic { ref name } if name == "log.dirs"),
        "{err}"
    );
    let err = configs
        .validate_broker_dynamic(&map(&[("log.retention.msx", "1")]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::Unknown { .. }), "{err}");
    let err = configs
        .validate_broker_dynamic(&map(&[("log.message.timestamp.type", "Now")]))
        .unwrap_err();
    assert!(err.to_string().contains("dynamic broker config"), "{err}");
    // broker() and topic() refuse unvalidated dynamic maps too.
    assert!(configs.broker(&map(&[("node.id", "3")])).is_err());
    assert!(configs
        .topic(&map(&[("log.segment.bytes", "1")]), &map(&[]))
        .is_err());
}

/// A value each validator must reject, or `None` if anything parses.
fn bad_value(validator: Validator, ty: strata_config::ConfigType) -> &'static str {
    use strata_config::ConfigType::*;
    match (validator, ty) {
        (_, Boolean) => "maybe",
        (Validator::AtLeast(_) | Validator::Between(..) | Validator::Any, Int | Short | Long) => {
            "12abc"
        }
        (Validator::DoubleBetween(..) | Validator::Any, Double) => "-0.5",
        (Validator::OneOf(_), _) => "not-an-option",
        (Validator::ListOf(_), _) => "not-an-option",
        (Validator::NonEmptyList, _) => " , ",
        (Validator::Listeners, _) => "host-without-name:9092",
        (Validator::ThrottledReplicas, _) => "0-1",
        _ => "",
    }
}

#[test]
fn every_validator_rejects_a_bad_value_with_a_helpful_message() {
    for def in BROKER_CONFIGS {
        let bad = bad_value(def.validator, def.ty);
        if bad.is_empty() {
            continue; // free-form strings such as broker.rack
        }
        let err = Configs::load(None, &[], &pairs(&[(def.name, bad)])).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConfigError::Invalid { .. }),
            "{}: {msg}",
            def.name
        );
        assert!(
            msg.contains(def.name) && msg.contains(bad.trim()) && msg.contains("--set"),
            "{msg}"
        );
        assert!(msg.contains("expected"), "{msg}");
    }
    for def in TOPIC_CONFIGS {
        let bad = bad_value(def.validator, def.ty);
        if bad.is_empty() {
            continue; // free-form strings such as message.format.version
        }
        let err = cli(&[])
            .validate_topic(&map(&[(def.name, bad)]))
            .unwrap_err();
        assert!(
            err.to_string().contains(def.name) && err.to_string().contains("expected"),
            "{err}"
        );
    }
    // Range limits, one per kind.
    for (name, value) in [
        ("segment.bytes", "13"),
        ("retention.ms", "-2"),
        ("segment.index.bytes", "3"),
        ("local.retention.bytes", "-3"),
        ("min.insync.replicas", "0"),
        ("segment.ms", "0"),
        ("min.cleanable.dirty.ratio", "1.01"),
        ("max.message.bytes", "2147483648"),
    ] {
        assert!(
            cli(&[]).validate_topic(&map(&[(name, value)])).is_err(),
            "{name}={value}"
        );
    }
}

#[test]
fn describe_topic_sources_and_synonyms() {
    let configs = cli(&[("log.retention.hours", "24")]);
    let dynamic = map(&[("log.retention.minutes", "30")]);
    let overrides = map(&[("retention.ms", "1000")]);
    let described = configs.describe_topic(&dynamic, &overrides);
    assert_eq!(described.len(), TOPIC_CONFIGS.len());
    let retention = described.iter().find(|d| d.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::TopicOverride);
    assert_eq!(retention.source.kafka_code(), 1);
    assert_eq!(retention.config_type, 5);
    assert!(!retention.read_only && !retention.sensitive);
    let s = |n: &str, v: &str, src| (n.to_string(), Some(v.to_string()), src);
    assert_eq!(
        retention.synonyms,
        vec![
            s("retention.ms", "1000", ConfigSource::TopicOverride),
            s("log.retention.minutes", "30", ConfigSource::DynamicBroker),
            s("log.retention.hours", "24", ConfigSource::StaticBroker),
            s("log.retention.hours", "168", ConfigSource::Default),
        ]
    );

    let without = configs.describe_topic(&dynamic, &map(&[]));
    let retention = without.iter().find(|d| d.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("1800000"));
    assert_eq!(retention.source.kafka_code(), 2);

    let remote = without
        .iter()
        .find(|d| d.name == "remote.storage.enable")
        .unwrap();
    assert_eq!(remote.source, ConfigSource::Default);
    assert_eq!(
        remote.synonyms,
        vec![s("remote.storage.enable", "false", ConfigSource::Default)]
    );
    assert_eq!(remote.config_type, 1);
}

#[test]
fn describe_broker_sources_and_read_only() {
    let configs = cli(&[("num.partitions", "3")]);
    let described = configs.describe_broker(&map(&[("log.retention.ms", "5")]));
    assert_eq!(described.len(), BROKER_CONFIGS.len());
    let get = |n: &str| described.iter().find(|d| d.name == n).unwrap();
    let partitions = get("num.partitions");
    assert_eq!(
        (partitions.value.as_deref(), partitions.source.kafka_code()),
        (Some("3"), 4)
    );
    assert!(partitions.read_only);
    let retention = get("log.retention.ms");
    assert_eq!(
        (retention.value.as_deref(), retention.source.kafka_code()),
        (Some("5"), 2)
    );
    assert!(!retention.read_only);
    assert_eq!(retention.synonyms.len(), 2); // dynamic ms, default hours
    let rack = get("broker.rack");
    assert_eq!((rack.value.clone(), rack.source.kafka_code()), (None, 5));
    assert!(rack.synonyms.is_empty());
    let hours = get("log.retention.hours");
    assert_eq!(
        (hours.value.as_deref(), hours.source),
        (Some("168"), ConfigSource::Default)
    );
    assert!(!get("log.retention.check.interval.ms")
        .documentation
        .is_empty());
}

#[test]
fn markdown_reference_lists_every_definition() {
    let md = Configs::markdown_reference();
    for def in BROKER_CONFIGS.iter().chain(TOPIC_CONFIGS) {
        assert!(
            md.contains(&format!("| `{}` |", def.name)),
            "{} missing",
            def.name
        );
        assert!(md.contains(def.doc), "{} doc missing", def.name);
    }
    assert!(
        md.contains("| `retention.ms` | long | `604800000` |"),
        "{md}"
    );
    assert!(md.contains("STRATA_LOG_DIRS"));
}

#[test]
fn source_codes_are_kafkas() {
    assert_eq!(ConfigSource::TopicOverride.kafka_code(), 1);
    assert_eq!(ConfigSource::DynamicBroker.kafka_code(), 2);
    assert_eq!(ConfigSource::StaticBroker.kafka_code(), 4);
    assert_eq!(ConfigSource::Default.kafka_code(), 5);
}
