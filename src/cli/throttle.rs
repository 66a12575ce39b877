//! `strata topic reassign --throttle BYTES` and `strata cluster rebalance --throttle BYTES`: the
//! replication throttles of the moves, set before they start and cleared when they are done, as
//! kafka-reassign-partitions' `--throttle` and `--verify` do (KIP-73).
//!
//! Setting: the broker rates `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` (Strata's dynamic broker configs are cluster-wide,
//! so one change covers every broker), and on each topic a moved partition's current replicas in
//! `leader.replication.throttled.replicas` (any of them may lead and serve the copy) and its
//! adding replicas in `follower.replication.throttled.replicas`, kept beside entries already
//! there. Clearing: the partition's entries leave both lists (a list left empty is deleted),
//! and the broker rates are deleted once no reassignment runs anywhere in the cluster. The
//! list arithmetic is pure ([`with_entries`], [`without_partition`]).

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest};

use super::topic::{topic_settings, RESOURCE_TOPIC};
use super::{str_bytes, CliError, Client};

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Kafka's ConfigResource type for brokers; the empty name is the cluster-wide default.
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// `list` with `partition:broker` for each of `brokers` added (kept as is when it is `*`).
pub fn with_entries(list: &str, partition: i32, brokers: &[i32]) -> String {
    let list = list.trim();
    if list == "*" {
        return list.to_string();
    }
    let mut items: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for b in brokers {
        let entry = format!("{partition}:{b}");
        if !items.contains(&entry) {
            items.push(entry);
        }
    }
    items.join(",")
}

/// `list` without the entries of `partition` (`*` is kept: someone set it for the topic).
pub fn without_partition(list: &str, partition: i32) -> String {
    let list = list.trim();
    if list == "*" {
        return list.to_string();
    }
    let prefix = format!("{partition}:");
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with(&prefix))
        .collect::<Vec<_>>()
        .join(",")
}

/// One partition's move: topic, partition, current replicas, target replicas.
pub struct Planned<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub current: &'a [i32],
    pub target: &'a [i32],
}

/// Sets the throttles of `moves` at `rate` bytes per second: one change per topic, then the
/// broker rates.
pub async fn set(c: &mut Client, moves: &[Planned<'_>], rate: i64) -> Result<(), CliError> {
    let mut topics: Vec<&str> = moves.iter().map(|m| m.topic).collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let (mut leader, mut follower) = lists(c, topic).await?;
        for m in moves.iter().filter(|m| m.topic == topic) {
            let adding: Vec<i32> = m
                .target
                .iter()
                .copied()
                .filter(|b| !m.current.contains(b))
                .collect();
            leader = with_entries(&leader, m.partition, m.current);
            follower = with_entries(&follower, m.partition, &adding);
        }
        alter(
            c,
            RESOURCE_TOPIC,
            topic,
            &[
                (LEADER_REPLICAS, Some(leader)),
                (FOLLOWER_REPLICAS, Some(follower)),
            ],
        )
        .await?;
    }
    alter(
        c,
        RESOURCE_BROKER,
        "",
        &[
            (LEADER_RATE, Some(rate.to_string())),
            (FOLLOWER_RATE, Some(rate.to_string())),
        ],
    )
    .await?;
    println!(
        "replication throttled to {rate} bytes/s while {} partition(s) move",
        moves.len()
    );
    Ok(())
}

/// Clears what [`set`] did for `partitions` (topic, partition); the broker rates go once no
/// reassignment runs in the cluster.
pub async fn clear(c: &mut Client, partitions: &[(&str, i32)]) -> Result<(), CliError> {
    let mut topics: Vec<&str> = partitions.iter().map(|(t, _)| *t).collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let (mut leader, mut follower) = lists(c, topic).await?;
        for (_, p) in partitions.iter().filter(|(t, _)| *t == topic) {
            leader = without_partition(&leader, *p);
            follower = without_partition(&follower, *p);
        }
        let op = |list: String| (!list.is_empty()).then_some(list);
        alter(
            c,
            RESOURCE_TOPIC,
            topic,
            &[
                (LEADER_REPLICAS, op(leader)),
                (FOLLOWER_REPLICAS, op(follower)),
            ],
        )
        .await?;
    }
    let running = c
        .send(ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000))
        .await?;
    if running.error_code != 0 {
        return Err(CliError::kafka(
            "listing reassignments",
            running.error_code,
            running.error_message.as_ref(),
        ));
    }
    if running.topics.iter().all(|t| t.partitions.is_empty()) {
        alter(
            c,
            RESOURCE_BROKER,
            "",
            &[(LEADER_RATE, None), (FOLLOWER_RATE, None)],
        )
        .await?;
        println!("throttle removed");
    } else {
        println!("throttled replicas removed; the broker rates stay while other reassignments run");
    }
    Ok(())
}

/// The topic's two throttled replica lists as set on it (empty when not set).
async fn lists(c: &mut Client, topic: &str) -> Result<(String, String), CliError> {
    let settings = topic_settings(c, &[topic.to_string()]).await?;
    let own = |name: &str| {
        settings
            .get(topic)
            .and_then(|s| s.overrides.iter().find(|(k, _)| k == name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok((own(LEADER_REPLICAS), own(FOLLOWER_REPLICAS)))
}

/// One IncrementalAlterConfigs: SET each `Some`, DELETE each `None`.
async fn alter(
    c: &mut Client,
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<String>)],
) -> Result<(), CliError> {
    let entries = configs
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(str_bytes(*k))
                .with_config_operation(if v.is_some() { OP_SET } else { OP_DELETE })
                .with_value(v.clone().map(str_bytes))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configs(entries),
    ]);
    let resp = c.send(req).await?;
    for r in &resp.responses {
        if r.error_code != 0 {
            let what = if resource_type == RESOURCE_BROKER {
                "setting the replication throttle rates".to_string()
            } else {
                format!("setting the throttled replicas of topic '{name}'")
            };
            return Err(CliError::kafka(
                what,
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_added_once_and_removed_by_partition() {
        assert_eq!(with_entries("", 0, &[1, 2]), "0:1,0:2");
        assert_eq!(with_entries("1:3", 0, &[1, 2]), "1:3,0:1,0:2");
        assert_eq!(with_entries("0:1", 0, &[1, 2]), "0:1,0:2");
        assert_eq!(with_entries("*", 0, &[1]), "*");
        assert_eq!(without_partition("1:3,0:1,0:2", 0), "1:3");
        assert_eq!(without_partition("0:1, 0:2", 0), "");
        // 10:1 is another partition than 1:... and than 0:...
        assert_eq!(without_partition("10:1,1:2", 1), "10:1");
        assert_eq!(without_partition("*", 0), "*");
    }
}
