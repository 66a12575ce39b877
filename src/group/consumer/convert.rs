//! Online migration between the two group types (KIP-848, Kafka 4), decided by
//! `group.consumer.migration.policy` ([`MigrationPolicy`]):
//!
//! - **upgrade** ([`from_classic`]): the first ConsumerGroupHeartbeat (epoch 0) to a
//!   classic group with members turns it into a consumer group. Each classic member is
//!   kept as a classic member (`classic.rs`) at the classic generation, Stable, owning
//!   its last assignment, which is also its target; the group epoch and the target's
//!   epoch are the generation. The joining member then moves the epoch, so the classic
//!   members are told to rejoin and revoke what the new target takes from them.
//! - **downgrade** ([`to_classic`]): when a consumer-protocol member leaves (or
//!   expires) and only classic members remain, the group goes back to a classic group
//!   at generation = group epoch, leader its first member, with the protocol all members
//!   support and each member's assignment; the driver then starts a rebalance so the
//!   classic leader assigns again.
//!
//! Empty groups convert whatever the policy (done by the driver: the new protocol
//! simply takes the id). Pure; the driver writes the records and moves the group
//! between the two state machines.
//!
//! Dependencies: `group.rs`, `classic.rs`, `embedded.rs`, the classic group
//! ([`Group`]) and its persisted form ([`GroupSnapshot`]), [`GroupError`].

use std::str::FromStr;

use super::classic::{ClassicMeta, PROTOCOL_TYPE};
use super::group::{ConsumerGroup, ConsumerMember, MemberState};
use super::{partitions, Topics};
use crate::group::codec::{GroupSnapshot, MemberSnapshot};
use crate::group::embedded;
use crate::group::state::Group;
use crate::group::GroupError;

/// Kafka's `group.consumer.migration.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationPolicy {
    #[default]
    Bidirectional,
    Upgrade,
    Downgrade,
    Disabled,
}

impl FromStr for MigrationPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "bidirectional" => Ok(Self::Bidirectional),
            "upgrade" => Ok(Self::Upgrade),
            "downgrade" => Ok(Self::Downgrade),
            "disabled" => Ok(Self::Disabled),
            other => Err(format!(
                "'{other}' is not one of bidirectional, upgrade, downgrade, disabled"
            )),
        }
    }
}

impl MigrationPolicy {
    pub fn upgrade(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Upgrade)
    }
    pub fn downgrade(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Downgrade)
    }
}

/// The consumer group a classic group with members becomes (Kafka's
/// `ConsumerGroup.fromClassicGroup`), or Kafka's GROUP_ID_NOT_FOUND reason why not.
/// Partitions of topics that no longer exist are dropped.
pub fn from_classic(
    classic: &Group,
    topics: &Topics,
    policy: MigrationPolicy,
    now: i64,
) -> Result<ConsumerGroup, GroupError> {
    let group = classic.id.clone();
    if !policy.upgrade() {
        return Err(GroupError::UpgradeDisabled { group });
    }
    if classic.protocol_type.as_deref() != Some(PROTOCOL_TYPE) {
        return Err(GroupError::UpgradeNotConsumerProtocol { group });
    }
    let protocol = classic.protocol.clone().unwrap_or_default();
    let malformed = || GroupError::UpgradeMalformed {
        group: group.clone(),
    };
    let mut g = ConsumerGroup::new(&group);
    g.epoch = classic.generation;
    g.assignment_epoch = classic.generation;
    for cm in classic.members.values() {
        // A member that joined and never synced has no assignment yet: accepted empty.
        let (mut assigned, user_data) =
            embedded::decode_assignment_with_user_data(&cm.assignment).ok_or_else(malformed)?;
        if user_data {
            return Err(GroupError::UpgradeCustomAssignor {
                group: group.clone(),
            });
        }
        assigned.retain(|t, _| topics.contains_key(t));
        let metadata = cm
            .protocols
            .iter()
            .find(|(n, _)| *n == protocol)
            .or(cm.protocols.first())
            .map(|(_, m)| m.clone())
            .unwrap_or_default();
        let sub = embedded::decode_subscription(&metadata).ok_or_else(malformed)?;
        let session = cm.session_timeout_ms;
        let mut m = ConsumerMember::new(
            &cm.id,
            cm.instance_id.clone(),
            (&cm.client_id, &cm.client_host),
            now + session,
        );
        m.epoch = classic.generation;
        m.previous_epoch = classic.generation;
        m.state = MemberState::Stable;
        m.rack_id = sub.rack;
        m.rebalance_timeout_ms = cm.rebalance_timeout_ms;
        let mut names = sub.topics;
        names.sort();
        names.dedup();
        m.topic_names = names;
        m.classic = Some(ClassicMeta {
            session_timeout_ms: session,
            protocols: cm.protocols.clone(),
        });
        for (t, p) in partitions(&assigned) {
            g.holders.insert((t.to_string(), p), cm.id.clone());
        }
        g.target.insert(cm.id.clone(), assigned.clone());
        m.assigned = assigned;
        g.members.insert(cm.id.clone(), m);
    }
    g.refresh_metadata(topics);
    Ok(g)
}

/// The classic group a consumer group whose members all use the classic protocol
/// becomes (Kafka's `ClassicGroup.fromConsumerGroup`), as the snapshot the classic
/// state machine restores from: generation = group epoch, the protocol every member
/// supports (in the first member's order of preference), leader the first member,
/// each member's assignment. `None` if the group is empty or not all classic.
pub fn to_classic(g: &ConsumerGroup, now: i64) -> Option<GroupSnapshot> {
    if !g.all_classic() {
        return None;
    }
    let metas: Vec<(&ConsumerMember, &ClassicMeta)> = g
        .members
        .values()
        .filter_map(|m| m.classic.as_ref().map(|c| (m, c)))
        .collect();
    let (_, first) = metas.first()?;
    let protocol = first
        .protocols
        .iter()
        .map(|(n, _)| n)
        .find(|n| {
            metas
                .iter()
                .all(|(_, c)| c.protocols.iter().any(|(p, _)| p == *n))
        })?
        .clone();
    let members = metas
        .iter()
        .map(|(m, c)| MemberSnapshot {
            id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms as i32,
            session_timeout_ms: c.session_timeout_ms as i32,
            subscription: c
                .protocols
                .iter()
                .find(|(n, _)| *n == protocol)
                .map(|(_, b)| b.clone())
                .unwrap_or_default(),
            assignment: embedded::encode_assignment(&m.assigned),
        })
        .collect::<Vec<_>>();
    Some(GroupSnapshot {
        protocol_type: Some(PROTOCOL_TYPE.to_string()),
        generation: g.epoch,
        protocol: Some(protocol),
        leader: members.first().map(|m| m.id.clone()),
        state_timestamp: now,
        members,
    })
}
