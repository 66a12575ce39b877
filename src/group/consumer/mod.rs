//! Consumer groups of the new protocol (KIP-848): ConsumerGroupHeartbeat decides
//! membership and assignment on the broker; there is no JoinGroup/SyncGroup barrier.
//!
//! - this file: the vocabulary ([`Heartbeat`], [`HeartbeatReply`], [`ConsumerConfig`],
//!   [`Topics`]) and [`ConsumerGroups`], every consumer group of this coordinator.
//! - `group.rs`: one group, [`ConsumerGroup`]: heartbeat, leave, session expiry, the
//!   group epoch and the target assignment.
//! - `reconcile.rs`: how one member moves from its current assignment towards its
//!   target (Kafka's CurrentAssignmentBuilder): a partition is given to its new owner only
//!   after the previous owner revoked it.
//! - `assignor.rs`: the server-side assignors `uniform` and `range`.
//!
//! Everything here is pure: the clock and the topics are passed in. The driver
//! (`driver.rs`) serializes calls under its mutex.
//!
//! - `persist.rs`: the records of a group in `__consumer_offsets` (Kafka 4's), the diff
//!   of what to write after an event, and the group restored from a replay.
//!
//! **Persisted as Kafka 4 does.** [`ConsumerGroups::changes`] diffs a group against
//! what was last written and returns the records to append (none for a heartbeat that
//! changed nothing); [`ConsumerGroups::restore`] brings a group back from a replay, so
//! after a coordinator restart or failover the members keep their ids, epochs and
//! assignments and keep heartbeating without a rejoin.
//!
//! Dependencies: [`GroupError`] only; nothing here knows Kafka request types.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::GroupError;

mod assignor;
mod classic;
#[cfg(test)]
mod classic_tests;
mod convert;
mod group;
mod persist;
#[cfg(test)]
mod persist_tests;
mod reconcile;
#[cfg(test)]
mod tests;

pub use classic::{ClassicMeta, ClassicSync};
pub use convert::{from_classic, to_classic, MigrationPolicy};
pub use group::{ConsumerGroup, ConsumerMember, MemberState};
pub use persist::ConsumerRecord;

use crate::group::codec_consumer::ConsumerGroupRecords;

/// Partitions by topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// A topic as the assignors see it: its id (answers carry ids) and partition count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: uuid::Uuid,
    pub partitions: i32,
}

/// The cluster's topics by name, at the time of the event.
pub type Topics = BTreeMap<String, TopicMeta>;

/// `group.consumer.*`, as the state machine uses them.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i32,
    /// Short assignor names; the first is the default.
    pub assignors: Vec<String>,
    /// `group.consumer.migration.policy`: which online conversions of groups with
    /// members are allowed (`convert.rs`).
    pub migration: MigrationPolicy,
}

/// One ConsumerGroupHeartbeat, translated. `None` fields mean "unchanged" as in Kafka.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `Some("")` clears the regex.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns (topic ids resolved to names by the caller).
    pub owned: Option<Assignment>,
}

/// The answer to a heartbeat that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the request was a full one or the assignment changed (as Kafka).
    pub assignment: Option<Assignment>,
}

/// The epoch a leaving member sends (dynamic member, or static member that may return).
pub const LEAVE_EPOCH: i32 = -1;
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// Every consumer group this coordinator owns.
#[derive(Default)]
pub struct ConsumerGroups {
    groups: HashMap<String, ConsumerGroup>,
    /// What was last written of each group (or replayed), to diff against.
    written: HashMap<String, ConsumerGroupRecords>,
    /// The image before the last [`ConsumerGroups::changes`], for
    /// [`ConsumerGroups::revert`].
    previous: Option<(String, ConsumerGroupRecords)>,
}

/// A ConsumerGroupHeartbeat that is not a join (epoch != 0) to a classic group with
/// members: Kafka's GROUP_ID_NOT_FOUND "is not a consumer group" (only a joining member
/// starts an online upgrade, `convert.rs`).
pub fn check_not_classic(
    group: &str,
    classic_members: bool,
    member_epoch: i32,
) -> Result<(), GroupError> {
    if classic_members && member_epoch != 0 {
        return Err(GroupError::NotConsumerGroup {
            group: group.to_string(),
        });
    }
    Ok(())
}

impl ConsumerGroups {
    pub fn heartbeat(
        &mut self,
        now: i64,
        cfg: &ConsumerConfig,
        topics: &Topics,
        group: &str,
        req: Heartbeat,
    ) -> Result<HeartbeatReply, GroupError> {
        if req.member_epoch != 0 {
            // Only epoch 0 creates a group; anything else must know one.
            let Some(g) = self.groups.get_mut(group) else {
                return Err(GroupError::UnknownMemberId);
            };
            return g.heartbeat(now, cfg, topics, req);
        }
        self.groups
            .entry(group.to_string())
            .or_insert_with(|| ConsumerGroup::new(group))
            .heartbeat(now, cfg, topics, req)
    }

