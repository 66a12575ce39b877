//! End-to-end load generator on librdkafka (the `rdkafka` crate).
//!
//! Produces `--records` records of `--size` bytes to one partition, measuring
//! throughput and per-record delivery latency (from `send` to the delivery
//! report), then consumes them back from the first offset produced and reports
//! throughput. Every phase is bounded by the record count and `--timeout-secs`.
//!
//! ```text
//! cargo run --release --example loadgen -- --bootstrap 127.0.0.1:9092 \
//!     [--records 1000000] [--size 1024] [--acks 1] [--topic loadgen] \
//!     [--linger-ms 5] [--batch-size 1000000] [--compression none] \
//!     [--queue-messages 100000] [--timeout-secs 120] [--no-produce] [--no-consume] \
//!     [--replication-factor 1]
//! ```
//!
//! The topic is created with one partition (and `--replication-factor` replicas, for a
//! cluster) if it does not exist. Latency is
//! measured open loop: records are sent as fast as librdkafka accepts them, so
//! with a deep queue (`--queue-messages`, librdkafka's
//! `queue.buffering.max.messages`) it is mostly time spent queued in the client;
//! a shallow queue (e.g. 1000) shows the broker's share.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[path = "common/reports.rs"]
mod reports;
use reports::{pct, Reports};

struct Args {
    bootstrap: String,
    topic: String,
    records: u64,
    size: usize,
    acks: String,
    linger_ms: String,
    batch_size: String,
    compression: String,
    queue_messages: String,
    replication_factor: i32,
    timeout: Duration,
    produce: bool,
    consume: bool,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "loadgen".into(),
            records: 1_000_000,
            size: 1024,
            acks: "1".into(),
            linger_ms: "5".into(),
            batch_size: "1000000".into(),
            compression: "none".into(),
            queue_messages: "100000".into(),
            replication_factor: 1,
            timeout: Duration::from_secs(120),
            produce: true,
            consume: true,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--no-produce" => a.produce = false,
                "--no-consume" => a.consume = false,
                "--help" | "-h" => return Err(String::new()),
                _ => {
                    let value = it.next().ok_or(format!("{flag} needs a value"))?;
                    let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
                    match flag.as_str() {
                        "--bootstrap" => a.bootstrap = value,
                        "--topic" => a.topic = value,
                        "--records" => a.records = num(&value)?,
                        "--size" => a.size = num(&value)? as usize,
                        "--acks" => a.acks = value,
                        "--linger-ms" => a.linger_ms = value,
                        "--batch-size" => a.batch_size = value,
                        "--compression" => a.compression = value,
                        "--queue-messages" => a.queue_messages = value,
                        "--replication-factor" => a.replication_factor = num(&value)? as i32,
                        "--timeout-secs" => a.timeout = Duration::from_secs(num(&value)?),
                        _ => return Err(format!("unknown flag {flag}")),
                    }
                }
            }
        }
        Ok(a)
    }
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn create_topic(args: &Args) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let topic = NewTopic::new(
        &args.topic,
        1,
        TopicReplication::Fixed(args.replication_factor),
    );
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = futures::executor::block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| format!("create topic {}: {e}", args.topic))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("create topic {name}: {code}")),
        }
    }
    Ok(())
}

/// Produces and returns the offset of the first record.
fn produce(args: &Args) -> Result<i64, String> {
    let ctx = Reports::new(args.records as usize);
    let producer: BaseProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", &args.acks)
        .set("linger.ms", &args.linger_ms)
        .set("batch.size", &args.batch_size)
        .set("compression.type", &args.compression)
        .set("queue.buffering.max.messages", &args.queue_messages)
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(ctx)
        .map_err(|e| format!("producer: {e}"))?;
    let first = high_watermark(args)?;
    let payload = vec![b'x'; args.size];
    let start = Instant::now();
    let deadline = start + args.timeout;
    let mut sent = 0u64;
    while sent < args.records && Instant::now() < deadline {
        let sent_ns = producer.context().now_ns();
        let record = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, sent_ns)
            .partition(0)
            .payload(&payload[..]);
        match producer.send(record) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
                continue;
            }
            Err((e, _)) => return Err(format!("send: {e}")),
        }
        if sent.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    producer
        .flush(left.max(Duration::from_secs(1)))
        .map_err(|e| format!("flush: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let (lat, failed) = producer.context().take();
    let delivered = lat.len() as u64;
    println!(
        "produce: {delivered} records of {} B (sent {sent}, failed {}) in {secs:.2} s: \
         {:.1} MB/s, {:.0} records/s; latency ms p50 {:.2} p99 {:.2} max {:.2} \
         (acks={} linger.ms={} batch.size={} compression={})",
        args.size,
        failed,
        mb_per_s(delivered * args.size as u64, secs),
        delivered as f64 / secs,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        args.acks,
        args.linger_ms,
        args.batch_size,
        args.compression,
    );
    Ok(first)
}

fn consumer(args: &Args) -> Result<BaseConsumer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", "loadgen")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| format!("consumer: {e}"))
}

/// The partition's current end offset, where the next produce starts.
fn high_watermark(args: &Args) -> Result<i64, String> {
    // In a cluster the node asked may not have applied a just-created topic yet: retry briefly.
    let consumer = consumer(args)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let (_, high) = loop {
        match consumer.fetch_watermarks(&args.topic, 0, Duration::from_secs(10)) {
            Ok(w) => break w,
            Err(e) if Instant::now() < deadline => {
                eprintln!("watermarks of {}: {e}; retrying", args.topic);
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("watermarks of {}: {e}", args.topic)),
        }
    };
    Ok(high)
}

fn consume(args: &Args, from: i64) -> Result<(), String> {
    let consumer = consumer(args)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&args.topic, 0, Offset::Offset(from))
        .map_err(|e| format!("assign: {e}"))?;
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let start = Instant::now();
    let deadline = start + args.timeout;
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < args.records && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "consume: {records} records, {bytes} B from offset {from} in {secs:.2} s: \
         {:.1} MB/s, {:.0} records/s",
        mb_per_s(bytes, secs),
        records as f64 / secs
    );
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    create_topic(args)?;
    let from = if args.produce { produce(args)? } else { 0 };
    if args.consume {
        consume(args, from)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\nusage: loadgen --bootstrap HOST:PORT [--records N] [--size BYTES] [--acks 0|1|-1] [--topic T] [--linger-ms MS] [--batch-size BYTES] [--compression none|gzip|snappy|lz4|zstd] [--queue-messages N] [--timeout-secs S] [--no-produce] [--no-consume] [--replication-factor N]");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
