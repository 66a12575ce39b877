//! `strata topic reassign` and `strata cluster rebalance`: partition moves through
//! AlterPartitionReassignments, followed through ListPartitionReassignments until done.
//!
//! Progress is the bytes the adding replicas still have to copy: the leader's local log size
//! less the adding replica's, from each broker's DescribeLogDirs. A tiered partition's new
//! replica copies only the leader's local log (older records stay in the remote tier), so that
//! is what is counted. The plan of a rebalance is `rebalance::plan` (pure).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::list_partition_reassignments_response::OngoingPartitionReassignment;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeClusterRequest,
    ListPartitionReassignmentsRequest, MetadataResponse, TopicName,
};

use super::log_dirs::{describe_log_dirs, leader_client, Tp};
use super::progress::{Poll, Progress};
use super::rebalance::{plan, Move, Placement};
use super::topic::{known, metadata};
use super::{str_bytes, CliError, Client, Connection, NOT_IN_API_VERSIONS};

/// What `strata topic reassign` does.
pub enum Action {
    /// Move to these replicas, throttled to this many bytes/s if given.
    Move {
        replicas: Vec<i32>,
        throttle: Option<i64>,
    },
    /// Cancel the running move (and remove its throttle).
    Cancel,
    /// Tell whether the move is done; once it is, remove its throttle.
    Verify,
}

/// `strata topic reassign NAME --partition P (--replicas 1,2,3 [--throttle B] | --cancel |
/// --verify)`.
pub async fn reassign(
    c: &mut Client,
    conn: &Connection,
    topic: &str,
    partition: i32,
    action: Action,
    wait: bool,
) -> Result<(), CliError> {
    let name = topic.to_string();
    let md = metadata(c, Some(std::slice::from_ref(&name))).await?;
    let t = known(&md, topic)?;
    let tp = format!("{topic}-{partition}");
    let key = (topic.to_string(), partition);
    let (replicas, rate) = match action {
        Action::Verify => {
            if ongoing(c, std::slice::from_ref(&key)).await?.is_empty() {
                println!("{tp}: no reassignment in progress");
                return super::throttle::clear(c, &[(topic, partition)]).await;
            }
            println!("{tp}: reassignment still in progress");
            return Ok(());
        }
        Action::Cancel => {
            alter(c, &[(key, None)]).await?;
            println!("{tp}: reassignment cancelled");
            return super::throttle::clear(c, &[(topic, partition)]).await;
        }
        Action::Move { replicas, throttle } => (replicas, throttle),
    };
    if let Some(rate) = rate {
        if rate < 0 {
            return Err(CliError::Usage(
                "--throttle takes bytes per second, >= 0".into(),
            ));
        }
        let current: Vec<i32> = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)
            .map(|p| p.replica_nodes.iter().map(|b| b.0).collect())
            .unwrap_or_default();
        let planned = super::throttle::Planned {
            topic,
            partition,
            current: &current,
            target: &replicas,
        };
        super::throttle::set(c, &[planned], rate).await?;
    }
    alter(c, &[(key.clone(), Some(replicas))]).await?;
    println!("{tp}: reassignment started");
    if wait {
        follow(c, conn, std::slice::from_ref(&key), conn.timeout()).await?;
        if rate.is_some() {
            super::throttle::clear(c, &[(topic, partition)]).await?;
        }
    } else if rate.is_some() {
        println!(
            "{tp}: the throttle stays until `strata topic reassign {topic} -p {partition} \
             --verify` sees the move done"
        );
    }
    Ok(())
}

