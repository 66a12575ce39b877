//! Replication throttles (KIP-73, issue 17) on a 3-node cluster, through the real CLI and
//! librdkafka's admin client:
//! - two partitions with the same ~8 MiB of records on node 1 move to node 2, one unthrottled
//!   and one with `strata topic reassign --throttle 1048576`; the throttled move takes at
//!   least several times longer (a ratio within the same run) and at least the time the rate
//!   allows, completes, counts its bytes in `strata_replication_throttled_bytes_total` on
//!   both sides, and leaves no throttle config behind;
//! - malformed throttle values are refused with INVALID_CONFIG;
//! - in-sync replication is not throttled (KIP-542): acks=all writes through a throttled,
//!   in-sync follower go on at full speed;
//! - a decommission whose move is held mid-copy by a throttle is cancelled with
//!   `strata cluster decommission --cancel`: the partition keeps its original replicas.

use std::time::{Duration, Instant};

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::ResponseError as E;
use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::producer::FutureRecord;

use crate::cluster::{metadata, Cluster};
use crate::harness::Broker;
use crate::kafka;
use crate::metrics::{sample, scrape};
use crate::reassign::{cli, create_on};
use crate::txn::{call, sb};

const VALUE: usize = 64 << 10;
const RECORDS: usize = 128; // 8 MiB per partition
const RATE: u64 = 1 << 20;

async fn fill(bootstrap: &str, topic: &str) {
    let p = kafka::producer(bootstrap, &[("acks", "all"), ("compression.type", "none")]);
    let value = vec![b'x'; VALUE];
    let mut acks = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let key = format!("k{i}");
        let rec = FutureRecord::to(topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        acks.push(p.send_result(rec).expect("enqueue"));
    }
    for a in acks {
        a.await.expect("delivery").expect("delivered");
    }
}

/// Runs a reassignment of `topic`-0 to node 2 through the CLI; returns how long it took.
fn timed_move(bootstrap: &str, topic: &str, extra: &[&str]) -> (Duration, String) {
    let mut args = vec!["topic", "reassign", topic, "-p", "0", "--replicas", "2"];
    args.extend_from_slice(extra);
    let t = Instant::now();
    let (ok, out, err) = cli(bootstrap, &args);
    let took = t.elapsed();
    assert!(ok, "reassign {topic} {extra:?} failed:\n{out}\n{err}");
    let md = metadata(bootstrap, Some(topic));
    assert_eq!(
        md.partitions[&0].1,
        vec![2],
        "{topic}: replicas after the move"
    );
    (took, out)
}

