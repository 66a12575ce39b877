//! Tiered storage end to end: the real broker, librdkafka clients and a real S3
//! server (moto, started by scripts/test.sh, which sets `S3_TEST_ENDPOINT`).
//! Outside CI without that variable the remote tier is a `file://` directory, so
//! the tests still run; under `CI=true` a missing endpoint fails them.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use strata_tier::object_store::{ObjectStore, ObjectStoreExt};
use strata_tier::{manifest, PartitionKey, PartitionManifest, S3Options};

use crate::harness::Broker;
use crate::kafka::{consume, create_topic, producer};

/// Where a test's remote tier lives: broker settings and a client of the same store.
pub(crate) struct Remote {
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) store: Arc<dyn ObjectStore>,
    _dir: Option<tempfile::TempDir>,
}

/// moto/S3 when `S3_TEST_ENDPOINT` is set, else a `file://` directory (which
/// fails under `CI=true`, where moto must run).
pub(crate) fn remote(test: &str) -> Remote {
    match remote_s3(test) {
        Some(r) => r,
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but S3_TEST_ENDPOINT is not set: scripts/test.sh must start moto"
            );
            remote_file(test)
        }
    }
}

/// The S3 server of `S3_TEST_ENDPOINT` under a fresh prefix; `None` when unset.
pub(crate) fn remote_s3(test: &str) -> Option<Remote> {
    let prefix = format!("{test}-{}", uuid::Uuid::new_v4());
    let endpoint = std::env::var("S3_TEST_ENDPOINT").ok()?;
    let bucket = std::env::var("S3_TEST_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let url = format!("s3://{bucket}/{prefix}");
    let opts = S3Options {
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    };
    let store = strata_tier::open_store(&url, &opts).expect("s3 store");
    let settings = [
        ("remote.storage.url", url.as_str()),
        ("remote.storage.s3.endpoint", endpoint.as_str()),
        ("remote.storage.s3.region", "us-east-1"),
        ("remote.storage.s3.path.style", "true"),
        ("remote.storage.s3.access.key.id", "test"),
        ("remote.storage.s3.secret.access.key", "test"),
    ];
    Some(Remote {
        settings: own(&settings),
        store,
        _dir: None,
    })
}

/// A `file://` remote tier in its own temporary directory, outside any data dir.
pub(crate) fn remote_file(test: &str) -> Remote {
    let prefix = format!("{test}-{}", uuid::Uuid::new_v4());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}/{prefix}", dir.path().display());
    let store = strata_tier::open_store(&url, &S3Options::default()).expect("file store");
    Remote {
        settings: own(&[("remote.storage.url", url.as_str())]),
        store,
        _dir: Some(dir),
    }
}

fn own(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn start(r: &Remote, extra: &[(&str, &str)], env: &[(&str, &str)]) -> Broker {
    let mut all: Vec<(&str, &str)> = r
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.extend_from_slice(&[
        ("remote.log.manager.task.interval.ms", "100"),
        ("remote.fetch.chunk.bytes", "65536"),
    ]);
    all.extend_from_slice(extra);
    Broker::start_with_env(&all, env)
}

pub(crate) const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("remote.storage.enable", "true"),
    ("segment.bytes", "32768"),
    ("local.retention.bytes", "65536"),
];

pub(crate) fn value(i: usize) -> String {
    format!("value-{i:07}-{}", "t".repeat(150 + i % 50))
}

pub(crate) async fn produce_values(addr: &str, topic: &str, from: usize, n: usize) {
    // Small batches: a segment rolls only between batches, and librdkafka would
    // otherwise send one batch of hundreds of KiB (one segment, never closed).
    let p = producer(
        addr,
        &[("acks", "all"), ("linger.ms", "5"), ("batch.size", "8192")],
    );
    let mut pending = Vec::new();
    for i in from..from + n {
        let v = value(i);
        let key = format!("k{i}");
        pending.push(
            p.send_result(FutureRecord::to(topic).partition(0).key(&key).payload(&v))
                .expect("enqueue"),
        );
    }
    for f in pending {
        f.await.expect("delivery").expect("delivered");
    }
}

