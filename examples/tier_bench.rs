//! Remote-tier benchmarks against a real broker and a real S3 server (moto), both
//! started here and stopped at the end (bounded runs; everything on 127.0.0.1).
//!
//! ```text
//! cargo build --release --bin strata --example tier_bench
//! ./target/release/examples/tier_bench produce-p99 [secs per phase=10] [records/s=10000] [rounds=2]
//! ./target/release/examples/tier_bench fanout [partitions=50] [MiB per partition=8]
//! ./target/release/examples/tier_bench console-p99 [secs per phase=10] [records/s=10000] [rounds=2] [page interval s=1]
//! ```
//!
//! `produce-p99`: produce p99 while uploads run vs without. Two topics with 4 MiB
//! segments, one with `remote.storage.enable=true`. 1 KiB records are produced at a
//! fixed rate (acks=1, paced every millisecond, so latency is the broker's and not
//! a client queue's) to the plain topic, then to the tiered one (whose segments are
//! uploaded while it runs), `rounds` times alternating; p50/p99/max delivery latency
//! of each phase and the bytes uploaded during it are printed.
//!
//! `fanout`: a consumer reading across N remote partitions in one fetch vs 1. A
//! tiered topic of N partitions with 1 MiB segments and 1 MiB local retention is
//! filled and uploaded; then, each with a freshly restarted broker (cold chunk
//! cache, disk cache off): one consumer reads partition 0 from offset 0, and one
//! consumer reads all N partitions from offset 0. MB/s of both and the speed-up.
//!
//! `console-p99`: produce p99 with the web console's pages open against closed (issue 20).
//! The broker serves its console (`console.listener`, metrics sampled every second); a
//! tiered topic is produced to at a fixed rate as above, alternating phases in which nothing
//! reads the console and phases in which every page (cluster, topics, the topic, its
//! records, groups, tier) is loaded every `page interval` seconds (1 by default: ten times the
//! pages' own refresh, `REFRESH_SECONDS`; 10 is what six open browser tabs cost).
//!
//! `TIER_BENCH_SET="k=v,k=v"` adds broker settings (e.g.
//! `remote.log.manager.copy.max.bytes.per.second=20000000`); `STRATA_TIER_FAULTS`
//! (e.g. `delay_ms=20`, an injected per-request latency) is inherited by the broker,
//! which must then be built with `--features fault-injection` (otherwise it refuses
//! to start).
//!
//! `TIER_BENCH_MOTO_CPUS=1` runs moto under `taskset -c 1` with its temporary files in
//! `/dev/shm`: with this example itself started under `taskset -c 0`, the broker and the
//! client keep one core and moto (which stands for an S3 on another host) has the other
//! and no share of the broker's disk.
//!
//! Needs `moto_server` on the PATH (`pip install 'moto[server]'`) and the release
//! `strata` binary next to this example's directory.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

#[path = "common/broker.rs"]
mod broker;
#[path = "common/moto.rs"]
mod moto;
#[path = "common/reports.rs"]
mod reports;
use broker::{create_topic, http, metric, produce_paced, producer, Broker, Res};
use moto::{free_port, local_log_files, start_broker, start_moto};

use reports::{pct, phase_summary};

