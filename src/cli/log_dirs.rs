//! Asking each partition's leader what it holds: the connection to a leader, and its
//! DescribeLogDirs answer with Strata's tagged fields decoded (the tier state of
//! `protocol::tier_state`, the cleaner state of `protocol::cleaner_state`). Used by
//! `strata tier status` and `strata topic describe`; `strata group describe` asks the
//! leaders for their log end offsets through the same connections.
//!
//! Only the leader knows a partition's tier and cleaner state, so these commands group
//! partitions by leader and ask each leader about its own.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{BrokerId, DescribeLogDirsRequest, MetadataResponse, TopicName};

use crate::protocol::cleaner_state::{PartitionCleanerState, CLEANER_STATE_TAG};
use crate::protocol::tagged::TaggedState;
use crate::protocol::tier_state::{PartitionTierState, TIER_STATE_TAG};

use super::{str_bytes, CliError, Client, Connection};

/// A topic partition.
pub type Tp = (String, i32);

/// What DescribeLogDirs tells about one partition. The Strata states are `None` from a
/// broker that does not send them (another Kafka implementation, or a topic that is not
/// tiered or not compacted).
#[derive(Default)]
pub struct DirInfo {
    pub local_bytes: Option<i64>,
    pub tier: Option<PartitionTierState>,
    pub cleaner: Option<PartitionCleanerState>,
}

/// The partitions of the topics in `md` (those without error), grouped by leader.
/// Partitions without a leader are under -1.
pub(super) fn by_leader(md: &MetadataResponse) -> BTreeMap<i32, Vec<Tp>> {
    let mut out: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
    for t in md.topics.iter().filter(|t| t.error_code == 0) {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        for p in &t.partitions {
            out.entry(p.leader_id.0)
                .or_default()
                .push((name.clone(), p.partition_index));
        }
    }
    out
}

/// A connection to `leader` when it is not the node `c` talks to (`None`: use `c`). The
/// future does not hold `c` (a `Client` is not `Sync`), so it can run on a server task.
pub fn leader_client<'a>(
    c: &Client,
    conn: &'a Connection,
    md: &MetadataResponse,
    leader: i32,
) -> impl std::future::Future<Output = Result<Option<Client>, CliError>> + Send + 'a {
    let addr = md
        .brokers
        .iter()
        .find(|b| b.node_id == BrokerId(leader))
        .map(|b| format!("{}:{}", b.host, b.port))
        .filter(|addr| addr != c.addr());
    async move {
        match addr {
            Some(addr) => conn.connect(&addr).await.map(Some),
            None => Ok(None),
        }
    }
}

/// DescribeLogDirs of `tps` on the broker `c` talks to; nothing when it does not serve
/// DescribeLogDirs.
pub(super) async fn describe_log_dirs(
    c: &mut Client,
    tps: &[Tp],
) -> Result<Vec<(Tp, DirInfo)>, CliError> {
    if c.version_of::<DescribeLogDirsRequest>().is_none() {
        return Ok(Vec::new());
    }
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        topics.entry(t).or_default().push(*p);
    }
    let req = DescribeLogDirsRequest::default().with_topics(Some(
        topics
            .into_iter()
            .map(|(t, ps)| {
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(str_bytes(t)))
                    .with_partitions(ps)
            })
            .collect(),
    ));
    let resp = c.send(req).await?;
    let mut out = Vec::new();
    for dir in resp.results.iter().filter(|d| d.error_code == 0) {
        for t in &dir.topics {
            for p in &t.partitions {
                let tags = &p.unknown_tagged_fields;
                let info = DirInfo {
                    local_bytes: Some(p.partition_size),
                    tier: tags
                        .get(&TIER_STATE_TAG)
                        .and_then(|b| PartitionTierState::decode(b)),
                    cleaner: tags
                        .get(&CLEANER_STATE_TAG)
                        .and_then(|b| PartitionCleanerState::decode(b)),
                };
                out.push(((t.name.0.to_string(), p.partition_index), info));
            }
        }
    }
    Ok(out)
}

/// One line of free text from a broker: whitespace runs become one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
