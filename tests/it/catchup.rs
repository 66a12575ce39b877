//! Catch-up reads of a tiered topic (issue 14), against a real S3 server (moto, started by
//! scripts/test.sh) where it matters:
//! - a consumer from offset 0 reads every byte in order while a producer keeps writing;
//! - fetches mixing local and remote partitions keep KIP-74's limits, checked against a
//!   model of each partition's bytes with random sizes and limits (proptest);
//! - the object store request counters match moto's own request log.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::producer::FutureRecord;
use strata_tier::object_store::ObjectStore;
use strata_tier::{manifest, PartitionManifest};

use crate::kafka::{create_topic, producer};
use crate::metrics::scrape;
use crate::tier::{self, consume_all_and_check, produce_values, wait_tiered, TOPIC_CONFIGS};

/// A consumer with client defaults reads a tiered partition from offset 0 (most of it only
/// in the bucket) while a producer appends to it: every record arrives, in order, with its
/// value, and the remote tier served the start of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_consumer_reads_every_byte_while_producing() {
    let remote = tier::remote("catchup");
    let broker = tier::start(&remote, &[], &[]);
    let topic = "catchup";
    create_topic(&broker.addr, topic, 1, TOPIC_CONFIGS).await;
    let (before, during) = (3000, 2000);
    produce_values(&broker.addr, topic, 0, before).await;
    let m = wait_tiered(&remote.store, topic, before as i64 / 2, &broker).await;
    assert_eq!(m.start_offset(), Some(0), "the remote tier starts at 0");
    assert!(
        tier::local_log_files(&broker, topic) > 0 && first_local_offset(&broker, topic) > 0,
        "offset 0 must be remote-only"
    );
    let addr = broker.addr.clone();
    let producing = tokio::spawn(async move { produce_values(&addr, topic, before, during).await });
    let addr = broker.addr.clone();
    let got =
        tokio::task::spawn_blocking(move || consume_all_and_check(&addr, topic, before + during))
            .await
            .expect("consumer");
    producing.await.expect("producer");
    assert_eq!(got.len(), before + during);
    let (_, body) = scrape(&broker.metrics_addr, "/metrics");
    let misses: f64 = body
        .lines()
        .filter(|l| l.starts_with("strata_tier_cache_misses_total{") && l.contains(topic))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(misses > 0.0, "no remote read missed the cache:\n{body}");
}

/// The base offset of the first local segment of partition 0.
fn first_local_offset(broker: &crate::harness::Broker, topic: &str) -> i64 {
    std::fs::read_dir(broker.data.join(format!("{topic}-0")))
        .expect("partition dir")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .min()
        .unwrap_or(0)
}

const V: i16 = 12;

/// One Fetch v12 of `parts` (partition, offset, partition max bytes) of `topic`, in that
/// order; the answer per partition in the same order: (partition, error code, records).
fn fetch_many(
    addr: &str,
    topic: &str,
    parts: &[(i32, i64, i32)],
    max_bytes: i32,
    min_bytes: i32,
    max_wait_ms: i32,
) -> Vec<(i32, i16, Bytes)> {
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, offset, max)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(max)
                    })
                    .collect(),
            )]);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(V)
        .with_correlation_id(1)
        .encode(&mut buf, ApiKey::Fetch.request_header_version(V))
        .unwrap();
    req.encode(&mut buf, V).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&(buf.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&buf).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(V)).unwrap();
    let r = FetchResponse::decode(&mut body, V).unwrap();
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                p.error_code,
                p.records.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// (base offset, last offset, size) of the whole batches of `records`.
fn batches(records: &[u8]) -> Vec<(i64, i64, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 27 <= records.len() {
        let b = &records[pos..];
        let base = i64::from_be_bytes(b[0..8].try_into().unwrap());
        let size = 12 + i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(b[23..27].try_into().unwrap());
        assert!(pos + size <= records.len(), "a partial batch at {pos}");
        out.push((base, base + i64::from(delta), size));
        pos += size;
    }
    assert_eq!(pos, records.len(), "trailing bytes after the batches");
    out
}

