//! JoinGroup: how a group admits, updates and replaces members and completes a
//! rebalance (Empty/Stable -> PreparingRebalance -> CompletingRebalance), including
//! KIP-394 pending member ids and KIP-345 static members. Part of [`Group`]; SyncGroup,
//! Heartbeat, LeaveGroup and expiry are in `state.rs`.
//!
//! Dependencies: the parent module (`Group`, `Member`) and `types.rs` only.

use bytes::Bytes;

use super::{
    Action, Group, GroupConfig, GroupState, JoinRequest, JoinResponse, Member, MemberInfo, ReplyId,
};
use crate::group::GroupError;

impl Group {
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

    pub(super) fn prepare_rebalance(&mut self, now: i64, cfg: &GroupConfig, out: &mut Vec<Action>) {
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

    pub(super) fn try_complete_join(&mut self, now: i64, out: &mut Vec<Action>) {
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
}
