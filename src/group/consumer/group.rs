//! One consumer group of the KIP-848 protocol, [`ConsumerGroup`].
//!
//! Epochs, as in KIP-848:
//! - the **group epoch** goes up when membership or subscriptions change (a member
//!   joins, leaves, expires, changes its subscription) or when the partitions of a
//!   subscribed topic change (topic created/deleted, matched by a regex, partitions
//!   added);
//! - the **target assignment epoch** is the group epoch the target assignment was
//!   computed for; it is recomputed (by the chosen assignor) in the first heartbeat
//!   after the group epoch moved;
//! - each **member epoch** reaches the target assignment epoch once the member has
//!   revoked what it must give up (`reconcile.rs`).
//!
//! Regex subscriptions (`SubscribedTopicRegex`) are resolved against the topics passed
//! with every heartbeat and tick, so a topic created or deleted is noticed at the next
//! heartbeat. Kafka matches with RE2/J `Pattern.matches()` (whole name); Strata uses
//! the `regex` crate anchored at both ends. Both are RE2 dialects (no backreferences or
//! lookaround); the `regex` crate's `\d`, `\w`, `\s`, `\b` are Unicode-aware where
//! RE2/J's are ASCII (docs/compatibility.md). Internal topics (`__*`) never match.
//!
//! Dependencies: `reconcile.rs` (one member's step), `assignor.rs` (targets), the types
//! of `mod.rs`, [`GroupError`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::assignor::{self, AssignMember};
use super::classic::ClassicMeta;
use super::reconcile::{self, Current};
use super::{
    partitions, Assignment, ConsumerConfig, Heartbeat, HeartbeatReply, Topics, LEAVE_EPOCH,
    LEAVE_STATIC_EPOCH,
};
use crate::group::GroupError;

/// A member's reconciliation state (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout_ms: i64,
    pub topic_names: Vec<String>,
    pub regex: Option<String>,
    /// `regex` compiled once (it is matched against every topic at every heartbeat).
    pub(super) compiled: Option<regex::Regex>,
    pub server_assignor: Option<String>,
    /// What the member was told it owns (without partitions being revoked).
    pub assigned: Assignment,
    /// What it must give up before it moves on.
    pub revoking: Assignment,
    pub(super) session_deadline: i64,
    /// Set while revoking: the member is removed if it has not revoked by then.
    pub(super) revoke_deadline: Option<i64>,
    /// Set for a member of the classic protocol (JoinGroup/SyncGroup/Heartbeat) inside
    /// this consumer group (Kafka's ClassicMemberMetadata, `classic.rs`).
    pub classic: Option<ClassicMeta>,
}

pub struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    /// The assignor that computed the current target.
    pub assignor: String,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Who holds each partition (assigned or being revoked).
    pub(super) holders: HashMap<(String, i32), String>,
    /// Partition counts of the subscribed topics the target was computed from.
    pub(super) subscribed: BTreeMap<String, i32>,
}

/// Whether `topic` matches a KIP-848 subscription regex (whole name).
pub(super) fn compile(regex: &str) -> Result<regex::Regex, GroupError> {
    regex::Regex::new(&format!("^(?:{regex})$")).map_err(|e| GroupError::InvalidRegex {
        regex: regex.to_string(),
        reason: e.to_string(),
    })
}

impl ConsumerMember {
    /// A member that just joined: epoch 0, nothing assigned.
    pub(super) fn new(
        id: &str,
        instance_id: Option<String>,
        (client_id, client_host): (&str, &str),
        session_deadline: i64,
    ) -> ConsumerMember {
        ConsumerMember {
            id: id.to_string(),
            instance_id,
            rack_id: None,
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout_ms: 0,
            topic_names: Vec::new(),
            regex: None,
            compiled: None,
            server_assignor: None,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            session_deadline,
            revoke_deadline: None,
            classic: None,
        }
    }

    /// The topics this member subscribes to: its names plus the topics its regex matches.
    fn topics(&self, topics: &Topics) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.topic_names.iter().cloned().collect();
        if let Some(re) = &self.compiled {
            out.extend(
                topics
                    .keys()
                    .filter(|t| !t.starts_with("__") && re.is_match(t))
                    .cloned(),
            );
        }
        out
    }
}

