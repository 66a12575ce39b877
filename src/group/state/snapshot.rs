//! A group to and from what `__consumer_offsets` keeps of it (Kafka's
//! GroupMetadataValue, [`GroupSnapshot`]): the snapshot written when the state machine
//! asks to persist, and the group restored from it when a partition is replayed.
//!
//! Dependencies: the snapshot types come from `codec.rs` (they are the record value's
//! schema); nothing here encodes bytes.

use super::{Group, GroupState, Member};
use crate::group::codec::{GroupSnapshot, MemberSnapshot};

impl Group {
    /// A group as loaded from `__consumer_offsets`: Stable with its members (who must
    /// heartbeat within their session timeout), or Empty.
    pub fn restore(id: &str, snap: GroupSnapshot, now: i64) -> Group {
        let mut g = Group::new(id, snap.state_timestamp);
        g.protocol_type = snap.protocol_type;
        g.generation = snap.generation;
        g.protocol = snap.protocol.clone();
        g.leader = snap.leader;
        for m in snap.members {
            if let Some(i) = &m.instance_id {
                g.static_members.insert(i.clone(), m.id.clone());
            }
            let protocols = vec![(snap.protocol.clone().unwrap_or_default(), m.subscription)];
            g.members.insert(
                m.id.clone(),
                Member {
                    id: m.id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms as i64,
                    rebalance_timeout_ms: m.rebalance_timeout_ms as i64,
                    protocols,
                    assignment: m.assignment,
                    join_reply: None,
                    sync_reply: None,
                    deadline: now + m.session_timeout_ms as i64,
                },
            );
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g
    }

    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupSnapshot {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_since,
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms as i32,
                    session_timeout_ms: m.session_timeout_ms as i32,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
