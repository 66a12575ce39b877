//! Startup configuration through the real binary: TOML file, environment and flags
//! with Kafka's names; an unknown or invalid setting stops startup with a clear error.

use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::Consumer;

use crate::harness::Broker;

fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("serve")
        .arg("--set")
        .arg(format!("log.dirs={}", dir.path().display()))
        .arg("--set")
        .arg("listeners=PLAINTEXT://127.0.0.1:0")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "startup should fail for {args:?} {env:?}"
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn unknown_and_invalid_settings_stop_startup_with_the_name() {
    let err = serve_fails(&["--set", "log.segment.byte=100"], &[]);
    assert!(err.contains("log.segment.byte"), "{err}");
    let err = serve_fails(&["--set", "num.partitions=many"], &[]);
    assert!(
        err.contains("num.partitions") && err.contains("many"),
        "{err}"
    );
    let err = serve_fails(&[], &[("STRATA_NUM_PARTITIONZ", "3")]);
    assert!(err.contains("STRATA_NUM_PARTITIONZ"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strata.toml");
    std::fs::write(
        &file,
        "\"log.retention.hours\" = 24\n\"no.such.thing\" = 1\n",
    )
    .unwrap();
    let err = serve_fails(&["--config", file.to_str().unwrap()], &[]);
    assert!(
        err.contains("no.such.thing") && err.contains("strata.toml"),
        "{err}"
    );
}

#[test]
fn toml_file_env_and_flags_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strata.toml");
    std::fs::write(
        &file,
        "\"num.partitions\" = 2\n[log]\n\"segment.bytes\" = 1048576\n",
    )
    .unwrap();
    // The harness passes --set flags; STRATA_CONFIG names the file.
    std::env::set_var("STRATA_CONFIG", &file);
    std::env::set_var("STRATA_DEFAULT_REPLICATION_FACTOR", "1");
    let broker = Broker::start(&[("auto.create.topics.enable", "true")]);
    std::env::remove_var("STRATA_CONFIG");
    std::env::remove_var("STRATA_DEFAULT_REPLICATION_FACTOR");
    let c: rdkafka::consumer::BaseConsumer = crate::kafka::config(&broker.addr)
        .set("allow.auto.create.topics", "true")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some("from-file"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        md.topics()[0].partitions().len(),
        2,
        "num.partitions from the TOML file"
    );
}
