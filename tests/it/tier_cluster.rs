//! Tiered storage in a 3-node cluster: only the leader uploads, followers trim what is tiered,
//! a new leader continues the partition manifest with no gap, and a follower that fell behind
//! the leader's local log start restarts there (older data stays in the bucket).

use std::time::{Duration, Instant};

use crate::cluster::{create_replicated, wait_for_isr, Cluster};
use crate::tier::{
    assert_contiguous, consume_all_and_check, local_log_files, manifest_of, produce_values, remote,
    wait_tiered, TOPIC_CONFIGS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_uploads_followers_trim_and_a_new_leader_continues() {
    let r = remote("cluster");
    let mut settings: Vec<(&str, &str)> = r
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    settings.extend_from_slice(&[
        ("remote.log.manager.task.interval.ms", "100"),
        ("remote.fetch.chunk.bytes", "65536"),
    ]);
    let mut c = Cluster::start(3, &settings);
    let topic = "tiered-rf3";
    let mut configs = TOPIC_CONFIGS.to_vec();
    configs.push(("min.insync.replicas", "2"));
    create_replicated(&c.bootstrap(), topic, 1, &configs).await;
    let md = wait_for_isr(&c, topic, 3, Duration::from_secs(20));
    let leader = md.partitions[&0].0;

    produce_values(&c.bootstrap(), topic, 0, 1500).await;
    let m = wait_tiered(&r.store, topic, 1000, c.node(leader)).await;
    assert_contiguous(&m);
    // Every replica keeps only a few local segments: followers trim tiered ones too.
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in 1..=3 {
        while local_log_files(c.node(id), topic) > 6 {
            assert!(
                Instant::now() < deadline,
                "node {id} did not trim tiered segments"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for id in (1..=3).filter(|id| *id != leader) {
        assert!(
            !c.node(id).log().contains("uploaded segment"),
            "follower {id} uploaded"
        );
    }

    // The leader dies; the new one continues the manifest from its end.
    c.node(leader).kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let md = wait_for_isr(&c, topic, 2, Duration::from_secs(30));
        let l = md.partitions[&0].0;
        if l != leader {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader after killing {leader}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    produce_values(&c.bootstrap(), topic, 1500, 1500).await;
    let m = wait_tiered(&r.store, topic, 2500, c.node(new_leader)).await;
    assert_contiguous(&m);
    assert!(
        c.node(new_leader).log().contains("uploaded segment"),
        "the new leader did not upload"
    );
    let end = m.end_offset().unwrap_or(0);

    // The old leader comes back behind the new leader's local log start: it restarts its log
    // there and rejoins the ISR without copying what the bucket holds.
    c.node(leader).start_again();
    wait_for_isr(&c, topic, 3, Duration::from_secs(60));
    let dir = c.node(leader).data.join(format!("{topic}-0"));
    let first_local = std::fs::read_dir(&dir)
        .expect("partition dir")
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
        "the returning replica copied the whole log"
    );

    // Consumers read all 3000 records from offset 0, across both tiers and the failover.
    let got = consume_all_and_check(&c.bootstrap(), topic, 3000);
    assert_eq!(got.len(), 3000);
    let again = manifest_of(&r.store, topic).await.expect("manifest");
    assert!(again.end_offset().unwrap_or(0) >= end);
    assert_contiguous(&again);
}
