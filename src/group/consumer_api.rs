//! The KIP-848 half of the coordinator's API: ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe and the consumer groups' session timer, as methods of
//! [`GroupCoordinator`] over the same mutex as the classic groups (one group id is
//! either a classic or a consumer group, decided under that lock).
//!
//! A group id held by a classic group with members is refused to ConsumerGroupHeartbeat
//! and ConsumerGroupDescribe with GROUP_ID_NOT_FOUND (Kafka's answer for a group of
//! the other type); JoinGroup on a consumer group with members is refused with
//! INCONSISTENT_GROUP_PROTOCOL (`driver.rs`). Online conversion between the two is not
//! implemented.
//!
//! Dependencies: `consumer/` (decisions), `driver.rs` (the coordinator and its lock);
//! the topics come from the metadata image.

use super::consumer::{ConsumerGroup, Heartbeat, HeartbeatReply, TopicMeta, Topics};
use super::driver::GroupCoordinator;
use super::GroupError;
use crate::now_ms;

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
    fn topics(&self) -> Topics {
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

    pub fn consumer_heartbeat(
        &self,
        group: &str,
        req: Heartbeat,
    ) -> Result<HeartbeatReply, GroupError> {
        self.owns(group)?;
        let topics = self.topics();
        let res = {
            let mut guard = self.inner.lock();
            if guard.sm.group(group).is_some_and(|g| !g.is_empty()) {
                return Err(GroupError::GroupTypeMismatch {
                    group: group.to_string(),
                    actual: "classic",
                    wanted: "consumer",
                });
            }
            let inner = &mut *guard;
            inner
                .consumer
                .heartbeat(now_ms(), &inner.consumer_cfg, &topics, group, req)
        };
        // The member's session deadline moved: the timer re-reads the earliest one.
        self.wake_timer();
        res
    }

    /// Expires consumer group members (called by the timer).
    pub(super) fn consumer_tick(&self) {
        let topics = self.topics();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.consumer.tick(now_ms(), &topics, &inner.consumer_cfg);
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
