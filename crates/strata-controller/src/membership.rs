//! What the metadata quorum looks like from one node: voters, learners (broker-only nodes,
//! Kafka's observers), the leader and how far each member's log goes. Read by DescribeQuorum
//! and `strata cluster describe`.
//!
//! Pure: built from openraft's metrics. Only the leader knows the other members' progress;
//! elsewhere their log end is unknown (`None`).

use openraft::BasicNode;
use openraft::RaftMetrics;

/// One member of the metadata quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumMember {
    pub node_id: u64,
    /// The controller RPC address it was added with.
    pub addr: String,
    /// One past the last metadata log index it holds, as far as this node knows.
    pub log_end: Option<u64>,
}

/// The quorum as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QuorumView {
    pub leader: Option<u64>,
    /// The Raft term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// One past the last committed index this node knows (Kafka's high watermark).
    pub high_watermark: Option<u64>,
    pub voters: Vec<QuorumMember>,
    /// Non-voting members (`process.roles=broker`).
    pub learners: Vec<QuorumMember>,
}

/// The view from `m`, the metrics of node `m.id`.
pub fn quorum_view(m: &RaftMetrics<u64, BasicNode>) -> QuorumView {
    let membership = m.membership_config.membership();
    let end_of = |id: u64| -> Option<u64> {
        if id == m.id {
            return m.last_log_index.map(|i| i + 1);
        }
        m.replication
            .as_ref()
            .and_then(|r| r.get(&id))
            .map(|l| l.as_ref().map_or(0, |l| l.index + 1))
    };
    let member = |id: u64| QuorumMember {
        node_id: id,
        addr: membership
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default(),
        log_end: end_of(id),
    };
    QuorumView {
        leader: m.current_leader,
        term: m.current_term,
        high_watermark: m.last_applied.map(|l| l.index + 1),
        voters: membership.voter_ids().map(member).collect(),
        learners: membership.learner_ids().map(member).collect(),
    }
}