fn throttled_bytes(metrics: &str, side: &str) -> f64 {
    let (_, body) = scrape(metrics, "/metrics");
    sample(
        &body,
        &format!(r#"strata_replication_throttled_bytes_total{{side="{side}"}}"#),
    )
    .unwrap_or(0.0)
}

/// The value DescribeConfigs gives `name` on `resource`.
async fn described(bootstrap: &str, resource: ResourceSpecifier<'_>, name: &str) -> String {
    let admin = kafka::admin(bootstrap);
    let res = admin
        .describe_configs([&resource], &AdminOptions::new())
        .await
        .expect("describe_configs");
    let r = res[0].as_ref().expect("described");
    r.get(name)
        .unwrap_or_else(|| panic!("{name} is not described"))
        .value
        .clone()
        .unwrap_or_default()
}

/// IncrementalAlterConfigs SET of one config on a resource (2 topic, 4 broker); the error code.
pub(crate) fn alter(b: &Broker, resource_type: i8, name: &str, config: &str, value: &str) -> i16 {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(sb(name))
            .with_configs(vec![AlterableConfig::default()
                .with_name(sb(config))
                .with_config_operation(0)
                .with_value(Some(sb(value)))]),
    ]);
    let resp: IncrementalAlterConfigsResponse = call(b, ApiKey::IncrementalAlterConfigs, 1, &req);
    resp.responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_reassignment_is_slower_in_proportion_and_clears_its_throttle() {
    let mut c = Cluster::start(3, &[]);
    let bootstrap = c.bootstrap();
    let (fast, slow) = ("throttle-fast", "throttle-slow");
    for t in [fast, slow] {
        create_on(&bootstrap, t, &[1], &[]).await;
        fill(&bootstrap, t).await;
    }
    let leader_metrics = c.node(1).metrics_addr.clone();
    let follower_metrics = c.node(2).metrics_addr.clone();

    let (unthrottled, _) = timed_move(&bootstrap, fast, &[]);
    assert_eq!(throttled_bytes(&follower_metrics, "follower"), 0.0);
    let rate = RATE.to_string();
    let (throttled, out) = timed_move(&bootstrap, slow, &["--throttle", &rate]);
    let bytes = (VALUE * RECORDS) as f64;
    eprintln!(
        "throttle: {bytes} B moved in {unthrottled:?} unthrottled, {throttled:?} at {RATE} B/s;\n{out}"
    );
    assert!(out.contains("throttle removed"), "{out}");
    // The first second's credit and one overdrawn fetch come free: the rest waits for the
    // rate. A slower machine only makes the move longer.
    let floor = Duration::from_secs_f64((bytes - 3.0 * RATE as f64) / RATE as f64);
    assert!(
        throttled >= floor,
        "{bytes} B at {RATE} B/s took {throttled:?} (< {floor:?})"
    );
    assert!(
        throttled.as_secs_f64() >= 2.0 * unthrottled.as_secs_f64(),
        "throttled {throttled:?} vs unthrottled {unthrottled:?}"
    );
    // Both sides counted the throttled bytes (the leader's may lag: its counter is scraped
    // from a node that answered the last fetch).
    let fetched = throttled_bytes(&follower_metrics, "follower");
    assert!(fetched >= bytes * 0.9, "follower counted {fetched} B");
    let sent = throttled_bytes(&leader_metrics, "leader");
    assert!(sent >= bytes * 0.9, "leader counted {sent} B");

    // The throttle is gone: topic lists back to their defaults, broker rates unlimited.
    for name in [
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    ] {
        assert_eq!(
            described(&bootstrap, ResourceSpecifier::Topic(slow), name).await,
            "",
            "{name}"
        );
    }
    for name in [
        "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
    ] {
        assert_eq!(
            described(&bootstrap, ResourceSpecifier::Broker(1), name).await,
            i64::MAX.to_string(),
            "{name}"
        );
    }

    // Malformed values are INVALID_CONFIG (IncrementalAlterConfigs over raw frames:
    // rust-rdkafka does not report per-resource errors of AlterConfigs), and nothing is stored.
    let node1 = c.node(1);
    assert_eq!(
        alter(
            node1,
            2,
            slow,
            "leader.replication.throttled.replicas",
            "0-1"
        ),
        E::InvalidConfig.code()
    );
    assert_eq!(
        alter(
            node1,
            2,
            slow,
            "follower.replication.throttled.replicas",
            "0:1,x"
        ),
        E::InvalidConfig.code()
    );
    assert_eq!(
        alter(node1, 4, "", "follower.replication.throttled.rate", "-5"),
        E::InvalidConfig.code()
    );
    assert_eq!(
        alter(node1, 4, "", "leader.replication.throttled.rate", "1MB"),
        E::InvalidConfig.code()
    );
    assert_eq!(
        described(
            &bootstrap,
            ResourceSpecifier::Topic(slow),
            "leader.replication.throttled.replicas"
        )
        .await,
        ""
    );
    let admin = kafka::admin(&bootstrap);
    // A well-formed list is accepted and described as set.
    let good = AlterConfig::new(ResourceSpecifier::Topic(slow))
        .set("follower.replication.throttled.replicas", "0:3");
    let res = admin
        .alter_configs([&good], &AdminOptions::new())
        .await
        .expect("alter_configs");
    assert!(res[0].is_ok(), "{res:?}");
    assert_eq!(
        described(
            &bootstrap,
            ResourceSpecifier::Topic(slow),
            "follower.replication.throttled.replicas"
        )
        .await,
        "0:3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommission_is_cancelled_while_its_move_copies() {
    // Four nodes: the internal topics (replication factor 3) must have somewhere to go.
    let mut c = Cluster::start(4, &[]);
    let bootstrap = c.bootstrap();
    let topic = "drained";
    create_on(&bootstrap, topic, &[1, 2], &[]).await;
    fill(&bootstrap, topic).await;
    // Every out-of-sync follower of the topic fetches at 64 KiB/s: the drain's new replica
    // takes minutes to copy 8 MiB, so the move is still running when cancelled.
    let node1 = c.node(1);
    assert_eq!(
        alter(
            node1,
            2,
            topic,
            "follower.replication.throttled.replicas",
            "*"
        ),
        0
    );
    assert_eq!(
        alter(node1, 4, "", "follower.replication.throttled.rate", "65536"),
        0
    );
    // KIP-542: the in-sync follower (node 2) is not throttled, so acks=all writes of another
    // 8 MiB go on at full speed (throttled, they would need over two minutes).
    let t = Instant::now();
    fill(&bootstrap, topic).await;
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "acks=all through an in-sync follower took {:?}",
        t.elapsed()
    );
    let (ok, text) = crate::voters::strata_cluster(&bootstrap, &["decommission", "2", "--no-wait"]);
    assert!(ok, "{text}");
    // The drain is a reassignment: 2's slot goes to 3 or 4, and 2 stays listed (last) while
    // the new replica copies.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = metadata(&bootstrap, Some(topic));
        let r = &md.partitions[&0].1;
        if r.len() == 3 && r[0] == 1 && r[2] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no drain move: {:?}",
            md.partitions
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, text) = crate::voters::strata_cluster(&bootstrap, &["decommission", "2", "--cancel"]);
    assert!(ok, "{text}");
    // The node answering Metadata may apply the cancel a moment after the controller.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut replicas = metadata(&bootstrap, Some(topic)).partitions[&0].1.clone();
        replicas.sort();
        if replicas == vec![1, 2] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the original replicas are not back: {replicas:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing is drained any more, and a second cancel has nothing to cancel.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut again = metadata(&bootstrap, Some(topic)).partitions[&0].1.clone();
    again.sort();
    assert_eq!(again, vec![1, 2]);
    let (ok, text) = crate::voters::strata_cluster(&bootstrap, &["decommission", "2", "--cancel"]);
    assert!(!ok && text.contains("not decommissioned"), "{text}");
}