fn produce_p99(args: &[f64]) -> Res<()> {
    let secs = args.first().copied().unwrap_or(10.0);
    let rate = args.get(1).copied().unwrap_or(10_000.0) as u64;
    let rounds = args.get(2).copied().unwrap_or(2.0) as usize;
    let (_moto, endpoint) = start_moto()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let b = start_broker(data.path(), &endpoint, &[])?;
    let seg = [("segment.bytes", "4194304")];
    create_topic(&b, "plain", 1, &seg)?;
    create_topic(
        &b,
        "tiered",
        1,
        &[
            ("segment.bytes", "4194304"),
            ("remote.storage.enable", "true"),
            ("local.retention.bytes", "8388608"),
        ],
    )?;
    let p = producer(&b)?;
    // Warm-up: connections, metadata, the first segments.
    produce_paced(&p, "plain", 1, rate, 1.0, 1024)?;
    produce_paced(&p, "tiered", 1, rate, 1.0, 1024)?;
    println!(
        "produce p99 with and without uploads: {rate} records/s of 1 KiB ({:.1} MB/s), {secs} s per phase, acks=1, 4 MiB segments",
        rate as f64 * 1024.0 / 1e6
    );
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let mut p99 = [0.0; 2];
        for (i, topic) in ["plain", "tiered"].into_iter().enumerate() {
            std::thread::sleep(Duration::from_secs(2)); // let earlier uploads finish
            let up0 = metric(&b, "strata_tier_upload_bytes_total");
            let lat = produce_paced(&p, topic, 1, rate, secs, 1024)?;
            let up = metric(&b, "strata_tier_upload_bytes_total") - up0;
            p99[i] = pct(&lat, 0.99);
            println!(
                "round {round} {topic:6}: {}; uploaded during the phase {:.1} MB",
                phase_summary(&lat),
                up / 1e6
            );
        }
        ratios.push(p99[1] / p99[0]);
    }
    println!(
        "p99 with uploads / without, per round: {}",
        reports::ratios(&ratios)
    );
    Ok(())
}

fn console_p99(args: &[f64]) -> Res<()> {
    let secs = args.first().copied().unwrap_or(10.0);
    let rate = args.get(1).copied().unwrap_or(10_000.0) as u64;
    let rounds = args.get(2).copied().unwrap_or(2.0) as usize;
    let every = Duration::from_secs_f64(args.get(3).copied().unwrap_or(1.0).max(0.1));
    let (_moto, endpoint) = start_moto()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let console = format!("127.0.0.1:{}", free_port()?);
    let b = start_broker(
        data.path(),
        &endpoint,
        &[
            ("console.listener", &console),
            ("console.metrics.sample.interval.ms", "1000"),
        ],
    )?;
    let topic = "tiered";
    create_topic(
        &b,
        topic,
        1,
        &[
            ("segment.bytes", "4194304"),
            ("remote.storage.enable", "true"),
            ("local.retention.bytes", "8388608"),
        ],
    )?;
    let p = producer(&b)?;
    produce_paced(&p, topic, 1, rate, 1.0, 1024)?;
    println!(
        "produce p99 with console pages open and closed: {rate} records/s of 1 KiB, {secs} s per phase, acks=1, all pages every {every:?}"
    );
    let pages = [
        "/".to_string(),
        "/topics".into(),
        format!("/topics/{topic}"),
        format!("/topics/{topic}/records?offset=0"),
        "/groups".into(),
        "/tier".into(),
    ];
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let mut p99 = [0.0; 2];
        for (i, open) in [false, true].into_iter().enumerate() {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reader = open.then(|| {
                let (stop, console, pages) = (stop.clone(), console.clone(), pages.clone());
                std::thread::spawn(move || {
                    let mut loads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let t = Instant::now();
                        for page in &pages {
                            if let Ok((200, _)) = http(&console, "GET", page) {
                                loads += 1;
                            }
                        }
                        // Sleeps in steps so that the phase's end stops it promptly.
                        while t.elapsed() < every
                            && !stop.load(std::sync::atomic::Ordering::Relaxed)
                        {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    loads
                })
            });
            let lat = produce_paced(&p, topic, 1, rate, secs, 1024)?;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let loads = reader.map_or(0, |r| r.join().unwrap_or(0));
            p99[i] = pct(&lat, 0.99);
            let what = if open { "open" } else { "closed" };
            println!(
                "round {round} pages {what:6}: {}; pages served {loads}",
                phase_summary(&lat)
            );
        }
        ratios.push(p99[1] / p99[0]);
    }
    println!(
        "p99 with pages open / closed, per round: {}",
        reports::ratios(&ratios)
    );
    Ok(())
}

