//! Loading: layering precedence, both TOML styles, environment mapping, errors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use strata_config::{env_pairs, ConfigError, Configs, Listener, Origin};

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

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn none() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn defaults_alone() {
    let configs = Configs::load(None, &[], &[]).unwrap();
    let b = configs.broker(&none()).unwrap();
    assert_eq!(b.node_id, 1);
    let local = Listener {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 9092,
    };
    assert_eq!(b.listeners, vec![local.clone()]);
    assert_eq!(b.advertised_listeners, vec![local]);
    assert_eq!(b.log_dirs, vec![PathBuf::from("./data")]);
    assert_eq!(b.num_partitions, 1);
    assert_eq!(b.default_replication_factor, 1);
    assert!(b.auto_create_topics_enable);
    assert_eq!(b.message_max_bytes, 1048588);
    assert_eq!(b.log_retention_check_interval_ms, 300_000);
    assert_eq!(b.socket_request_max_bytes, 104857600);
    assert!(b.delete_topic_enable);
    assert_eq!(b.broker_rack, None);
    assert_eq!(b.min_insync_replicas, 1);
    assert!(!b.unclean_leader_election_enable);
    assert_eq!(b.compression_type, "producer");

    let t = b.topic_defaults;
    assert_eq!(t.segment_bytes, 1073741824);
    assert_eq!(t.segment_ms, 168 * 3_600_000);
    assert_eq!(t.segment_index_bytes, 10485760);
    assert_eq!(t.index_interval_bytes, 4096);
    assert_eq!(t.retention_ms, 168 * 3_600_000);
    assert_eq!(t.retention_bytes, -1);
    assert_eq!(t.max_message_bytes, 1048588);
    assert!(!t.log_append_time);
    assert_eq!(t.flush_messages, i64::MAX as u64);
    assert_eq!(t.flush_ms, i64::MAX);
    assert_eq!(t.cleanup_policy, "delete");
    assert_eq!(t.min_insync_replicas, 1);
    assert!(!t.remote_storage_enable);
    assert_eq!(t.local_retention_ms, -2);
    assert_eq!(t.local_retention_bytes, -2);
}

#[test]
fn file_then_env_then_cli_then_dynamic() {
    let file = toml_file(
        r#"
        "num.partitions" = 2
        "message.max.bytes" = 2000
        "log.segment.bytes" = 3000
        "log.retention.bytes" = 4000
        "#,
    );
    let env = pairs(&[
        ("STRATA_MESSAGE_MAX_BYTES", "2001"),
        ("STRATA_LOG_SEGMENT_BYTES", "3001"),
    ]);
    let cli = pairs(&[
        ("log.segment.bytes", "3002"),
        ("log.retention.bytes", "4002"),
    ]);
    let configs = Configs::load(Some(file.path()), &env, &cli).unwrap();
    let b = configs.broker(&none()).unwrap();
    assert_eq!(b.num_partitions, 2); // file
    assert_eq!(b.message_max_bytes, 2001); // env over file
    assert_eq!(b.topic_defaults.segment_bytes, 3002); // cli over env
    assert_eq!(b.topic_defaults.retention_bytes, 4002); // cli over file

    let dynamic = map(&[("log.segment.bytes", "3003"), ("message.max.bytes", "2003")]);
    let b = configs.broker(&dynamic).unwrap();
    assert_eq!(b.message_max_bytes, 2003);
    assert_eq!(b.topic_defaults.segment_bytes, 3003);
}

#[test]
fn flat_and_nested_toml_keys() {
    let file = toml_file(
        r#"
        "node.id" = 7
        "log.dirs" = "/var/lib/strata"
        listeners = "PLAINTEXT://127.0.0.1:0"

        [auto.create.topics]
        enable = false

        [log]
        retention.hours = 24
        "segment.bytes" = 1048576

        [log.cleanup]
        policy = ["compact", "delete"]

        [broker]
        rack = "r1"
        "#,
    );
    let b = Configs::load(Some(file.path()), &[], &[])
        .unwrap()
        .broker(&none())
        .unwrap();
    assert_eq!(b.node_id, 7);
    assert_eq!(b.log_dirs, vec![PathBuf::from("/var/lib/strata")]);
    assert_eq!(b.listeners[0].port, 0);
    assert!(!b.auto_create_topics_enable);
    assert_eq!(b.topic_defaults.retention_ms, 24 * 3_600_000);
    assert_eq!(b.topic_defaults.segment_bytes, 1048576);
    assert_eq!(b.topic_defaults.cleanup_policy, "compact,delete");
    assert_eq!(b.broker_rack.as_deref(), Some("r1"));
}

