//! Compaction end to end: `__consumer_offsets` is compacted by the log cleaner (many
//! commits with a small `offsets.topic.segment.bytes` leave few segments, and the committed
//! offsets, and the absence of deleted groups, survive SIGTERM and `kill -9` restarts);
//! `retention.ms` does not apply to compact-only topics.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::Offset;

use crate::groups::{committed, group_consumer, tpl};
use crate::harness::Broker;
use crate::kafka::{admin, create_topic};

/// Base offsets of the segments in a partition directory, ascending.
fn segments(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort();
    bases
}

/// `records` of the last "loaded __consumer_offsets partition" line of the broker log.
fn last_replay(log: &str) -> u64 {
    let mut plain = String::with_capacity(log.len());
    let mut escape = false;
    for ch in log.chars() {
        match (escape, ch) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
        .lines()
        .rev()
        .filter(|l| l.contains("loaded __consumer_offsets partition"))
        .find_map(|l| l.split_once("records="))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .expect("a replay line in the broker log")
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_offsets_is_compacted_and_survives_restarts() {
    // The replay line read by `last_replay` is DEBUG.
    let mut b = Broker::start_with_env(
        &[
            ("offsets.topic.num.partitions", "1"),
            ("offsets.topic.segment.bytes", "4096"),
            ("offsets.retention.check.interval.ms", "100"),
            ("log.cleaner.backoff.ms", "100"),
        ],
        &[("STRATA_LOG", "info,strata::group=debug")],
    );
    create_topic(&b.addr, "grp-compact", 3, &[]).await;
    // A group that is deleted: its tombstones must not bring it back after compaction.
    let gone = group_consumer(&b.addr, "it-compact-gone");
    gone.commit(&tpl("grp-compact", &[1, 1, 1]), CommitMode::Sync)
        .expect("commit");
    drop(gone);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let res = admin(&b.addr)
        .delete_groups(&["it-compact-gone"], &opts)
        .await
        .expect("delete");
    assert_eq!(res, vec![Ok("it-compact-gone".to_string())]);

    let c = group_consumer(&b.addr, "it-compact");
    let commits = 400i64;
    for i in 1..=commits {
        c.commit(&tpl("grp-compact", &[i, 2 * i, 3 * i]), CommitMode::Sync)
            .expect("commit");
    }
    drop(c);
    let want = vec![
        Offset::Offset(commits),
        Offset::Offset(2 * commits),
        Offset::Offset(3 * commits),
    ];
    assert_eq!(committed(&b.addr, "it-compact", "grp-compact", 3), want);

    // Uncompacted, 400 commits of 3 offsets are ~30 segments of 4 KiB; the cleaner merges
    // what it cleaned (offsets are kept, so the first segment stays at 0).
    let dir = b.data.join("__consumer_offsets-0");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut segs = segments(&dir);
    while Instant::now() < deadline && segs.len() > 4 {
        std::thread::sleep(Duration::from_millis(100));
        segs = segments(&dir);
    }
    let sizes: Vec<u64> = segs
        .iter()
        .map(|b| std::fs::metadata(dir.join(format!("{b:020}.log"))).map_or(0, |m| m.len()))
        .collect();
    eprintln!("__consumer_offsets-0 segments {segs:?} sizes {sizes:?}");
    assert!(
        segs.len() <= 4,
        "the cleaner keeps a few segments: {segs:?}"
    );
    assert!(b.log().contains("cleaned log"));

    let gone_offsets = vec![Offset::Invalid; 3];
    b.stop();
    b.start_again();
    assert_eq!(committed(&b.addr, "it-compact", "grp-compact", 3), want);
    assert_eq!(
        committed(&b.addr, "it-compact-gone", "grp-compact", 3),
        gone_offsets
    );
    let replayed = last_replay(&b.log());
    assert!(
        replayed <= 150,
        "replay reads the compacted log only: {replayed} records"
    );
    b.restart(); // kill -9
    assert_eq!(committed(&b.addr, "it-compact", "grp-compact", 3), want);
    let replayed = last_replay(&b.log());
    assert!(
        replayed <= 150,
        "replay reads the compacted log only: {replayed} records"
    );
    assert_eq!(
        committed(&b.addr, "it-compact-gone", "grp-compact", 3),
        gone_offsets
    );
    let groups = admin(&b.addr)
        .inner()
        .fetch_group_list(None, Duration::from_secs(15))
        .expect("groups");
    assert!(!groups
        .groups()
        .iter()
        .any(|g| g.name() == "it-compact-gone"));

    // A restart loop with commits in between stays bounded: the cleaner keeps up across
    // restarts, and each replay reads the compacted log, not every commit ever made.
    let mut last = commits;
    for round in 1..=3i64 {
        let c = group_consumer(&b.addr, "it-compact");
        for i in 1..=100 {
            let n = last + i;
            c.commit(&tpl("grp-compact", &[n, 2 * n, 3 * n]), CommitMode::Sync)
                .expect("commit");
        }
        drop(c);
        last += 100;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && segments(&dir).len() > 4 {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            segments(&dir).len() <= 4,
            "round {round}: {:?}",
            segments(&dir)
        );
        b.restart(); // kill -9
        let want = vec![
            Offset::Offset(last),
            Offset::Offset(2 * last),
            Offset::Offset(3 * last),
        ];
        assert_eq!(committed(&b.addr, "it-compact", "grp-compact", 3), want);
        let replayed = last_replay(&b.log());
        assert!(
            replayed <= 150,
            "round {round}: replay reads the compacted log only: {replayed} records"
        );
    }
}

/// `retention.ms` does not apply to a `compact`-only topic, as in Kafka: with
/// `retention.ms=200`, small segments and a fast retention check, nothing is deleted, while
/// the same settings with `compact,delete` delete by time.
#[tokio::test(flavor = "multi_thread")]
async fn retention_does_not_delete_a_compact_only_topic() {
    let b = Broker::start(&[("log.retention.check.interval.ms", "100")]);
    let settings = |policy| {
        [
            ("cleanup.policy", policy),
            ("retention.ms", "200"),
            ("segment.bytes", "1024"),
        ]
    };
    create_topic(&b.addr, "keep-compact", 1, &settings("compact")).await;
    create_topic(&b.addr, "keep-both", 1, &settings("compact,delete")).await;
    // One record per batch, so that 200 records fill many 1 KiB segments.
    let p = crate::kafka::producer(&b.addr, &[("batch.num.messages", "1")]);
    crate::kafka::produce_n(&p, "keep-compact", 0, 200).await;
    crate::kafka::produce_n(&p, "keep-both", 0, 200).await;
    // Many retention checks after every segment is past retention.ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kept = crate::kafka::consume(
        &b.addr,
        "keep-compact",
        0,
        Offset::Beginning,
        200,
        Duration::from_secs(20),
    );
    assert_eq!(
        kept.len(),
        200,
        "a compact-only topic lost records to retention"
    );
    assert_eq!(kept[0].offset, 0);
    assert!(segments(&b.data.join("keep-compact-0")).len() > 2);
    let dir = b.data.join("keep-both-0");
    assert!(
        segments(&dir)[0] > 0,
        "compact,delete applies retention.ms: the oldest segments should be gone"
    );
}