/// Consumes offsets [0, n) and checks every value and the overall checksum.
pub(crate) fn consume_all_and_check(addr: &str, topic: &str, n: usize) -> Vec<crate::kafka::Got> {
    let got = consume(
        addr,
        topic,
        0,
        Offset::Beginning,
        n,
        Duration::from_secs(90),
    );
    assert_eq!(got.len(), n, "consumed {} of {n} records", got.len());
    let (mut want_h, mut got_h) = (DefaultHasher::new(), DefaultHasher::new());
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.offset, i as i64, "offsets are dense from 0");
        let want = value(i);
        assert_eq!(
            g.value.as_deref(),
            Some(want.as_bytes()),
            "value of offset {i}"
        );
        want.as_bytes().hash(&mut want_h);
        g.value.as_deref().unwrap_or_default().hash(&mut got_h);
    }
    assert_eq!(want_h.finish(), got_h.finish(), "checksum of all values");
    got
}

pub(crate) async fn manifest_of(
    store: &Arc<dyn ObjectStore>,
    topic: &str,
) -> Option<PartitionManifest> {
    let parts = strata_tier::topics::list_partitions(store).await.ok()?;
    let pk: PartitionKey = parts
        .into_iter()
        .find(|p| p.topic == topic && p.partition == 0)?;
    manifest::load(&**store, &pk).await.ok().flatten()
}

/// Waits until the remote tier holds offsets up to at least `offset`.
pub(crate) async fn wait_tiered(
    store: &Arc<dyn ObjectStore>,
    topic: &str,
    offset: i64,
    broker: &Broker,
) -> PartitionManifest {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(m) = manifest_of(store, topic).await {
            if m.end_offset().is_some_and(|e| e >= offset) {
                return m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "offset {offset} not tiered in time; broker log:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn local_log_files(broker: &Broker, topic: &str) -> usize {
    std::fs::read_dir(broker.data.join(format!("{topic}-0")))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .count()
        })
        .unwrap_or(0)
}

pub(crate) fn assert_contiguous(m: &PartitionManifest) {
    assert_eq!(
        m.segments.first().map(|s| s.base_offset),
        Some(0),
        "remote tier starts at 0"
    );
    for w in m.segments.windows(2) {
        assert_eq!(
            w[0].next_offset, w[1].base_offset,
            "no gap between remote segments: {:?}",
            m.segments
        );
    }
}

