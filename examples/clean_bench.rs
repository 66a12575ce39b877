//! Produce latency while the log cleaner works at full speed, against a real broker started
//! here (bounded runs; everything on 127.0.0.1).
//!
//! ```text
//! cargo build --release --bin strata --example clean_bench
//! ./target/release/examples/clean_bench [secs per phase=5] [records/s=10000] [rounds=3] [MiB to clean=256]
//! ```
//!
//! Two topics: `tail`, a plain topic that a producer writes 1 KiB records to at a fixed rate
//! (acks=1, paced every millisecond, so latency is the broker's), and, per round, a fresh
//! `churn-N` filled with `MiB to clean` of 1 KiB updates of 1000 keys under
//! `cleanup.policy=delete` (so nothing cleans it yet). Each round measures the tail
//! producer's p50/p99/max twice: idle, then right after `churn-N` is switched to `compact`,
//! which makes the cleaner clean the whole backlog at its default speed (no I/O limit, as in
//! Kafka) while the phase runs. The cleaner's bytes read during each phase are printed from
//! `strata_cleaner_read_bytes_total`, so a phase that did not overlap cleaning is visible.
//!
//! `TIER_BENCH_SET="k=v,k=v"` adds broker settings (e.g.
//! `log.cleaner.io.max.bytes.per.second=50000000`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer};

#[path = "common/broker.rs"]
mod broker;
#[path = "common/reports.rs"]
mod reports;
use broker::{create_topic, metric, produce_paced, producer, start_broker, Broker, Res};
use reports::{pct, phase_summary};

/// Switches `topic` to `cleanup.policy=compact` (the cleaner wakes on the change).
fn compact(b: &Broker, topic: &str) -> Res<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b.addr)
        .create()
        .map_err(|e| format!("admin: {e}"))?;
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in futures::executor::block_on(admin.alter_configs([&alter], &opts))
        .map_err(|e| format!("alter {topic}: {e}"))?
    {
        r.map_err(|(n, c)| format!("alter {n:?}: {c}"))?;
    }
    Ok(())
}

/// Writes `mib` MiB of 1 KiB updates of 1000 keys to `topic`, as fast as the broker takes them.
fn fill(b: &Broker, topic: &str, mib: f64) -> Res<()> {
    let p = producer(b)?;
    let records = (mib * 1024.0) as u64;
    let payload = vec![b'u'; 1024];
    for i in 0..records {
        let key = format!("key-{}", i % 1000);
        let mut rec = BaseRecord::<String, [u8], usize>::with_opaque_to(topic, 0)
            .partition(0)
            .key(&key)
            .payload(&payload[..]);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(5));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| format!("flush {topic}: {e}"))?;
    let (_, failed) = p.context().take();
    if failed > 0 {
        return Err(format!("{failed} records of {topic} failed"));
    }
    Ok(())
}

fn run(args: &[f64]) -> Res<()> {
    let secs = args.first().copied().unwrap_or(5.0);
    let rate = args.get(1).copied().unwrap_or(10_000.0) as u64;
    let rounds = args.get(2).copied().unwrap_or(3.0) as usize;
    let mib = args.get(3).copied().unwrap_or(256.0);
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let b = start_broker(data.path(), &[("log.cleaner.backoff.ms", "200")])?;
    create_topic(&b, "tail", 1, &[("segment.bytes", "67108864")])?;
    let p = producer(&b)?;
    produce_paced(&p, "tail", 1, rate, 1.0, 1024)?; // warm-up
    println!(
        "produce p99 while the cleaner runs vs idle: {rate} records/s of 1 KiB, {secs} s per phase, {mib} MiB to clean per round"
    );
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let churn = format!("churn-{round}");
        create_topic(
            &b,
            &churn,
            1,
            &[
                ("cleanup.policy", "delete"),
                ("segment.bytes", "16777216"),
                ("min.cleanable.dirty.ratio", "0.01"),
            ],
        )?;
        let t = Instant::now();
        fill(&b, &churn, mib)?;
        println!(
            "round {round}: {churn} filled in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(2)); // let writeback of the fill settle
        let mut p99 = [0.0; 2];
        for (i, phase) in ["idle", "cleaning"].into_iter().enumerate() {
            if phase == "cleaning" {
                compact(&b, &churn)?;
            }
            let read0 = metric(&b, "strata_cleaner_read_bytes_total");
            let lat = produce_paced(&p, "tail", 1, rate, secs, 1024)?;
            let read = metric(&b, "strata_cleaner_read_bytes_total") - read0;
            p99[i] = pct(&lat, 0.99);
            println!(
                "round {round} {phase:8}: {}; cleaner read {:.1} MB during the phase",
                phase_summary(&lat),
                read / 1e6
            );
        }
        ratios.push(p99[1] / p99[0]);
    }
    println!(
        "p99 while cleaning / idle, per round: {}",
        reports::ratios(&ratios)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clean_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
