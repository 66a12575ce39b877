//! The partition-health gauges of a 3-node cluster (issue 17, item 6): under-replicated and
//! under-min-ISR partitions on their leaders, offline partitions on the active controller, all
//! back to 0 once the lost node returns.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

use crate::cluster::{create_replicated, wait_for_isr, Cluster};
use crate::kafka;
use crate::metrics::{sample, scrape};

const GAUGES: [&str; 3] = [
    "strata_under_replicated_partitions",
    "strata_under_min_isr_partitions",
    "strata_offline_partitions",
];

/// Each gauge summed over the running nodes.
fn totals(c: &mut Cluster) -> [f64; 3] {
    let mut out = [0.0; 3];
    for n in c.nodes.iter_mut() {
        if !n.is_running() {
            continue;
        }
        let (_, body) = scrape(&n.metrics_addr, "/metrics");
        for (i, g) in GAUGES.iter().enumerate() {
            out[i] += sample(&body, g).unwrap_or_else(|| panic!("no {g} in:\n{body}"));
        }
    }
    out
}

/// What the gauges should sum to, from Metadata over every topic (the internal ones too, whose
/// placement depends on how many brokers had registered when they were created):
/// under-replicated and offline partitions, and "strict"'s partitions under its min ISR of 3
/// (every other topic has a min ISR of 1).
fn expected(c: &Cluster) -> [f64; 3] {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer = kafka::config(&c.bootstrap()).create().expect("client");
    let md = client
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let mut want = [0.0; 3];
    for t in md.topics() {
        for p in t.partitions() {
            if p.leader() < 0 {
                want[2] += 1.0;
                continue;
            }
            if p.isr().len() < p.replicas().len() {
                want[0] += 1.0;
            }
            if t.name() == "strict" && p.isr().len() < 3 {
                want[1] += 1.0;
            }
        }
    }
    want
}

/// Waits until the gauges agree with Metadata, and Metadata with `check`.
fn wait_totals(c: &mut Cluster, check: impl Fn([f64; 3]) -> bool) -> [f64; 3] {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = expected(c);
        let got = totals(c);
        if got == want && check(got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "gauges {GAUGES:?} summed over the nodes are {got:?}; Metadata says {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_health_gauges_follow_a_lost_node() {
    // Internal topics never count as under min ISR: their min ISR is 1 here.
    let mut c = Cluster::start(3, &[("transaction.state.log.min.isr", "1")]);
    // Three replicas, all needed for acks=all; and one partition that lives on node 3 only.
    create_replicated(&c.bootstrap(), "strict", 1, &[("min.insync.replicas", "3")]).await;
    let admin = kafka::admin(&c.bootstrap());
    let lonely = NewTopic::new("lonely", 1, TopicReplication::Variable(&[&[3]]));
    for r in admin
        .create_topics([&lonely], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
    }
    let md = wait_for_isr(&c, "strict", 3, Duration::from_secs(20));
    wait_totals(&mut c, |t| t == [0.0, 0.0, 0.0]);

    // Node 3 is lost: "strict" (led elsewhere, or moved away from 3) has 2 of 3 in sync and is
    // under min ISR; "lonely" has no leader.
    let victim = 3;
    assert!(md.partitions[&0].1.contains(&victim));
    c.node(victim).kill9();
    let lost = wait_totals(&mut c, |t| t[0] >= 1.0 && t[1] == 1.0 && t[2] >= 1.0);

    c.node(victim).start_again();
    wait_for_isr(&c, "strict", 3, Duration::from_secs(30));
    wait_totals(&mut c, |t| t == [0.0, 0.0, 0.0]);
    eprintln!(
        "cluster_health: with node {victim} lost: {} under-replicated, {} under min ISR, {} offline; all 0 after it returned",
        lost[0], lost[1], lost[2]
    );
}