#[test]
fn same_name_twice_in_the_file_is_an_error() {
    let file = toml_file("\"log.dirs\" = \"/a\"\n[log]\ndirs = \"/b\"\n");
    let err = Configs::load(Some(file.path()), &[], &[]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Duplicate { ref name, .. } if name == "log.dirs"),
        "{err}"
    );
}

#[test]
fn unknown_or_invalid_in_the_file_names_the_file() {
    let file = toml_file("[log]\nretention.hourz = 5\n");
    let err = Configs::load(Some(file.path()), &[], &[]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Unknown { .. }), "{msg}");
    assert!(
        msg.contains("log.retention.hourz") && msg.contains(&file.path().display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("did you mean `log.retention.hours`"), "{msg}");

    let file = toml_file("\"retention.ms\" = 5\n");
    let msg = Configs::load(Some(file.path()), &[], &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("topic config") && msg.contains("log.retention.ms"),
        "{msg}"
    );

    let file = toml_file("[log.segment]\nbytes = \"tiny\"\n");
    let err = Configs::load(Some(file.path()), &[], &[]).unwrap_err();
    match &err {
        ConfigError::Invalid {
            name,
            value,
            origin,
            reason,
        } => {
            assert_eq!(name, "log.segment.bytes");
            assert_eq!(value, "tiny");
            assert_eq!(origin, &Origin::File(file.path().to_path_buf()));
            assert_eq!(reason, "expected an int >= 14");
        }
        other => panic!("{other}"),
    }

    let file = toml_file("\"log.dirs\" = 1979-05-27\n");
    assert!(Configs::load(Some(file.path()), &[], &[])
        .unwrap_err()
        .to_string()
        .contains("dates"));
}

