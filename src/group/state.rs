//! One consumer group's membership state machine (Kafka's classic protocol).
//!
//! [`Group`] decides from (state, request, now) and returns [`Action`]s; it never
//! sleeps, touches a socket or the disk. Parked JoinGroup and SyncGroup requests are
//! identified by a [`ReplyId`] that the driver maps to a waiting connection.
//!
//! States follow Kafka: Empty -> PreparingRebalance -> CompletingRebalance -> Stable,
//! and Dead once the group is deleted.
//!
//! Files: this one holds [`Group`] and SyncGroup, Heartbeat, LeaveGroup, expiry and
//! deletion; `state/join.rs` JoinGroup and the rebalance; `state/snapshot.rs` the
//! persisted form; `state/types.rs` the requests, responses and actions.
//!
//! **Departure:** Kafka extends the initial rebalance delay each time a member joins
//! an empty group (up to the rebalance timeout). Strata waits exactly
//! `group.initial.rebalance.delay.ms` from the first join, so a new consumer's first
//! join never takes longer than that.
//!
//! Dependencies point down only: `state/types.rs` (what the machine consumes and
//! produces), `codec.rs` (the persisted snapshot's types, consumer subscriptions) and
//! [`GroupError`]. Nothing here imports `coordinator.rs` or `driver.rs`, which drive it.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::codec;
use super::GroupError;

