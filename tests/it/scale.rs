//! Many partitions on one node (issue 14): after creating them and after a restart, the
//! broker holds about one descriptor per idle partition (its active segment's `.log`):
//! indexes open only when they write, and partitions take no lock file of their own.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;

use crate::harness::Broker;
use crate::kafka::admin;

const PARTITIONS: usize = 2000;
/// Descriptors besides the partitions': internal topics' logs, the remote chunk cache,
/// sockets, epoll.
const OTHER: usize = 500;

fn open_files(b: &Broker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", b.pid()))
        .unwrap()
        .count()
}

async fn wait_led(b: &Broker) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let consumer = crate::kafka::consumer(&b.addr);
    loop {
        let led = tokio::task::block_in_place(|| {
            consumer
                .fetch_metadata(Some("many"), Duration::from_secs(10))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|t| {
                        t.partitions().len() == PARTITIONS
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false)
        });
        if led {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{PARTITIONS} partitions not led in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_partitions_hold_about_one_descriptor_each() {
    let mut broker = Broker::start(&[]);
    let topic = NewTopic::new("many", PARTITIONS as i32, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    for r in admin(&broker.addr)
        .create_topics([&topic], &opts)
        .await
        .unwrap()
    {
        r.unwrap();
    }
    wait_led(&broker).await;
    let created = open_files(&broker);
    assert!(
        created < PARTITIONS + OTHER,
        "{created} open files after creating {PARTITIONS} partitions"
    );
    broker.restart();
    wait_led(&broker).await;
    let restarted = open_files(&broker);
    assert!(
        restarted < PARTITIONS + OTHER,
        "{restarted} open files after a restart with {PARTITIONS} partitions"
    );
}