/// Reads partitions `parts` of `topic` from offset 0 until `records` records came.
fn consume(b: &Broker, topic: &str, parts: &[i32], records: u64) -> Res<(u64, f64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b.addr)
        .set("group.id", "tier-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "1048576")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    // Connect and learn the metadata before the clock starts.
    c.fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for &p in parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        if Instant::now() > deadline {
            return Err(format!("consumed only {n} of {records} records in 300 s"));
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {}
        }
    }
    Ok((bytes, start.elapsed().as_secs_f64()))
}

fn fanout(args: &[f64]) -> Res<()> {
    let partitions = args.first().copied().unwrap_or(50.0) as i32;
    let mib = args.get(1).copied().unwrap_or(8.0);
    let (_moto, endpoint) = start_moto()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let topic = "fanout";
    let per_part = (mib * 1024.0) as u64; // 1 KiB records
    {
        let b = start_broker(data.path(), &endpoint, &[])?;
        create_topic(
            &b,
            topic,
            partitions,
            &[
                ("segment.bytes", "1048576"),
                ("remote.storage.enable", "true"),
                ("local.retention.bytes", "1048576"),
            ],
        )?;
        let p = producer(&b)?;
        let total = per_part * partitions as u64;
        let t = Instant::now();
        produce_paced(
            &p,
            topic,
            partitions,
            200_000,
            total as f64 / 200_000.0,
            1024,
        )?;
        println!(
            "filled {partitions} partitions x {mib} MiB of 1 KiB records in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        // Wait until every closed segment is uploaded and local retention trimmed.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let lag = metric(&b, "strata_tier_upload_lag_bytes{");
            let uploaded = metric(&b, "strata_tier_upload_bytes_total{");
            let local = local_log_files(data.path(), topic);
            if lag == 0.0 && uploaded > 0.0 && local <= 2 * partitions as usize {
                println!(
                    "tiered: {:.0} MB uploaded, {local} local .log files left",
                    uploaded / 1e6
                );
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not tiered after 600 s: lag {lag}, {local} local files"
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let run = |parts: Vec<i32>| -> Res<(u64, f64)> {
        let b = start_broker(data.path(), &endpoint, &[])?;
        std::thread::sleep(Duration::from_secs(1)); // manifests loaded
        let r = consume(&b, topic, &parts, per_part * parts.len() as u64)?;
        let (hits, misses) = (
            metric(&b, "strata_tier_cache_hits_total{"),
            metric(&b, "strata_tier_cache_misses_total{"),
        );
        println!(
            "  {} partition(s): {:.1} MB in {:.2} s = {:.1} MB/s (remote reads: {hits} hits, {misses} misses)",
            parts.len(),
            r.0 as f64 / 1e6,
            r.1,
            r.0 as f64 / 1e6 / r.1,
            );
        Ok(r)
    };
    moto::raw_gets(&endpoint, &[1, 50])?;
    println!("cold reads from offset 0, broker restarted before each:");
    let one = run(vec![0])?;
    let all = run((0..partitions).collect())?;
    let again = run(vec![1])?;
    let single = (one.0 as f64 / one.1 + again.0 as f64 / again.1) / 2.0;
    let many = all.0 as f64 / all.1;
    println!(
        "speed-up of {partitions} partitions in one fetch over 1: {:.1}x ({:.1} vs {:.1} MB/s, 1-partition figure the mean of two)",
        many / single,
        many / 1e6,
        single / 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<f64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let result = match args.first().map(String::as_str) {
        Some("produce-p99") => produce_p99(&nums),
        Some("fanout") => fanout(&nums),
        Some("console-p99") => console_p99(&nums),
        _ => Err(
            "usage: tier_bench produce-p99 [secs] [rate] [rounds] | fanout [partitions] \
                  [MiB] | console-p99 [secs] [rate] [rounds]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tier_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
