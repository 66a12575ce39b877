//! Catch-up readers and Iceberg tables against a real broker and moto (issues 14 and 19),
//! every comparison side by side in one run. Everything starts here on 127.0.0.1 ephemeral
//! ports and is stopped at the end; every loop is bounded.
//!
//! ```text
//! cargo build --release --bin strata --example catchup_bench
//! ./target/release/examples/catchup_bench catchup-p99 [secs=10] [records/s=10000] [rounds=2] [MB=1000]
//! ./target/release/examples/catchup_bench readers [MB per partition=300] [rounds=1]
//! ./target/release/examples/catchup_bench table-p99 [secs=10] [records/s=10000] [rounds=2]
//! ./target/release/examples/catchup_bench table-scan [MB=200] [rounds=2]
//! ```
//!
//! `catchup-p99`: produce p99 of a tail producer (1 KiB records at a fixed rate, acks=1,
//! paced every millisecond, to a local topic) while a catch-up consumer (rdkafka, client
//! defaults) reads `MB` of a tiered partition from offset 0, against the same producer alone.
//! The history (64 MiB segments, `local.retention.bytes=1`) is written and tiered first; each
//! round restarts the broker (empty chunk cache, disk cache off) and runs both phases,
//! alternating their order. The catch-up phase lasts as long as the consumer. Also counted,
//! for `remote.fetch.max.wait.ms` at its default: the consumer's errors, and the broker's remote
//! reads slower than 0.5 s (their fetch answered without them) and refused by a full pool.
//!
//! `readers`: three read-only nodes (`process.roles=reader`) serving three catch-up consumers
//! (one partition each) against one node serving one and one node serving three, from the
//! same bucket, each with fresh nodes (cold caches); the broker that wrote the history is
//! stopped first. Raw GETs of the same objects, 1, 3 and 8 at a time, give moto's ceiling.
//!
//! `table-p99`: produce p99 to a tiered topic with `iceberg.enable=true` against one without,
//! alternating phases as in `tier_bench produce-p99`, with values that do not compress away.
//!
//! `table-scan`: one day of a topic read from its Iceberg table by a query engine
//! (`scripts/table_scan.py`: pyiceberg scan into arrow, DuckDB aggregate) against a consumer
//! reading the same records from the remote tier (restarted broker, cold cache), alternating.

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

#[path = "common/broker.rs"]
mod broker;
#[path = "common/moto.rs"]
mod moto;
#[path = "common/reports.rs"]
mod reports;
use broker::{create_topic, metric, produce_paced, produce_until, producer, Broker, Res};
use moto::{local_log_files, start_broker, start_moto, BUCKET};
use reports::{pct, phase_summary};

const MB: f64 = 1e6;

/// For the broker that writes the history: local segments go soon after their upload.
const FILL: &[(&str, &str)] = &[("log.retention.check.interval.ms", "1000")];

/// Counts the client's error events (what librdkafka reports besides per-message errors).
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() < 3 {
            f.push(format!("{error}: {reason}"));
        }
    }
}
impl ConsumerContext for Errors {}

struct Read {
    /// When the clock started (connected, partition known, assigned).
    start: Instant,
    bytes: u64,
    secs: f64,
    errors: u64,
    first_errors: Vec<String>,
}

