//! The KIP-848 half of the coordinator's API: ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe and the consumer groups' session timer, as methods of
//! [`GroupCoordinator`] over the same mutex as the classic groups (one group id is
//! either a classic or a consumer group, decided under that lock).
//!
//! One group id is one group at a time. Empty groups convert both ways, as Kafka 4
//! converts them whatever `group.consumer.migration.policy`: a ConsumerGroupHeartbeat
//! takes the id of an empty classic group, a JoinGroup that of an empty consumer group
//! (whose records are then deleted, `driver.rs`); committed offsets stay with the id.
//! Groups with members convert online as the policy allows, and classic members are
//! served inside consumer groups (`consumer_classic_api.rs`).
//!
//! Every event that changes a group appends the group's changed records (Kafka 4's,
//! `consumer/persist.rs`) to its `__consumer_offsets` partition under the lock, and a
//! heartbeat is answered once the ISR has them, as Kafka's coordinator answers after its
//! records are committed: a member is never told an assignment a new coordinator would
//! not know.
//!
//! Dependencies: `consumer/` (decisions), `driver.rs` (the coordinator and its lock),
//! `codec.rs`/`codec_consumer.rs` (encoding) and `store.rs` (appends); the topics come
//! from the metadata image.

use std::time::Duration;

use super::codec_consumer::codec_records;
use super::consumer::{
    check_not_classic, ConsumerGroup, Heartbeat, HeartbeatReply, TopicMeta, Topics, LEAVE_EPOCH,
};
use super::driver::{GroupCoordinator, Inner};
use super::store::{Appended, Record};
use super::GroupError;
use crate::now_ms;

/// How long a heartbeat waits for the ISR to have its records (Kafka's
/// `offsets.commit.timeout.ms` default, which bounds its coordinator's writes too).
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A consumer group as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<super::consumer::ConsumerMember>,
    pub targets: Vec<super::consumer::Assignment>,
}

impl GroupCoordinator {
    /// The cluster's topics as the assignors see them.
    pub(super) fn topics(&self) -> Topics {
        self.store
            .metadata
            .image()
            .topics
            .values()
            .map(|t| {
                (
                    t.name.clone(),
                    TopicMeta {
                        id: t.id,
                        partitions: t.partitions,
                    },
                )
            })
            .collect()
    }

    pub async fn consumer_heartbeat(
        &self,
        group: &str,
        req: Heartbeat,
    ) -> Result<HeartbeatReply, GroupError> {
        self.owns(group)?;
        let topics = self.topics();
        let leaving = req.member_epoch == LEAVE_EPOCH;
        let (res, written) = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let classic_members = inner.sm.group(group).is_some_and(|g| !g.is_empty());
            check_not_classic(group, classic_members, req.member_epoch)?;
            // A joining member to a classic group with members: online upgrade.
            let (first, undo) = match self.upgrade(inner, group, &topics)? {
                Some((tombstone, snap)) => (vec![tombstone], Some(snap)),
                None => (Vec::new(), None),
            };
            let res = inner
                .consumer
                .heartbeat(now_ms(), &inner.consumer_cfg, &topics, group, req);
            // Even a refused heartbeat may have changed the group (a rejoin with epoch
            // 0 that found its instance id taken removed the old member first).
            let mut written = self.write_consumer_with(inner, group, &topics, first);
            match (&written, undo) {
                (Err(_), Some(snap)) => self.undo_upgrade(inner, group, snap),
                (Ok(_), _) if leaving => {
                    // The last consumer-protocol member may have left: online downgrade.
                    if let Some(a) = self.maybe_downgrade(inner, group, &topics).transpose() {
                        written = a.map(Some);
                    }
                }
                _ => {}
            }
            (res, written)
        };
        // The member's session deadline moved: the timer re-reads the earliest one.
        self.wake_timer();
        if let Some(appended) = written? {
            if let Err(e) = self.store.wait_replicated(&appended, WRITE_TIMEOUT).await {
                tracing::warn!(group, error = %e, "consumer group records not replicated; the member retries");
                return Err(GroupError::CoordinatorNotAvailable);
            }
        }
        res
    }

    /// Appends what changed of consumer group `group` since its last write, if anything.
    /// Called under the lock, so the log's order is the order of decisions.
    pub(super) fn write_consumer(
        &self,
        inner: &mut Inner,
        group: &str,
        topics: &Topics,
    ) -> Result<Option<Appended>, GroupError> {
        self.write_consumer_with(inner, group, topics, Vec::new())
    }

    /// [`GroupCoordinator::write_consumer`] with `first` records in front, in the same
    /// append (the classic tombstone of an upgrade).
    pub(super) fn write_consumer_with(
        &self,
        inner: &mut Inner,
        group: &str,
        topics: &Topics,
        first: Vec<Record>,
    ) -> Result<Option<Appended>, GroupError> {
        let records = inner.consumer.changes(group, topics);
        if records.is_empty() && first.is_empty() {
            return Ok(None);
        }
        let mut batch = first;
        batch.extend(codec_records(&records));
        match self.store.append(group, batch) {
            Ok(a) => Ok(Some(a)),
            Err(e) => {
                tracing::error!(group, error = %e, "could not write consumer group records; the group goes back to its last write");
                inner
                    .consumer
                    .revert(group, topics, &inner.consumer_cfg, now_ms());
                Err(e)
            }
        }
    }

    /// Expires consumer group members (called by the timer) and writes the groups that
    /// lost members. Nothing waits for the ISR here: the next heartbeat of the group
    /// waits for its own records, which follow these in the log.
    pub(super) fn consumer_tick(&self) {
        let topics = self.topics();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut gone: Vec<String> = inner
            .consumer
            .tick(now_ms(), &topics, &inner.consumer_cfg)
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        gone.dedup();
        for g in gone {
            if self.write_consumer(inner, &g, &topics).is_ok() {
                // The last consumer-protocol member may have expired: online downgrade.
                let _ = self.maybe_downgrade(inner, &g, &topics);
            }
        }
    }

    pub fn consumer_describe(&self, group: &str) -> Result<ConsumerGroupDescription, GroupError> {
        self.owns(group)?;
        let inner = self.inner.lock();
        let Some(g) = inner.consumer.get(group) else {
            if inner.sm.group(group).is_some() {
                return Err(GroupError::GroupTypeMismatch {
                    group: group.to_string(),
                    actual: "classic",
                    wanted: "consumer",
                });
            }
            return Err(GroupError::GroupNotFound {
                group: group.to_string(),
            });
        };
        Ok(describe(g))
    }
}

fn describe(g: &ConsumerGroup) -> ConsumerGroupDescription {
    ConsumerGroupDescription {
        state: g.state_name(),
        epoch: g.epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: g.assignor.clone(),
        members: g.members.values().cloned().collect(),
        targets: g
            .members
            .keys()
            .map(|id| g.target.get(id).cloned().unwrap_or_default())
            .collect(),
    }
}
