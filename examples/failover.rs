//! Failover time of a 3-node Strata cluster: from `kill -9` of a partition leader to the next
//! acknowledged produce (acks=all, idempotent producer, librdkafka defaults otherwise).
//!
//! Starts three `strata serve` processes on 127.0.0.1 (each broker and controller, fixed ports
//! so that a restarted node keeps its address) and produces one 100-byte record every
//! `--interval-ms` from a background thread. Then, `--kills` times: creates a topic with one
//! partition, replication factor 3 and `min.insync.replicas=2` whose leader is the active
//! controller (even rounds) or another node (odd rounds; `--placement controller|other` for
//! one kind only), moves the producer to it, waits until every node reports a full ISR, kills
//! the leader with SIGKILL, measures the time until a record *sent after the kill* is
//! acknowledged, restarts the node on its data dir, and goes on.
//!
//! Each kill is explained from the nodes' JSON logs (timestamps relative to the kill):
//! when a new Raft controller leader was established (only when the killed node was the
//! active controller), when the controller fenced the killed broker (`broker.session.timeout.ms`),
//! and when the new partition leader applied its leadership; the rest up to the first
//! acknowledgement is the client's metadata refresh and retry.
//!
//! ```text
//! cargo build --release --bin strata --example failover
//! ./target/release/examples/failover [--broker-bin target/release/strata] [--kills 6] \
//!     [--placement alternate|controller|other] [--interval-ms 5] [--dir /tmp/strata-failover] [--keep] [--set key=value]... \
//!     [--producer key=value]...
//! ```
//!
//! `--set` adds a broker setting to every node, `--producer` a librdkafka producer setting.
//! Every wait is bounded; the data dir is removed at the end unless `--keep`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

/// Where the killed partition leader is, relative to the active controller (Raft leader).
#[derive(Clone, Copy)]
enum Placement {
    Alternate,
    Controller,
    Other,
}

struct Args {
    placement: Placement,
    broker_bin: PathBuf,
    kills: usize,
    interval: Duration,
    dir: PathBuf,
    keep: bool,
    settings: Vec<String>,
    producer: Vec<(String, String)>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            placement: Placement::Alternate,
            broker_bin: PathBuf::from("target/release/strata"),
            kills: 6,
            interval: Duration::from_millis(5),
            dir: std::env::temp_dir().join(format!("strata-failover-{}", std::process::id())),
            keep: false,
            settings: Vec::new(),
            producer: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--keep" {
                a.keep = true;
                continue;
            }
            if flag == "--help" || flag == "-h" {
                return Err(String::new());
            }
            let value = it.next().ok_or(format!("{flag} needs a value"))?;
            let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
            match flag.as_str() {
                "--broker-bin" => a.broker_bin = value.into(),
                "--placement" => {
                    a.placement = match value.as_str() {
                        "alternate" => Placement::Alternate,
                        "controller" => Placement::Controller,
                        "other" => Placement::Other,
                        _ => {
                            return Err(format!("--placement {value}: alternate|controller|other"))
                        }
                    }
                }
                "--kills" => a.kills = num(&value)? as usize,
                "--interval-ms" => a.interval = Duration::from_millis(num(&value)?),
                "--dir" => a.dir = value.into(),
                "--set" => a.settings.push(value),
                "--producer" => {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or(format!("--producer {value}: expected key=value"))?;
                    a.producer.push((k.into(), v.into()));
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        Ok(a)
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| format!("addr: {e}"))?.port())
}

struct Node {
    id: i32,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Spawns the process and waits (at most 60 s) for its `listening` line.
    fn start(&mut self, args: &Args, voters: &str) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("{}: {e}", self.log_path().display()))?;
        let mut cmd = Command::new(&args.broker_bin);
        cmd.arg("serve");
        let mut set = vec![
            format!("node.id={}", self.id),
            format!("controller.quorum.voters={voters}"),
            format!(
                "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                self.port, self.controller_port
            ),
            format!("log.dirs={}", self.dir.join("data").display()),
            "metrics.listener=none".to_string(),
        ];
        set.extend(args.settings.iter().cloned());
        for s in set {
            cmd.arg("--set").arg(s);
        }
        // The broker refuses unknown STRATA_* variables: pass only ours.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STRATA_")) {
            cmd.env_remove(k);
        }
        cmd.env("STRATA_LOG", "info")
            .env("STRATA_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", args.broker_bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("strata: listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        self.child = Some(child);
        rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
            format!(
                "node {} did not print its listening line within 60 s; see {}",
                self.id,
                self.log_path().display()
            )
        })
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Delivery reports: (sequence number, when acknowledged, ok).
struct Reports {
    acks: Mutex<Vec<(usize, Instant, bool)>>,
}

