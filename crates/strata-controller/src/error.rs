//! The error type of the controller's public API.

use std::time::Duration;

use crate::disk::StoreError;
use crate::image::ApplyError;

/// What went wrong with a controller call. Validation failures come from the committed log
/// entry's apply and are the same on every voter.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The command was committed and refused by validation, the same way on every voter.
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    #[error(
        "controller node {node_id} is not a voter of the metadata group in this directory \
         (voters: {voters:?}); start it with the node id the directory was created with"
    )]
    NotAVoter { node_id: u64, voters: Vec<u64> },
    #[error(
        "node {node_id} has process.roles=broker but is listed in controller.quorum.voters; \
         a broker-only node joins as a learner: remove it from the voters or add the controller role"
    )]
    LearnerIsAVoter { node_id: u64 },
    #[error("this node is not the controller leader (leader: {leader:?}); send the request to the leader")]
    NotLeader { leader: Option<u64> },
    #[error("controller metadata storage failed: {source}")]
    Storage {
        #[from]
        source: StoreError,
    },
    #[error("controller raft {op} failed: {message}; the controller stops and must be restarted")]
    Raft { op: &'static str, message: String },
    #[error("invalid controller.quorum.voters {spec:?}: {reason}")]
    InvalidQuorumVoters { spec: String, reason: String },
    #[error(
        "cannot listen for controller RPCs on {addr}: {source}; is another process using the port?"
    )]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no controller quorum: only {reachable} of {voters} voters are reachable and {needed} are \
         needed; the proposal was not committed within {waited:?} (it may still commit once enough \
         voters are back). Start the missing controllers or check the network between them"
    )]
    NoQuorum {
        reachable: usize,
        voters: usize,
        needed: usize,
        waited: Duration,
    },
    #[error(
        "the proposal was not committed within {waited:?} although {reachable} of {voters} voters \
         are reachable (leader: {leader:?}); the controller may be overloaded or electing a \
         leader. It may still commit; retry and check the result"
    )]
    ProposeTimedOut {
        waited: Duration,
        reachable: usize,
        voters: usize,
        leader: Option<u64>,
    },
    #[error(
        "controller node {node_id} did not see a leader and the cluster id within {waited:?} \
         (voters: {voters:?}); start a majority of the voters and check controller.quorum.voters"
    )]
    ClusterNotReady {
        node_id: u64,
        voters: Vec<u64>,
        waited: Duration,
    },
    /// A voter change was refused as unsafe; nothing changed.
    #[error("voter change refused: {0}")]
    VoterChange(#[from] crate::voters::VoterChangeError),
    #[error("voter change {change:?} failed: {message}")]
    MembershipChange {
        change: crate::voters::VoterChange,
        message: String,
    },
    #[error(
        "voter change {change:?} did not finish within {timeout:?}; it may still complete: check \
         `strata cluster describe` before retrying"
    )]
    MembershipChangeTimedOut {
        change: crate::voters::VoterChange,
        timeout: Duration,
    },
    #[error(
        "this node runs a single-voter controller (controller.quorum.voters is empty); its voters \
         cannot change"
    )]
    SingleVoter,
    #[error(
        "controller node {node_id} did not become leader with everything applied within {waited:?}; \
         check the metadata directory and the logs"
    )]
    NotReady { node_id: u64, waited: Duration },
}

impl ControllerError {
    pub(crate) fn raft(op: &'static str, e: impl std::fmt::Display) -> Self {
        ControllerError::Raft {
            op,
            message: e.to_string(),
        }
    }
}