/// One partition's whole log as stored, and where each batch starts in it.
struct Model {
    bytes: Bytes,
    /// (base offset, last offset, position, size)
    batches: Vec<(i64, i64, usize, usize)>,
}

impl Model {
    /// Position of the batch holding `offset`.
    fn position_of(&self, offset: i64) -> Option<usize> {
        self.batches
            .iter()
            .find(|b| b.0 <= offset && offset <= b.1)
            .map(|b| b.2)
    }

    fn is_boundary(&self, pos: usize) -> bool {
        pos == self.bytes.len() || self.batches.iter().any(|b| b.2 == pos)
    }
}

/// Reads every partition from 0 to `end` with roomy limits, into models.
fn read_models(addr: &str, topic: &str, ends: &[i64]) -> Vec<Model> {
    ends.iter()
        .enumerate()
        .map(|(p, &end)| {
            let mut bytes = BytesMut::new();
            let mut list = Vec::new();
            let mut offset = 0;
            let deadline = Instant::now() + Duration::from_secs(90);
            while offset < end {
                assert!(Instant::now() < deadline, "partition {p} stuck at {offset}");
                let got = fetch_many(addr, topic, &[(p as i32, offset, 8 << 20)], 8 << 20, 1, 500);
                let (_, err, recs) = &got[0];
                assert_eq!(*err, 0, "reading partition {p} at {offset}");
                let mut pos = bytes.len();
                for (base, last, size) in batches(recs) {
                    list.push((base, last, pos, size));
                    pos += size;
                    offset = last + 1;
                }
                bytes.extend_from_slice(recs);
            }
            Model {
                bytes: bytes.freeze(),
                batches: list,
            }
        })
        .collect()
}