/// A consumer with client defaults reads `records` records of partition `part` from offset 0
/// through `addr`. Message errors are counted, not fatal; the run is bounded by 600 s.
fn catch_up(addr: &str, topic: &str, part: i32, records: u64) -> Res<Read> {
    let c: BaseConsumer<Errors> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "catchup-bench")
        .set("enable.auto.commit", "false")
        .create_with_context(Errors::default())
        .map_err(|e| format!("consumer: {e}"))?;
    // Connected and the partition known (a reader learns topics from the bucket) before the
    // clock starts.
    let ready = Instant::now() + Duration::from_secs(60);
    loop {
        let known = c
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .first()
                    .map(|t| t.error().is_none() && t.partitions().len() > part as usize)
            })
            .unwrap_or(false);
        if known {
            break;
        }
        if Instant::now() > ready {
            return Err(format!("{addr}: {topic} not in metadata within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, part, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    let (mut n, mut bytes, mut msg_errors) = (0u64, 0u64, 0u64);
    let mut first_errors = Vec::new();
    while n < records {
        if Instant::now() > deadline {
            return Err(format!("{topic}-{part}: {n} of {records} records in 600 s"));
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => {
                msg_errors += 1;
                if first_errors.len() < 3 {
                    first_errors.push(e.to_string());
                }
            }
            None => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let ctx = c.context();
    first_errors.extend(
        ctx.first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..),
    );
    Ok(Read {
        start,
        bytes,
        secs,
        errors: msg_errors + ctx.count.load(Ordering::Relaxed),
        first_errors,
    })
}

/// Sum of a series' samples whose line starts with `name` and contains every one of `has`.
fn metric_with(b: &Broker, name: &str, has: &[&str]) -> f64 {
    let body = broker::http(&b.metrics, "GET", "/metrics").map_or(String::new(), |(_, b)| b);
    body.lines()
        .filter(|l| l.starts_with(name) && has.iter().all(|h| l.contains(h)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The broker's remote-read counters: reads, reads slower than 0.5 s, reads refused.
fn remote_counters(b: &Broker) -> [f64; 3] {
    let h = "strata_tier_remote_fetch_duration_seconds";
    let count = metric_with(b, &format!("{h}_count"), &[]);
    let fast = metric_with(b, &format!("{h}_bucket"), &["le=\"0.5\""]);
    [
        count,
        count - fast,
        metric(b, "strata_tier_remote_read_rejected_total"),
    ]
}

/// Waits (up to 900 s) until every closed segment of `topic` is uploaded and removed locally;
/// returns each partition's local log start, which is then the count of its tiered records.
fn wait_tiered(b: &Broker, data: &std::path::Path, topic: &str, parts: i32) -> Res<Vec<u64>> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let lag = metric(b, "strata_tier_upload_lag_bytes{");
        let starts: Vec<u64> = (0..parts)
            .map(|p| {
                metric_with(
                    b,
                    "strata_partition_log_start_offset{",
                    &[&format!("partition=\"{p}\""), &format!("topic=\"{topic}\"")],
                ) as u64
            })
            .collect();
        let local = local_log_files(data, topic);
        if lag == 0.0 && local <= parts as usize && starts.iter().all(|&s| s > 0) {
            return Ok(starts);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{topic} not tiered after 900 s: lag {lag}, {local} local files"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Pseudo-random bytes (xorshift): record values that neither Parquet nor zstd compress away.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Creates `topic` (tiered, `local.retention.bytes=1`, `segment` bytes per segment) and
/// writes `mb` MB of 1 KiB records over `parts` partitions; returns the tiered record counts.
fn fill(
    b: &Broker,
    data: &std::path::Path,
    topic: &str,
    parts: i32,
    segment: &str,
    mb: f64,
    extra: &[(&str, &str)],
) -> Res<Vec<u64>> {
    let mut cfg = vec![
        ("segment.bytes", segment),
        ("remote.storage.enable", "true"),
        ("local.retention.bytes", "1"),
    ];
    cfg.extend_from_slice(extra);
    create_topic(b, topic, parts, &cfg)?;
    let p = producer(b)?;
    let t = Instant::now();
    let rate = 100_000u64;
    let payload = noise(16 << 20);
    let never = AtomicBool::new(false);
    let secs = mb * MB / 1024.0 / rate as f64;
    produce_until(&p, topic, parts, rate, secs, &payload, 1024, &never)?;
    let n = wait_tiered(b, data, topic, parts)?;
    println!(
        "history: {topic}, {parts} partition(s), {:.0} MB produced and tiered in {:.1} s; tiered records per partition {n:?}",
        mb,
        t.elapsed().as_secs_f64()
    );
    Ok(n)
}

/// The control of `catchup-p99`: `mb` MB of 1 KiB records in a local topic (1 GiB
/// segments, no tiering); returns the record count.
fn fill_local(b: &Broker, topic: &str, mb: f64) -> Res<u64> {
    create_topic(b, topic, 1, &[])?;
    let p = producer(b)?;
    let payload = noise(16 << 20);
    let never = AtomicBool::new(false);
    let rate = 100_000u64;
    let lat = produce_until(
        &p,
        topic,
        1,
        rate,
        mb * MB / 1024.0 / rate as f64,
        &payload,
        1024,
        &never,
    )?;
    println!("history: {topic}, local, {} records", lat.len());
    Ok(lat.len() as u64)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn catchup_p99(args: &[f64]) -> Res<()> {
    let secs = args.first().copied().unwrap_or(10.0);
    let rate = args.get(1).copied().unwrap_or(10_000.0) as u64;
    let rounds = args.get(2).copied().unwrap_or(2.0) as usize;
    let mb = args.get(3).copied().unwrap_or(1000.0);
    // CATCHUP_LOCAL=1: the control, a catch-up consumer of the same size from the local log
    // (page cache) instead of the bucket.
    let local = std::env::var("CATCHUP_LOCAL").is_ok_and(|v| v == "1");
    let (_moto, endpoint) = start_moto()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let n = {
        let b = start_broker(data.path(), &endpoint, FILL)?;
        create_topic(&b, "tail", 1, &[("segment.bytes", "4194304")])?;
        if local {
            fill_local(&b, "hist", mb)?
        } else {
            fill(&b, data.path(), "hist", 1, "67108864", mb, &[])?[0]
        }
    };
    println!(
        "produce p99 with and without a catch-up consumer of {n} records: {rate} records/s of 1 KiB to a local topic, acks=1; {secs} s alone; load {}",
        load()
    );
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let b = start_broker(data.path(), &endpoint, &[])?; // empty chunk cache
        let p = producer(&b)?;
        produce_paced(&p, "tail", 1, rate, 1.0, 1024)?; // warm-up
        let mut p99 = [0.0; 2];
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for with in order {
            std::thread::sleep(Duration::from_secs(2));
            let payload = vec![b'x'; 1024];
            let stop = Arc::new(AtomicBool::new(false));
            let before = remote_counters(&b);
            let reader = with.then(|| {
                let (addr, stop) = (b.addr.clone(), stop.clone());
                std::thread::spawn(move || {
                    let r = catch_up(&addr, "hist", 0, n);
                    stop.store(true, Ordering::Relaxed);
                    r
                })
            });
            let max = if with { 600.0 } else { secs };
            let lat = produce_until(&p, "tail", 1, rate, max, &payload, 1024, &stop)?;
            p99[usize::from(with)] = pct(&lat, 0.99);
            let after = remote_counters(&b);
            match reader {
                None => println!("round {round} alone:    {}", phase_summary(&lat)),
                Some(h) => {
                    let r = h.join().map_err(|_| "consumer panicked")??;
                    println!(
                        "round {round} catch-up: {}; consumer {:.0} MB in {:.2} s = {:.0} MB/s, client errors {} {:?}; broker remote reads {}, slower than 0.5 s {}, refused {}; load {}",
                        phase_summary(&lat),
                        r.bytes as f64 / MB,
                        r.secs,
                        r.bytes as f64 / MB / r.secs,
                        r.errors,
                        r.first_errors,
                        after[0] - before[0],
                        after[1] - before[1],
                        after[2] - before[2],
                        load()
                    );
                }
            }
        }
        ratios.push(p99[1] / p99[0]);
    }
    println!(
        "p99 with catch-up / alone, per round: {}",
        reports::ratios(&ratios)
    );
    Ok(())
}

/// Read-only nodes on the bucket at `endpoint` (fresh data dirs: cold caches).
fn start_readers(endpoint: &str, count: usize) -> Res<(Vec<Broker>, Vec<tempfile::TempDir>)> {
    let url = format!("s3://{BUCKET}/bench");
    let (mut nodes, mut dirs) = (Vec::new(), Vec::new());
    for i in 0..count {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let id = (100 + i).to_string();
        let mut s = moto::remote_settings(&url, endpoint);
        s.extend_from_slice(&[
            ("process.roles", "reader"),
            ("node.id", &id),
            ("remote.cache.disk.size.bytes", "0"),
            ("remote.log.manifest.poll.interval.ms", "1000"),
        ]);
        nodes.push(broker::start_broker(dir.path(), &s)?);
        dirs.push(dir);
    }
    Ok((nodes, dirs))
}

fn readers(args: &[f64]) -> Res<()> {
    let mb = args.first().copied().unwrap_or(300.0);
    let rounds = args.get(1).copied().unwrap_or(1.0) as usize;
    let (_moto, endpoint) = start_moto()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let n = {
        let b = start_broker(data.path(), &endpoint, FILL)?;
        fill(&b, data.path(), "hist", 3, "67108864", 3.0 * mb, &[])?
    }; // the broker is stopped: the readers need only the bucket
    println!("load {}", load());
    let raw = moto::raw_gets(&endpoint, &[1, 3, 8])?;
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for (nodes, consumers) in [(1usize, 1usize), (1, 3), (3, 3)] {
            let (rs, _dirs) = start_readers(&endpoint, nodes)?;
            let handles: Vec<_> = (0..consumers)
                .map(|i| {
                    let addr = rs[i % nodes].addr.clone();
                    let want = n[i];
                    std::thread::spawn(move || catch_up(&addr, "hist", i as i32, want))
                })
                .collect();
            let mut total = 0u64;
            let mut each = Vec::new();
            let mut errors = 0;
            // From the first consumer's start to the last one's end: the readers' time to
            // learn the topic from the bucket is not counted.
            let (mut first, mut last) = (None::<Instant>, None::<Instant>);
            for h in handles {
                let r = h.join().map_err(|_| "consumer panicked")??;
                let end = r.start + Duration::from_secs_f64(r.secs);
                first = Some(first.map_or(r.start, |f| f.min(r.start)));
                last = Some(last.map_or(end, |l| l.max(end)));
                total += r.bytes;
                errors += r.errors;
                each.push(format!("{:.0}", r.bytes as f64 / MB / r.secs));
            }
            let wall = match (first, last) {
                (Some(f), Some(l)) => (l - f).as_secs_f64(),
                _ => f64::NAN,
            };
            let agg = total as f64 / MB / wall;
            println!(
                "round {round}: {nodes} reader(s), {consumers} consumer(s): {:.0} MB in {wall:.2} s = {agg:.0} MB/s aggregate (first start to last end; each {} MB/s), client errors {errors}; load {}",
                total as f64 / MB,
                each.join(", "),
                load()
            );
            rows.push(agg);
        }
    }
    let raw2 = moto::raw_gets(&endpoint, &[1, 3, 8])?;
    println!(
        "raw GETs before {raw:.0?} and after {raw2:.0?} MB/s (1, 3, 8 at a time); load {}",
        load()
    );
    Ok(())
}

fn table_p99(args: &[f64]) -> Res<()> {
    let secs = args.first().copied().unwrap_or(10.0);
    let rate = args.get(1).copied().unwrap_or(10_000.0) as u64;
    let rounds = args.get(2).copied().unwrap_or(2.0) as usize;
    let (_moto, endpoint) = start_moto()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let b = start_broker(data.path(), &endpoint, &[])?;
    let tiered = [
        ("segment.bytes", "4194304"),
        ("remote.storage.enable", "true"),
        ("local.retention.bytes", "8388608"),
    ];
    create_topic(&b, "tiered", 1, &tiered)?;
    let mut with_table = tiered.to_vec();
    with_table.push(("iceberg.enable", "true"));
    create_topic(&b, "table", 1, &with_table)?;
    let p = producer(&b)?;
    let payload = noise(16 << 20);
    let never = AtomicBool::new(false);
    for t in ["tiered", "table"] {
        produce_until(&p, t, 1, rate, 1.0, &payload, 1024, &never)?;
    }
    println!(
        "produce p99 with table writing on and off: {rate} records/s of 1 KiB random values ({:.1} MB/s), {secs} s per phase, acks=1, 4 MiB segments, both topics tiered; load {}",
        rate as f64 * 1024.0 / MB,
        load()
    );
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let mut p99 = [0.0; 2];
        for (i, topic) in ["tiered", "table"].into_iter().enumerate() {
            std::thread::sleep(Duration::from_secs(3)); // let earlier uploads and tables finish
            let (up0, tb0) = (
                metric(&b, "strata_tier_upload_bytes_total"),
                metric(&b, "strata_table_bytes_total"),
            );
            let lat = produce_until(&p, topic, 1, rate, secs, &payload, 1024, &never)?;
            let (up, tb) = (
                metric(&b, "strata_tier_upload_bytes_total") - up0,
                metric(&b, "strata_table_bytes_total") - tb0,
            );
            p99[i] = pct(&lat, 0.99);
            println!(
                "round {round} {topic:6}: {}; during the phase uploaded {:.1} MB, written to tables {:.1} MB; load {}",
                phase_summary(&lat),
                up / MB,
                tb / MB,
                load()
            );
        }
        ratios.push(p99[1] / p99[0]);
    }
    println!(
        "p99 with table writing / without, per round: {}",
        reports::ratios(&ratios)
    );
    Ok(())
}

fn table_scan(args: &[f64]) -> Res<()> {
    let mb = args.first().copied().unwrap_or(200.0);
    let rounds = args.get(1).copied().unwrap_or(2.0) as usize;
    let (_moto, endpoint) = start_moto()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let n = {
        let b = start_broker(data.path(), &endpoint, FILL)?;
        let n = fill(
            &b,
            data.path(),
            "day",
            1,
            "16777216",
            mb,
            &[("iceberg.enable", "true")],
        )?[0];
        let deadline = Instant::now() + Duration::from_secs(900);
        while metric(&b, "strata_table_rows_total{") < n as f64 {
            if Instant::now() > deadline {
                return Err("table not written within 900 s".into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        println!(
            "table: {} rows, {:.0} MB of records written",
            metric(&b, "strata_table_rows_total{"),
            metric(&b, "strata_table_bytes_total{") / MB
        );
        n
    };
    let day = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%F"])
            .output()
            .map_err(|e| e.to_string())?
            .stdout,
    )
    .map_err(|e| e.to_string())?;
    let script = std::env::var("TABLE_SCAN").unwrap_or_else(|_| "scripts/table_scan.py".into());
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for side in order {
            if side == 0 {
                let b = start_broker(data.path(), &endpoint, &[])?; // empty chunk cache
                let r = catch_up(&b.addr, "day", 0, n)?;
                println!(
                    "round {round} consumer (remote tier): {n} records, {:.0} MB of values in {:.2} s = {:.0} MB/s, errors {}; load {}",
                    r.bytes as f64 / MB,
                    r.secs,
                    r.bytes as f64 / MB / r.secs,
                    r.errors,
                    load()
                );
            } else {
                let out = Command::new("python3")
                    .args([&script, &endpoint, BUCKET, "bench/iceberg/day", day.trim()])
                    .output()
                    .map_err(|e| format!("{script}: {e}"))?;
                let text = String::from_utf8_lossy(&out.stdout);
                if !out.status.success() {
                    return Err(format!(
                        "{script}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                println!(
                    "round {round} query engine (table): {}; load {}",
                    text.trim(),
                    load()
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<f64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let result = match args.first().map(String::as_str) {
        Some("catchup-p99") => catchup_p99(&nums),
        Some("readers") => readers(&nums),
        Some("table-p99") => table_p99(&nums),
        Some("table-scan") => table_scan(&nums),
        _ => Err("usage: catchup_bench catchup-p99 [secs] [rate] [rounds] [MB] | readers [MB per partition] [rounds] | table-p99 [secs] [rate] [rounds] | table-scan [MB] [rounds]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("catchup_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
