//! Runtime voter changes (issue 17, item 1): under an acks=all idempotent load, a broker-only
//! 4th node joins, is made a voter (`strata cluster add-voter`), voter 2 is removed
//! (`remove-voter`), unsafe changes are refused, the committed membership survives restarts
//! with the stale `controller.quorum.voters`, and no acknowledged record is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

use crate::cluster::{
    create_replicated, free_port, read_all, start_producing, wait_for_isr, Cluster,
};
use crate::harness::Broker;
use crate::kafka;

/// Runs `strata cluster <args>` against `bootstrap`: (success, stdout + stderr).
pub(crate) fn strata_cluster(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("cluster")
        .args(args)
        .args(["-b", bootstrap, "--timeout-ms", "30000"])
        .output()
        .expect("run strata cluster");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The role column of `node` in `strata cluster describe`.
pub(crate) fn role_of(bootstrap: &str, node: i32) -> String {
    let (ok, text) = strata_cluster(bootstrap, &["describe"]);
    assert!(ok, "{text}");
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(node.to_string().as_str()))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("-")
        .to_string()
}

/// Waits until `strata cluster describe` shows `node` with `role` (from any node's view).
fn wait_role(bootstrap: &str, node: i32, role: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = role_of(bootstrap, node);
        if got == role {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {node} is {got}, expected {role}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) async fn create_topic(bootstrap: &str, name: &str) -> Result<(), String> {
    let admin = kafka::admin(bootstrap);
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(20)));
    let t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    match admin.create_topics([&t], &opts).await {
        Err(e) => Err(e.to_string()),
        Ok(rs) => rs
            .into_iter()
            .try_for_each(|r| r.map(|_| ()).map_err(|(t, e)| format!("{t}: {e:?}"))),
    }
}

/// Starts node `id` with `process.roles=broker` against `c`'s (bootstrap) voters.
pub(crate) fn start_broker_only(c: &Cluster, id: i32) -> Broker {
    let port = free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}");
    Broker::start(&[
        ("node.id", id.to_string().as_str()),
        ("process.roles", "broker"),
        ("controller.quorum.voters", c.voters.as_str()),
        ("listeners", listeners.as_str()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_change_under_load_and_the_membership_survives_restarts() {
    let mut c = Cluster::start(3, &[]);
    let topic = "voters-load";
    create_replicated(&c.bootstrap(), topic, 3, &[("min.insync.replicas", "2")]).await;
    wait_for_isr(&c, topic, 3, Duration::from_secs(20));
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, acked) = start_producing(c.bootstrap(), topic, stop.clone(), 200_000);

    // A broker-only node joins as an observer; a non-member cannot be promoted.
    let (ok, text) = strata_cluster(&c.bootstrap(), &["add-voter", "9"]);
    assert!(!ok && text.contains("VoterNotFound"), "{text}");
    c.nodes.push(start_broker_only(&c, 4));
    c.wait_for_brokers(4);
    assert_eq!(role_of(&c.bootstrap(), 4), "observer");

    // Promote it under load.
    let (ok, text) = strata_cluster(&c.bootstrap(), &["add-voter", "4"]);
    assert!(ok, "add-voter 4: {text}");
    wait_role(&c.bootstrap(), 4, "voter");
    let (ok, text) = strata_cluster(&c.bootstrap(), &["add-voter", "4"]);
    assert!(!ok && text.contains("DuplicateVoter"), "{text}");

    // Remove voter 2 under load (sent to node 2 itself: it forwards to the leader).
    let (ok, text) = strata_cluster(&c.node(2).addr.clone(), &["remove-voter", "2"]);
    assert!(ok, "remove-voter 2: {text}");
    wait_role(&c.bootstrap(), 2, "observer");
    let (ok, text) = strata_cluster(&c.bootstrap(), &["remove-voter", "2"]);
    assert!(!ok && text.contains("VoterNotFound"), "{text}");

    // Voters {1,3,4}. With 3 down, removing 1 would leave {3,4} with one reachable: refused.
    c.node(3).kill9();
    let alive = format!("{},{}", c.nodes[0].addr, c.nodes[3].addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, text) = strata_cluster(&alive, &["remove-voter", "1"]);
        assert!(
            !ok,
            "removing voter 1 with voter 3 down was accepted: {text}"
        );
        if text.contains("reachable") {
            break;
        }
        // Until the leader notices that 3 is gone it may still count it; it must then refuse
        // for another reason or time out, never accept.
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // {1,4} is a majority of {1,3,4}: metadata still commits, so node 4 votes.
    create_topic(&alive, "with-three-down")
        .await
        .expect("no quorum of {1,3,4} with 3 down");
    c.node(3).start_again();
    c.wait_for_brokers(4);

    // Restarts with the stale config: node 4 (process.roles=broker, not in
    // controller.quorum.voters) stays a voter; node 2 (listed there) stays an observer.
    c.node(4).kill9();
    c.node(4).start_again();
    c.node(2).kill9();
    c.node(2).start_again();
    c.wait_for_brokers(4);
    wait_role(&c.bootstrap(), 4, "voter");
    wait_role(&c.bootstrap(), 2, "observer");
    // Node 2 does not count: with 2 and 3 down, {1,4} still commit.
    c.node(2).kill9();
    c.node(3).kill9();
    create_topic(&alive, "with-two-and-three-down")
        .await
        .expect("voters {1,4} of {1,3,4} could not commit");
    c.node(2).start_again();
    c.node(3).start_again();
    c.wait_for_brokers(4);

    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 500, "{} acknowledged", acked.len());
    let read = read_all(&c.bootstrap(), topic, 3);
    let lost: Vec<_> = acked.difference(&read).take(10).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    let (_, text) = strata_cluster(&c.bootstrap(), &["describe"]);
    eprintln!(
        "voters: {} records acknowledged, none lost\n{text}",
        acked.len()
    );
}