mod join;
mod snapshot;
mod types;
pub use types::{
    Action, GroupConfig, JoinRequest, JoinResponse, LeaveOutcome, MemberInfo, ReplyId, SyncRequest,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in ListGroups and DescribeGroups.
    pub fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_reply: Option<ReplyId>,
    sync_reply: Option<ReplyId>,
    /// Removed if no heartbeat (or join/sync) arrives before this instant.
    deadline: i64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn protocol_names(&self) -> Vec<&str> {
        self.protocols.iter().map(|(n, _)| n.as_str()).collect()
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending: HashMap<String, i64>,
    rebalance_deadline: i64,
    initial_join: bool,
    /// When the group entered its current state (persisted; offsets expire from it).
    pub state_since: i64,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: 0,
            initial_join: false,
            state_since: now,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    fn set_state(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_since = now;
    }

    /// The earliest instant at which [`Group::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.sync_reply.is_none())
            .map(|m| m.deadline);
        let rebalance =
            (self.state == GroupState::PreparingRebalance).then_some(self.rebalance_deadline);
        members
            .chain(self.pending.values().copied())
            .chain(rebalance)
            .min()
    }

    fn forget_member(&mut self, id: &str) -> Option<Member> {
        let m = self.members.remove(id)?;
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(id) {
                self.static_members.remove(i);
            }
        }
        Some(m)
    }

    /// Checks that `id` is a member and that a static `instance` still maps to it.
    pub fn check_member(&self, id: &str, instance: Option<&str>) -> Result<(), GroupError> {
        if let Some(i) = instance {
            match self.static_members.get(i) {
                Some(current) if current != id => {
                    return Err(GroupError::FencedInstanceId {
                        instance: i.to_string(),
                    })
                }
                None if !self.members.contains_key(id) => return Err(GroupError::UnknownMemberId),
                _ => {}
            }
        }
        if !self.members.contains_key(id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    // --- SyncGroup, Heartbeat, LeaveGroup --------------------------------------------

    pub fn sync(&mut self, now: i64, reply: ReplyId, req: SyncRequest) -> Vec<Action> {
        let mut out = Vec::new();
        match self.try_sync(now, reply, req, &mut out) {
            Ok(()) => {}
            Err(e) => out.push(Action::Sync(reply, Err(e))),
        }
        out
    }

    fn try_sync(
        &mut self,
        now: i64,
        reply: ReplyId,
        req: SyncRequest,
        out: &mut Vec<Action>,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.check_member(&req.member_id, req.instance_id.as_deref())?;
        if req.generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                generation: req.generation,
                current: self.generation,
            });
        }
        let type_ok = req.protocol_type.is_none() || req.protocol_type == self.protocol_type;
        let name_ok = req.protocol_name.is_none() || req.protocol_name == self.protocol;
        if !type_ok || !name_ok {
            return Err(GroupError::InconsistentGroupProtocol {
                group: self.id.clone(),
            });
        }
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        member.deadline = now + member.session_timeout_ms;
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                out.push(Action::Sync(reply, Ok(member.assignment.clone())));
                Ok(())
            }
            GroupState::CompletingRebalance => {
                if let Some(old) = member.sync_reply.replace(reply) {
                    out.push(Action::Sync(old, Err(GroupError::RebalanceInProgress)));
                }
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable, now);
                    out.push(Action::Persist(self.id.clone()));
                    for m in self.members.values_mut() {
                        m.deadline = now + m.session_timeout_ms;
                        if let Some(r) = m.sync_reply.take() {
                            out.push(Action::Sync(r, Ok(m.assignment.clone())));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        now: i64,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        match self.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        self.check_member(member_id, instance)?;
        let rebalancing = self.state == GroupState::PreparingRebalance;
        if !rebalancing && generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                generation,
                current: self.generation,
            });
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.deadline = now + m.session_timeout_ms;
        }
        if rebalancing {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Removes each (member id, instance id); the results are in request order.
    pub fn leave(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        members: &[(String, Option<String>)],
    ) -> LeaveOutcome {
        let mut out = Vec::new();
        let mut results = Vec::with_capacity(members.len());
        for (member_id, instance) in members {
            let id = match instance {
                Some(i) => match self.static_members.get(i) {
                    Some(current) if !member_id.is_empty() && current != member_id => {
                        results.push(Err(GroupError::FencedInstanceId {
                            instance: i.clone(),
                        }));
                        continue;
                    }
                    Some(current) => current.clone(),
                    None => {
                        results.push(Err(GroupError::UnknownMemberId));
                        continue;
                    }
                },
                None => member_id.clone(),
            };
            if !self.members.contains_key(&id) {
                results.push(Err(GroupError::UnknownMemberId));
                continue;
            }
            self.remove_member(now, cfg, &id, &mut out);
            results.push(Ok(()));
        }
        (results, out)
    }

    fn remove_member(&mut self, now: i64, cfg: &GroupConfig, id: &str, out: &mut Vec<Action>) {
        let Some(m) = self.forget_member(id) else {
            return;
        };
        if let Some(r) = m.join_reply {
            out.push(Action::Join(
                r,
                JoinResponse::error(GroupError::UnknownMemberId, id),
            ));
        }
        if let Some(r) = m.sync_reply {
            out.push(Action::Sync(r, Err(GroupError::UnknownMemberId)));
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg, out);
                self.try_complete_join(now, out);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Expires silent members and pending member ids, and completes a rebalance whose
    /// deadline has passed.
    pub fn tick(&mut self, now: i64, cfg: &GroupConfig) -> Vec<Action> {
        let mut out = Vec::new();
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.sync_reply.is_none() && m.deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(now, cfg, &id, &mut out);
        }
        if self.pending.len() != before || now >= self.rebalance_deadline {
            self.try_complete_join(now, &mut out);
        }
        out
    }

    /// Marks the group deleted; waiting requests are told to find the coordinator again.
    pub fn mark_dead(&mut self, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        for m in self.members.values_mut() {
            if let Some(r) = m.join_reply.take() {
                out.push(Action::Join(
                    r,
                    JoinResponse::error(GroupError::CoordinatorNotAvailable, &m.id),
                ));
            }
            if let Some(r) = m.sync_reply.take() {
                out.push(Action::Sync(r, Err(GroupError::CoordinatorNotAvailable)));
            }
        }
        self.members.clear();
        self.static_members.clear();
        self.set_state(GroupState::Dead, now);
        out
    }

    /// The group is handed over to a consumer group (an online upgrade): parked
    /// JoinGroup and SyncGroup requests are told REBALANCE_IN_PROGRESS, so their members
    /// rejoin the consumer group, as Kafka's conversion answers them.
    pub fn hand_over(&mut self, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        for m in self.members.values_mut() {
            if let Some(r) = m.join_reply.take() {
                out.push(Action::Join(
                    r,
                    JoinResponse::error(GroupError::RebalanceInProgress, &m.id),
                ));
            }
            if let Some(r) = m.sync_reply.take() {
                out.push(Action::Sync(r, Err(GroupError::RebalanceInProgress)));
            }
        }
        self.members.clear();
        self.static_members.clear();
        self.set_state(GroupState::Dead, now);
        out
    }

    /// Starts a rebalance (a consumer group just went back to classic: its members
    /// rejoin and the leader assigns again).
    pub fn rebalance(&mut self, now: i64, cfg: &GroupConfig) -> Vec<Action> {
        let mut out = Vec::new();
        self.prepare_rebalance(now, cfg, &mut out);
        out
    }

    /// Topics named in the members' subscriptions (consumer protocol only).
    pub fn subscribed_topics(&self) -> Vec<String> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return Vec::new();
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let mut topics: Vec<String> = self
            .members
            .values()
            .flat_map(|m| codec::subscription_topics(&m.metadata(&protocol)))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}