#[test]
fn unreadable_or_malformed_file() {
    let missing = PathBuf::from("/nonexistent/strata.toml");
    let err = Configs::load(Some(&missing), &[], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/strata.toml"));

    let file = toml_file("log.dirs = = 3\n");
    let err = Configs::load(Some(file.path()), &[], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
}

#[test]
fn environment_variables_map_to_names() {
    let env = pairs(&[
        ("STRATA_LOG_DIRS", "/a,/b"),
        ("STRATA_LOG_RETENTION_CHECK_INTERVAL_MS", "1000"),
        ("STRATA_LOG", "debug"),     // allow-listed: the log filter
        ("STRATA_CONFIG", "x.toml"), // allow-listed: the config path
        ("HOME", "/root"),           // not ours
    ]);
    let b = Configs::load(None, &env, &[])
        .unwrap()
        .broker(&none())
        .unwrap();
    assert_eq!(b.log_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    assert_eq!(b.log_retention_check_interval_ms, 1000);

    let env = pairs(&[("STRATA_BROKER_RACK", "")]);
    assert_eq!(
        Configs::load(None, &env, &[])
            .unwrap()
            .broker(&none())
            .unwrap()
            .broker_rack,
        None
    );
}

#[test]
fn unknown_or_invalid_environment_variable() {
    let err = Configs::load(None, &pairs(&[("STRATA_LOG_DIR_S", "/a")]), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("STRATA_LOG_DIR_S") && msg.contains("did you mean `STRATA_LOG_DIRS`"),
        "{msg}"
    );

    let err = Configs::load(None, &pairs(&[("STRATA_RETENTION_MS", "1")]), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("STRATA_LOG_RETENTION_MS"), "{msg}");

    let err = Configs::load(None, &pairs(&[("STRATA_NUM_PARTITIONS", "0")]), &[]).unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "invalid value `0` for `num.partitions` in environment variable STRATA_NUM_PARTITIONS: expected an int >= 1"
    );
}

#[test]
fn env_pairs_reads_the_process_environment() {
    std::env::set_var("STRATA_DEFAULT_REPLICATION_FACTOR", "3");
    std::env::set_var("STRATA_LOG", "info");
    let found = env_pairs();
    assert!(found.contains(&(
        "STRATA_DEFAULT_REPLICATION_FACTOR".to_string(),
        "3".to_string()
    )));
    assert!(!found.iter().any(|(k, _)| k == "STRATA_LOG"));
    assert!(found.iter().all(|(k, _)| k.starts_with("STRATA_")));
}

#[test]
fn cli_errors_name_the_flag() {
    let err = Configs::load(None, &[], &pairs(&[("log.cleanup.policy", "shred")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value `shred` for `log.cleanup.policy` in command-line flag --set: \
         expected a non-empty comma-separated list of compact, delete"
    );
    let err = Configs::load(None, &[], &pairs(&[("no.such.thing", "1")])).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Unknown {
            origin: Origin::Cli,
            ..
        }
    ));
}

#[test]
fn log_dirs_falls_back_to_log_dir() {
    let b = |cli: &[(&str, &str)]| {
        Configs::load(None, &[], &pairs(cli))
            .unwrap()
            .broker(&none())
            .unwrap()
            .log_dirs
    };
    assert_eq!(b(&[("log.dir", "/old")]), vec![PathBuf::from("/old")]);
    assert_eq!(
        b(&[("log.dir", "/old"), ("log.dirs", "/new")]),
        vec![PathBuf::from("/new")]
    );
    assert_eq!(b(&[]), vec![PathBuf::from("./data")]);
}

#[test]
fn advertised_listeners() {
    let load = |cli: &[(&str, &str)]| Configs::load(None, &[], &pairs(cli));
    let b = load(&[("listeners", "PLAINTEXT://:9092")])
        .unwrap()
        .broker(&none())
        .unwrap();
    assert_eq!(b.advertised_listeners[0].host, "localhost");
    assert_eq!(b.listeners[0].host, "");

    let err = load(&[("listeners", "PLAINTEXT://0.0.0.0:9092")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("set advertised.listeners"), "{err}");

    let b = load(&[
        ("listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("advertised.listeners", "PLAINTEXT://broker1:9092"),
    ])
    .unwrap()
    .broker(&none())
    .unwrap();
    assert_eq!(b.advertised_listeners[0].host, "broker1");

    let err = load(&[("advertised.listeners", "OTHER://broker1:9092")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("OTHER is not in listeners"), "{err}");
    let err = load(&[("listeners", "bad")]).unwrap_err().to_string();
    assert!(
        err.contains("`listeners`") && err.contains("NAME://"),
        "{err}"
    );
}

#[test]
fn metrics_listener_and_otlp_endpoint() {
    let b = Configs::load(None, &[], &[])
        .unwrap()
        .broker(&none())
        .unwrap();
    assert_eq!(b.metrics_listener.as_deref(), Some("127.0.0.1:9464"));
    assert_eq!(b.otlp_endpoint, None);
    for off in ["none", "NONE", "", " "] {
        let cli = pairs(&[("metrics.listener", off)]);
        let b = Configs::load(None, &[], &cli)
            .unwrap()
            .broker(&none())
            .unwrap();
        assert_eq!(b.metrics_listener, None, "{off:?}");
    }
    let env = pairs(&[(
        "STRATA_OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://127.0.0.1:4318",
    )]);
    let b = Configs::load(None, &env, &[])
        .unwrap()
        .broker(&none())
        .unwrap();
    assert_eq!(b.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
}

#[test]
fn consumer_group_settings_have_kafka_defaults_and_bounds() {
    let b = Configs::load(None, &[], &[])
        .unwrap()
        .broker(&none())
        .unwrap();
    let c = &b.consumer_group;
    assert_eq!(
        (c.session_timeout_ms, c.heartbeat_interval_ms),
        (45_000, 5_000)
    );
    assert_eq!(
        c.assignors,
        vec!["uniform".to_string(), "range".to_string()]
    );
    let load = |items: &[(&str, &str)]| {
        Configs::load(None, &[], &pairs(items)).and_then(|c| c.broker(&none()))
    };
    // Kafka's class names are the same assignors; the order picks the default.
    let b = load(&[(
        "group.consumer.assignors",
        "org.apache.kafka.coordinator.group.assignor.RangeAssignor,uniform",
    )])
    .unwrap();
    assert_eq!(
        b.consumer_group.assignors,
        vec!["range".to_string(), "uniform".to_string()]
    );
    for bad in [
        vec![("group.consumer.session.timeout.ms", "10000")],
        vec![("group.consumer.heartbeat.interval.ms", "20000")],
        vec![("group.consumer.assignors", "sticky")],
        vec![
            ("group.consumer.min.heartbeat.interval.ms", "100"),
            ("group.consumer.max.heartbeat.interval.ms", "60000"),
            ("group.consumer.heartbeat.interval.ms", "50000"),
        ],
    ] {
        assert!(
            matches!(load(&bad), Err(ConfigError::Invalid { .. })),
            "{bad:?} must be refused"
        );
    }
    let b = load(&[
        ("group.consumer.min.session.timeout.ms", "6000"),
        ("group.consumer.session.timeout.ms", "6000"),
        ("group.consumer.min.heartbeat.interval.ms", "500"),
        ("group.consumer.heartbeat.interval.ms", "500"),
    ])
    .unwrap();
    assert_eq!(
        (
            b.consumer_group.session_timeout_ms,
            b.consumer_group.heartbeat_interval_ms
        ),
        (6_000, 500)
    );
}
