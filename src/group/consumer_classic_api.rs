//! Kafka 4's mixed mode from the driver's side: classic requests (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) to a consumer group with members are served by it
//! (`consumer/classic.rs`), and groups with members convert online between the two
//! types (`consumer/convert.rs`) as `group.consumer.migration.policy` allows:
//!
//! - upgrade: a ConsumerGroupHeartbeat joining a classic group with members. The
//!   classic group leaves the classic state machine (its parked requests are told
//!   REBALANCE_IN_PROGRESS) and one append writes, as Kafka does, the classic
//!   GroupMetadata tombstone and then every record of the consumer group.
//! - downgrade: after a consumer-protocol member left or expired and only classic
//!   members remain. One append writes the consumer group's tombstones and the classic
//!   GroupMetadata; the classic group then rebalances.
//!
//! Committed offsets stay with the group id through both. A failed append puts the
//! group back as the log has it.
//!
//! Dependencies: `consumer/` (decisions), `driver.rs` (the coordinator, its lock and
//! `perform`), `consumer_api.rs` (writes of consumer groups), `codec.rs`.

use super::codec::{self, Key};
use super::consumer::{from_classic, to_classic, ClassicSync, Topics};
use super::driver::{GroupCoordinator, Inner};
use super::state::{Group, JoinRequest, JoinResponse, SyncRequest};
use super::store::{Appended, Record};
use super::GroupError;
use crate::now_ms;

fn group_tombstone(group: &str) -> Record {
    let key = codec::encode_key(&Key::Group {
        group: group.to_string(),
    });
    (key, None)
}

impl GroupCoordinator {
    /// Converts the classic group `group` (with members) to a consumer group, before a
    /// joining ConsumerGroupHeartbeat is applied to it. Returns the record to put first
    /// in the heartbeat's append (the classic tombstone) and the classic group's
    /// snapshot, to put it back if that append fails.
    pub(super) fn upgrade(
        &self,
        inner: &mut Inner,
        group: &str,
        topics: &Topics,
    ) -> Result<Option<(Record, codec::GroupSnapshot)>, GroupError> {
        let Some(classic) = inner.sm.group(group).filter(|g| !g.is_empty()) else {
            return Ok(None);
        };
        let now = now_ms();
        let converted = from_classic(classic, topics, inner.consumer_cfg.migration, now)?;
        let snapshot = classic.snapshot();
        let actions = inner.sm.hand_over(group, now);
        self.perform(inner, actions);
        tracing::info!(
            group,
            members = converted.members.len(),
            epoch = converted.epoch,
            "converted the classic group to a consumer group (online upgrade)"
        );
        inner.consumer.insert(converted);
        Ok(Some((group_tombstone(group), snapshot)))
    }

    /// An upgrade's append failed: the classic group comes back as it was written.
    pub(super) fn undo_upgrade(&self, inner: &mut Inner, group: &str, snap: codec::GroupSnapshot) {
        inner.sm.insert(Group::restore(group, snap, now_ms()));
    }

    /// Converts consumer group `group` back to a classic group if only classic members
    /// remain and the policy allows it; returns the append to wait for.
    pub(super) fn maybe_downgrade(
        &self,
        inner: &mut Inner,
        group: &str,
        topics: &Topics,
    ) -> Result<Option<Appended>, GroupError> {
        if !inner.consumer_cfg.migration.downgrade() {
            return Ok(None);
        }
        let now = now_ms();
        let Some(snap) = inner.consumer.get(group).and_then(|g| to_classic(g, now)) else {
            return Ok(None);
        };
        inner.consumer.take(group);
        let tombstones = inner.consumer.changes(group, topics);
        let mut records = super::codec_consumer::codec_records(&tombstones);
        let key = codec::encode_key(&Key::Group {
            group: group.to_string(),
        });
        records.push((key, Some(codec::encode_group(&snap))));
        let appended = match self.store.append(group, records) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(group, error = %e, "could not write the downgrade to a classic group; the group stays a consumer group");
                inner
                    .consumer
                    .revert(group, topics, &inner.consumer_cfg, now);
                return Err(e);
            }
        };
        let mut classic = Group::restore(group, snap, now);
        let actions = classic.rebalance(now, &inner.sm.cfg);
        tracing::info!(
            group,
            members = classic.members.len(),
            generation = classic.generation,
            "converted the consumer group to a classic group (online downgrade)"
        );
        inner.sm.insert(classic);
        self.perform(inner, actions);
        Ok(Some(appended))
    }

    /// A JoinGroup to consumer group `group` (it has members), under the lock: the
    /// answer and the append to wait for before it is sent.
    pub(super) fn classic_join_consumer(
        &self,
        inner: &mut Inner,
        group: &str,
        req: JoinRequest,
    ) -> (JoinResponse, Option<Appended>) {
        let topics = self.topics();
        let member = req.member_id.clone();
        let now = now_ms();
        let Some(g) = inner.consumer.get_mut_with_members(group) else {
            return (
                JoinResponse::error(GroupError::CoordinatorNotAvailable, &member),
                None,
            );
        };
        let res = g.classic_join(now, &inner.consumer_cfg, &topics, req);
        let written = self.write_consumer(inner, group, &topics);
        match (res, written) {
            (Ok(resp), Ok(w)) => (resp, w),
            (Err(e), _) | (_, Err(e)) => (JoinResponse::error(e, &member), None),
        }
    }

    /// A SyncGroup to a consumer group with members; `None` if `group` is not one.
    pub(super) fn classic_sync_consumer(
        &self,
        inner: &mut Inner,
        group: &str,
        req: &SyncRequest,
    ) -> Option<Result<ClassicSync, GroupError>> {
        let g = inner.consumer.get_mut_with_members(group)?;
        Some(g.classic_sync(now_ms(), req))
    }

    /// A Heartbeat to a consumer group with members; `None` if `group` is not one.
    pub(super) fn classic_heartbeat_consumer(
        &self,
        inner: &mut Inner,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Option<Result<(), GroupError>> {
        let g = inner.consumer.get_mut_with_members(group)?;
        Some(g.classic_heartbeat(now_ms(), member, instance, generation))
    }

    /// A LeaveGroup to a consumer group with members; `None` if `group` is not one.
    pub(super) fn classic_leave_consumer(
        &self,
        inner: &mut Inner,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Option<Vec<Result<(), GroupError>>> {
        let topics = self.topics();
        let g = inner.consumer.get_mut_with_members(group)?;
        let results = g.classic_leave(&topics, members);
        if let Err(e) = self.write_consumer(inner, group, &topics) {
            return Some(members.iter().map(|_| Err(e.clone())).collect());
        }
        Some(results)
    }
}
