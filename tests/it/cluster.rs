//! Three `strata` processes on 127.0.0.1 forming one cluster (each broker and controller):
//! replication with acks=all, leader kill -9 and restart, SIGSTOP, and losing the quorum.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::FutureRecord;

use crate::harness::Broker;
use crate::kafka;

// The shared harness lives in `cluster/support.rs`; re-exported so `crate::cluster::X` stays
// the path other test modules use.
mod support;
pub(crate) use support::{
    create_replicated, free_port, log_bytes, metadata, produce_acks_all, read_all, signal,
    start_producing, wait_for_isr, Cluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_survives_leader_kills_and_replicas_converge() {
    let mut c = Cluster::start(3, &[]);
    let topic = "replicated";
    create_replicated(&c.bootstrap(), topic, 3, &[("min.insync.replicas", "2")]).await;
    let md = wait_for_isr(&c, topic, 3, Duration::from_secs(20));
    for (leader, replicas, _) in md.partitions.values() {
        assert_eq!(replicas.len(), 3);
        assert!(replicas.contains(leader));
    }

    // Kill the leader of each partition in turn; CLUSTER_KILL_CYCLES runs more (bounded) cycles.
    let wanted: usize = std::env::var("CLUSTER_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .clamp(1, 50);
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, acked) =
        start_producing(c.bootstrap(), topic, stop.clone(), 30_000 * wanted as u64);
    let watch = watch_metadata(c.bootstrap(), topic, stop.clone());
    let mut cycles = 0;
    for p in (0..3).cycle().take(wanted) {
        std::thread::sleep(Duration::from_millis(1500));
        let md = wait_for_isr(&c, topic, 2, Duration::from_secs(30));
        let leader = md.partitions[&p].0;
        let before = acked.lock().unwrap().len();
        c.node(leader).kill9();
        // The survivors elect a new leader and keep acknowledging.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().len() < before + 200 {
            assert!(
                Instant::now() < deadline,
                "no progress after killing node {leader}: {} acknowledged, {before} before",
                acked.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c.node(leader).start_again();
        cycles += 1;
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let (answers, unlisted) = watch.join().expect("metadata watch");
    assert!(answers > 0, "no Metadata answer during the kills");
    assert!(
        unlisted.is_empty(),
        "{} of {answers} Metadata answers named a leader missing from their broker list, e.g. {:?}",
        unlisted.len(),
        unlisted.first()
    );
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 600,
        "only {} records acknowledged",
        acked.len()
    );

    // Every acknowledged record is readable after the failovers.
    wait_for_isr(&c, topic, 3, Duration::from_secs(60));
    let read = read_all(&c.bootstrap(), topic, 3);
    let lost: Vec<_> = acked.difference(&read).take(10).collect();
    assert!(
        lost.is_empty(),
        "acknowledged records lost after {cycles} kill cycles: {lost:?}"
    );

    // The three replicas of each partition converge byte for byte.
    for p in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs: Vec<Vec<u8>> = c
                .nodes
                .iter()
                .map(|n| log_bytes(&n.data.join(format!("{topic}-{p}"))))
                .collect();
            if logs.iter().all(|l| *l == logs[0]) && !logs[0].is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{topic}-{p}: replicas differ: {:?} bytes",
                logs.iter().map(Vec::len).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!(
        "cluster: {cycles} leader kill cycles, {} records acknowledged, none lost; \
         {answers} Metadata answers, every leader listed",
        acked.len()
    );
}

/// Asks for `topic`'s metadata without pause until `stop`, through the fences and elections
/// of a failover: (answers, answers naming a leader that is not in their broker list). Kafka
/// never names such a leader, and a client that gets one may stop sending (kafka-python).
fn watch_metadata(
    bootstrap: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    std::thread::spawn(move || {
        let client: BaseConsumer = kafka::config(&bootstrap).create().expect("client");
        let (mut answers, mut unlisted) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let Ok(md) = client.fetch_metadata(Some(topic), Duration::from_secs(2)) else {
                continue;
            };
            answers += 1;
            let brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
            for p in md.topics().iter().flat_map(|t| t.partitions()) {
                if p.leader() >= 0 && !brokers.contains(&p.leader()) {
                    unlisted.push(format!(
                        "partition {} leader {} brokers {brokers:?}",
                        p.id(),
                        p.leader()
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (answers, unlisted)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_follower_is_fenced_then_rejoins() {
    let mut c = Cluster::start(3, &[]);
    let topic = "paused";
    create_replicated(&c.bootstrap(), topic, 1, &[("min.insync.replicas", "2")]).await;
    let md = wait_for_isr(&c, topic, 3, Duration::from_secs(20));
    let (leader, replicas, _) = md.partitions[&0].clone();
    let follower = *replicas.iter().find(|r| **r != leader).expect("a follower");
    assert_eq!(produce_acks_all(&c.bootstrap(), topic, 0, 20).await, 20);
    let leader_metrics = c.node(leader).metrics_addr.clone();
    wait_under_replicated(&leader_metrics, |n| n == 0.0);

    // SIGSTOP stands for a network partition: the node neither answers nor dies.
    signal(c.node(follower), "STOP");
    let started = Instant::now();
    // acks=all goes on once the controller fences the silent follower out of the ISR.
    assert_eq!(produce_acks_all(&c.bootstrap(), topic, 0, 20).await, 20);
    let waited = started.elapsed();
    let md = wait_for_isr(&c, topic, 2, Duration::from_secs(20));
    assert!(
        !md.partitions[&0].2.contains(&follower),
        "{:?}",
        md.partitions
    );
    assert!(
        !md.brokers.contains(&follower),
        "paused broker still listed: {:?}",
        md.brokers
    );
    // The leader counts the partitions it leads with a shrunken ISR: this one, and any
    // `__consumer_offsets` partition it leads, whose ISR lost the same follower.
    wait_under_replicated(&leader_metrics, |n| n >= 1.0);

    signal(c.node(follower), "CONT");
    // It is unfenced, catches up and rejoins the ISR; its log matches the leader's.
    let md = wait_for_isr(&c, topic, 3, Duration::from_secs(30));
    assert!(md.partitions[&0].2.contains(&follower));
    wait_under_replicated(&leader_metrics, |n| n == 0.0);
    let leader_dir = c.node(leader).data.join(format!("{topic}-0"));
    let follower_dir = c.node(follower).data.join(format!("{topic}-0"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_bytes(&leader_dir) != log_bytes(&follower_dir) {
        assert!(
            Instant::now() < deadline,
            "paused follower did not converge"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("cluster: acks=all resumed {waited:?} after pausing follower {follower}");
}

/// Waits until the node's `strata_under_replicated_partitions` satisfies `want` (the ISR
/// change reaches the leader's metadata a moment after Metadata shows it).
fn wait_under_replicated(metrics_addr: &str, want: fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = crate::metrics::scrape(metrics_addr, "/metrics");
        let got = crate::metrics::sample(&body, "strata_under_replicated_partitions");
        if got.is_some_and(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "strata_under_replicated_partitions is {got:?}, not what the test waits for"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_quorum_refuses_clearly_then_recovers() {
    let mut c = Cluster::start(3, &[]);
    let topic = "quorum";
    create_replicated(&c.bootstrap(), topic, 1, &[("min.insync.replicas", "2")]).await;
    let md = wait_for_isr(&c, topic, 3, Duration::from_secs(20));
    let survivor = md.partitions[&0].0;
    let others: Vec<i32> = (1..=3).filter(|n| *n != survivor).collect();
    for n in &others {
        c.node(*n).kill9();
    }
    let bootstrap = c.node(survivor).addr.clone();

    // Metadata changes need a majority: CreateTopics fails with a timeout, not a hang.
    let admin = kafka::admin(&bootstrap);
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let t = NewTopic::new("needs-quorum", 1, TopicReplication::Fixed(1));
    let started = Instant::now();
    let res = admin.create_topics([&t], &opts).await;
    let errors: Vec<String> = match res {
        Err(e) => vec![e.to_string()],
        Ok(rs) => rs
            .into_iter()
            .map(|r| match r {
                Ok(t) => panic!("topic {t} created without a quorum"),
                Err((_, e)) => format!("{e:?}"),
            })
            .collect(),
    };
    eprintln!("cluster: CreateTopics without a quorum: {errors:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        errors.iter().all(|e| e.contains("RequestTimedOut")),
        "{errors:?}"
    );
    // acks=all cannot be confirmed by a lone replica whose peers were never fenced.
    let p = kafka::producer(
        &bootstrap,
        &[("acks", "all"), ("message.timeout.ms", "5000")],
    );
    let r = p
        .send(
            FutureRecord::<(), _>::to(topic)
                .partition(0)
                .payload("lonely"),
            Duration::from_secs(10),
        )
        .await;
    assert!(r.is_err(), "acks=all acknowledged by a lone replica");

    for n in &others {
        c.node(*n).start_again();
    }
    c.wait_for_brokers(3);
    let res = admin
        .create_topics([&t], &opts)
        .await
        .expect("create after recovery");
    // The timed-out proposal may have committed once the quorum was back, as Kafka warns
    // for a timed-out CreateTopics; either way the topic exists now.
    for r in res {
        if let Err((t, e)) = r {
            assert_eq!(
                e,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "{t}"
            );
        }
    }
    wait_for_isr(&c, "needs-quorum", 1, Duration::from_secs(30));
    wait_for_isr(&c, topic, 3, Duration::from_secs(30));
    assert_eq!(produce_acks_all(&c.bootstrap(), topic, 0, 10).await, 10);
}

/// The settings the Terraform module writes to each node's strata.toml
/// (`terraform/modules/strata-cluster/instances.tf`, `strata_settings`), with loopback values:
/// every key Terraform writes must be one the binary accepts, and together they form a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_node_settings_form_a_cluster() {
    let tf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/terraform/modules/strata-cluster/instances.tf"
    ))
    .expect("instances.tf");
    let block = tf
        .split("strata_settings = [")
        .nth(1)
        .and_then(|b| b.split("\n  ]").next())
        .expect("strata_settings block");
    let keys: Vec<String> = block
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split_once('"').map(|(k, _)| k.to_string()))
        .collect();
    assert!(keys.len() >= 8, "parsed keys: {keys:?}");
    let bucket = tempfile::tempdir().expect("bucket dir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let toml: String = keys
                .iter()
                .filter_map(|k| {
                    let v = match k.as_str() {
                        "node.id" => (i + 1).to_string(),
                        "process.roles" => "broker,controller".into(),
                        "listeners" => format!(
                            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
                            ports[i]
                        ),
                        // Derived from the bound port on loopback.
                        "advertised.listeners" => return None,
                        "controller.listener.names" => "CONTROLLER".into(),
                        "controller.quorum.voters" => voters.clone(),
                        // The harness sets these to the test's own dir and an ephemeral port.
                        "log.dirs" | "metrics.listener" => return None,
                        "remote.storage.url" => format!("file://{}", bucket.path().display()),
                        "default.replication.factor" => "3".into(),
                        "min.insync.replicas" => "2".into(),
                        other => {
                            panic!("Terraform writes `{other}`: give it a loopback value here")
                        }
                    };
                    Some(format!("{} = {}\n", serde_json_str(k), serde_json_str(&v)))
                })
                .collect();
            let listeners = format!(
                "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
                ports[i]
            );
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().expect("config dir");
                let path = dir.path().join("strata.toml");
                std::fs::write(&path, toml).expect("write strata.toml");
                // The harness's own --set listeners would drop the controller listener.
                let b = Broker::start_with_env(
                    &[("listeners", listeners.as_str())],
                    &[("STRATA_CONFIG", path.to_str().expect("utf-8 path"))],
                );
                (b, dir)
            })
        })
        .collect();
    let started: Vec<(Broker, tempfile::TempDir)> = handles
        .into_iter()
        .map(|h| h.join().expect("node"))
        .collect();
    let c = Cluster {
        nodes: started.into_iter().map(|(b, _)| b).collect(),
        voters: voters.clone(),
    };
    c.wait_for_brokers(3);
    // default.replication.factor=3 from the file: an auto-created topic has 3 replicas.
    assert_eq!(
        produce_acks_all(&c.bootstrap(), "from-terraform", 0, 10).await,
        10
    );
    let md = wait_for_isr(&c, "from-terraform", 3, Duration::from_secs(20));
    assert_eq!(md.partitions[&0].1.len(), 3);
}

/// A TOML basic string with JSON escaping, as Terraform's `jsonencode` writes it.
fn serde_json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leadership_and_min_insync_is_enforced() {
    let mut c = Cluster::start(3, &[]);
    create_replicated(&c.bootstrap(), "strict", 1, &[("min.insync.replicas", "3")]).await;
    let md = wait_for_isr(&c, "strict", 3, Duration::from_secs(20));
    let leader = md.partitions[&0].0;
    assert_eq!(produce_acks_all(&c.bootstrap(), "strict", 0, 5).await, 5);

    // SIGTERM: the node fences itself before it stops, so by the time it has exited the
    // partition already has a new leader and the node is no longer listed.
    c.node(leader).stop();
    assert!(
        c.node(leader)
            .log()
            .contains("controlled shutdown: moving leadership away"),
        "no controlled shutdown in the log"
    );
    let survivors: Vec<String> = c
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 + 1 != leader)
        .map(|(_, n)| n.addr.clone())
        .collect();
    let md = metadata(&survivors.join(","), Some("strict"));
    assert!(!md.brokers.contains(&leader), "{:?}", md.brokers);
    let (new_leader, _, isr) = md.partitions[&0].clone();
    assert_ne!(new_leader, leader);
    assert_eq!(isr.len(), 2, "{isr:?}");

    // Two in-sync replicas < min.insync.replicas=3: acks=all is refused, acks=1 is not.
    let p = kafka::producer(
        &survivors.join(","),
        &[
            ("acks", "all"),
            ("retries", "0"),
            ("message.timeout.ms", "10000"),
        ],
    );
    let err = p
        .send(
            FutureRecord::<(), _>::to("strict")
                .partition(0)
                .payload("x"),
            Duration::from_secs(10),
        )
        .await
        .expect_err("acks=all with too few in-sync replicas");
    assert_eq!(
        err.0.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::NotEnoughReplicas),
        "{err:?}"
    );
    let p1 = kafka::producer(&survivors.join(","), &[("acks", "1")]);
    p1.send(
        FutureRecord::<(), _>::to("strict")
            .partition(0)
            .payload("y"),
        Duration::from_secs(10),
    )
    .await
    .expect("acks=1 still works");

    // Back: it rejoins the ISR and acks=all works again.
    c.node(leader).start_again();
    wait_for_isr(&c, "strict", 3, Duration::from_secs(30));
    assert_eq!(produce_acks_all(&c.bootstrap(), "strict", 0, 5).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_leader_election_only_when_enabled() {
    let mut c = Cluster::start(3, &[]);
    for (topic, unclean) in [("clean", "false"), ("unclean", "true")] {
        let admin = kafka::admin(&c.bootstrap());
        // Two replicas on nodes 1 and 2, preferred leader 1.
        let t = NewTopic::new(topic, 1, TopicReplication::Variable(&[&[1, 2]]))
            .set("unclean.leader.election.enable", unclean);
        for r in admin
            .create_topics([&t], &AdminOptions::new())
            .await
            .expect("create_topics")
        {
            r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
        }
        wait_for_isr(&c, topic, 2, Duration::from_secs(20));
    }
    // Follower 2 dies and is fenced out of the ISR; then leader 1 dies: no in-sync replica.
    c.node(2).kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metadata(&c.bootstrap(), Some("clean")).partitions[&0].2 != vec![1] {
        assert!(
            Instant::now() < deadline,
            "follower 2 not removed from the ISR"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    c.node(1).kill9();
    c.node(2).start_again();
    // Only the topic that allows it elects the out-of-sync replica.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unclean = metadata(&c.bootstrap(), Some("unclean")).partitions[&0].clone();
        if unclean.0 == 2 {
            assert_eq!(unclean.2, vec![2]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no unclean election: {unclean:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let clean = metadata(&c.bootstrap(), Some("clean")).partitions[&0].clone();
    assert_eq!(
        clean.0, -1,
        "a clean topic elected an out-of-sync leader: {clean:?}"
    );
    assert!(
        c.nodes
            .iter()
            .any(|n| n.log().contains("unclean leader election")),
        "no node logged the unclean election"
    );
}