pub(crate) async fn wait_local_trimmed(broker: &Broker, topic: &str, max_files: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while local_log_files(broker, topic) > max_files {
        assert!(
            Instant::now() < deadline,
            "local retention did not trim; log:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_reads_everything_from_zero_across_remote_and_local_and_after_restart() {
    let r = remote("e2e");
    let mut broker = start(&r, &[], &[]);
    create_topic(&broker.addr, "tiered", 1, TOPIC_CONFIGS).await;
    let n = 6000;
    produce_values(&broker.addr, "tiered", 0, n).await;
    let m = wait_tiered(&r.store, "tiered", (n as i64) * 3 / 4, &broker).await;
    assert_contiguous(&m);
    // Most of the data exists only remotely.
    wait_local_trimmed(&broker, "tiered", 4).await;
    // The bucket holds every file of every live segment, and the manifest chain.
    let keys: Vec<String> = r
        .store
        .list(None)
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await
        .expect("list");
    let pk = &m.partition;
    for s in &m.segments {
        for f in [
            strata_tier::layout::SegmentFile::Log,
            strata_tier::layout::SegmentFile::Index,
            strata_tier::layout::SegmentFile::TimeIndex,
            strata_tier::layout::SegmentFile::Manifest,
        ] {
            let key = pk.segment(s.base_offset, s.id, f).to_string();
            assert!(keys.contains(&key), "{key} missing from the bucket");
        }
        let obj = r
            .store
            .get(&pk.segment(s.base_offset, s.id, strata_tier::layout::SegmentFile::Log))
            .await
            .expect("get");
        let bytes = obj.bytes().await.expect("bytes");
        assert_eq!(
            crc32c::crc32c(&bytes),
            s.crc32c,
            "crc of segment {}",
            s.base_offset
        );
    }
    assert!(
        keys.iter().any(|k| k.contains("/manifest/")),
        "manifest versions exist"
    );
    let got = consume_all_and_check(&broker.addr, "tiered", n);
    // A timestamp inside the remote tier is found through the remote time index.
    let first_local = m.end_offset().unwrap_or(0) as usize / 3;
    let ts = got[first_local].timestamp.expect("timestamp");
    let want = got
        .iter()
        .position(|g| g.timestamp.is_some_and(|t| t >= ts))
        .unwrap_or(0) as i64;
    let c = crate::kafka::consumer(&broker.addr);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("tiered", 0, Offset::Offset(ts))
        .expect("tpl");
    let found = rdkafka::consumer::Consumer::offsets_for_times(&c, tpl, Duration::from_secs(10))
        .expect("offsets_for_times");
    let offset = found.elements()[0].offset();
    assert_eq!(offset, Offset::Offset(want), "offset for timestamp {ts}");
    // The tier series moved: bytes uploaded, remote reads timed, nothing left to upload
    // but the active segment.
    let (_, body) = crate::metrics::scrape(&broker.metrics_addr, "/metrics");
    let tp = r#"partition="0",topic="tiered""#;
    let uploaded =
        crate::metrics::sample(&body, &format!("strata_tier_upload_bytes_total{{{tp}}}"));
    assert!(uploaded.unwrap_or(0.0) > 0.0, "upload bytes in:\n{body}");
    let reads = crate::metrics::sample(
        &body,
        r#"strata_tier_remote_fetch_duration_seconds_count{topic="tiered"}"#,
    );
    assert!(reads.unwrap_or(0.0) > 0.0, "remote fetch count in:\n{body}");
    // Reading the remote data a second time is served by the chunk cache.
    let hits = |body: &str| {
        crate::metrics::sample(body, &format!("strata_tier_cache_hits_total{{{tp}}}"))
            .unwrap_or(0.0)
    };
    let misses = crate::metrics::sample(&body, &format!("strata_tier_cache_misses_total{{{tp}}}"));
    assert!(misses.unwrap_or(0.0) > 0.0, "cold reads miss:\n{body}");
    let hits_before = hits(&body);
    let _ = consume_all_and_check(&broker.addr, "tiered", n);
    let (_, body) = crate::metrics::scrape(&broker.metrics_addr, "/metrics");
    assert!(
        hits(&body) > hits_before,
        "a second read of the remote data hits the cache ({hits_before} before):\n{body}"
    );
    broker.stop();
    // `strata tier status` reads the same bucket and log dir without a broker.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["tier", "inspect", "--set"])
        .arg(format!("log.dirs={}", broker.data.display()));
    for (k, v) in &r.settings {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("strata tier status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tier status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("tiered-0"))
        .unwrap_or_else(|| panic!("no row: {table}"));
    assert!(
        row.split_whitespace().nth(3) == Some("0"),
        "remote start 0: {row}"
    );
    broker.start_again();
    let _ = consume_all_and_check(&broker.addr, "tiered", n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_uploads_leaves_no_gap_and_loses_nothing() {
    let r = remote("kill9");
    // A slow upload rate keeps uploads in flight when the broker dies.
    let mut broker = start(
        &r,
        &[("remote.log.manager.copy.max.bytes.per.second", "300000")],
        &[],
    );
    create_topic(&broker.addr, "crashy", 1, TOPIC_CONFIGS).await;
    let per_round = 2000;
    for round in 0..3 {
        produce_values(&broker.addr, "crashy", round * per_round, per_round).await;
        tokio::time::sleep(Duration::from_millis(300 + 200 * round as u64)).await;
        let before = broker.pid();
        broker.restart(); // kill -9, then start on the same data dir and bucket
        assert!(
            broker.is_running() && broker.pid() != before,
            "a new broker process serves"
        );
    }
    let n = 3 * per_round;
    let m = wait_tiered(&r.store, "crashy", (n as i64) * 3 / 4, &broker).await;
    assert_contiguous(&m);
    let _ = consume_all_and_check(&broker.addr, "crashy", n);
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "STRATA_TIER_FAULTS needs a strata built with --features fault-injection (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_object_store_loses_nothing_and_gets_unstuck() {
    let r = remote("faults");
    let broker = start(
        &r,
        &[],
        &[(
            "STRATA_TIER_FAULTS",
            "fail_every=8,truncate_every=7,delay_ms=2",
        )],
    );
    create_topic(&broker.addr, "faulty", 1, TOPIC_CONFIGS).await;
    let n = 4000;
    produce_values(&broker.addr, "faulty", 0, n).await;
    let m = wait_tiered(&r.store, "faulty", (n as i64) / 2, &broker).await;
    assert_contiguous(&m);
    wait_local_trimmed(&broker, "faulty", 6).await;
    let _ = consume_all_and_check(&broker.addr, "faulty", n);
    assert!(
        broker.log().contains("injected failure"),
        "faults were injected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_and_delete_topics_remove_remote_data() {
    let r = remote("deletes");
    let broker = start(&r, &[], &[]);
    create_topic(&broker.addr, "gone", 1, TOPIC_CONFIGS).await;
    let n = 3000;
    produce_values(&broker.addr, "gone", 0, n).await;
    let m = wait_tiered(&r.store, "gone", (n as i64) / 2, &broker).await;
    wait_local_trimmed(&broker, "gone", 4).await;
    // DeleteRecords inside the remote tier: the low watermark moves, remote segments
    // wholly below it go, and a consumer from the beginning starts there.
    let cut = m.segments[2].base_offset + 1;
    let admin = crate::kafka::admin(&broker.addr);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("gone", 0, Offset::Offset(cut))
        .expect("tpl");
    let res = admin
        .delete_records(&tpl, &rdkafka::admin::AdminOptions::new())
        .await
        .expect("delete_records");
    assert_eq!(
        res.elements()[0].offset(),
        Offset::Offset(cut),
        "low watermark"
    );
    let after = manifest_of(&r.store, "gone").await.expect("manifest");
    assert_eq!(after.start_offset(), Some(cut));
    assert_eq!(
        after.segments.first().map(|s| s.base_offset),
        Some(m.segments[2].base_offset)
    );
    let got = consume(
        &broker.addr,
        "gone",
        0,
        Offset::Beginning,
        1,
        Duration::from_secs(30),
    );
    assert!(
        got.first().is_some_and(|g| g.offset <= cut),
        "consumer starts at the new start: {got:?}"
    );
    // DeleteTopics removes every object of the topic.
    let pk = after.partition.clone();
    admin
        .delete_topics(&["gone"], &rdkafka::admin::AdminOptions::new())
        .await
        .expect("delete_topics");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<_> = r
            .store
            .list(Some(&pk.topic_dir()))
            .try_collect()
            .await
            .expect("list");
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} objects left after DeleteTopics",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `strata topic alter -b <addr> <topic> <args>`, which must succeed.
pub(crate) fn alter_topic(addr: &str, topic: &str, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["topic", "alter", "-b", addr, topic])
        .args(args)
        .output()
        .expect("strata topic alter");
    assert!(out.status.success(), "topic alter {args:?}: {out:?}");
}

/// The smallest base offset of the local segment files of partition 0.
fn local_start(broker: &Broker, topic: &str) -> Option<i64> {
    std::fs::read_dir(broker.data.join(format!("{topic}-0")))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_tier_resumes_above_a_gap_left_by_local_retention() {
    let r = remote("gap");
    let broker = start(&r, &[("log.retention.check.interval.ms", "200")], &[]);
    create_topic(&broker.addr, "gappy", 1, TOPIC_CONFIGS).await;
    produce_values(&broker.addr, "gappy", 0, 2000).await;
    let before = wait_tiered(&r.store, "gappy", 1000, &broker).await;
    // Tiering off: ordinary retention now deletes local segments nobody tiered.
    alter_topic(
        &broker.addr,
        "gappy",
        &[
            "-c",
            "remote.storage.enable=false",
            "-c",
            "retention.bytes=65536",
        ],
    );
    produce_values(&broker.addr, "gappy", 2000, 2000).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let remote_end = loop {
        let end = manifest_of(&r.store, "gappy")
            .await
            .and_then(|m| m.end_offset())
            .unwrap_or(0);
        if local_start(&broker, "gappy").is_some_and(|s| s > end + 100) {
            break end;
        }
        assert!(
            Instant::now() < deadline,
            "no gap formed; log:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(remote_end >= before.end_offset().unwrap_or(0));
    // Tiering on again: uploads continue from the local log start, not stall.
    alter_topic(
        &broker.addr,
        "gappy",
        &[
            "-c",
            "remote.storage.enable=true",
            "--delete-config",
            "retention.bytes",
        ],
    );
    let m = wait_tiered(&r.store, "gappy", remote_end + 1, &broker).await;
    let gaps: Vec<(i64, i64)> = m
        .segments
        .windows(2)
        .filter(|w| w[0].next_offset != w[1].base_offset)
        .map(|w| (w[0].next_offset, w[1].base_offset))
        .collect();
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?} in {:?}", m.segments);
    let (gap_start, gap_end) = gaps[0];
    assert_eq!(gap_start, remote_end);
    assert!(
        !broker.log().contains("segment not recorded"),
        "no refused upload"
    );
    // A consumer from offset 0 reads everything that exists, crossing the gap.
    let want = gap_start as usize + (4000 - gap_end as usize);
    let got = consume(
        &broker.addr,
        "gappy",
        0,
        Offset::Beginning,
        want,
        Duration::from_secs(90),
    );
    assert_eq!(got.len(), want, "records outside the gap");
    for g in &got {
        assert!(
            g.offset < gap_start || g.offset >= gap_end,
            "offset {} in the gap",
            g.offset
        );
        assert_eq!(
            g.value.as_deref(),
            Some(value(g.offset as usize).as_bytes()),
            "value of offset {}",
            g.offset
        );
    }
    assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));
}

/// `strata tier status` rows of `topic` as column name -> value maps.
fn tier_status_rows(addr: &str, topic: &str) -> Vec<std::collections::HashMap<String, String>> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["tier", "status", "-b", addr, topic])
        .output()
        .expect("strata tier status");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "tier status: {out:?}");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "STRATA_TIER_FAULTS needs a strata built with --features fault-injection (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_status_shows_offsets_bytes_pending_uploads_and_the_last_upload_error() {
    let r = remote("status");
    // Half the store calls fail: some uploads fail after their retries.
    let broker = start(&r, &[], &[("STRATA_TIER_FAULTS", "fail_every=2")]);
    create_topic(&broker.addr, "shown", 1, TOPIC_CONFIGS).await;
    produce_values(&broker.addr, "shown", 0, 3000).await;
    let _ = wait_tiered(&r.store, "shown", 1000, &broker).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let row = loop {
        let rows = tier_status_rows(&broker.addr, "shown");
        let row = rows.into_iter().next().expect("a row for shown-0");
        let trimmed = row["LOCAL-START"].parse::<i64>().unwrap_or(0) > 0;
        if row["LAST-ERROR"] != "-" && trimmed {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "no upload error or local trimming shown: {row:?}; log:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("tier status row: {row:?}");
    assert_eq!(row["REMOTE"], "on");
    assert!(row["LAST-ERROR"].contains("injected failure"), "{row:?}");
    assert_eq!(row["REMOTE-START"], "0", "{row:?}");
    assert_eq!(row["LOG-START"], "0", "{row:?}");
    let num = |k: &str| -> i64 {
        row[k]
            .parse()
            .unwrap_or_else(|_| panic!("{k} is a number: {row:?}"))
    };
    assert!(
        num("REMOTE-END") >= 1000 && num("REMOTE-END") <= 3000,
        "{row:?}"
    );
    assert!(num("LOCAL-START") <= num("REMOTE-END"), "no gap: {row:?}");
    assert!(num("LOCAL-BYTES") > 0 && num("REMOTE-BYTES") > 0, "{row:?}");
    assert!(num("PENDING") >= 0 && num("FAILED") >= 0, "{row:?}");
    assert_eq!(num("END"), 3000, "{row:?}");
}

/// ListOffsets v7 with `timestamp` for partition 0 over a raw connection:
/// (error code, offset, timestamp).
pub(crate) fn list_offsets_raw(broker: &Broker, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{
        ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use std::io::Write;
    let version = 7;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp)])]);
    let mut s = crate::bad_input::connect(broker);
    s.write_all(&crate::bad_input::frame(ApiKey::ListOffsets, version, &req))
        .expect("send ListOffsets");
    let mut body = crate::bad_input::read_frame(&mut s).expect("ListOffsets response");
    ResponseHeader::decode(
        &mut body,
        ApiKey::ListOffsets.response_header_version(version),
    )
    .expect("header");
    let resp = ListOffsetsResponse::decode(&mut body, version).expect("response");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_max_timestamp_finds_a_record_only_in_the_remote_tier() {
    let r = remote("maxts");
    let broker = start(&r, &[], &[]);
    create_topic(&broker.addr, "maxts", 1, TOPIC_CONFIGS).await;
    // Timestamps rise with the offset, except offset 100 which holds the largest.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let base = now - 10_000_000;
    let max_ts = now - 1_000;
    let p = producer(
        &broker.addr,
        &[("acks", "all"), ("linger.ms", "5"), ("batch.size", "8192")],
    );
    let n = 3000;
    let mut pending = Vec::new();
    for i in 0..n {
        let (v, key) = (value(i), format!("k{i}"));
        let ts = if i == 100 { max_ts } else { base + i as i64 };
        let rec = FutureRecord::to("maxts")
            .partition(0)
            .key(&key)
            .payload(&v)
            .timestamp(ts);
        pending.push(p.send_result(rec).expect("enqueue"));
    }
    for f in pending {
        f.await.expect("delivery").expect("delivered");
    }
    let _ = wait_tiered(&r.store, "maxts", 1000, &broker).await;
    wait_local_trimmed(&broker, "maxts", 4).await;
    assert!(
        local_start(&broker, "maxts").is_some_and(|s| s > 100),
        "offset 100 is only in the remote tier"
    );
    assert_eq!(
        list_offsets_raw(&broker, "maxts", -3),
        (0, 100, max_ts),
        "ListOffsets -3 answers the remote record with the largest timestamp"
    );
}
