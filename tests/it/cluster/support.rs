//! The three-node cluster harness the cluster tests share, and other test modules import
//! through `crate::cluster` (re-exported there): start and restart nodes, wait for metadata
//! and the ISR, produce (acks=all) and read back, send signals.
//!
//! Kept apart from the tests in `cluster.rs` so that file holds scenarios only and the
//! helpers many modules use are found in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;

use crate::harness::Broker;
use crate::kafka;

pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Broker>,
    /// `controller.quorum.voters` of the nodes.
    pub(crate) voters: String,
}

pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Cluster {
    /// `n` nodes with node ids 1..=n, each serving the controller quorum on its own port.
    pub(crate) fn start(n: usize, extra: &[(&str, &str)]) -> Cluster {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let handles: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let mut settings: Vec<(String, String)> = vec![
                    ("node.id".into(), (i + 1).to_string()),
                    ("controller.quorum.voters".into(), voters.clone()),
                    (
                        "listeners".into(),
                        format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
                    ),
                    ("group.initial.rebalance.delay.ms".into(), "0".into()),
                ];
                settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                std::thread::spawn(move || {
                    let s: Vec<(&str, &str)> = settings
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    Broker::start(&s)
                })
            })
            .collect();
        let nodes = handles
            .into_iter()
            .map(|h| h.join().expect("node start"))
            .collect();
        let c = Cluster { nodes, voters };
        c.wait_for_brokers(n);
        c
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| !n.addr.is_empty())
            .map(|n| n.addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until Metadata lists `n` live brokers.
    pub(crate) fn wait_for_brokers(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let md = metadata(&self.bootstrap(), None);
            if md.brokers.len() == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not list {n} brokers: {:?}",
                md.brokers
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Prints the cluster-related lines of every node's log (for a failing test).
    fn dump_logs(&self) {
        const WANTED: &[&str] = &[
            "fenc",
            "ISR",
            "leadership",
            "truncat",
            "replica fetch",
            "refused",
            "WARN",
            "ERROR",
        ];
        for (i, n) in self.nodes.iter().enumerate() {
            eprintln!("--- node {} log (cluster lines)", i + 1);
            for l in n
                .log()
                .lines()
                .filter(|l| WANTED.iter().any(|w| l.contains(w)))
            {
                eprintln!("{l}");
            }
        }
    }

    pub(crate) fn node(&mut self, id: i32) -> &mut Broker {
        &mut self.nodes[(id - 1) as usize]
    }
}

/// Brokers and, for `topic`, each partition's (leader, replicas, isr).
pub(crate) struct Md {
    pub(crate) brokers: Vec<i32>,
    pub(crate) partitions: BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)>,
}

pub(crate) fn metadata(bootstrap: &str, topic: Option<&str>) -> Md {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = kafka::config(bootstrap).create().expect("client");
    let md = c
        .fetch_metadata(topic, Duration::from_secs(10))
        .expect("metadata");
    let mut partitions = BTreeMap::new();
    for t in md.topics() {
        for p in t.partitions() {
            partitions.insert(
                p.id(),
                (p.leader(), p.replicas().to_vec(), p.isr().to_vec()),
            );
        }
    }
    Md {
        brokers: md.brokers().iter().map(|b| b.id()).collect(),
        partitions,
    }
}

pub(crate) async fn create_replicated(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin = kafka::admin(bootstrap);
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(3));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    for r in admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
    }
}

/// Waits until every partition of `topic` has a leader and `isr` in-sync replicas.
pub(crate) fn wait_for_isr(c: &Cluster, topic: &str, isr: usize, timeout: Duration) -> Md {
    let deadline = Instant::now() + timeout;
    loop {
        let md = metadata(&c.bootstrap(), Some(topic));
        if !md.partitions.is_empty()
            && md
                .partitions
                .values()
                .all(|(l, _, i)| *l >= 0 && i.len() >= isr)
        {
            return md;
        }
        if Instant::now() >= deadline {
            c.dump_logs();
            panic!("{topic}: ISR did not reach {isr}: {:?}", md.partitions);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The concatenated `.log` bytes of one partition directory, in offset order.
pub(crate) fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// A producer that sends `value-i` records without pause until stopped, and remembers which
/// were acknowledged.
pub(crate) fn start_producing(
    bootstrap: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
    max_records: u64,
) -> (std::thread::JoinHandle<()>, Arc<Mutex<BTreeSet<String>>>) {
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let out = acked.clone();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let p: FutureProducer = kafka::producer(
                &bootstrap,
                &[
                    ("acks", "all"),
                    ("enable.idempotence", "true"),
                    ("message.timeout.ms", "60000"),
                    ("linger.ms", "2"),
                ],
            );
            let mut i = 0u64;
            // Bounded by `max_records`, paced so that the run spans the kills.
            while !stop.load(Ordering::Relaxed) && i < max_records {
                tokio::time::sleep(Duration::from_millis(25)).await;
                let mut futures = Vec::new();
                for _ in 0..50 {
                    let v = format!("value-{i}");
                    i += 1;
                    let sent = p
                        .send_result(FutureRecord::<(), _>::to(topic).payload(&v))
                        .ok();
                    if let Some(f) = sent {
                        futures.push((v.clone(), f));
                    }
                }
                for (v, f) in futures {
                    match f.await {
                        Ok(Ok(_)) => {
                            acked.lock().unwrap().insert(v);
                        }
                        Ok(Err((e, _))) => eprintln!("delivery of {v} failed: {e}"),
                        Err(_) => eprintln!("delivery of {v} cancelled"),
                    }
                }
            }
        });
    });
    (h, out)
}

/// Every value in the topic, read from the current leaders until 3 s pass without a record.
pub(crate) fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> BTreeSet<String> {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    let c = kafka::consumer(bootstrap);
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    c.assign(&tpl).expect("assign");
    let mut out = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle_since = Instant::now();
                if let Some(v) = m.payload() {
                    out.insert(String::from_utf8_lossy(v).to_string());
                }
            }
            Some(Err(e)) => eprintln!("consume {topic}: {e}"),
            None => {}
        }
    }
    out
}

pub(crate) fn signal(node: &Broker, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(node.pid().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// Produces `n` records to `partition` with acks=all and returns how many were acknowledged.
pub(crate) async fn produce_acks_all(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    n: usize,
) -> usize {
    let p = kafka::producer(
        bootstrap,
        &[("acks", "all"), ("message.timeout.ms", "30000")],
    );
    let mut ok = 0;
    for i in 0..n {
        let v = format!("v{i}");
        let r = p
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&v),
                Duration::from_secs(30),
            )
            .await;
        if r.is_ok() {
            ok += 1;
        }
    }
    ok
}
