//! Compaction on a tiered topic end to end: the real broker and librdkafka against moto
//! (`S3_TEST_ENDPOINT`, else a `file://` tier; under `CI=true` moto is required). Small
//! segments, a short local retention and a fast cleaner leave most segments only in the
//! remote tier, where remote compaction passes rewrite them; a consumer from offset 0 must
//! then read exactly the latest value of every live key at its original offset, and no
//! tombstone past its horizon, across both tiers. Also: `kill -9` in the middle of remote
//! passes loses no latest value and leaves a manifest that is either before or after a pass;
//! recovery from the bucket after remote compaction restores every key's latest value.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use strata_tier::layout::SegmentFile;
use strata_tier::object_store::{ObjectStore, ObjectStoreExt};
use strata_tier::PartitionManifest;

use crate::harness::Broker;
use crate::kafka::{config, create_topic, producer};
use crate::tier::{manifest_of, remote, start, Remote};

const KEYS: usize = 150;
const VERSIONS: usize = 8;

/// A compacted tiered topic whose segments roll at 8 KiB or 400 ms, are cleaned at any
/// dirty ratio, and leave the local disk a second after they are tiered.
const CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("remote.storage.enable", "true"),
    ("segment.bytes", "8192"),
    ("segment.ms", "400"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("delete.retention.ms", "3000"),
    ("local.retention.ms", "1000"),
    ("local.retention.bytes", "16384"),
];

/// The cleaner (local and remote) looks for work every 200 ms.
const BROKER: &[(&str, &str)] = &[("log.cleaner.backoff.ms", "200")];

/// (key, value or None for a tombstone) -> the latest (offset, value) of each key.
type Latest = BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)>;

/// A record read: offset, key, value (None for a tombstone).
type Read = (i64, Vec<u8>, Option<Vec<u8>>);

fn versions(
    keys: std::ops::Range<usize>,
    rounds: usize,
    tag: &str,
) -> Vec<(String, Option<String>)> {
    (0..rounds)
        .flat_map(|r| {
            keys.clone().map(move |k| {
                (
                    format!("key-{k:04}"),
                    Some(format!("v{r}{tag}-of-{k}-{}", "x".repeat(60 + k % 40))),
                )
            })
        })
        .collect()
}

/// Produces `records` in order to partition 0 and records each in `latest`.
async fn produce(
    addr: &str,
    topic: &str,
    records: &[(String, Option<String>)],
    latest: &mut Latest,
) {
    let p = producer(
        addr,
        &[("acks", "all"), ("linger.ms", "5"), ("batch.size", "4096")],
    );
    let mut pending = Vec::new();
    for (k, v) in records {
        let mut rec = FutureRecord::to(topic).partition(0).key(k.as_bytes());
        if let Some(v) = v {
            rec = rec.payload(v.as_bytes());
        }
        pending.push(p.send_result(rec).expect("enqueue"));
    }
    for ((k, v), f) in records.iter().zip(pending) {
        let offset = f.await.expect("delivery").expect("delivered").offset;
        latest.insert(
            k.clone().into_bytes(),
            (offset, v.clone().map(String::into_bytes)),
        );
    }
}

/// Every record of partition 0 from offset 0 to the end: (offset, key, value).
fn read_all(addr: &str, topic: &str) -> Vec<Read> {
    let c: BaseConsumer = config(addr)
        .set("group.id", "strata-it-unused")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("offset");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                m.key().map(<[u8]>::to_vec).unwrap_or_default(),
                m.payload().map(<[u8]>::to_vec),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    panic!(
        "no end of partition within 60 s after {} records",
        out.len()
    );
}

/// What a fully compacted log holds: the latest record of each live key.
fn compacted(latest: &Latest) -> Vec<Read> {
    let mut want: Vec<_> = latest
        .iter()
        .filter(|(_, (_, v))| v.is_some())
        .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
        .collect();
    want.sort();
    want
}

/// Checks what every reader from 0 must get at any time: offsets increase, and each key's
/// last record read is its latest (a dead key's may be absent: its tombstone went).
fn check_latest(got: &[Read], latest: &Latest, when: &str) {
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "{when}: offsets go back"
    );
    let mut last: BTreeMap<&[u8], (i64, &Option<Vec<u8>>)> = BTreeMap::new();
    for (o, k, v) in got {
        last.insert(k, (*o, v));
    }
    for (k, (o, v)) in latest {
        let key = String::from_utf8_lossy(k);
        match (last.get(k.as_slice()), v) {
            (Some(&(go, gv)), _) => assert_eq!((go, gv), (*o, v), "{when}: {key}"),
            (None, None) => {}
            (None, Some(_)) => panic!("{when}: the latest value of {key} (offset {o}) is lost"),
        }
    }
}

