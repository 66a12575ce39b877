//! One consumer group's membership state machine (Kafka's classic protocol).
//!
//! [`Group`] decides from (state, request, now) and returns [`Action`]s; it never
//! sleeps, touches a socket or the disk. Parked JoinGroup and SyncGroup requests are
//! identified by a [`ReplyId`] that the driver maps to a waiting connection.
//!
//! States follow Kafka: Empty -> PreparingRebalance -> CompletingRebalance -> Stable,
//! and Dead once the group is deleted.
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

    // --- JoinGroup -----------------------------------------------------------------

    pub fn join(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        reply: ReplyId,
        req: JoinRequest,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let fail = |out: &mut Vec<Action>, e: GroupError, member: &str| {
            out.push(Action::Join(reply, JoinResponse::error(e, member)));
        };
        if self.state == GroupState::Dead {
            fail(
                &mut out,
                GroupError::CoordinatorNotAvailable,
                &req.member_id,
            );
        } else if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            fail(
                &mut out,
                GroupError::InvalidSessionTimeout {
                    requested: req.session_timeout_ms,
                    min: cfg.min_session_timeout_ms,
                    max: cfg.max_session_timeout_ms,
                },
                &req.member_id,
            );
        } else if !self.supports(&req.protocol_type, &req.protocols) {
            fail(
                &mut out,
                GroupError::InconsistentGroupProtocol {
                    group: self.id.clone(),
                },
                &req.member_id,
            );
        } else if req.member_id.is_empty() {
            self.join_new(now, cfg, reply, req, &mut out);
        } else {
            self.join_known(now, cfg, reply, req, &mut out);
        }
        out
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(n, _)| {
                self.members
                    .values()
                    .all(|m| m.protocol_names().contains(&n.as_str()))
            })
    }

    fn join_new(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        reply: ReplyId,
        req: JoinRequest,
        out: &mut Vec<Action>,
    ) {
        if let Some(instance) = &req.instance_id {
            if let Some(old) = self.static_members.get(instance).cloned() {
                return self.replace_static(now, cfg, reply, req, old, out);
            }
        } else if req.require_known_member_id {
            let id = cfg.new_member_id(&req.client_id);
            self.pending
                .insert(id.clone(), now + req.session_timeout_ms as i64);
            out.push(Action::Join(
                reply,
                JoinResponse::error(GroupError::MemberIdRequired, &id),
            ));
            return;
        }
        let id = cfg.new_member_id(&req.client_id);
        self.add_member(now, cfg, reply, req, id, out);
    }

    fn add_member(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        reply: ReplyId,
        req: JoinRequest,
        id: String,
        out: &mut Vec<Action>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.pending.remove(&id);
        if let Some(i) = &req.instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        let member = Member {
            id: id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms as i64,
            rebalance_timeout_ms: req.rebalance_timeout_ms as i64,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_reply: Some(reply),
            sync_reply: None,
            deadline: now + req.session_timeout_ms as i64,
        };
        self.members.insert(id, member);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, cfg, out);
        }
        self.try_complete_join(now, out);
    }

    fn join_known(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        reply: ReplyId,
        req: JoinRequest,
        out: &mut Vec<Action>,
    ) {
        let id = req.member_id.clone();
        if self.pending.contains_key(&id) && !self.members.contains_key(&id) {
            return self.add_member(now, cfg, reply, req, id, out);
        }
        if let Err(e) = self.check_member(&id, req.instance_id.as_deref()) {
            out.push(Action::Join(reply, JoinResponse::error(e, &id)));
            return;
        }
        let Some(member) = self.members.get(&id) else {
            return;
        };
        let unchanged = member.protocols == req.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(now, reply, req, out);
                self.try_complete_join(now, out);
            }
            GroupState::CompletingRebalance if unchanged => {
                let resp = self.join_response(&id, is_leader);
                out.push(Action::Join(reply, resp));
            }
            GroupState::Stable if unchanged && !is_leader => {
                let resp = self.join_response(&id, false);
                out.push(Action::Join(reply, resp));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(now, reply, req, out);
                self.prepare_rebalance(now, cfg, out);
                self.try_complete_join(now, out);
            }
            GroupState::Empty | GroupState::Dead => {
                out.push(Action::Join(
                    reply,
                    JoinResponse::error(GroupError::UnknownMemberId, &id),
                ));
            }
        }
    }

    fn update_member(&mut self, now: i64, reply: ReplyId, req: JoinRequest, out: &mut Vec<Action>) {
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return;
        };
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms as i64;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms as i64;
        m.deadline = now + m.session_timeout_ms;
        if let Some(old) = m.join_reply.replace(reply) {
            out.push(Action::Join(
                old,
                JoinResponse::error(GroupError::RebalanceInProgress, &m.id),
            ));
        }
    }

    /// KIP-345: a static member that restarted (empty member id, known instance id)
    /// takes its old member's place; in a Stable group with unchanged protocols the
    /// others see no rebalance.
    fn replace_static(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        reply: ReplyId,
        req: JoinRequest,
        old_id: String,
        out: &mut Vec<Action>,
    ) {
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members.retain(|_, v| *v != old_id);
            let id = cfg.new_member_id(&req.client_id);
            return self.add_member(now, cfg, reply, req, id, out);
        };
        let fenced = GroupError::FencedInstanceId {
            instance: req.instance_id.clone().unwrap_or_default(),
        };
        if let Some(r) = member.join_reply.take() {
            out.push(Action::Join(
                r,
                JoinResponse::error(fenced.clone(), &old_id),
            ));
        }
        if let Some(r) = member.sync_reply.take() {
            out.push(Action::Sync(r, Err(fenced)));
        }
        let names_unchanged = member.protocol_names()
            == req
                .protocols
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>();
        let new_id = cfg.new_member_id(&req.client_id);
        member.id = new_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout_ms = req.session_timeout_ms as i64;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms as i64;
        member.protocols = req.protocols;
        member.deadline = now + member.session_timeout_ms;
        let old_leader = self.leader.clone();
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if let Some(i) = &member.instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        if self.state == GroupState::Stable
            && names_unchanged
            && self.select_protocol() == self.protocol
        {
            // Kafka answers with the *old* leader id so that a restarted leader does not
            // compute an assignment a Stable group would ignore.
            let mut resp = self.join_response(&new_id, false);
            resp.leader = old_leader.unwrap_or_default();
            out.push(Action::Join(reply, resp));
            out.push(Action::Persist(self.id.clone()));
            return;
        }
        if let Some(m) = self.members.get_mut(&new_id) {
            m.join_reply = Some(reply);
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, cfg, out);
        }
        self.try_complete_join(now, out);
    }

    fn join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .values()
                .map(|m| MemberInfo {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    fn prepare_rebalance(&mut self, now: i64, cfg: &GroupConfig, out: &mut Vec<Action>) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(r) = m.sync_reply.take() {
                    out.push(Action::Sync(r, Err(GroupError::RebalanceInProgress)));
                }
            }
        }
        self.initial_join = self.state == GroupState::Empty;
        self.rebalance_deadline = if self.initial_join {
            now + cfg.initial_rebalance_delay_ms
        } else {
            now + self
                .members
                .values()
                .map(|m| m.rebalance_timeout_ms)
                .max()
                .unwrap_or(0)
        };
        self.set_state(GroupState::PreparingRebalance, now);
    }

    fn try_complete_join(&mut self, now: i64, out: &mut Vec<Action>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined =
            self.members.values().all(|m| m.join_reply.is_some()) && self.pending.is_empty();
        let due = now >= self.rebalance_deadline;
        if due || (all_joined && !self.initial_join) {
            self.complete_join(now, out);
        }
    }

    fn complete_join(&mut self, now: i64, out: &mut Vec<Action>) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.forget_member(&id);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now);
            out.push(Action::Persist(self.id.clone()));
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let resp = self.join_response(&id, is_leader);
            if let Some(m) = self.members.get_mut(&id) {
                m.deadline = now + m.session_timeout_ms;
                if let Some(r) = m.join_reply.take() {
                    out.push(Action::Join(r, resp));
                }
            }
        }
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocol_names()
            .into_iter()
            .filter(|p| {
                self.members
                    .values()
                    .all(|m| m.protocol_names().contains(p))
            })
            .collect();
        let mut votes: Vec<(usize, &str)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some(pref) = m
                .protocol_names()
                .into_iter()
                .find(|p| candidates.contains(p))
            {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == pref) {
                    v.0 += 1;
                }
            }
        }
        // max_by_key returns the last maximum; reverse so the first candidate wins ties.
        votes
            .iter()
            .rev()
            .max_by_key(|(n, _)| *n)
            .map(|(_, c)| c.to_string())
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
