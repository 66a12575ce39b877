//! `strata cluster describe`: the metadata quorum (DescribeQuorum: voters, observers, the
//! leader, each member's metadata log end) and the brokers (DescribeCluster: addresses, racks),
//! as one table with a row per node. A node that is in the quorum but not among the serving
//! brokers is fenced, shutting down or not registered: its state is `not serving`.

use std::collections::BTreeMap;

use clap::Subcommand;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};

use super::{str_bytes, CliError, Client, Connection, NOT_IN_API_VERSIONS};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the voters, observers (broker-only nodes) and brokers: role, rack, address, state
    /// and how far each node's metadata log goes.
    Describe,
    /// Make a broker-only node (an observer that caught up with the metadata log) a voter of
    /// the metadata quorum (Kafka's AddRaftVoter).
    AddVoter { node: i32 },
    /// Make a voter stop voting (Kafka's RemoveRaftVoter). Refused when the voters left would
    /// have no reachable majority. The node stays an observer while it runs, unless --forget.
    RemoveVoter {
        node: i32,
        /// Drop the node from the quorum entirely (a dead node that will not come back).
        #[arg(long)]
        forget: bool,
    },
    /// Drain a broker: no new replicas are placed on it and each of its replicas moves to
    /// another broker (a partition reassignment: the new copy joins the ISR before the old one
    /// leaves). Waits for the drain (up to --timeout-ms) unless --no-wait.
    Decommission {
        node: i32,
        #[arg(long)]
        no_wait: bool,
        /// Cancel the decommission: the broker takes replicas again and the moves still
        /// copying go back (moves already done stay; `cluster rebalance` evens them out).
        #[arg(long, conflicts_with = "no_wait")]
        cancel: bool,
    },
    /// Even out replicas and preferred leaders across brokers and racks: prints the plan, then
    /// moves the partitions (AlterPartitionReassignments) and their leaders.
    Rebalance {
        /// Print the plan only.
        #[arg(long)]
        dry_run: bool,
        /// Limit the copies to BYTES per second (KIP-73 replication throttles); removed when
        /// the moves complete.
        #[arg(long, value_name = "BYTES")]
        throttle: Option<i64>,
        /// Return once the moves started instead of following them.
        #[arg(long)]
        no_wait: bool,
    },
}

/// One node: a row of the table, of the console's cluster page.
#[derive(Default, Debug, PartialEq, Eq, Clone)]
pub struct Row {
    pub role: &'static str,
    pub rack: Option<String>,
    /// `host:port` when the node is a serving broker.
    pub addr: Option<String>,
    pub log_end: Option<i64>,
}

/// What DescribeCluster and DescribeQuorum say about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: String,
    pub leader: i32,
    pub term: i32,
    pub high_watermark: i64,
    pub nodes: BTreeMap<i32, Row>,
}

pub async fn run(mut c: Client, conn: Connection, cmd: ClusterCommand) -> Result<(), CliError> {
    match cmd {
        ClusterCommand::Describe => {
            let v = describe(&mut c).await?;
            println!(
                "Cluster: {}  Metadata leader: {}  Term: {}  High watermark: {}",
                v.cluster_id, v.leader, v.term, v.high_watermark
            );
            print!("{}", table(&v.nodes, v.leader));
            Ok(())
        }
        ClusterCommand::AddVoter { node } => super::cluster_voters::add(c, &conn, node).await,
        ClusterCommand::RemoveVoter { node, forget } => {
            super::cluster_voters::remove(c, node, forget).await
        }
        ClusterCommand::Decommission {
            node,
            no_wait,
            cancel,
        } => {
            if cancel {
                super::cluster_decommission::cancel(c, node).await
            } else {
                super::cluster_decommission::run(c, &conn, node, !no_wait).await
            }
        }
        ClusterCommand::Rebalance {
            dry_run,
            throttle,
            no_wait,
        } => super::reassign::rebalance(&mut c, &conn, dry_run, throttle, !no_wait).await,
    }
}