/// KIP-74 with local and remote partitions in one fetch, random sizes and limits: every
/// partition answers whole batches that are a prefix of its log from the batch holding the
/// fetch offset (the model); no partition exceeds `max.partition.fetch.bytes` and the answer
/// does not exceed `fetch.max.bytes`, except for the first batch of the first partition with
/// data, alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip74_limits_hold_with_local_and_remote_partitions_mixed() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let remote = tier::remote("kip74");
    let broker = tier::start(&remote, &[], &[]);
    let topic = "kip74";
    let parts = 4usize;
    create_topic(&broker.addr, topic, parts as i32, TOPIC_CONFIGS).await;
    // Records of random sizes (about 60 B to 12 KiB), so batches are of random sizes too.
    let p = producer(
        &broker.addr,
        &[("acks", "all"), ("linger.ms", "2"), ("batch.size", "16384")],
    );
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut pending = Vec::new();
    for i in 0..600usize {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let value = vec![b'a' + (i % 26) as u8; 60 + (seed % 12_000) as usize];
        let part = (i % parts) as i32;
        pending.push(
            p.send_result(
                FutureRecord::<(), _>::to(topic)
                    .partition(part)
                    .payload(&value),
            )
            .expect("enqueue"),
        );
    }
    for f in pending {
        f.await.expect("delivery").expect("delivered");
    }
    // Every partition has remote-only offsets and local ones.
    let mut remote_ends = Vec::new();
    for part in 0..parts as i32 {
        remote_ends.push(wait_partition_tiered(&remote.store, topic, part, 40).await);
    }
    let ends: Vec<i64> = (0..parts).map(|_| 150).collect();
    let models = read_models(&broker.addr, topic, &ends);

    let strategy = (
        Just((0..parts as i32).collect::<Vec<_>>()).prop_shuffle(),
        proptest::collection::vec((any::<bool>(), 0.0f64..1.0, 1i32..40_000), parts),
        1i32..120_000,
        prop_oneof![Just(1i32), 1i32..1_000_000],
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let (answered, mixed) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let result = runner.run(&strategy, |(order, choice, fetch_max, min_bytes)| {
        let req: Vec<(i32, i64, i32)> = order
            .iter()
            .map(|&p| {
                let (local, at, pmax) = choice[p as usize];
                let (lo, hi) = if local {
                    (remote_ends[p as usize], ends[p as usize])
                } else {
                    (0, remote_ends[p as usize])
                };
                (p, lo + ((hi - lo) as f64 * at) as i64, pmax)
            })
            .collect();
        let got = fetch_many(&broker.addr, topic, &req, fetch_max, min_bytes, 300);
        prop_assert_eq!(got.len(), req.len());
        let (mut total, mut first_with_data) = (0usize, None);
        let (mut remote_data, mut local_data) = (false, false);
        for (k, ((p, err, recs), &(rp, offset, pmax))) in got.iter().zip(&req).enumerate() {
            prop_assert_eq!(*p, rp, "answer order");
            prop_assert_eq!(*err, 0, "partition {} at {}", p, offset);
            if recs.is_empty() {
                continue;
            }
            let model = &models[*p as usize];
            let start = model.position_of(offset).expect("offset in the model");
            let end = start + recs.len();
            prop_assert!(end <= model.bytes.len(), "partition {} answer past the log", p);
            prop_assert!(
                model.bytes[start..end] == recs[..],
                "partition {} at {}: not the log's bytes from the batch holding it",
                p,
                offset
            );
            prop_assert!(model.is_boundary(end), "partition {}: cut inside a batch", p);
            let n = batches(recs).len();
            let first = first_with_data.is_none();
            if first {
                first_with_data = Some(k);
            }
            if recs.len() > pmax as usize {
                prop_assert!(
                    first && n == 1,
                    "partition {} answered {} bytes over max.partition.fetch.bytes {} ({} batches, first with data: {})",
                    p, recs.len(), pmax, n, first
                );
            }
            total += recs.len();
            if offset < remote_ends[*p as usize] {
                remote_data = true;
            } else {
                local_data = true;
            }
        }
        if total > fetch_max as usize {
            let nonempty = got.iter().filter(|g| !g.2.is_empty()).count();
            let only = got.iter().find(|g| !g.2.is_empty()).map(|g| batches(&g.2).len());
            prop_assert!(
                nonempty == 1 && only == Some(1),
                "{} bytes over fetch.max.bytes {} and not one first batch alone",
                total,
                fetch_max
            );
        }
        answered.set(answered.get() + usize::from(total > 0));
        mixed.set(mixed.get() + usize::from(remote_data && local_data));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nbroker log:\n{}", broker.log());
    }
    let (answered, mixed) = (answered.get(), mixed.get());
    assert!(
        answered > 24,
        "only {answered} of 48 fetches returned records"
    );
    assert!(
        mixed > 0,
        "no fetch returned remote and local records together"
    );
}

/// Waits until partition `part` of `topic` has offsets up to `offset` in the remote tier;
/// returns the remote end offset.
async fn wait_partition_tiered(
    store: &Arc<dyn ObjectStore>,
    topic: &str,
    part: i32,
    offset: i64,
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m: Option<PartitionManifest> = async {
            let pk = strata_tier::topics::list_partitions(store)
                .await
                .ok()?
                .into_iter()
                .find(|p| p.topic == topic && p.partition == part)?;
            manifest::load(&**store, &pk).await.ok().flatten()
        }
        .await;
        if let Some(end) = m.and_then(|m| m.end_offset()).filter(|e| *e >= offset) {
            return end;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}-{part} not tiered to {offset} in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An HTTP/1.1 request to moto without a body; the body of its answer.
fn moto(endpoint: &str, method: &str, path: &str) -> String {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hostport).expect("connect to moto");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("moto answer");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.contains(" 200"), "{method} {path}: {head}");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Request kinds as the broker's counters name them, from moto's recorded requests of our
/// prefix; and the bytes of PUT bodies.
fn moto_counts(recording: &str, prefix: &str) -> (BTreeMap<String, u64>, u64) {
    use base64::Engine as _;
    let mut counts = BTreeMap::new();
    let mut put_bytes = 0;
    // Concurrent requests may put two entries on one line (moto writes the newline
    // separately): read a stream of JSON values, not lines.
    for v in serde_json::Deserializer::from_str(recording).into_iter::<serde_json::Value>() {
        let v = v.expect("a recorded request");
        let method = v["method"].as_str().unwrap_or_default();
        let url = v["url"].as_str().unwrap_or_default();
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let body = v["body"].as_str().unwrap_or_default();
        let body = if v["body_encoded"].as_bool() == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap_or_default()
        } else {
            body.as_bytes().to_vec()
        };
        let ours = path.contains(&format!("/{prefix}"))
            || query.contains(&format!("prefix={prefix}"))
            || (query.starts_with("delete")
                && String::from_utf8_lossy(&body).contains(&format!("<Key>{prefix}")));
        if !ours {
            continue;
        }
        let has = |k: &str| query.split('&').any(|kv| kv.split('=').next() == Some(k));
        let kind = match method {
            "PUT" if has("partNumber") => "multipart_part",
            "PUT" if v["headers"]["x-amz-copy-source"].is_string() => "copy",
            "PUT" => {
                put_bytes += body.len() as u64;
                "put"
            }
            "POST" if has("uploads") => "multipart_create",
            "POST" if has("uploadId") => "multipart_complete",
            "POST" if has("delete") => "delete",
            "DELETE" if has("uploadId") => "multipart_abort",
            "DELETE" => "delete",
            "HEAD" => "head",
            "GET" if has("list-type") || has("prefix") => "list",
            "GET" => "get",
            other => other,
        };
        *counts.entry(kind.to_string()).or_default() += 1;
    }
    (counts, put_bytes)
}

