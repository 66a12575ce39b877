//! Replacing a node (issue 17, item 4): a node of a 3-node cluster loses its whole data dir and
//! restarts empty with the same node id. It rejoins the controller quorum (and votes again only
//! once it caught up), re-registers, leaves the ISRs it was in, rebuilds its replicas from the
//! leaders (only the local tail of a tiered partition; the bucket keeps the rest) and rejoins
//! the ISRs. No acknowledged record is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

use crate::cluster::{
    create_replicated, log_bytes, metadata, read_all, start_producing, wait_for_isr, Cluster,
};
use crate::kafka;
use crate::tier::{consume_all_and_check, produce_values, remote, wait_tiered, TOPIC_CONFIGS};

/// Waits until every partition of `topic` lists `node` in its ISR.
fn wait_in_isr(c: &Cluster, topic: &str, node: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let md = metadata(&c.bootstrap(), Some(topic));
        if !md.partitions.is_empty()
            && md
                .partitions
                .values()
                .all(|(l, _, isr)| *l >= 0 && isr.len() == 3 && isr.contains(&node))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: node {node} did not rejoin every ISR: {:?}\nnode {node} log:\n{}",
            md.partitions,
            c.nodes[(node - 1) as usize].log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn create_topic(bootstrap: &str, name: &str) -> Result<(), String> {
    let admin = kafka::admin(bootstrap);
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    match admin.create_topics([&t], &opts).await {
        Err(e) => Err(e.to_string()),
        Ok(rs) => rs
            .into_iter()
            .try_for_each(|r| r.map(|_| ()).map_err(|(t, e)| format!("{t}: {e:?}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_rejoins_rebuilds_its_replicas_and_loses_nothing() {
    let r = remote("replace");
    let mut settings: Vec<(&str, &str)> = r
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    settings.push(("remote.log.manager.task.interval.ms", "100"));
    let mut c = Cluster::start(3, &settings);
    let topic = "replaced";
    create_replicated(&c.bootstrap(), topic, 3, &[("min.insync.replicas", "2")]).await;
    let tiered = "replaced-tiered";
    let mut configs = TOPIC_CONFIGS.to_vec();
    configs.push(("min.insync.replicas", "2"));
    create_replicated(&c.bootstrap(), tiered, 1, &configs).await;
    wait_for_isr(&c, topic, 3, Duration::from_secs(20));
    let md = wait_for_isr(&c, tiered, 3, Duration::from_secs(20));
    let tiered_leader = md.partitions[&0].0;
    produce_values(&c.bootstrap(), tiered, 0, 1500).await;
    wait_tiered(&r.store, tiered, 1000, c.node(tiered_leader)).await;

    // Node 1, the lowest id (the one that initialized the quorum), is wiped under an
    // acks=all idempotent load and restarts before its session expires.
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, acked) = start_producing(c.bootstrap(), topic, stop.clone(), 200_000);
    std::thread::sleep(Duration::from_secs(2));
    let wiped = 1;
    c.node(wiped).kill9();
    let data = c.node(wiped).data.clone();
    std::fs::remove_dir_all(&data).expect("wipe the data dir");
    let before = acked.lock().unwrap().len();
    let started = Instant::now();
    c.node(wiped).start_again();
    c.wait_for_brokers(3);

    // The load goes on, and the wiped node is back in every ISR.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < before + 500 {
        assert!(
            Instant::now() < deadline,
            "no progress after wiping node {wiped}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_in_isr(&c, topic, wiped, Duration::from_secs(60));
    wait_in_isr(&c, tiered, wiped, Duration::from_secs(60));
    let rejoined = started.elapsed();
    let log = c.node(wiped).log();
    assert!(
        log.contains("rejoining instead of initializing"),
        "the wiped lowest voter did not ask its peers before initializing:\n{log}"
    );
    assert!(
        log.contains("metadata log caught up with the leader"),
        "the wiped voter never caught up:\n{log}"
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > before + 500, "{} acknowledged", acked.len());

    // Every acknowledged record is readable, and the rebuilt replicas equal their leaders'.
    let read = read_all(&c.bootstrap(), topic, 3);
    let lost: Vec<_> = acked.difference(&read).take(10).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
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
    // The tiered partition: only the local tail was copied; the bucket serves the rest.
    let first_local = std::fs::read_dir(data.join(format!("{tiered}-0")))
        .expect("rebuilt partition dir")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".log")
                .and_then(|b| b.parse::<i64>().ok())
        })
        .min()
        .unwrap_or(0);
    assert!(
        first_local > 0,
        "the wiped replica copied the whole tiered log"
    );
    assert_eq!(
        consume_all_and_check(&c.bootstrap(), tiered, 1500).len(),
        1500
    );

    // The wiped node is a full voter again: with either other node down, the quorum (which
    // then needs its vote or its acknowledgement) still commits metadata.
    for (i, down) in [2, 3].into_iter().enumerate() {
        c.node(down).kill9();
        let survivors: Vec<String> = (1..=3)
            .filter(|n| *n != down)
            .map(|n| c.node(n).addr.clone())
            .collect();
        create_topic(&survivors.join(","), &format!("after-wipe-{i}"))
            .await
            .unwrap_or_else(|e| panic!("no quorum with node {down} down: {e}"));
        c.node(down).start_again();
        c.wait_for_brokers(3);
    }
    eprintln!(
        "replace: node {wiped} wiped under load, back in every ISR after {rejoined:?}; \
         {} records acknowledged, none lost; tiered replica restarted at offset {first_local}",
        acked.len()
    );
}
