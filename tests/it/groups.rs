//! Consumer groups through librdkafka: committed offsets (and their survival across
//! SIGTERM and `kill -9` restarts), ListGroups, DescribeGroups and DeleteGroups.

use std::time::{Duration, Instant};

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::Broker;
use crate::kafka::{admin, config, create_topic};

const T: Duration = Duration::from_secs(15);

pub(crate) fn group_consumer(addr: &str, group: &str) -> BaseConsumer {
    config(addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer")
}

pub(crate) fn tpl(topic: &str, offsets: &[i64]) -> TopicPartitionList {
    let mut l = TopicPartitionList::new();
    for (p, o) in offsets.iter().enumerate() {
        l.add_partition_offset(topic, p as i32, Offset::Offset(*o))
            .expect("tpl");
    }
    l
}

pub(crate) fn committed(addr: &str, group: &str, topic: &str, partitions: usize) -> Vec<Offset> {
    let c = group_consumer(addr, group);
    let mut l = TopicPartitionList::new();
    for p in 0..partitions {
        l.add_partition(topic, p as i32);
    }
    let got = c.committed_offsets(l, T).expect("committed offsets");
    got.elements().iter().map(|e| e.offset()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_sigterm_and_kill9() {
    // The per-partition load line is DEBUG.
    let mut b = Broker::start_with_env(
        &[("offsets.topic.num.partitions", "5")],
        &[("STRATA_LOG", "info,strata::group=debug")],
    );
    create_topic(&b.addr, "grp-offsets", 3, &[]).await;
    let c = group_consumer(&b.addr, "it-offsets");
    c.commit(&tpl("grp-offsets", &[5, 6, 7]), CommitMode::Sync)
        .expect("commit");
    // A later commit of one partition wins over the earlier one.
    let mut l = TopicPartitionList::new();
    l.add_partition_offset("grp-offsets", 1, Offset::Offset(60))
        .expect("tpl");
    c.commit(&l, CommitMode::Sync).expect("commit");
    drop(c);
    let want = vec![Offset::Offset(5), Offset::Offset(60), Offset::Offset(7)];
    assert_eq!(committed(&b.addr, "it-offsets", "grp-offsets", 3), want);
    // Unknown group: no offsets.
    assert_eq!(
        committed(&b.addr, "it-nobody", "grp-offsets", 1),
        vec![Offset::Invalid]
    );

    b.stop();
    b.start_again();
    assert_eq!(committed(&b.addr, "it-offsets", "grp-offsets", 3), want);
    let before = b.pid();
    b.restart(); // kill -9
    assert!(b.is_running() && b.pid() != before);
    assert_eq!(committed(&b.addr, "it-offsets", "grp-offsets", 3), want);
    assert!(b.log().contains("loaded __consumer_offsets"));
}

fn wait_for_assignment(c: &BaseConsumer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let _ = c.poll(Duration::from_millis(100));
        if c.assignment().map(|a| a.count() > 0).unwrap_or(false) {
            return;
        }
    }
    panic!("no assignment within 30 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_describe_and_delete_groups() {
    let b = Broker::start(&[
        ("offsets.topic.num.partitions", "5"),
        ("group.initial.rebalance.delay.ms", "100"),
    ]);
    create_topic(&b.addr, "grp-admin", 2, &[]).await;
    let c = group_consumer(&b.addr, "it-admin");
    c.subscribe(&["grp-admin"]).expect("subscribe");
    wait_for_assignment(&c);
    c.commit(&tpl("grp-admin", &[1, 2]), CommitMode::Sync)
        .expect("commit as a member");

    let list = c.fetch_group_list(Some("it-admin"), T).expect("group list");
    let g = &list.groups()[0];
    assert_eq!(g.name(), "it-admin");
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.members().len(), 1);
    assert!(g.members()[0].client_host().starts_with("/127.0.0.1"));
    assert!(g.members()[0].assignment().is_some_and(|a| !a.is_empty()));

    let admin = admin(&b.addr);
    let opts = AdminOptions::new().operation_timeout(Some(T));
    let res = admin
        .delete_groups(&["it-admin"], &opts)
        .await
        .expect("delete");
    assert_eq!(
        res,
        vec![Err((
            "it-admin".to_string(),
            RDKafkaErrorCode::NonEmptyGroup
        ))]
    );
    drop(c); // close: LeaveGroup, the group becomes Empty
    let all = admin.inner().fetch_group_list(None, T).expect("all groups");
    let names: Vec<_> = all.groups().iter().map(|g| (g.name(), g.state())).collect();
    assert!(names.contains(&("it-admin", "Empty")), "{names:?}");

    let res = admin
        .delete_groups(&["it-admin", "it-missing"], &opts)
        .await
        .expect("delete");
    assert_eq!(
        res,
        vec![
            Ok("it-admin".to_string()),
            Err(("it-missing".to_string(), RDKafkaErrorCode::GroupIdNotFound))
        ]
    );
    assert_eq!(
        committed(&b.addr, "it-admin", "grp-admin", 2),
        vec![Offset::Invalid, Offset::Invalid]
    );
    let all = admin.inner().fetch_group_list(None, T).expect("groups");
    assert!(!all.groups().iter().any(|g| g.name() == "it-admin"));
}