impl ClientContext for Reports {
    /// librdkafka's log lines (all of them with `--producer debug=...`), with a Unix time stamp
    /// to set beside the brokers' logs.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!(
            "{:.3} librdkafka {level:?} {fac}: {log_message}",
            unix_now()
        );
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let ok = result.is_ok();
        if let Err((e, _)) = result {
            eprintln!("record {seq} failed: {e}");
        }
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((seq, Instant::now(), ok));
    }
}

/// The leader and ISR of partition 0, from Metadata.
fn leader_and_isr(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == 0)?;
    (p.error().is_none() && p.leader() >= 0).then(|| (p.leader(), p.isr().to_vec()))
}

/// Waits until every node, asked on its own, reports the same leader of partition 0 and a
/// full ISR; returns the leader. Asking each node matters: a node that has just restarted
/// answers from its own metadata log until it has caught up with the controller's, and may
/// still name an old leader for a moment.
fn wait_for_full_isr(nodes: &[Node], topic: &str, timeout: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let answers: Vec<Option<(i32, Vec<i32>)>> = nodes
            .iter()
            .map(|n| leader_and_isr(&n.addr(), topic))
            .collect();
        if let Some(Some((leader, isr))) = answers.first() {
            if isr.len() == 3
                && answers
                    .iter()
                    .all(|a| a.as_ref().is_some_and(|(l, _)| l == leader))
            {
                return Ok(*leader);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{topic}-0: the nodes did not agree on a leader with a full ISR within {timeout:?}: {answers:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Unix seconds of an RFC 3339 UTC timestamp as the JSON logs write it
/// (`2026-11-23T23:31:40.899134Z`).
fn parse_ts(s: &str) -> Option<f64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let sec = t.next()?.parse::<f64>().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days as f64 * 86400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// One log event: node, unix seconds, message, fields.
struct Event {
    node: i32,
    at: f64,
    message: String,
    fields: serde_json::Value,
}

fn events(nodes: &[Node]) -> Vec<Event> {
    let mut out = Vec::new();
    for n in nodes {
        let Ok(text) = std::fs::read_to_string(n.log_path()) else {
            continue;
        };
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(at) = v["timestamp"].as_str().and_then(parse_ts) else {
                continue;
            };
            let fields = v["fields"].clone();
            let message = fields["message"].as_str().unwrap_or_default().to_string();
            out.push(Event {
                node: n.id,
                at,
                message,
                fields,
            });
        }
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}

/// The active controller as of now: the leader of the highest Raft term any node has logged a
/// committed vote for (openraft: "vote is changing from .. to T<term>-N<node>:committed"). Not
/// openraft's "become leader": a restarted former leader logs that again for its old term.
fn controller_leader(nodes: &[Node]) -> Option<i32> {
    events(nodes)
        .iter()
        .filter_map(|e| {
            let to = e
                .message
                .strip_prefix("vote is changing from ")?
                .split(" to ")
                .nth(1)?;
            let vote = to.strip_suffix(":committed")?.strip_prefix('T')?;
            let (term, node) = vote.split_once("-N")?;
            Some((term.parse::<u64>().ok()?, node.parse::<i32>().ok()?))
        })
        .max()
        .map(|(_, node)| node)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct Kill {
    killed: i32,
    was_controller: bool,
    failover_ms: f64,
    election_ms: Option<f64>,
    fenced_ms: Option<f64>,
    new_leader: Option<(i32, f64)>,
}

fn explain(
    nodes: &[Node],
    killed: i32,
    topic: &str,
    kill_at: f64,
    until: f64,
) -> (Option<f64>, Option<f64>, Option<(i32, f64)>) {
    let ev = events(nodes);
    let window = ev
        .iter()
        .filter(|e| e.at >= kill_at && e.at <= until + 5.0 && e.node != killed);
    let mut election = None;
    let mut fenced = None;
    let mut leader = None;
    let tp = format!("{topic}-0");
    for e in window {
        let ms = (e.at - kill_at) * 1000.0;
        if election.is_none() && e.message.starts_with("become leader") {
            election = Some(ms);
        }
        if fenced.is_none()
            && e.message.starts_with("broker lost")
            && e.fields["broker"].as_i64() == Some(killed as i64)
        {
            fenced = Some(ms);
        }
        if leader.is_none()
            && e.message == "leadership changed"
            && e.fields["tp"].as_str() == Some(tp.as_str())
            && e.fields["leader"].as_i64() == Some(e.node as i64)
        {
            leader = Some((e.node, ms));
        }
    }
    (election, fenced, leader)
}

fn run(args: &Args) -> Result<Vec<Kill>, String> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Node {
            id,
            port: free_port()?,
            controller_port: free_port()?,
            dir: args.dir.join(format!("node{id}")),
            child: None,
        });
    }
    let voters = nodes
        .iter()
        .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
        .collect::<Vec<_>>()
        .join(",");
    // Start the three together: the quorum needs two to answer.
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter_mut()
            .map(|n| s.spawn(|| n.start(args, &voters)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err("start thread panicked".into())))
            .collect::<Result<Vec<()>, String>>()
    })?;
    let bootstrap = nodes.iter().map(Node::addr).collect::<Vec<_>>().join(",");
    println!("cluster: {bootstrap}; logs under {}", args.dir.display());

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .map_err(|e| format!("admin: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    // Each round has its own topic, whose replica assignment puts the leader where the round
    // wants it (see `Placement`).
    let create = |name: &str, replicas: &[i32]| -> Result<(), String> {
        let assignment = [replicas];
        let topic = NewTopic::new(name, 1, TopicReplication::Variable(&assignment))
            .set("min.insync.replicas", "2");
        let created = rt
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .map_err(|e| format!("create {name}: {e}"))?;
        for r in created {
            r.map_err(|(t, e)| format!("create {t}: {e}"))?;
        }
        Ok(())
    };
    let warmup = "failover-warmup";
    create(warmup, &[1, 2, 3])?;
    wait_for_full_isr(&nodes, warmup, Duration::from_secs(60))?;
    let current = Arc::new(Mutex::new(warmup.to_string()));

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000");
    for (k, v) in &args.producer {
        config.set(k, v);
        if k == "debug" {
            // The rdkafka crate caps librdkafka's level at the `log` crate's; ask for all.
            config.set_log_level(RDKafkaLogLevel::Debug);
        }
    }
    let producer: Arc<ThreadedProducer<Reports>> = Arc::new(
        config
            .create_with_context(Reports {
                acks: Mutex::new(Vec::new()),
            })
            .map_err(|e| format!("producer: {e}"))?,
    );
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (producer, sent_at, stop, interval, current) = (
            producer.clone(),
            sent_at.clone(),
            stop.clone(),
            args.interval,
            current.clone(),
        );
        std::thread::spawn(move || {
            let payload = [b'x'; 100];
            // Bounded by `stop` and by one hour of sending.
            let end = Instant::now() + Duration::from_secs(3600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                let seq = {
                    let mut s = sent_at.lock().unwrap_or_else(|e| e.into_inner());
                    s.push(Instant::now());
                    s.len() - 1
                };
                let topic = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let rec = BaseRecord::<(), [u8], usize>::with_opaque_to(&topic, seq)
                    .partition(0)
                    .payload(&payload[..]);
                if let Err((e, _)) = producer.send(rec) {
                    if !matches!(
                        e,
                        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                    ) {
                        eprintln!("send {seq}: {e}");
                    }
                }
                std::thread::sleep(interval);
            }
        })
    };

    let mut kills = Vec::new();
    let result = (|| -> Result<(), String> {
        for round in 0..args.kills {
            // The victim leads the round's topic: the active controller itself in even rounds,
            // another node in odd ones (with `--placement` either only).
            let controller = controller_leader(&nodes).ok_or("no active controller in the logs")?;
            let colocated = match args.placement {
                Placement::Alternate => round % 2 == 0,
                Placement::Controller => true,
                Placement::Other => false,
            };
            let leader = if colocated {
                controller
            } else {
                controller % 3 + 1
            };
            let mut replicas = vec![leader];
            replicas.extend((1..=3).filter(|n| *n != leader));
            let topic = format!("failover-{}", round + 1);
            create(&topic, &replicas)?;
            let elected = wait_for_full_isr(&nodes, &topic, Duration::from_secs(60))?;
            if elected != leader {
                return Err(format!("{topic}-0: leader {elected}, wanted {leader}"));
            }
            *current.lock().unwrap_or_else(|e| e.into_inner()) = topic.clone();
            // Let the producer run steadily on the new topic before the kill.
            std::thread::sleep(Duration::from_secs(2));
            let was_controller = controller_leader(&nodes) == Some(leader);
            let node = nodes
                .iter_mut()
                .find(|n| n.id == leader)
                .ok_or(format!("leader {leader} is not a node of this cluster"))?;
            let kill_unix = unix_now();
            let kill_at = Instant::now();
            node.kill9();
            let first_seq_after = sent_at.lock().unwrap_or_else(|e| e.into_inner()).len();
            // The first record sent after the kill to be acknowledged.
            let deadline = kill_at + Duration::from_secs(60);
            let acked_at = loop {
                let found = producer
                    .context()
                    .acks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .find(|(seq, _, ok)| *ok && *seq >= first_seq_after)
                    .map(|(_, at, _)| *at);
                if let Some(at) = found {
                    break at;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "kill {round}: no record acknowledged within 60 s of killing node {leader}"
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let failover_ms = acked_at.duration_since(kill_at).as_secs_f64() * 1000.0;
            // Let the logs of the new leader settle, then restart the killed node.
            std::thread::sleep(Duration::from_millis(500));
            let until = kill_unix + failover_ms / 1000.0;
            let (election_ms, fenced_ms, new_leader) =
                explain(&nodes, leader, &topic, kill_unix, until);
            let k = Kill {
                killed: leader,
                was_controller,
                failover_ms,
                election_ms,
                fenced_ms,
                new_leader,
            };
            print_kill(round, &k);
            kills.push(k);
            let node = nodes
                .iter_mut()
                .find(|n| n.id == leader)
                .ok_or("killed node vanished")?;
            node.start(args, &voters)?;
            wait_for_full_isr(&nodes, &topic, Duration::from_secs(60))?;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let _ = producer.flush(Duration::from_secs(10));
    let acks = producer
        .context()
        .acks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let failed = acks.iter().filter(|(_, _, ok)| !ok).count();
    println!(
        "producer: {} records sent, {} acknowledged, {failed} failed",
        sent_at.lock().unwrap_or_else(|e| e.into_inner()).len(),
        acks.len() - failed
    );
    drop(nodes);
    result.map(|()| kills)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn print_kill(round: usize, k: &Kill) {
    println!(
        "kill {}: node {} (active controller: {}) -> failover {:.0} ms; \
         controller elected at {} ms, broker fenced at {} ms, new leader {} at {} ms",
        round + 1,
        k.killed,
        if k.was_controller { "yes" } else { "no" },
        k.failover_ms,
        ms(k.election_ms),
        ms(k.fenced_ms),
        k.new_leader.map_or("-".into(), |(n, _)| n.to_string()),
        ms(k.new_leader.map(|(_, t)| t)),
    );
}

/// min / median / max failover of `kills`.
fn summary<'a>(what: &str, kills: impl Iterator<Item = &'a Kill>) {
    let mut t: Vec<f64> = kills.map(|k| k.failover_ms).collect();
    t.sort_by(f64::total_cmp);
    let (Some(min), Some(max)) = (t.first(), t.last()) else {
        return;
    };
    let median = if t.len() % 2 == 1 {
        t[t.len() / 2]
    } else {
        (t[t.len() / 2 - 1] + t[t.len() / 2]) / 2.0
    };
    println!(
        "failover, {what} ({} kills): min {min:.0} ms, median {median:.0} ms, max {max:.0} ms",
        t.len()
    );
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("failover: {e}");
            }
            eprintln!(
                "usage: failover [--broker-bin PATH] [--kills N] [--placement alternate|controller|other] [--interval-ms MS] [--dir DIR] \
                 [--keep] [--set key=value]... [--producer key=value]..."
            );
            return ExitCode::from(2);
        }
    };
    if !args.broker_bin.exists() {
        eprintln!(
            "failover: {} not found (cargo build --release --bin strata, or --broker-bin)",
            args.broker_bin.display()
        );
        return ExitCode::from(2);
    }
    let result = run(&args);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    match result {
        Ok(kills) => {
            summary("all kills", kills.iter());
            summary(
                "leader was the active controller",
                kills.iter().filter(|k| k.was_controller),
            );
            summary(
                "leader was not the active controller",
                kills.iter().filter(|k| !k.was_controller),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("failover: {e}");
            if args.keep {
                eprintln!("logs kept under {}", Path::new(&args.dir).display());
            }
            ExitCode::FAILURE
        }
    }
}
