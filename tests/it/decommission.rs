//! Growing, draining and replacing nodes (issue 17, items 1, 2 and 4) under an acks=all
//! idempotent load and a tailing consumer: a broker-only 4th node joins and becomes a voter,
//! `strata cluster rebalance` moves replicas onto it, node 2 is decommissioned
//! (its replicas move, each new copy joining the ISR before the old one leaves) and removed as
//! a voter; then node 3 loses its disk for good and a node with a new id (5) takes its place:
//! voter 3 is forgotten, 5 becomes a voter and node 3's replicas are rebuilt on live brokers.
//! No acknowledged record is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{
    create_replicated, metadata, read_all, start_producing, wait_for_isr, Cluster,
};
use crate::voters::{create_topic, role_of, start_broker_only, strata_cluster};

/// The longest time without progress while a window is open, and when it ended.
#[derive(Default)]
struct Gap {
    last: Option<Instant>,
    longest: Duration,
    ended: Option<Instant>,
    closed: bool,
}

impl Gap {
    fn progress(&mut self, now: Instant) {
        if let (Some(last), false) = (self.last, self.closed) {
            if now - last > self.longest {
                self.longest = now - last;
                self.ended = Some(now);
            }
        }
        self.last = Some(now);
    }

    /// Closes the window: the longest gap (the time since the last progress counts too).
    fn close(&mut self) -> Duration {
        self.closed = true;
        let since = self.last.map_or(Duration::MAX, |l| l.elapsed());
        self.longest.max(since)
    }
}

/// A tailing consumer of `topic` and a watch on the producer's acknowledgements, each
/// keeping its longest gap: a consumer that receives nothing while the producer's records
/// are acknowledged is stalled by the cluster, not by the producer.
struct Tail {
    handles: Vec<std::thread::JoinHandle<()>>,
    consumer: Arc<std::sync::Mutex<Gap>>,
    producer: Arc<std::sync::Mutex<Gap>>,
}