/// Asks DescribeCluster and DescribeQuorum (`__cluster_metadata`) and joins the answers by
/// node id.
pub async fn describe(c: &mut Client) -> Result<ClusterView, CliError> {
    if c.version_of::<DescribeQuorumRequest>().is_none() {
        return Err(CliError::Unsupported {
            addr: c.addr().to_string(),
            what: "DescribeQuorum".into(),
            why: NOT_IN_API_VERSIONS.into(),
        });
    }
    let cluster = c.send(DescribeClusterRequest::default()).await?;
    if cluster.error_code != 0 {
        return Err(CliError::kafka(
            "describing the cluster",
            cluster.error_code,
            cluster.error_message.as_ref(),
        ));
    }
    let quorum = c
        .send(
            DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(str_bytes("__cluster_metadata")))
                .with_partitions(vec![PartitionData::default()])]),
        )
        .await?;
    if quorum.error_code != 0 {
        return Err(CliError::kafka(
            "describing the quorum",
            quorum.error_code,
            quorum.error_message.as_ref(),
        ));
    }
    let Some(p) = quorum.topics.first().and_then(|t| t.partitions.first()) else {
        return Err(CliError::Protocol {
            addr: c.addr().to_string(),
            reason: "DescribeQuorum answered no partition".into(),
        });
    };
    let mut rows: BTreeMap<i32, Row> = BTreeMap::new();
    for (members, role) in [(&p.current_voters, "voter"), (&p.observers, "observer")] {
        for m in members {
            let row = rows.entry(m.replica_id.0).or_default();
            row.role = role;
            row.log_end = (m.log_end_offset >= 0).then_some(m.log_end_offset);
        }
    }
    for b in &cluster.brokers {
        let row = rows.entry(b.broker_id.0).or_default();
        if row.role.is_empty() {
            row.role = "broker";
        }
        row.rack = b.rack.as_ref().map(|r| r.to_string());
        row.addr = Some(format!("{}:{}", b.host, b.port));
    }
    Ok(ClusterView {
        cluster_id: cluster.cluster_id.to_string(),
        leader: p.leader_id.0,
        term: p.leader_epoch,
        high_watermark: p.high_watermark,
        nodes: rows,
    })
}

fn table(rows: &BTreeMap<i32, Row>, leader: i32) -> String {
    let mut out = format!(
        "{:<6} {:<16} {:<10} {:<24} {:<12} {}\n",
        "NODE", "ROLE", "RACK", "ADDRESS", "STATE", "METADATA-LOG-END"
    );
    for (id, r) in rows {
        let role = if *id == leader {
            format!("{} (leader)", r.role)
        } else {
            r.role.to_string()
        };
        let state = if r.addr.is_some() {
            "serving"
        } else {
            "not serving"
        };
        out.push_str(&format!(
            "{:<6} {:<16} {:<10} {:<24} {:<12} {}\n",
            id,
            role,
            r.rack.as_deref().unwrap_or("-"),
            r.addr.as_deref().unwrap_or("-"),
            state,
            r.log_end.map_or("-".to_string(), |e| e.to_string())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_the_leader_observers_and_nodes_not_serving() {
        let rows = BTreeMap::from([
            (
                1,
                Row {
                    role: "voter",
                    rack: Some("az-a".into()),
                    addr: Some("10.0.0.1:9092".into()),
                    log_end: Some(42),
                },
            ),
            (
                2,
                Row {
                    role: "voter",
                    ..Default::default()
                },
            ),
            (
                4,
                Row {
                    role: "observer",
                    rack: Some("az-b".into()),
                    addr: Some("10.0.0.4:9092".into()),
                    log_end: Some(42),
                },
            ),
        ]);
        let t = table(&rows, 1);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].contains("voter (leader)") && lines[1].contains("az-a"),
            "{t}"
        );
        assert!(
            lines[2].contains("not serving") && lines[2].ends_with('-'),
            "{t}"
        );
        assert!(
            lines[3].contains("observer") && lines[3].contains("serving"),
            "{t}"
        );
    }
}