/// The broker's request counters summed over topics, by kind; and the PUT bytes.
fn broker_counts(metrics: &str) -> (BTreeMap<String, u64>, u64) {
    let mut counts = BTreeMap::new();
    let mut put_bytes = 0;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        let request = series
            .split("request=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string();
        if series.starts_with("strata_tier_store_requests_total{") {
            *counts.entry(request).or_default() += value as u64;
        } else if series.starts_with("strata_tier_store_bytes_total{") && request == "put" {
            put_bytes += value as u64;
        }
    }
    counts.retain(|_, v| *v > 0);
    (counts, put_bytes)
}

/// The broker's object store request counters against moto's own request log (its recorder,
/// `/moto-api/recorder/*`) for a scripted workload: startup, uploads, remote retention
/// deletes and a consumer from offset 0 (the cache is empty: uploads do not fill it).
/// Counted by kind, and the bytes of PUTs. Multipart uploads need segments over 8 MiB and
/// are checked by strata-tier's unit test instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_request_counters_match_motos_request_log() {
    let Some(remote) = tier::remote_s3("costs") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but S3_TEST_ENDPOINT is not set"
        );
        eprintln!("S3_TEST_ENDPOINT not set: skipping the moto request log comparison");
        return;
    };
    let endpoint = std::env::var("S3_TEST_ENDPOINT").expect("endpoint");
    let prefix = remote
        .settings
        .iter()
        .find(|(k, _)| k == "remote.storage.url")
        .and_then(|(_, url)| url.splitn(4, '/').nth(3).map(str::to_string))
        .expect("a prefix");
    // The recorder is moto-wide; requests of other tests are told apart by their prefix.
    moto(&endpoint, "POST", "/moto-api/recorder/start-recording");
    let broker = tier::start(&remote, &[("remote.cache.disk.size.bytes", "0")], &[]);
    let topic = "costs";
    let mut configs = TOPIC_CONFIGS.to_vec();
    configs.push(("retention.bytes", "150000"));
    create_topic(&broker.addr, topic, 1, &configs).await;
    produce_values(&broker.addr, topic, 0, 2000).await;
    // Waits on the broker's metrics, not on the bucket: this test's own requests would be
    // in moto's log too.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = scrape(&broker.metrics_addr, "/metrics");
        let segments: f64 = body
            .lines()
            .filter(|l| l.starts_with("strata_tier_upload_segments_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        if segments >= 12.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not tiered in time:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let addr = broker.addr.clone();
    let got = tokio::task::spawn_blocking(move || {
        crate::kafka::consume(
            &addr,
            topic,
            0,
            rdkafka::Offset::Beginning,
            300,
            Duration::from_secs(60),
        )
    })
    .await
    .expect("consumer");
    assert!(!got.is_empty(), "consumed nothing");
    // Counters and the log move while the broker works: compare at a quiet moment, when the
    // scrapes a second before and right after the download of the log are equal.
    let mut outcome = None;
    for _ in 0..40 {
        // Quiet for a while first, so that a request the broker counted has reached moto
        // (moto logs a request when its body is in) on a loaded machine too.
        let earlier = broker_counts(&scrape(&broker.metrics_addr, "/metrics").1);
        std::thread::sleep(Duration::from_millis(1000));
        let before = broker_counts(&scrape(&broker.metrics_addr, "/metrics").1);
        if earlier != before {
            continue;
        }
        let log = moto(&endpoint, "GET", "/moto-api/recorder/download-recording");
        let after = broker_counts(&scrape(&broker.metrics_addr, "/metrics").1);
        if before != after {
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        outcome = Some((before, moto_counts(&log, &prefix)));
        break;
    }
    moto(&endpoint, "POST", "/moto-api/recorder/stop-recording");
    // `strata tier status --costs` shows the same PUTs for the topic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "tier",
            "status",
            "--costs",
            "--metrics",
            &broker.metrics_addr,
        ])
        .args(["-b", &broker.addr])
        .output()
        .expect("strata tier status --costs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = text
        .lines()
        .find(|l| l.starts_with("TOPIC\tPUT\t"))
        .unwrap_or_else(|| panic!("no costs table in:\n{text}"));
    let row: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("TOPIC\tPUT\t"))
        .find(|l| l.starts_with("costs\t"))
        .unwrap_or_else(|| panic!("no costs row for the topic in:\n{text}"))
        .split('\t')
        .collect();
    let col = |name: &str| header.split('\t').position(|h| h == name).expect(name);
    let obj_per_seg: f64 = row[col("OBJ/SEG")].parse().expect("objects per segment");
    assert!(
        (3.0..=8.0).contains(&obj_per_seg),
        "objects per segment {obj_per_seg} in:\n{text}"
    );
    let ((counted, counted_put_bytes), (logged, logged_put_bytes)) =
        outcome.expect("the counters never held still");
    for kind in ["put", "get", "list", "delete"] {
        assert!(
            counted.get(kind).copied().unwrap_or(0) > 0,
            "the workload made no {kind}: {counted:?}"
        );
    }
    // The HTTP client retries a request on a transport error or a 5xx below the store
    // interface (and logs "backing off for"): moto logs each attempt, the store is billed for
    // each, the counters see one call. On a loaded machine that happens now and then.
    let retries = broker.log().matches("backing off for").count() as u64;
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    for (kind, n) in &counted {
        assert!(
            logged.get(kind).copied().unwrap_or(0) >= *n,
            "{kind}: counted {n}, moto logged {logged:?}"
        );
    }
    assert_eq!(
        total(&counted) + retries,
        total(&logged),
        "broker counters {counted:?} plus {retries} HTTP retries against moto's log {logged:?}"
    );
    if retries == 0 {
        assert_eq!(
            counted, logged,
            "broker counters (left) against moto's log (right)"
        );
    }
    assert_eq!(counted_put_bytes, logged_put_bytes, "PUT bytes");
}
