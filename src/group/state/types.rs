//! The vocabulary of the group state machine: what [`super::Group`] consumes (join and
//! sync requests, its settings) and what it produces (join responses, [`Action`]s,
//! LeaveGroup outcomes).
//!
//! Dependencies: none inside `group/` but [`GroupError`]. These types sit below both the
//! state machine and the coordinator (`coordinator.rs` feeds them in, `driver.rs` acts
//! on them), so that `state` never imports from the layers that drive it.

use bytes::Bytes;

use crate::group::GroupError;

/// Identifies a parked request; the driver maps it to the waiting connection.
pub type ReplyId = u64;

/// Settings the coordinator decides with (times in milliseconds).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Prefix of generated member ids; unique per coordinator instance.
    pub member_id_seed: String,
}

impl GroupConfig {
    /// Kafka's member id: client id, a dash, a unique suffix.
    pub fn new_member_id(&self, client_id: &str) -> String {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{client_id}-{}-{n}", self.member_id_seed)
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ (KIP-394): a new member must rejoin with the id it is given.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberInfo {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<MemberInfo>,
}

impl JoinResponse {
    pub fn error(e: GroupError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(e),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer a parked JoinGroup.
    Join(ReplyId, JoinResponse),
    /// Answer a parked SyncGroup with the member's assignment.
    Sync(ReplyId, Result<Bytes, GroupError>),
    /// Write the group's metadata to `__consumer_offsets`.
    Persist(String),
}

/// Per-member results of a LeaveGroup, in request order, and the actions it caused.
pub type LeaveOutcome = (Vec<Result<(), GroupError>>, Vec<Action>);
