//! Recovery from the bucket: the data dir is deleted, `strata recover` restores the
//! tiered topics from the remote tier (ids, partition counts, configs, offsets),
//! and a real client reads all tiered history and keeps producing at the right
//! offsets. Runs against a `file://` tier always and against moto when
//! `S3_TEST_ENDPOINT` is set (skipped otherwise).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;

use crate::harness::Broker;
use crate::kafka::{admin, consumer, create_topic, producer};
use crate::tier::{
    consume_all_and_check, list_offsets_raw, produce_values, remote_file, remote_s3, start, value,
    wait_local_trimmed, wait_tiered, Remote, TOPIC_CONFIGS,
};

const TOPIC: &str = "restored";

/// `strata <args> --set log.dirs=<data> --set <remote settings>`.
fn run_with_remote(broker: &Broker, r: &Remote, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args)
        .arg("--set")
        .arg(format!("log.dirs={}", broker.data.display()));
    for (k, v) in &r.settings {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    cmd.output().expect("run strata")
}

/// [`run_with_remote`], which must succeed; returns its stdout.
pub(crate) fn strata_with_remote(broker: &Broker, r: &Remote, args: &[&str]) -> String {
    let out = run_with_remote(broker, r, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "strata {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn topic_id_on_disk(broker: &Broker, partition: i32) -> String {
    let path = broker
        .data
        .join(format!("{TOPIC}-{partition}"))
        .join("partition.metadata");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(|s| s.trim().to_string())
        .expect("topic_id line")
}

async fn topic_configs(addr: &str) -> BTreeMap<String, String> {
    let res = admin(addr)
        .describe_configs(&[ResourceSpecifier::Topic(TOPIC)], &AdminOptions::new())
        .await
        .expect("describe_configs");
    let r = res
        .into_iter()
        .next()
        .expect("one result")
        .expect("describe ok");
    r.entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

fn partition_count(addr: &str) -> usize {
    let md = consumer(addr)
        .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
        .expect("metadata");
    md.topics()[0].partitions().len()
}

/// Waits until the remote tier holds every produced offset of partition 0.
async fn wait_all_tiered(r: &Remote, broker: &Broker, n: i64) {
    let m = wait_tiered(&r.store, TOPIC, n, broker).await;
    assert_eq!(m.end_offset(), Some(n), "everything tiered");
}

async fn recover_end_to_end(r: Remote) {
    // segment.ms rolls the last segment too, so every produced offset gets tiered.
    let mut configs = TOPIC_CONFIGS.to_vec();
    configs.extend_from_slice(&[("segment.ms", "1500"), ("retention.ms", "604800001")]);
    let mut broker = start(&r, &[], &[]);
    create_topic(&broker.addr, TOPIC, 2, &configs).await;
    // A change after creation (more partitions, another setting) must reach the bucket.
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["topic", "alter", "-b", &broker.addr, TOPIC, "-p", "3"])
        .args(["-c", "max.message.bytes=500000"])
        .output()
        .expect("strata topic alter");
    assert!(out.status.success(), "{out:?}");
    let n = 3000usize;
    produce_values(&broker.addr, TOPIC, 0, n).await;
    wait_all_tiered(&r, &broker, n as i64).await;
    wait_local_trimmed(&broker, TOPIC, 4).await;
    let id_before = topic_id_on_disk(&broker, 0);
    let configs_before = topic_configs(&broker.addr).await;
    assert_eq!(configs_before["max.message.bytes"], "500000");
    // The metadata object is written in the background: wait for the altered state.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m =
            strata_tier::topics::load_metadata(&*r.store, TOPIC, id_before.parse().expect("uuid"))
                .await
                .expect("load topic.json");
        if m.as_ref().is_some_and(|m| {
            m.partition_count == 3
                && m.configs.get("max.message.bytes").map(String::as_str) == Some("500000")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "topic.json not updated: {m:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    broker.stop();
    std::fs::remove_dir_all(&broker.data).expect("delete the data dir");
    let dry = strata_with_remote(&broker, &r, &["recover", "--dry-run"]);
    assert!(dry.contains("would restore"), "dry run: {dry}");
    let report = strata_with_remote(&broker, &r, &["recover"]);
    assert!(
        report.contains(&format!("topic {TOPIC} id {id_before} partitions 3"))
            && report.contains("restored")
            && report.contains(&format!("resumes at {n}")),
        "recover report: {report}"
    );
    // Running it again changes nothing.
    let again = strata_with_remote(&broker, &r, &["recover"]);
    assert!(again.contains("already present"), "second run: {again}");

    broker.start_again();
    assert_eq!(topic_id_on_disk(&broker, 0), id_before, "same topic id");
    // ... and the same id in Metadata (v10+), as `strata topic describe` shows it.
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["topic", "describe", "-b", &broker.addr, TOPIC])
        .output()
        .expect("strata topic describe");
    let described = String::from_utf8_lossy(&out.stdout);
    assert!(
        described.contains(&format!("TopicId: {id_before}\tPartitionCount: 3")),
        "{described}"
    );
    assert_eq!(partition_count(&broker.addr), 3, "same partition count");
    let configs_after = topic_configs(&broker.addr).await;
    for k in [
        "remote.storage.enable",
        "segment.bytes",
        "local.retention.bytes",
        "segment.ms",
        "retention.ms",
        "max.message.bytes",
    ] {
        assert_eq!(configs_after.get(k), configs_before.get(k), "config {k}");
    }
    let (low, high) = consumer(&broker.addr)
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, n as i64), "earliest is the remote start");
    // All tiered history, from offset 0, byte for byte.
    let got = consume_all_and_check(&broker.addr, TOPIC, n);
    // ListOffsets -3 (max timestamp) finds it although no local data exists.
    let max_ts = got
        .iter()
        .filter_map(|g| g.timestamp)
        .max()
        .expect("timestamps");
    let first = got
        .iter()
        .find(|g| g.timestamp == Some(max_ts))
        .expect("record");
    assert_eq!(
        list_offsets_raw(&broker, TOPIC, -3),
        (0, first.offset, max_ts),
        "max timestamp from the remote tier only"
    );
    // New produces continue at the remote end offset.
    let p = producer(&broker.addr, &[("acks", "all")]);
    let v = value(n);
    let key = format!("k{n}");
    let d = p
        .send(
            FutureRecord::to(TOPIC).partition(0).key(&key).payload(&v),
            Duration::from_secs(30),
        )
        .await
        .expect("produce after recovery");
    assert_eq!(d.offset, n as i64, "offsets continue");
    produce_values(&broker.addr, TOPIC, n + 1, 499).await;
    let _ = consume_all_and_check(&broker.addr, TOPIC, n + 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_from_file_bucket_after_losing_the_data_dir() {
    recover_end_to_end(remote_file("recover")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_from_s3_bucket_after_losing_the_data_dir() {
    let Some(r) = remote_s3("recover") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but S3_TEST_ENDPOINT is not set: scripts/test.sh must start moto"
        );
        eprintln!("skipping: S3_TEST_ENDPOINT is not set");
        return;
    };
    recover_end_to_end(r).await;
}

/// Only the metadata log is lost: the partition directories of the same topic id are
/// adopted with their local data (including offsets never tiered). Then a topic of
/// the same name but another id blocks recovery, which says so and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_adopts_local_logs_of_the_same_id_and_refuses_a_namesake() {
    let r = remote_file("recover-meta");
    let mut broker = start(&r, &[], &[]);
    create_topic(&broker.addr, "kept", 1, TOPIC_CONFIGS).await;
    let n = 2000usize;
    produce_values(&broker.addr, "kept", 0, n).await;
    let m = wait_tiered(&r.store, "kept", 1000, &broker).await;
    broker.stop();
    assert!(
        m.end_offset().is_some_and(|e| e < n as i64),
        "some offsets are only local"
    );
    std::fs::remove_dir_all(broker.data.join("meta")).expect("delete the metadata log");
    let report = strata_with_remote(&broker, &r, &["recover", "--topic", "kept"]);
    assert!(report.contains("restored"), "{report}");
    broker.start_again();
    // Local data above the remote end survived: everything reads back.
    let _ = consume_all_and_check(&broker.addr, "kept", n);
    let p = producer(&broker.addr, &[("acks", "all")]);
    let v = value(n);
    let d = p
        .send(
            FutureRecord::to("kept").partition(0).key("k").payload(&v),
            Duration::from_secs(30),
        )
        .await
        .expect("produce");
    assert_eq!(d.offset, n as i64, "offsets continue after the local data");
    broker.stop();

    // A fresh data dir with a new topic of the same name.
    std::fs::remove_dir_all(&broker.data).expect("delete the data dir");
    broker.start_again();
    create_topic(&broker.addr, "kept", 1, &[]).await;
    broker.stop();
    let out = run_with_remote(&broker, &r, &["recover"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a skipped topic fails the run: {stdout}"
    );
    assert!(
        stdout.contains("skipped: a topic 'kept' with another id"),
        "{stdout}"
    );
}
