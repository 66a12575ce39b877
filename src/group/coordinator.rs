//! The group coordinator as a pure state machine over every group it owns:
//! `on_event(now, event) -> Vec<Action>`. No sockets, no sleeps, no disk; the clock is
//! passed in. The async driver (`driver.rs`) turns actions into replies and writes.
//!
//! Dependencies point down: this file uses `state` (the per-group machine and its
//! request/response/action types, `state/types.rs`); `driver.rs` and `offsets.rs` use it.

use std::collections::HashMap;

use super::state::{
    Action, Group, GroupConfig, GroupState, JoinRequest, JoinResponse, LeaveOutcome, ReplyId,
    SyncRequest,
};
use super::GroupError;

/// An input of [`Coordinator::on_event`].
#[derive(Debug, Clone)]
pub enum Event {
    Join(ReplyId, JoinRequest),
    Sync(ReplyId, SyncRequest),
    Tick,
}

/// Every group owned by this coordinator.
pub struct Coordinator {
    pub cfg: GroupConfig,
    groups: HashMap<String, Group>,
}

impl Coordinator {
    pub fn new(cfg: GroupConfig) -> Coordinator {
        Coordinator {
            cfg,
            groups: HashMap::new(),
        }
    }

    /// Feeds one event for `group` (ignored for [`Event::Tick`], which visits every
    /// group) and returns what to do.
    pub fn on_event(&mut self, now: i64, group: &str, event: Event) -> Vec<Action> {
        match event {
            Event::Join(reply, req) => {
                if req.member_id.is_empty() || self.groups.contains_key(group) {
                    let g = self
                        .groups
                        .entry(group.to_string())
                        .or_insert_with(|| Group::new(group, now));
                    g.join(now, &self.cfg, reply, req)
                } else {
                    let member = req.member_id;
                    vec![Action::Join(
                        reply,
                        JoinResponse::error(GroupError::UnknownMemberId, &member),
                    )]
                }
            }
            Event::Sync(reply, req) => match self.groups.get_mut(group) {
                Some(g) => g.sync(now, reply, req),
                None => vec![Action::Sync(reply, Err(GroupError::UnknownMemberId))],
            },
            Event::Tick => {
                let mut out = Vec::new();
                for g in self.groups.values_mut() {
                    if g.next_deadline().is_some_and(|d| d <= now) {
                        out.extend(g.tick(now, &self.cfg));
                    }
                }
                out
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        now: i64,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        match self.groups.get_mut(group) {
            Some(g) => g.heartbeat(now, member, instance, generation),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    pub fn leave(
        &mut self,
        now: i64,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Result<LeaveOutcome, GroupError> {
        match self.groups.get_mut(group) {
            Some(g) => Ok(g.leave(now, &self.cfg, members)),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    /// The earliest instant at which a [`Event::Tick`] has work.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups.values().filter_map(Group::next_deadline).min()
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// The group, created Empty if unknown (a simple consumer's offset commit).
    pub fn group_or_create(&mut self, id: &str, now: i64) -> &mut Group {
        self.groups
            .entry(id.to_string())
            .or_insert_with(|| Group::new(id, now))
    }

    pub fn insert(&mut self, group: Group) {
        self.groups.insert(group.id.clone(), group);
    }

    /// Removes a group (DeleteGroups, expiry); parked requests are answered.
    pub fn remove(&mut self, id: &str, now: i64) -> Vec<Action> {
        match self.groups.remove(id) {
            Some(mut g) => g.mark_dead(now),
            None => Vec::new(),
        }
    }

    /// Takes a group out to convert it to a consumer group ([`Group::hand_over`]).
    pub fn hand_over(&mut self, id: &str, now: i64) -> Vec<Action> {
        match self.groups.remove(id) {
            Some(mut g) => g.hand_over(now),
            None => Vec::new(),
        }
    }

    /// Checks an OffsetCommit against membership: simple commits (generation < 0)
    /// only to empty groups, otherwise a current member of the current generation.
    pub fn validate_commit(
        &self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get(group) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration {
                    generation,
                    current: -1,
                })
            };
        };
        match g.state {
            GroupState::Dead => Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty if generation < 0 => Ok(()),
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            _ => {
                g.check_member(member, instance)?;
                if generation != g.generation {
                    return Err(GroupError::IllegalGeneration {
                        generation,
                        current: g.generation,
                    });
                }
                Ok(())
            }
        }
    }
}