/// `strata cluster rebalance [--dry-run] [--throttle BYTES]`: prints the plan, then runs it
/// (throttled if asked, the throttle removed at the end) and moves leadership to the new
/// preferred leaders.
pub async fn rebalance(
    c: &mut Client,
    conn: &Connection,
    dry_run: bool,
    throttle: Option<i64>,
    wait: bool,
) -> Result<(), CliError> {
    let cluster = c.send(DescribeClusterRequest::default()).await?;
    if cluster.error_code != 0 {
        return Err(CliError::kafka(
            "describing the cluster",
            cluster.error_code,
            cluster.error_message.as_ref(),
        ));
    }
    let brokers: BTreeMap<i32, Option<String>> = cluster
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    let md = metadata(c, None).await?;
    let current = placements(&md);
    let moves = plan(&brokers, &current);
    if moves.is_empty() {
        println!("balanced: nothing to move");
        return Ok(());
    }
    for m in &moves {
        println!("{}-{}: {:?} -> {:?}", m.topic, m.partition, m.from, m.to);
    }
    print_loads(&brokers, &current, &moves);
    if dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    let wanted: Vec<(Tp, Option<Vec<i32>>)> = moves
        .iter()
        .map(|m| ((m.topic.clone(), m.partition), Some(m.to.clone())))
        .collect();
    if let Some(rate) = throttle {
        if rate < 0 {
            return Err(CliError::Usage(
                "--throttle takes bytes per second, >= 0".into(),
            ));
        }
        let planned: Vec<super::throttle::Planned<'_>> = moves
            .iter()
            .map(|m| super::throttle::Planned {
                topic: &m.topic,
                partition: m.partition,
                current: &m.from,
                target: &m.to,
            })
            .collect();
        super::throttle::set(c, &planned, rate).await?;
    }
    alter(c, &wanted).await?;
    if wait {
        let tps: Vec<Tp> = wanted.into_iter().map(|(tp, _)| tp).collect();
        follow(c, conn, &tps, conn.timeout()).await?;
        if throttle.is_some() {
            let moved: Vec<(&str, i32)> = moves
                .iter()
                .map(|m| (m.topic.as_str(), m.partition))
                .collect();
            super::throttle::clear(c, &moved).await?;
        }
        elect_preferred(c, &moves).await?;
    } else if throttle.is_some() {
        println!(
            "the throttle stays until `strata topic reassign NAME -p P --verify` sees each move \
             done"
        );
    }
    Ok(())
}

/// Every partition's replicas, internal topics included (they hold replicas too).
fn placements(md: &MetadataResponse) -> Vec<Placement> {
    let mut out = Vec::new();
    for t in md.topics.iter().filter(|t| t.error_code == 0) {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        for p in &t.partitions {
            out.push(Placement {
                topic: name.clone(),
                partition: p.partition_index,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            });
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

/// Replicas and preferred leaders per broker, before and after the plan.
fn print_loads(brokers: &BTreeMap<i32, Option<String>>, current: &[Placement], moves: &[Move]) {
    let after: Vec<Vec<i32>> = current
        .iter()
        .map(|p| {
            moves
                .iter()
                .find(|m| m.topic == p.topic && m.partition == p.partition)
                .map_or(p.replicas.clone(), |m| m.to.clone())
        })
        .collect();
    let before: Vec<Vec<i32>> = current.iter().map(|p| p.replicas.clone()).collect();
    println!("broker  rack      replicas (before -> after)  leaders (before -> after)");
    for (b, rack) in brokers {
        let count = |v: &[Vec<i32>]| v.iter().filter(|r| r.contains(b)).count();
        let leads = |v: &[Vec<i32>]| v.iter().filter(|r| r.first() == Some(b)).count();
        println!(
            "{b:<7} {:<9} {:>8} -> {:<17} {:>7} -> {}",
            rack.as_deref().unwrap_or("-"),
            count(&before),
            count(&after),
            leads(&before),
            leads(&after)
        );
    }
}

/// Sends one AlterPartitionReassignments; every partition's error is reported.
async fn alter(c: &mut Client, wanted: &[(Tp, Option<Vec<i32>>)]) -> Result<(), CliError> {
    if c.version_of::<AlterPartitionReassignmentsRequest>()
        .is_none()
    {
        return Err(CliError::Unsupported {
            addr: c.addr().to_string(),
            what: "AlterPartitionReassignments".into(),
            why: NOT_IN_API_VERSIONS.into(),
        });
    }
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((t, p), replicas) in wanted {
        by_topic.entry(t).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(*p)
                .with_replicas(
                    replicas
                        .as_ref()
                        .map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                ),
        );
    }
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(true)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = c.send(req).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            "reassigning partitions",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    for t in &resp.responses {
        if let Some(p) = t.partitions.iter().find(|p| p.error_code != 0) {
            return Err(CliError::kafka(
                format!("reassigning {}-{}", t.name.0, p.partition_index),
                p.error_code,
                p.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

/// The running reassignments of `tps`.
async fn ongoing(
    c: &mut Client,
    tps: &[Tp],
) -> Result<Vec<(Tp, OngoingPartitionReassignment)>, CliError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        by_topic.entry(t).or_default().push(*p);
    }
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(Some(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partition_indexes(ps)
                })
                .collect(),
        ));
    let resp = c.send(req).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            "listing reassignments",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions
                .into_iter()
                .map(move |p| ((name.clone(), p.partition_index), p))
        })
        .collect())
}

