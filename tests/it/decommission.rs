//! Growing, draining and replacing nodes (issue 17, items 1, 2 and 4) under an acks=all
//! idempotent load: a broker-only 4th node joins and becomes a voter, node 2 is decommissioned
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
    wait_acked(&acked, 200, "at the start");

    // 1. A broker-only 4th node joins and becomes a voter.
    c.nodes.push(start_broker_only(&c, 4));
    c.wait_for_brokers(4);
    let (ok, text) = strata_cluster(&c.bootstrap(), &["add-voter", "4"]);
    assert!(ok, "add-voter 4: {text}");

    // 2. Decommission node 2: the CLI waits until it holds nothing.
    let drain_started = Instant::now();
    let (ok, text) = strata_cluster(&c.bootstrap(), &["decommission", "2"]);
    assert!(ok, "decommission 2: {text}");
    let drained_in = drain_started.elapsed();
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
    let acked = acked.lock().unwrap().clone();
    let read = read_all(&bootstrap, topic, 4);
    let lost: Vec<_> = acked.difference(&read).take(10).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    let (_, text) = strata_cluster(&bootstrap, &["describe"]);
    eprintln!(
        "decommission: {} records acknowledged through add, drain and replacement, none lost; \
         node 2 drained in {drained_in:?}, node 3's replicas rebuilt in {replaced_in:?}\n{text}",
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
