//! Partition reassignment (issue 17, items 2 and 3) through the real CLI on a 3-node cluster
//! with a real S3 server (moto):
//! - a tiered partition with a long remote history and a short local tail moves to another
//!   broker; the new replica copies only the local tail from the leader (counted by its
//!   `strata_replica_fetch_bytes_total`), the old replica is deleted, and a consumer from
//!   offset 0 against the new leader reads every record (the bucket serves the history);
//! - a move to a broker that is down stays in progress (Metadata lists adding and removing
//!   replicas) until it is cancelled; cancelling twice, unknown partitions and unknown brokers
//!   get Kafka's errors.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

use crate::cluster::{metadata, Cluster};
use crate::kafka;
use crate::metrics::{sample, scrape};
use crate::tier::{consume_all_and_check, produce_values, remote, wait_tiered, TOPIC_CONFIGS};

pub(crate) fn strata(addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .arg("--bootstrap-server")
        .arg(addr)
        .arg("--timeout-ms")
        .arg("60000")
        .output()
        .expect("run strata")
}

/// Runs the CLI; returns (success, stdout, stderr).
pub(crate) fn cli(addr: &str, args: &[&str]) -> (bool, String, String) {
    let out = strata(addr, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A topic of one partition placed on `replicas`.
pub(crate) async fn create_on(
    bootstrap: &str,
    topic: &str,
    replicas: &[i32],
    configs: &[(&str, &str)],
) {
    let admin = kafka::admin(bootstrap);
    let assignment = [replicas];
    let mut t = NewTopic::new(topic, 1, TopicReplication::Variable(&assignment));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    for r in admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
    }
}

/// Bytes of the `.log` files of `dir` (a partition directory).
fn local_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn replica_fetch_bytes(metrics: &str, topic: &str) -> f64 {
    let (_, body) = scrape(metrics, "/metrics");
    sample(
        &body,
        &format!(r#"strata_replica_fetch_bytes_total{{topic="{topic}"}}"#),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiered_partition_moves_with_its_local_tail_only() {
    let r = remote("reassign");
    let mut settings: Vec<(&str, &str)> = r
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    settings.push(("remote.log.manager.task.interval.ms", "100"));
    let mut c = Cluster::start(3, &settings);
    let bootstrap = c.bootstrap();

    // A tiered partition on node 1 alone: about 1.7 MB of history, most of it only remote.
    let topic = "moved-tiered";
    create_on(&bootstrap, topic, &[1], TOPIC_CONFIGS).await;
    let n = 8000;
    produce_values(&bootstrap, topic, 0, n).await;
    wait_tiered(&r.store, topic, (n as i64) * 3 / 4, c.node(1)).await;
    let dir1 = c.node(1).data.join(format!("{topic}-0"));
    let history = (0..n)
        .map(|i| crate::tier::value(i).len() as u64)
        .sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(60);
    while local_bytes(&dir1) * 5 > history {
        assert!(
            Instant::now() < deadline,
            "local retention did not trim node 1's log ({} bytes left)",
            local_bytes(&dir1)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tail = local_bytes(&dir1);
    let metrics2 = c.node(2).metrics_addr.clone();
    let before = replica_fetch_bytes(&metrics2, topic);

    // Move it to node 2 and follow the move to its end.
    let (ok, out, err) = cli(
        &bootstrap,
        &["topic", "reassign", topic, "-p", "0", "--replicas", "2"],
    );
    assert!(ok, "reassign failed:\n{out}\n{err}");
    assert!(out.contains("reassignment started"), "{out}");
    let md = metadata(&bootstrap, Some(topic));
    assert_eq!(md.partitions[&0].1, vec![2], "replicas after the move");
    assert_eq!(md.partitions[&0].0, 2, "node 2 leads after the move");
    let fetched = replica_fetch_bytes(&metrics2, topic) - before;
    eprintln!(
        "reassign: history {history} B of values, leader's local tail {tail} B, the new \
         replica fetched {fetched} B; CLI progress:\n{err}"
    );
    assert!(fetched > 0.0, "node 2 fetched nothing");
    assert!(
        fetched < history as f64 / 4.0,
        "node 2 fetched {fetched} B of a {history} B history: more than the local tail ({tail} B)"
    );
    assert!(
        fetched < (tail as f64) * 2.0 + 65536.0,
        "node 2 fetched {fetched} B, the local tail was {tail} B"
    );
    // The removed replica is deleted from node 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir1.exists() {
        assert!(Instant::now() < deadline, "node 1 kept its removed replica");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A consumer from offset 0 against the new leader reads everything (remote + local).
    assert_eq!(consume_all_and_check(&bootstrap, topic, n).len(), n);

    // A move to a broker that is down stays in progress and lists both sets.
    let plain = "moved-plain";
    create_on(&bootstrap, plain, &[1, 2], &[]).await;
    assert_eq!(
        crate::cluster::produce_acks_all(&bootstrap, plain, 0, 20).await,
        20
    );
    c.node(3).kill9();
    let bootstrap = c.bootstrap();
    let (ok, out, err) = cli(
        &bootstrap,
        &[
            "topic",
            "reassign",
            plain,
            "-p",
            "0",
            "--replicas",
            "1,3",
            "--no-wait",
        ],
    );
    assert!(ok, "reassign to a down broker:\n{out}\n{err}");
    let md = metadata(&bootstrap, Some(plain));
    assert_eq!(
        md.partitions[&0].1,
        vec![1, 3, 2],
        "Metadata lists target then removing replicas"
    );
    // A new target for a running move is refused for a broker that does not exist.
    let (ok, _, err) = cli(
        &bootstrap,
        &["topic", "reassign", plain, "-p", "0", "--replicas", "1,9"],
    );
    assert!(!ok && err.contains("InvalidReplicaAssignment"), "{err}");
    let (ok, _, err) = cli(
        &bootstrap,
        &["topic", "reassign", plain, "-p", "7", "--replicas", "1"],
    );
    assert!(!ok && err.contains("UnknownTopicOrPartition"), "{err}");
    let (ok, out, err) = cli(
        &bootstrap,
        &["topic", "reassign", plain, "-p", "0", "--cancel"],
    );
    assert!(ok, "cancel:\n{out}\n{err}");
    let md = metadata(&bootstrap, Some(plain));
    assert_eq!(
        md.partitions[&0].1,
        vec![1, 2],
        "cancel restores the replicas"
    );
    let (ok, _, err) = cli(
        &bootstrap,
        &["topic", "reassign", plain, "-p", "0", "--cancel"],
    );
    assert!(!ok && err.contains("NoReassignmentInProgress"), "{err}");
    c.node(3).start_again();
    c.wait_for_brokers(3);
    let bootstrap = c.bootstrap();

    // Rebalance: the plan moves replicas to node 3, which holds none; a dry run changes
    // nothing, the real run evens the counts out.
    let (ok, out, err) = cli(&bootstrap, &["cluster", "rebalance", "--dry-run"]);
    assert!(ok, "rebalance --dry-run:\n{out}\n{err}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    // Throttled (KIP-73): the throttle is set for every move and removed at the end.
    let (ok, out, err) = cli(
        &bootstrap,
        &["cluster", "rebalance", "--throttle", "104857600"],
    );
    assert!(ok, "rebalance:\n{out}\n{err}");
    assert!(
        out.contains("replication throttled to 104857600") && out.contains("throttle removed"),
        "{out}"
    );
    let (ok, out, _) = cli(&bootstrap, &["cluster", "rebalance", "--dry-run"]);
    assert!(ok && out.contains("balanced: nothing to move"), "{out}");
    assert_eq!(
        crate::cluster::read_all(&bootstrap, plain, 1).len(),
        20,
        "records of the rebalanced topic"
    );
}