/// Polls until none of `tps` is being reassigned, printing the bytes left to move.
async fn follow(
    c: &mut Client,
    conn: &Connection,
    tps: &[Tp],
    timeout: Duration,
) -> Result<(), CliError> {
    let what = if tps.len() == 1 {
        format!("moving {}-{}", tps[0].0, tps[0].1)
    } else {
        format!("moving {} partitions", tps.len())
    };
    let mut progress = Progress::new(what, timeout);
    let mut total: Option<u64> = None;
    loop {
        let running = ongoing(c, tps).await?;
        let poll = if running.is_empty() {
            Poll::Done
        } else {
            let left = bytes_left(c, conn, &running).await?;
            let first = *total.get_or_insert(left.max(1));
            Poll::Waiting(format!(
                "{} partition(s) moving, {}",
                running.len(),
                bar(first, left)
            ))
        };
        if progress.update(poll)? {
            return Ok(());
        }
        progress.pause().await;
    }
}

/// `[#####.....] 50%, 1234 bytes left`: the share of the first measurement copied so far.
fn bar(total: u64, left: u64) -> String {
    const WIDTH: u64 = 20;
    let done = total.saturating_sub(left.min(total));
    let filled = done * WIDTH / total.max(1);
    format!(
        "[{}{}] {}%, {left} bytes left",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize),
        done * 100 / total.max(1)
    )
}

/// The leader's local bytes less each adding replica's, summed (DescribeLogDirs of each).
async fn bytes_left(
    c: &mut Client,
    conn: &Connection,
    running: &[(Tp, OngoingPartitionReassignment)],
) -> Result<u64, CliError> {
    let names: Vec<String> = running.iter().map(|((t, _), _)| t.clone()).collect();
    let md = metadata(c, Some(names.as_slice())).await?;
    let leader_of = |tp: &Tp| {
        md.topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(tp.0.as_str()))
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == tp.1))
            .map(|p| p.leader_id.0)
    };
    // Which brokers to ask about which partitions.
    let mut asks: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
    for (tp, p) in running {
        if let Some(l) = leader_of(tp) {
            asks.entry(l).or_default().push(tp.clone());
        }
        for a in &p.adding_replicas {
            asks.entry(a.0).or_default().push(tp.clone());
        }
    }
    let mut sizes: BTreeMap<(i32, Tp), i64> = BTreeMap::new();
    for (broker, tps) in asks {
        let mut other = leader_client(c, conn, &md, broker).await?;
        let client = other.as_mut().unwrap_or(c);
        for (tp, info) in describe_log_dirs(client, &tps).await? {
            sizes.insert((broker, tp), info.local_bytes.unwrap_or(0));
        }
    }
    let mut left = 0u64;
    for (tp, p) in running {
        let Some(l) = leader_of(tp) else { continue };
        let leader_bytes = sizes.get(&(l, tp.clone())).copied().unwrap_or(0);
        for a in &p.adding_replicas {
            let have = sizes.get(&(a.0, tp.clone())).copied().unwrap_or(0);
            left += leader_bytes.saturating_sub(have).max(0) as u64;
        }
    }
    Ok(left)
}

/// Preferred leader election for the moved partitions whose first replica changed.
async fn elect_preferred(c: &mut Client, moves: &[Move]) -> Result<(), CliError> {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::ElectLeadersRequest;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for m in moves.iter().filter(|m| m.from.first() != m.to.first()) {
        by_topic.entry(&m.topic).or_default().push(m.partition);
    }
    if by_topic.is_empty() {
        return Ok(());
    }
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(30_000)
        .with_topic_partitions(Some(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(str_bytes(t)))
                        .with_partitions(ps)
                })
                .collect(),
        ));
    let resp = c.send(req).await?;
    let elected = resp
        .replica_election_results
        .iter()
        .flat_map(|t| &t.partition_result)
        .filter(|p| p.error_code == 0)
        .count();
    println!("leadership moved to the preferred replica of {elected} partition(s)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_the_share_copied() {
        assert_eq!(bar(100, 100), "[....................] 0%, 100 bytes left");
        assert_eq!(bar(100, 50), "[##########..........] 50%, 50 bytes left");
        assert_eq!(bar(100, 0), "[####################] 100%, 0 bytes left");
        // More left than first measured (the leader kept appending): 0%, not a panic.
        assert_eq!(bar(100, 150), "[....................] 0%, 150 bytes left");
    }
}