impl ConsumerGroup {
    /// The member holding static instance id `inst` (KIP-345), if any.
    pub(super) fn member_of_instance(&self, inst: &str) -> Option<&ConsumerMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(inst))
    }

    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            epoch: 0,
            assignment_epoch: 0,
            assignor: String::new(),
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            holders: HashMap::new(),
            subscribed: BTreeMap::new(),
        }
    }

    /// Kafka's consumer group states: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch != self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.epoch != self.assignment_epoch)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revoke_deadline])
            .flatten()
            .min()
    }

    /// Every topic any member subscribes to.
    pub fn subscribed_topics(&self, topics: &Topics) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.topics(topics))
            .collect()
    }

    pub fn heartbeat(
        &mut self,
        now: i64,
        cfg: &ConsumerConfig,
        topics: &Topics,
        req: Heartbeat,
    ) -> Result<HeartbeatReply, GroupError> {
        if let Some(a) = req.server_assignor.as_deref().filter(|a| !a.is_empty()) {
            if !cfg.assignors.iter().any(|c| c == a) {
                return Err(GroupError::UnsupportedAssignor {
                    assignor: a.to_string(),
                    available: cfg.assignors.join(","),
                });
            }
        }
        if let Some(re) = req
            .subscribed_topic_regex
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            compile(re)?;
        }
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == LEAVE_STATIC_EPOCH {
            return self.leave(now, cfg, topics, &req);
        }
        let full = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && req.subscribed_topic_names.is_some()
                && req.owned.is_some());
        let (id, joined) = if req.member_epoch == 0 {
            self.join(now, cfg, &req)?
        } else {
            self.check_epoch(&req)?;
            (req.member_id.clone(), false)
        };
        let before = self.members.get(&id).map(|m| m.assigned.clone());
        let changed = self.update_member(&id, &req);
        // One epoch bump per event, whatever moved.
        if self.refresh_metadata(topics) || changed || joined {
            self.epoch += 1;
        }
        self.maybe_assign(cfg, topics);
        self.reconcile(now, &id, req.owned.as_ref());
        let m = self
            .members
            .get_mut(&id)
            .ok_or(GroupError::UnknownMemberId)?;
        m.session_deadline = now + cfg.session_timeout_ms;
        let send = full || before.as_ref() != Some(&m.assigned);
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: cfg.heartbeat_interval_ms,
            assignment: send.then(|| m.assigned.clone()),
        })
    }

    /// A member joining (epoch 0): new, rejoining after being fenced, or a static
    /// member taking over its instance's place. Returns its member id and whether the
    /// membership changed (a static member taking its place back changes nothing).
    fn join(
        &mut self,
        now: i64,
        cfg: &ConsumerConfig,
        req: &Heartbeat,
    ) -> Result<(String, bool), GroupError> {
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return Err(GroupError::InvalidRequest {
                reason: "a joining member must send SubscribedTopicNames or SubscribedTopicRegex"
                    .to_string(),
            });
        }
        let id = if req.member_id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            req.member_id.clone()
        };
        // A member rejoining with epoch 0 lost its partitions: start it afresh.
        if self.members.contains_key(&id) {
            self.remove(&id);
        }
        let mut inherited = None;
        if let Some(inst) = &req.instance_id {
            let previous = self
                .member_of_instance(inst)
                .map(|m| (m.id.clone(), m.epoch));
            match previous {
                Some((old, LEAVE_STATIC_EPOCH)) => {
                    // The static member comes back: it takes over its assignment
                    // without a rebalance (KIP-848's static membership).
                    let old_member = self.members.remove(&old).expect("found above");
                    let target = self.target.remove(&old).unwrap_or_default();
                    for (t, p) in partitions(&old_member.assigned) {
                        self.holders.insert((t.to_string(), p), id.clone());
                    }
                    inherited = Some((old_member, target));
                }
                Some(_) => {
                    return Err(GroupError::UnreleasedInstanceId {
                        group: self.id.clone(),
                        instance: inst.clone(),
                    })
                }
                None => {}
            }
        }
        let joined = inherited.is_none();
        let member = match inherited {
            Some((old, target)) => {
                self.target.insert(id.clone(), target);
                ConsumerMember {
                    id: id.clone(),
                    epoch: old.previous_epoch.max(0),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    ..old
                }
            }
            None => ConsumerMember::new(
                &id,
                req.instance_id.clone(),
                (&req.client_id, &req.client_host),
                now + cfg.session_timeout_ms,
            ),
        };
        self.members.insert(id.clone(), member);
        Ok((id, joined))
    }

    /// Kafka's `throwIfMemberEpochIsInvalid`: a member ahead of the coordinator is
    /// fenced; one behind is accepted only at its previous epoch and if it owns nothing
    /// beyond its assignment (it missed the last answer).
    fn check_epoch(&self, req: &Heartbeat) -> Result<(), GroupError> {
        let m = self
            .members
            .get(&req.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if let Some(inst) = &req.instance_id {
            if m.instance_id.as_ref() != Some(inst) {
                return Err(GroupError::FencedInstanceId {
                    instance: inst.clone(),
                });
            }
        }
        let fenced = || GroupError::FencedMemberEpoch {
            group: self.id.clone(),
            member: m.id.clone(),
            received: req.member_epoch,
            current: m.epoch,
        };
        if req.member_epoch > m.epoch {
            return Err(fenced());
        }
        if req.member_epoch < m.epoch {
            let subset = req
                .owned
                .as_ref()
                .is_none_or(|o| super::minus(o, &m.assigned).is_empty());
            if req.member_epoch != m.previous_epoch || !subset {
                return Err(fenced());
            }
        }
        Ok(())
    }

    /// Applies the request's subscription fields; true if the subscription changed.
    fn update_member(&mut self, id: &str, req: &Heartbeat) -> bool {
        let Some(m) = self.members.get_mut(id) else {
            return false;
        };
        let mut changed = false;
        if let Some(names) = &req.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != m.topic_names {
                m.topic_names = names;
                changed = true;
            }
        }
        if let Some(re) = &req.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            if re != m.regex {
                // Checked at the start of the heartbeat: it compiles.
                m.compiled = re.as_deref().and_then(|r| compile(r).ok());
                m.regex = re;
                changed = true;
            }
        }
        if let Some(a) = &req.server_assignor {
            let a = (!a.is_empty()).then(|| a.clone());
            if a != m.server_assignor {
                m.server_assignor = a;
                changed = true;
            }
        }
        if req.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms as i64;
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id.clone();
        }
        changed
    }

    /// Records the subscribed topics' partition counts; true if they changed (a topic
    /// created, deleted or matched anew by a regex, partitions added), which must bump
    /// the group epoch.
    pub(super) fn refresh_metadata(&mut self, topics: &Topics) -> bool {
        let now: BTreeMap<String, i32> = self
            .subscribed_topics(topics)
            .into_iter()
            .filter_map(|t| topics.get(&t).map(|m| (t, m.partitions)))
            .collect();
        if now == self.subscribed {
            return false;
        }
        self.subscribed = now;
        true
    }

    /// The assignor: the one most members ask for (ties by configured order), else
    /// the first configured (Kafka's preferred server assignor).
    fn pick_assignor(&self, cfg: &ConsumerConfig) -> String {
        let votes = |a: &String| {
            self.members
                .values()
                .filter(|m| m.server_assignor.as_ref() == Some(a))
                .count()
        };
        let best = cfg
            .assignors
            .iter()
            .enumerate()
            .max_by_key(|(i, a)| (votes(a), usize::MAX - i))
            .filter(|(_, a)| votes(a) > 0)
            .map(|(_, a)| a.clone());
        best.or_else(|| cfg.assignors.first().cloned())
            .unwrap_or_else(|| assignor::ASSIGNORS[0].to_string())
    }

    /// Recomputes the target assignment if the group epoch moved past it.
    pub(super) fn maybe_assign(&mut self, cfg: &ConsumerConfig, topics: &Topics) {
        if self.epoch == self.assignment_epoch {
            return;
        }
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics(topics)))
            .collect();
        let input: BTreeMap<String, AssignMember<'_>> = subs
            .iter()
            .map(|(id, t)| {
                (
                    id.clone(),
                    AssignMember {
                        topics: t,
                        previous: self.target.get(id),
                    },
                )
            })
            .collect();
        let name = self.pick_assignor(cfg);
        let target = assignor::assign(&name, &input, topics);
        tracing::info!(group = %self.id, epoch = self.epoch, assignor = %name, members = self.members.len(), "computed the target assignment");
        self.target = target;
        self.assignor = name;
        self.assignment_epoch = self.epoch;
    }

    /// One reconciliation step of member `id` (owned partitions from its heartbeat).
    pub(super) fn reconcile(&mut self, now: i64, id: &str, owned: Option<&Assignment>) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        let empty = Assignment::new();
        let target = self.target.get(id).unwrap_or(&empty);
        let cur = Current {
            state: m.state,
            epoch: m.epoch,
            assigned: &m.assigned,
            revoking: &m.revoking,
            owned,
        };
        let holders = &self.holders;
        let step = reconcile::step(&cur, target, self.assignment_epoch, |t, p| {
            holders.get(&(t.to_string(), p)).is_some_and(|h| h != id)
        });
        let Some(step) = step else {
            return;
        };
        let m = self.members.get_mut(id).expect("checked above");
        for (t, p) in partitions(&m.assigned).chain(partitions(&m.revoking)) {
            self.holders.remove(&(t.to_string(), p));
        }
        for (t, p) in partitions(&step.assigned).chain(partitions(&step.revoking)) {
            self.holders.insert((t.to_string(), p), id.to_string());
        }
        if step.epoch != m.epoch {
            m.previous_epoch = m.epoch;
        }
        m.revoke_deadline = (step.state == MemberState::UnrevokedPartitions)
            .then(|| m.revoke_deadline.unwrap_or(now + m.rebalance_timeout_ms));
        m.epoch = step.epoch;
        m.state = step.state;
        m.assigned = step.assigned;
        m.revoking = step.revoking;
    }

    /// Epoch -1 (leave) or -2 (a static member leaving for a while: it keeps its
    /// partitions until its session expires or it returns).
    fn leave(
        &mut self,
        now: i64,
        cfg: &ConsumerConfig,
        topics: &Topics,
        req: &Heartbeat,
    ) -> Result<HeartbeatReply, GroupError> {
        let id = match &req.instance_id {
            Some(inst) => self
                .member_of_instance(inst)
                .map(|m| m.id.clone())
                .ok_or(GroupError::UnknownMemberId)?,
            None => req.member_id.clone(),
        };
        if !req.member_id.is_empty() && id != req.member_id {
            return Err(GroupError::FencedInstanceId {
                instance: req.instance_id.clone().unwrap_or_default(),
            });
        }
        let m = self
            .members
            .get_mut(&id)
            .ok_or(GroupError::UnknownMemberId)?;
        if req.member_epoch == LEAVE_STATIC_EPOCH && m.instance_id.is_some() {
            m.previous_epoch = m.epoch;
            m.epoch = LEAVE_STATIC_EPOCH;
            m.session_deadline = now + cfg.session_timeout_ms;
        } else {
            self.remove(&id);
            self.refresh_metadata(topics);
            self.epoch += 1;
        }
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Forgets a member and releases what it held.
    pub(super) fn remove(&mut self, id: &str) {
        if let Some(m) = self.members.remove(id) {
            for (t, p) in partitions(&m.assigned).chain(partitions(&m.revoking)) {
                if self.holders.get(&(t.to_string(), p)).map(String::as_str) == Some(id) {
                    self.holders.remove(&(t.to_string(), p));
                }
            }
        }
        self.target.remove(id);
    }

    /// Removes members whose session expired or who did not revoke in time; returns
    /// their ids. The group epoch moves, so the others are reassigned.
    pub fn expire(&mut self, now: i64, topics: &Topics, cfg: &ConsumerConfig) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            tracing::info!(group = %self.id, member = %id, "consumer group member expired (session or rebalance timeout)");
            self.remove(id);
        }
        if !gone.is_empty() {
            self.refresh_metadata(topics);
            self.epoch += 1;
            self.maybe_assign(cfg, topics);
        }
        gone
    }
}