impl Tail {
    fn start(
        bootstrap: String,
        topic: &'static str,
        partitions: i32,
        acked: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
        stop: Arc<AtomicBool>,
    ) -> Tail {
        let consumer = Arc::<std::sync::Mutex<Gap>>::default();
        let producer = Arc::<std::sync::Mutex<Gap>>::default();
        let (out, stop2) = (Arc::clone(&consumer), stop.clone());
        let consume = std::thread::spawn(move || {
            use rdkafka::consumer::Consumer;
            let c = crate::kafka::consumer(&bootstrap);
            let mut tpl = rdkafka::TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
                    .expect("offset");
            }
            c.assign(&tpl).expect("assign");
            // Bounded: the test stops it, and it never outlives 10 minutes.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                    out.lock().unwrap().progress(Instant::now());
                }
            }
        });
        let out = Arc::clone(&producer);
        let watch = std::thread::spawn(move || {
            let (mut seen, deadline) = (0, Instant::now() + Duration::from_secs(600));
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                let n = acked.lock().unwrap().len();
                if n > seen {
                    seen = n;
                    out.lock().unwrap().progress(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Tail {
            handles: vec![consume, watch],
            consumer,
            producer,
        }
    }

    /// Closes both windows: (consumer's longest gap and when it ended, producer's).
    fn close(&self, t0: Instant) -> String {
        let ended = |g: &Gap| g.ended.map_or(-1.0, |e| (e - t0).as_secs_f64());
        let mut c = self.consumer.lock().unwrap();
        let mut p = self.producer.lock().unwrap();
        let (cg, pg) = (c.close(), p.close());
        format!(
            "consumer {cg:?} (ending at {:.1} s), producer acks {pg:?} (ending at {:.1} s)",
            ended(&c),
            ended(&p)
        )
    }

    fn consumer_gap(&self) -> Duration {
        let g = self.consumer.lock().unwrap();
        g.longest.max(g.last.map_or(Duration::MAX, |l| l.elapsed()))
    }
}

/// Replicas of `topic` on each broker.
fn replica_counts(bootstrap: &str, topic: &str) -> std::collections::BTreeMap<i32, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (_, replicas, _) in metadata(bootstrap, Some(topic)).partitions.values() {
        for r in replicas {
            *counts.entry(*r).or_default() += 1;
        }
    }
    counts
}

/// Waits until no partition of `topic` lists `node` and each has 3 in-sync replicas.
fn wait_drained(bootstrap: &str, topic: &str, node: i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let md = metadata(bootstrap, Some(topic));
        let done = !md.partitions.is_empty()
            && md.partitions.values().all(|(l, replicas, isr)| {
                *l >= 0 && !replicas.contains(&node) && replicas.len() == 3 && isr.len() == 3
            });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: node {node} not drained: {:?}",
            md.partitions
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the acknowledged count passes `n` (the load goes on).
fn wait_acked(acked: &std::sync::Mutex<std::collections::BTreeSet<String>>, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "no produce progress {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_added_drained_and_replaced_with_a_new_id_without_loss() {
    let mut c = Cluster::start(3, &[]);
    let topic = "elastic";
    create_replicated(&c.bootstrap(), topic, 4, &[("min.insync.replicas", "2")]).await;
    wait_for_isr(&c, topic, 3, Duration::from_secs(20));
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, acked) = start_producing(c.bootstrap(), topic, stop.clone(), 400_000);
    let t0 = Instant::now();
    let tail = Tail::start(c.bootstrap(), topic, 4, acked.clone(), stop.clone());
    wait_acked(&acked, 200, "at the start");

    // 1. A broker-only 4th node joins and becomes a voter.
    c.nodes.push(start_broker_only(&c, 4));
    c.wait_for_brokers(4);
    let (ok, text) = strata_cluster(&c.bootstrap(), &["add-voter", "4"]);
    assert!(ok, "add-voter 4: {text}");
    eprintln!(
        "decommission: node 4 a voter at {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // 1b. Rebalance: node 4 holds nothing yet; the plan evens replicas and leaders out.
    let (ok, text) = strata_cluster(&c.bootstrap(), &["rebalance"]);
    assert!(ok, "rebalance: {text}");
    assert!(text.contains("done in"), "{text}");
    eprintln!(
        "decommission: rebalanced at {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Balanced over all topics (what the plan counts): a second plan moves nothing.
    let (ok, again) = strata_cluster(&c.bootstrap(), &["rebalance", "--dry-run"]);
    assert!(
        ok && again.contains("balanced: nothing to move"),
        "{again}\n{text}"
    );
    wait_for_isr(&c, topic, 3, Duration::from_secs(30));

    // 2. Decommission node 2: the CLI waits until it holds nothing.
    let drain_started = Instant::now();
    let (ok, text) = strata_cluster(&c.bootstrap(), &["decommission", "2"]);
    assert!(ok, "decommission 2: {text}");
    let drained_in = drain_started.elapsed();
    eprintln!(
        "decommission: node 2 drained at {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(text.contains("holds no replicas"), "{text}");
    wait_drained(&c.bootstrap(), topic, 2);
    // Node 2 deletes its local copies once it sees they moved.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..4).any(|p| c.nodes[1].data.join(format!("{topic}-{p}")).exists()) {
        assert!(
            Instant::now() < deadline,
            "node 2 kept local copies of partitions it no longer holds"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let n = acked.lock().unwrap().len();
    wait_acked(&acked, n + 200, "after draining node 2");
    // New topics avoid it.
    create_replicated(&c.bootstrap(), "after-drain", 6, &[]).await;
    let md = wait_for_isr(&c, "after-drain", 3, Duration::from_secs(20));
    assert!(
        md.partitions.values().all(|(_, r, _)| !r.contains(&2)),
        "a new topic was placed on the decommissioned node: {:?}",
        md.partitions
    );

    // 3. Remove node 2 as a voter, stop it, and forget it.
    let (ok, text) = strata_cluster(&c.bootstrap(), &["remove-voter", "2"]);
    assert!(ok, "remove-voter 2: {text}");
    c.node(2).stop();
    let live = |c: &Cluster, ids: &[i32]| {
        ids.iter()
            .map(|i| c.nodes[(*i - 1) as usize].addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    };
    let (ok, text) = strata_cluster(&live(&c, &[1, 3, 4]), &["remove-voter", "2", "--forget"]);
    assert!(ok, "remove-voter 2 --forget: {text}");
    let n = acked.lock().unwrap().len();
    wait_acked(&acked, n + 200, "after removing node 2");
    // The tailing consumer kept receiving through add, rebalance, drain and removal. The
    // bound only catches a stuck consumer; the measured gap is printed below.
    let stall = tail.consumer_gap();
    let gaps = tail.close(t0);
    eprintln!("decommission: longest gaps through add, rebalance, drain and removal: {gaps}");
    assert!(
        stall < Duration::from_secs(30),
        "the tailing consumer received nothing for {stall:?}: {gaps}"
    );
    let counts = replica_counts(&c.bootstrap(), topic);
    assert!(
        counts.keys().eq([1, 3, 4].iter()) && counts.values().all(|n| *n == 4),
        "not balanced after draining node 2: {counts:?}"
    );

    // 4. Node 3's disk is gone for good; node 5 (a new id) takes its place.
    c.node(3).kill9();
    std::fs::remove_dir_all(&c.nodes[2].data).expect("wipe node 3");
    let before = acked.lock().unwrap().len();
    c.nodes.push(start_broker_only(&c, 5));
    let bootstrap = live(&c, &[1, 4, 5]);
    let (ok, text) = strata_cluster(&bootstrap, &["remove-voter", "3", "--forget"]);
    assert!(ok, "remove-voter 3 --forget: {text}");
    let (ok, text) = strata_cluster(&bootstrap, &["add-voter", "5"]);
    assert!(ok, "add-voter 5: {text}");
    let replace_started = Instant::now();
    let (ok, text) = strata_cluster(&bootstrap, &["decommission", "3"]);
    assert!(ok, "decommission 3: {text}");
    wait_drained(&bootstrap, topic, 3);
    let replaced_in = replace_started.elapsed();
    wait_acked(&acked, before + 200, "after replacing node 3 with node 5");
    for (node, role) in [(1, "voter"), (4, "voter"), (5, "voter")] {
        assert!(
            role_of(&bootstrap, node).starts_with(role),
            "node {node} is not a {role}"
        );
    }
    // The new quorum {1,4,5} commits with one of them down.
    c.node(4).kill9();
    let (ok, text) = strata_cluster(&live(&c, &[1, 5]), &["describe"]);
    assert!(ok, "{text}");
    create_topic(&live(&c, &[1, 5]), "quorum-of-1-and-5")
        .await
        .expect("voters 1 and 5 of {1,4,5} could not commit");
    c.node(4).start_again();
    wait_for_isr_on(&bootstrap, topic);

    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    for h in tail.handles {
        h.join().expect("tailing consumer");
    }
    let acked = acked.lock().unwrap().clone();
    let read = read_all(&bootstrap, topic, 4);
    let lost: Vec<_> = acked.difference(&read).take(10).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    let (_, text) = strata_cluster(&bootstrap, &["describe"]);
    eprintln!(
        "decommission: {} records acknowledged through add, rebalance, drain and replacement, \
         none lost; the tailing consumer's longest gap through add, rebalance, drain and voter \
         removal {gaps}; node 2 drained in {drained_in:?}, node 3's replicas rebuilt in \
         {replaced_in:?}\n{text}",
        acked.len()
    );
}

/// Waits until every partition of `topic` has 3 in-sync replicas again.
fn wait_for_isr_on(bootstrap: &str, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let md = metadata(bootstrap, Some(topic));
        if !md.partitions.is_empty()
            && md
                .partitions
                .values()
                .all(|(l, _, i)| *l >= 0 && i.len() == 3)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{topic}: {:?}", md.partitions);
        std::thread::sleep(Duration::from_millis(200));
    }
}
