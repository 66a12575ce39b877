//! A release `strata` broker started for a benchmark, and the client helpers the load
//! examples share (each includes this file with `#[path]`; it is not an example of its own).
//! Everything binds 127.0.0.1; child processes are killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::reports::Reports;

pub type Res<T> = Result<T, String>;

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.0 request; returns the status code and body.
pub fn http(addr: &str, method: &str, path: &str) -> Res<(u16, String)> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

pub struct Broker {
    _proc: Proc,
    pub addr: String,
    pub metrics: String,
}

/// Starts the release `strata` binary next to this example's directory with `settings`
/// (and `TIER_BENCH_SET="k=v,k=v"` for experiments) on an ephemeral port.
pub fn start_broker(data: &std::path::Path, extra: &[(&str, &str)]) -> Res<Broker> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let strata: PathBuf = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("strata"))
        .ok_or("no strata binary path")?;
    let mut settings: Vec<(&str, &str)> = vec![
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("metrics.listener", "127.0.0.1:0"),
    ];
    settings.extend_from_slice(extra);
    // Extra broker settings for experiments: TIER_BENCH_SET="k=v,k=v".
    let env_set = std::env::var("TIER_BENCH_SET").unwrap_or_default();
    settings.extend(env_set.split(',').filter_map(|kv| kv.split_once('=')));
    let mut cmd = Command::new(&strata);
    cmd.arg("serve")
        .arg("--set")
        .arg(format!("log.dirs={}", data.display()));
    for (k, v) in settings {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", strata.display()))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut metrics = String::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(m) = line.strip_prefix("strata: metrics on ") {
                metrics = m.trim().to_string();
            } else if let Some(rest) = line.strip_prefix("strata: listening on ") {
                let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send((addr, std::mem::take(&mut metrics)));
            }
        }
    });
    let (addr, metrics) = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "broker did not start within 30 s")?;
    Ok(Broker {
        _proc: proc,
        addr,
        metrics,
    })
}

/// Sum of the samples of a series whose name and labels start with `prefix`.
pub fn metric(b: &Broker, prefix: &str) -> f64 {
    let body = http(&b.metrics, "GET", "/metrics").map_or(String::new(), |(_, b)| b);
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn create_topic(b: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) -> Res<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b.addr)
        .create()
        .map_err(|e| format!("admin: {e}"))?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in futures::executor::block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| format!("create {name}: {e}"))?
    {
        r.map_err(|(n, c)| format!("create {n}: {c}"))?;
    }
    Ok(())
}

pub fn producer(b: &Broker) -> Res<BaseProducer<Reports>> {
    ClientConfig::new()
        .set("bootstrap.servers", &b.addr)
        .set("acks", "1")
        .set("linger.ms", "1")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Reports::new(0))
        .map_err(|e| format!("producer: {e}"))
}

/// Sends `rate` records/s of `size` bytes for `secs`, spread over partitions
/// `0..partitions`, paced every millisecond. Returns sorted latencies (µs).
pub fn produce_paced(
    p: &BaseProducer<Reports>,
    topic: &str,
    partitions: i32,
    rate: u64,
    secs: f64,
    size: usize,
) -> Res<Vec<u32>> {
    let payload = vec![b'x'; size];
    let never = std::sync::atomic::AtomicBool::new(false);
    produce_until(p, topic, partitions, rate, secs, &payload, size, &never)
}

/// As [`produce_paced`], but records are `size`-byte windows of `payload` (at a different
/// place for each record when `payload` is longer: values that do not compress away), and
/// the run also ends early once `stop` is set.
#[allow(clippy::too_many_arguments)]
pub fn produce_until(
    p: &BaseProducer<Reports>,
    topic: &str,
    partitions: i32,
    rate: u64,
    secs: f64,
    payload: &[u8],
    size: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Res<Vec<u32>> {
    let spread = payload.len().saturating_sub(size).max(1);
    let start = Instant::now();
    let total = (rate as f64 * secs) as u64;
    let mut sent = 0u64;
    while sent < total && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let ns = p.context().now_ns();
            let at = (sent as usize).wrapping_mul(1031) % spread;
            let rec = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, ns)
                .partition((sent % partitions as u64) as i32)
                .payload(&payload[at.min(payload.len() - size)..][..size]);
            match p.send(rec) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
        p.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1));
    }
    p.flush(Duration::from_secs(60))
        .map_err(|e| format!("flush: {e}"))?;
    let (lat, failed) = p.context().take();
    if failed > 0 {
        return Err(format!("{failed} records failed"));
    }
    Ok(lat)
}
