//! `process.roles=broker` (issue 17, item 1): a broker-only node joins a running 3-voter
//! cluster as a learner of the metadata log. It registers, hosts replicas and takes part in
//! acks=all, but does not count for the controller quorum.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

use crate::cluster::{free_port, produce_acks_all, wait_for_isr, Cluster};
use crate::harness::Broker;
use crate::kafka;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_joins_as_a_learner_and_hosts_replicas() {
    let mut c = Cluster::start(3, &[]);
    let port = free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}");
    let fourth = Broker::start(&[
        ("node.id", "4"),
        ("process.roles", "broker"),
        ("controller.quorum.voters", c.voters.as_str()),
        ("listeners", listeners.as_str()),
    ]);
    assert!(
        fourth
            .log()
            .contains("joined the metadata quorum as a learner"),
        "{}",
        fourth.log()
    );
    c.nodes.push(fourth);
    c.wait_for_brokers(4);

    // It hosts replicas like any broker: in every ISR of a topic placed on it.
    let admin = kafka::admin(&c.bootstrap());
    let t = NewTopic::new("on-four", 1, TopicReplication::Variable(&[&[4, 1, 2]]))
        .set("min.insync.replicas", "2");
    for r in admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
    }
    let md = wait_for_isr(&c, "on-four", 3, Duration::from_secs(30));
    assert_eq!(
        md.partitions[&0].0, 4,
        "the broker-only node leads its partition"
    );
    assert_eq!(produce_acks_all(&c.bootstrap(), "on-four", 0, 20).await, 20);

    // `strata cluster describe`: three voters (one the leader), node 4 an observer; all serve.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["cluster", "describe", "-b", &c.bootstrap()])
        .output()
        .expect("strata cluster describe");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |id: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row for node {id}:\n{text}"))
            .to_string()
    };
    for id in ["1", "2", "3"] {
        assert!(
            row(id).contains("voter") && row(id).contains(" serving"),
            "{text}"
        );
    }
    assert!(
        row("4").contains("observer") && row("4").contains(" serving"),
        "{text}"
    );
    assert_eq!(text.matches("(leader)").count(), 1, "{text}");
    eprintln!("roles: strata cluster describe\n{text}");

    // Two voters down: the learner does not make a majority with the third, so metadata
    // changes are refused (a timeout, not a hang) while it is up.
    c.node(2).kill9();
    c.node(3).kill9();
    let survivors = format!("{},{}", c.nodes[0].addr, c.nodes[3].addr);
    let admin = kafka::admin(&survivors);
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(20)));
    let started = Instant::now();
    let t = NewTopic::new("needs-voters", 1, TopicReplication::Fixed(1));
    let refused = match admin.create_topics([&t], &opts).await {
        Err(_) => true,
        Ok(rs) => rs.into_iter().any(|r| r.is_err()),
    };
    assert!(refused, "a learner and one voter committed metadata");
    assert!(started.elapsed() < Duration::from_secs(25));
}
