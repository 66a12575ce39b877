//! Classic members inside a consumer group (Kafka 4's mixed mode, KIP-848 "online
//! migration"): consumers of the classic protocol keep using JoinGroup, SyncGroup,
//! Heartbeat and LeaveGroup against a group the coordinator runs as a consumer group.
//!
//! - **JoinGroup** updates the member like a ConsumerGroupHeartbeat would: its
//!   subscription and owned partitions come from the embedded consumer protocol
//!   (`embedded.rs`), the group epoch moves if it is new or its subscription changed,
//!   the server-side assignor computes the target, and one reconciliation step runs with
//!   the owned partitions. The answer carries the member epoch as generation, the
//!   member's first protocol, and no leader: no client computes an assignment.
//! - **SyncGroup** answers the member's current assignment (without partitions it must
//!   revoke), encoded as a ConsumerProtocolAssignment.
//! - **Heartbeat** answers REBALANCE_IN_PROGRESS when the member must rejoin: the group
//!   epoch moved past it, it has partitions to revoke, or partitions it waited for were
//!   released (Kafka's `classicGroupHeartbeatToConsumerGroup`).
//! - **LeaveGroup** removes the member; the group epoch moves.
//!
//! A classic member's session is its own JoinGroup session timeout (Kafka's
//! ClassicMemberMetadata), not `group.consumer.session.timeout.ms`.
//!
//! Pure, like the rest of `consumer/`. Dependencies: `group.rs`, `embedded.rs`, the
//! classic request/response types of `state/types.rs`, [`GroupError`].

use bytes::Bytes;

use super::group::{ConsumerGroup, ConsumerMember, MemberState};
use super::{minus, ConsumerConfig, Topics};
use crate::group::embedded;
use crate::group::state::{JoinRequest, JoinResponse, SyncRequest};
use crate::group::GroupError;

/// The protocol type of Kafka's consumers; the only one a consumer group serves.
pub const PROTOCOL_TYPE: &str = "consumer";

/// What a classic member adds to a consumer group member (Kafka's
/// ClassicMemberMetadata): its session timeout and its protocols, in preference order,
/// with their metadata (the embedded subscription).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicMeta {
    pub session_timeout_ms: i64,
    pub protocols: Vec<(String, Bytes)>,
}

impl ClassicMeta {
    /// The protocol named in answers: the member's first (Kafka's choice).
    pub fn protocol(&self) -> &str {
        self.protocols.first().map_or("", |(n, _)| n.as_str())
    }
}

/// A SyncGroup answer: assignment, protocol type, protocol name.
pub type ClassicSync = (Bytes, Option<String>, Option<String>);