    /// Expires members whose session timed out and members that did not revoke within
    /// their rebalance timeout. Returns (group, member) of each removed member.
    pub fn tick(
        &mut self,
        now: i64,
        topics: &Topics,
        cfg: &ConsumerConfig,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            if g.next_deadline().is_some_and(|d| d <= now) {
                for m in g.expire(now, topics, cfg) {
                    out.push((g.id.clone(), m));
                }
            }
        }
        out
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(ConsumerGroup::next_deadline)
            .min()
    }

    pub fn get(&self, id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(id)
    }

    /// The group if it has members (classic requests are then served by it).
    pub fn get_mut_with_members(&mut self, id: &str) -> Option<&mut ConsumerGroup> {
        self.groups.get_mut(id).filter(|g| !g.members.is_empty())
    }

    /// Adds a group converted from a classic group; [`ConsumerGroups::changes`] then
    /// writes all its records.
    pub fn insert(&mut self, g: ConsumerGroup) {
        self.groups.insert(g.id.clone(), g);
    }

    /// Takes a group out (it becomes a classic group); [`ConsumerGroups::changes`] then
    /// writes its tombstones.
    pub fn take(&mut self, id: &str) -> Option<ConsumerGroup> {
        self.groups.remove(id)
    }

    /// True if the group exists and has members (a classic JoinGroup is then refused).
    pub fn has_members(&self, id: &str) -> bool {
        self.groups.get(id).is_some_and(|g| !g.members.is_empty())
    }

    /// Forgets an empty group (a classic member takes the id over, DeleteGroups).
    pub fn remove_if_empty(&mut self, id: &str) -> bool {
        if self.groups.get(id).is_some_and(|g| g.members.is_empty()) {
            self.groups.remove(id);
            return true;
        }
        false
    }

    pub fn groups(&self) -> impl Iterator<Item = &ConsumerGroup> {
        self.groups.values()
    }

    /// Forgets the groups for which `keep` is false (their coordinator partition moved).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.groups.retain(|id, _| keep(id));
        self.written.retain(|id, _| keep(id));
    }

    /// The records to append for `group` after an event: what changed since the last
    /// write (tombstones if the group is gone). They count as written from now on; if
    /// the append fails, [`ConsumerGroups::revert`] undoes the event.
    pub fn changes(&mut self, group: &str, topics: &Topics) -> Vec<ConsumerRecord> {
        let new = self
            .groups
            .get(group)
            .map(|g| persist::image(g, topics))
            .unwrap_or_default();
        let old = self.written.remove(group).unwrap_or_default();
        let out = persist::diff(group, &old, &new);
        if !new.is_deleted() {
            self.written.insert(group.to_string(), new);
        }
        self.previous = Some((group.to_string(), old));
        out
    }

    /// The records of the last [`ConsumerGroups::changes`] of `group` could not be
    /// appended: the group goes back to what the log has, as Kafka's coordinator reverts
    /// its in-memory state when a write fails (a group created by the event is gone).
    /// Sessions restart at `now`, as after a load.
    pub fn revert(&mut self, group: &str, topics: &Topics, cfg: &ConsumerConfig, now: i64) {
        let Some((_, old)) = self.previous.take().filter(|(g, _)| g == group) else {
            return;
        };
        self.groups.remove(group);
        self.written.remove(group);
        self.restore(group, old, topics, cfg, now);
    }

    /// Brings back a group from its replayed records (a restart or a failover).
    pub fn restore(
        &mut self,
        id: &str,
        records: ConsumerGroupRecords,
        topics: &Topics,
        cfg: &ConsumerConfig,
        now: i64,
    ) {
        if let Some(g) = persist::restore(id, &records, topics, cfg, now) {
            self.groups.insert(id.to_string(), g);
            self.written.insert(id.to_string(), records);
        }
    }

    /// Checks an OffsetCommit of a consumer group member (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`): the member must exist and commit with
    /// its current epoch. `Ok(false)` means the group is not a consumer group with
    /// members here, and the classic checks apply.
    pub fn validate_commit(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<bool, GroupError> {
        let Some(g) = self.groups.get(group) else {
            return Ok(false);
        };
        if epoch < 0 && g.members.is_empty() {
            return Ok(true);
        }
        let Some(m) = g.members.get(member) else {
            return Err(GroupError::UnknownMemberId);
        };
        // A classic member commits with its generation, which is its member epoch.
        if m.classic.is_some() && epoch != m.epoch {
            return Err(GroupError::IllegalGeneration {
                generation: epoch,
                current: m.epoch,
            });
        }
        if epoch > m.epoch {
            return Err(GroupError::FencedMemberEpoch {
                group: group.to_string(),
                member: member.to_string(),
                received: epoch,
                current: m.epoch,
            });
        }
        if epoch < m.epoch {
            return Err(GroupError::StaleMemberEpoch {
                group: group.to_string(),
                member: member.to_string(),
                received: epoch,
                current: m.epoch,
            });
        }
        Ok(true)
    }
}

/// The partitions of `a` that are not in `b`.
pub(crate) fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(other) => ps.difference(other).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(t.clone(), rest);
        }
    }
    out
}

/// The partitions in both.
pub(crate) fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(other) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(other).copied().collect();
            if !both.is_empty() {
                out.insert(t.clone(), both);
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

pub(crate) fn partitions(a: &Assignment) -> impl Iterator<Item = (&str, i32)> {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)))
}