/// Reads from 0 until the log is exactly `want` (checking the latest values each time).
async fn wait_exact(b: &Broker, topic: &str, latest: &Latest, secs: u64) {
    let want = compacted(latest);
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = read_all(&b.addr, topic);
        check_latest(&got, latest, "while compacting");
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {} records read, want {} (the latest of each live key); broker log:\n{}",
            got.len(),
            want.len(),
            tail(&b.log())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// Checks a manifest is one consistent version: segments from 0, each starting where the
/// previous ended, every object there with the recorded CRC.
async fn check_manifest(store: &Arc<dyn ObjectStore>, m: &PartitionManifest) {
    assert_eq!(m.segments.first().map(|s| s.base_offset), Some(0), "{m:?}");
    for w in m.segments.windows(2) {
        assert_eq!(
            w[0].next_offset, w[1].base_offset,
            "overlap or hole: {:?}",
            m.segments
        );
    }
    for s in &m.segments {
        let key = m.partition.segment(s.base_offset, s.id, SegmentFile::Log);
        let bytes = store
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("{key} of manifest v{}: {e}", m.version))
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(crc32c::crc32c(&bytes), s.crc32c, "{key}");
        for f in [
            SegmentFile::Index,
            SegmentFile::TimeIndex,
            SegmentFile::Manifest,
        ] {
            let k = m.partition.segment(s.base_offset, s.id, f);
            store.head(&k).await.unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }
}

/// Waits until the remote tier holds every offset below the log end (`end`).
async fn wait_all_tiered(r: &Remote, b: &Broker, topic: &str, end: i64) -> PartitionManifest {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(m) = manifest_of(&r.store, topic).await {
            if m.end_offset() == Some(end) {
                return m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: not everything below {end} was tiered; broker log:\n{}",
            tail(&b.log())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn local_segments(b: &Broker, topic: &str) -> usize {
    crate::tier::local_log_files(b, topic)
}

/// The scenario of every test here: versions of every key in four rounds, each round tiered
/// before the next (so older versions are only remote when newer ones arrive, and only a
/// remote pass can remove them), then tombstones for every tenth key.
async fn changelog(r: &Remote, b: &Broker, topic: &str) -> Latest {
    create_topic(&b.addr, topic, 1, CONFIGS).await;
    let mut latest = Latest::new();
    for round in 0..4 {
        let tag = format!("-{round}");
        produce(
            &b.addr,
            topic,
            &versions(0..KEYS, VERSIONS / 4, &tag),
            &mut latest,
        )
        .await;
        wait_all_tiered(r, b, topic, log_end(&latest)).await;
    }
    let dead: Vec<_> = (0..KEYS)
        .step_by(10)
        .map(|k| (format!("key-{k:04}"), None))
        .collect();
    produce(&b.addr, topic, &dead, &mut latest).await;
    latest
}

fn log_end(latest: &Latest) -> i64 {
    latest.values().map(|(o, _)| o + 1).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiered_compacted_topic_reads_compacted_from_zero_across_both_tiers() {
    let r = remote("tcompact");
    let mut b = start(&r, BROKER, &[]);
    let topic = "changelog";
    let mut latest = changelog(&r, &b, topic).await;
    let produced = KEYS * VERSIONS + KEYS / 10;
    let m = wait_all_tiered(&r, &b, topic, log_end(&latest)).await;
    check_manifest(&r.store, &m).await;
    // Later versions of a few keys, after the tombstones' delete.retention.ms: the passes
    // that follow also remove the tombstones.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    produce(&b.addr, topic, &versions(0..20, 1, "-late"), &mut latest).await;
    wait_all_tiered(&r, &b, topic, log_end(&latest)).await;
    wait_exact(&b, topic, &latest, 120).await;
    let log = b.log();
    assert!(
        log.contains("remote compaction pass swapped"),
        "no remote pass:\n{}",
        tail(&log)
    );
    // Most data exists only remotely: the local log holds (almost) nothing below the end.
    assert!(
        local_segments(&b, topic) <= 2,
        "local segments: {}",
        local_segments(&b, topic)
    );
    let m = manifest_of(&r.store, topic).await.expect("manifest");
    check_manifest(&r.store, &m).await;
    assert_eq!(
        m.first_dirty_offset,
        log_end(&latest),
        "every remote offset was mapped"
    );
    let remote_records = compacted(&latest).len();
    assert!(
        remote_records < produced / 4,
        "{remote_records} of {produced}"
    );
    // Metrics: passes, bytes and remote reads moved.
    let (_, body) = crate::metrics::scrape(&b.metrics_addr, "/metrics");
    let tp = r#"partition="0",topic="changelog""#;
    let passes = crate::metrics::sample(
        &body,
        &format!("strata_tier_compaction_passes_total{{{tp}}}"),
    );
    assert!(passes.unwrap_or(0.0) >= 1.0, "passes in:\n{body}");
    let removed = crate::metrics::sample(
        &body,
        &format!("strata_tier_compaction_removed_bytes_total{{{tp}}}"),
    );
    assert!(removed.unwrap_or(0.0) > 0.0, "removed bytes in:\n{body}");
    let reads = crate::metrics::sample(
        &body,
        r#"strata_tier_remote_fetch_duration_seconds_count{topic="changelog"}"#,
    );
    assert!(reads.unwrap_or(0.0) > 0.0, "remote reads in:\n{body}");
    // `strata tier status` shows the remote compaction.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["tier", "status", "-b", &b.addr, topic])
        .output()
        .expect("strata tier status");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{out:?}");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let row: BTreeMap<&str, &str> = header
        .iter()
        .copied()
        .zip(lines.next().expect("a row").split('\t'))
        .collect();
    eprintln!("tier status: {row:?}");
    assert_eq!(
        row["COMPACTED-BELOW"],
        log_end(&latest).to_string(),
        "{row:?}"
    );
    assert_eq!(row["DIRTY-BYTES"], "0", "{row:?}");
    assert!(
        row["COMPACTIONS"]
            .split(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            >= 1,
        "{row:?}"
    );
    assert!(row["LAST-COMPACTION"].ends_with("ago"), "{row:?}");
    assert!(row["COMPACTED-RANGE"].starts_with("0-"), "{row:?}");
    assert!(row["COMPACT-BYTES"].contains("->"), "{row:?}");
    // The same log after a clean restart.
    b.stop();
    b.start_again();
    assert_eq!(read_all(&b.addr, topic), compacted(&latest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_remote_passes_loses_no_latest_value() {
    let r = remote("tcompact-kill");
    // Slow passes (reads plus uploads at 40 KB/s), so that kills land inside them.
    let mut settings = BROKER.to_vec();
    settings.push(("remote.log.compaction.max.bytes.per.second", "40000"));
    let mut b = start(&r, &settings, &[]);
    let topic = "crashy";
    let mut latest = changelog(&r, &b, topic).await;
    let (mut kills, mut interrupted) = (0, 0);
    for round in 0..4u64 {
        // Kill at a different point of a pass each round.
        let deadline = Instant::now() + Duration::from_secs(60);
        let passes_before = b.log().matches("remote compaction pass started").count();
        while b.log().matches("remote compaction pass started").count() == passes_before {
            assert!(
                Instant::now() < deadline,
                "no remote pass started:\n{}",
                tail(&b.log())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(150 + 600 * round)).await;
        let version = manifest_of(&r.store, topic).await.map_or(0, |m| m.version);
        let log = b.log();
        let since_start = log
            .rsplit("remote compaction pass started")
            .next()
            .unwrap_or("");
        if !since_start.contains("remote compaction pass swapped") {
            interrupted += 1;
        }
        b.restart_same_port();
        kills += 1;
        // Whatever the pass had done, the head manifest is one whole version.
        let m = manifest_of(&r.store, topic).await.expect("manifest");
        assert!(m.version >= version);
        check_manifest(&r.store, &m).await;
        check_latest(
            &read_all(&b.addr, topic),
            &latest,
            &format!("after kill {kills}"),
        );
        let tag = format!("-r{round}");
        produce(&b.addr, topic, &versions(0..KEYS, 2, &tag), &mut latest).await;
    }
    assert!(interrupted > 0, "no kill landed inside a pass");
    eprintln!("{kills} kills, {interrupted} inside a remote pass");
    wait_all_tiered(&r, &b, topic, log_end(&latest)).await;
    wait_exact(&b, topic, &latest, 180).await;
    let m = manifest_of(&r.store, topic).await.expect("manifest");
    check_manifest(&r.store, &m).await;
    assert!(
        b.log().contains("remote compaction pass swapped"),
        "no pass finished:\n{}",
        tail(&b.log())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_from_the_bucket_after_remote_compaction_restores_every_latest_value() {
    let r = remote("tcompact-recover");
    let mut b = start(&r, BROKER, &[]);
    let topic = "restored-log";
    let latest = changelog(&r, &b, topic).await;
    let end = log_end(&latest);
    wait_all_tiered(&r, &b, topic, end).await;
    // Wait for remote passes that mapped everything and, past delete.retention.ms, removed
    // the tombstones, which were the log's last records: the remote tier then ends in a
    // gap, which after recovery is the end of the whole log.
    wait_exact(&b, topic, &latest, 120).await;
    let m = manifest_of(&r.store, topic).await.expect("manifest");
    assert_eq!((m.first_dirty_offset, m.end_offset()), (end, Some(end)));
    b.stop();
    std::fs::remove_dir_all(&b.data).expect("delete the data dir");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("recover")
        .arg("--set")
        .arg(format!("log.dirs={}", b.data.display()));
    for (k, v) in &r.settings {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("strata recover");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("restored"),
        "{out:?}"
    );
    b.start_again();
    let got = read_all(&b.addr, topic);
    check_latest(&got, &latest, "after recovery");
    assert_eq!(
        got,
        compacted(&latest),
        "exactly the latest value of every live key"
    );
    // New writes continue at the old end.
    let mut more = latest.clone();
    produce(&b.addr, topic, &versions(0..1, 1, "-new"), &mut more).await;
    assert_eq!(log_end(&more), end + 1);
}