impl ConsumerGroup {
    /// True if a classic member with `protocols` can join: the protocol type is
    /// `consumer` and one of its protocols is supported by every classic member
    /// (Kafka's `supportsClassicProtocols`).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type != PROTOCOL_TYPE || protocols.is_empty() {
            return false;
        }
        let classic: Vec<&ClassicMeta> = self
            .members
            .values()
            .filter_map(|m| m.classic.as_ref())
            .collect();
        protocols.iter().any(|(name, _)| {
            classic
                .iter()
                .all(|c| c.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// The member `id` if it exists and uses the classic protocol.
    fn classic_member(
        &mut self,
        id: &str,
        instance: Option<&str>,
    ) -> Result<&mut ConsumerMember, GroupError> {
        let m = self
            .members
            .get_mut(id)
            .filter(|m| m.classic.is_some())
            .ok_or(GroupError::UnknownMemberId)?;
        if let Some(inst) = instance {
            if m.instance_id.as_deref() != Some(inst) {
                return Err(GroupError::FencedInstanceId {
                    instance: inst.to_string(),
                });
            }
        }
        Ok(m)
    }

    /// A JoinGroup of a classic member (Kafka's `classicGroupJoinToConsumerGroup`).
    pub fn classic_join(
        &mut self,
        now: i64,
        cfg: &ConsumerConfig,
        topics: &Topics,
        req: JoinRequest,
    ) -> Result<JoinResponse, GroupError> {
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol {
                group: self.id.clone(),
            });
        }
        let sub = embedded::decode_subscription(&req.protocols[0].1).ok_or_else(|| {
            GroupError::InconsistentGroupProtocol {
                group: self.id.clone(),
            }
        })?;
        let id = if req.member_id.is_empty() {
            let id = uuid::Uuid::new_v4().to_string();
            // KIP-394: a dynamic member first learns its id, then joins with it.
            if req.instance_id.is_none() && req.require_known_member_id {
                return Ok(JoinResponse::error(GroupError::MemberIdRequired, &id));
            }
            id
        } else {
            req.member_id.clone()
        };
        if self.members.get(&id).is_some_and(|m| m.classic.is_none()) {
            return Err(GroupError::UnknownMemberId);
        }
        // A static member rejoining under a new member id replaces its old self.
        if let Some(inst) = &req.instance_id {
            let old = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(inst) && m.id != id)
                .map(|m| m.id.clone());
            if let Some(old) = old {
                self.remove(&old);
            }
        }
        let joined = !self.members.contains_key(&id);
        let session = i64::from(req.session_timeout_ms.max(0));
        let m = self.members.entry(id.clone()).or_insert_with(|| {
            ConsumerMember::new(
                &id,
                req.instance_id.clone(),
                (&req.client_id, &req.client_host),
                now + session,
            )
        });
        let mut names = sub.topics.clone();
        names.sort();
        names.dedup();
        let changed = joined || names != m.topic_names;
        m.topic_names = names;
        m.regex = None;
        m.compiled = None;
        m.server_assignor = None;
        m.rebalance_timeout_ms = i64::from(req.rebalance_timeout_ms.max(0));
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        if sub.rack.is_some() {
            m.rack_id = sub.rack.clone();
        }
        let protocol = req.protocols[0].0.clone();
        m.classic = Some(ClassicMeta {
            session_timeout_ms: session,
            protocols: req.protocols,
        });
        if self.refresh_metadata(topics) || changed {
            self.epoch += 1;
        }
        self.maybe_assign(cfg, topics);
        self.reconcile(now, &id, Some(&sub.owned));
        let m = self.members.get_mut(&id).expect("inserted above");
        m.session_deadline = now + session;
        Ok(JoinResponse {
            error: None,
            generation: m.epoch,
            protocol_type: Some(PROTOCOL_TYPE.to_string()),
            protocol: Some(protocol),
            leader: String::new(),
            member_id: id,
            members: Vec::new(),
        })
    }

    /// A SyncGroup of a classic member: its current assignment. What the request
    /// carries (a leader's assignments) is ignored: the broker assigns.
    pub fn classic_sync(&mut self, now: i64, req: &SyncRequest) -> Result<ClassicSync, GroupError> {
        let group = self.id.clone();
        let m = self.classic_member(&req.member_id, req.instance_id.as_deref())?;
        if req.generation != m.epoch {
            return Err(GroupError::IllegalGeneration {
                generation: req.generation,
                current: m.epoch,
            });
        }
        let classic = m.classic.as_ref().expect("classic member");
        let protocol = classic.protocol().to_string();
        let type_ok = req
            .protocol_type
            .as_deref()
            .is_none_or(|t| t == PROTOCOL_TYPE);
        let name_ok = req.protocol_name.as_deref().is_none_or(|n| n == protocol);
        if !type_ok || !name_ok {
            return Err(GroupError::InconsistentGroupProtocol { group });
        }
        m.session_deadline = now + classic.session_timeout_ms;
        Ok((
            embedded::encode_assignment(&m.assigned),
            Some(PROTOCOL_TYPE.to_string()),
            Some(protocol),
        ))
    }

    /// A Heartbeat of a classic member: REBALANCE_IN_PROGRESS when it must rejoin.
    pub fn classic_heartbeat(
        &mut self,
        now: i64,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let group_epoch = self.epoch;
        let m = self.classic_member(member, instance)?;
        if generation != m.epoch {
            return Err(GroupError::IllegalGeneration {
                generation,
                current: m.epoch,
            });
        }
        m.session_deadline = now + m.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
        let (epoch, state) = (m.epoch, m.state);
        let rejoin = epoch < group_epoch
            || state == MemberState::UnrevokedPartitions
            || (state == MemberState::UnreleasedPartitions && !self.waiting_on_unreleased(member));
        if rejoin {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// True if a partition of the member's target is still held by another member.
    fn waiting_on_unreleased(&self, id: &str) -> bool {
        let (Some(m), Some(target)) = (self.members.get(id), self.target.get(id)) else {
            return false;
        };
        super::partitions(&minus(target, &m.assigned)).any(|(t, p)| {
            self.holders
                .get(&(t.to_string(), p))
                .is_some_and(|h| h != id)
        })
    }

    /// A LeaveGroup of classic members, by member id or instance id; results in
    /// request order. The group epoch moves once if anyone left.
    pub fn classic_leave(
        &mut self,
        topics: &Topics,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), GroupError>> {
        let mut left = false;
        let results = members
            .iter()
            .map(|(member_id, instance)| {
                let id = match instance {
                    Some(inst) => self
                        .member_of_instance(inst)
                        .map(|m| m.id.clone())
                        .ok_or(GroupError::UnknownMemberId)?,
                    None => member_id.clone(),
                };
                if instance.is_some() && !member_id.is_empty() && *member_id != id {
                    return Err(GroupError::FencedInstanceId {
                        instance: instance.clone().unwrap_or_default(),
                    });
                }
                if self.members.get(&id).is_none_or(|m| m.classic.is_none()) {
                    return Err(GroupError::UnknownMemberId);
                }
                self.remove(&id);
                left = true;
                Ok(())
            })
            .collect();
        if left {
            self.refresh_metadata(topics);
            self.epoch += 1;
        }
        results
    }

    /// True if the group has members and all of them use the classic protocol (it may
    /// then go back to being a classic group).
    pub fn all_classic(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }
}
