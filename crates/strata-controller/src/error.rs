//! The error type of the controller's public API.

use std::time::Duration;

use crate::disk::StoreError;
use crate::image::ApplyError;

/// What went wrong with a controller call. Validation failures come from the committed log
/// entry's apply and are the same on every voter.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("topic {name} already exists; delete it first or pick another name")]
    TopicAlreadyExists { name: String },
    #[error("topic {name} does not exist; list topics to check the name")]
    UnknownTopic { name: String },
    #[error(
        "topic {name} has {current} partitions and cannot have {requested}; \
         the count must be positive and can only grow"
    )]
    InvalidPartitions {
        name: String,
        current: i32,
        requested: i32,
    },
    #[error("topic {name} cannot have replication factor {requested}; it must be at least 1")]
    InvalidReplicationFactor { name: String, requested: i16 },
    #[error("the metadata directory belongs to cluster {current}, not {requested}")]
    ClusterIdMismatch { current: String, requested: String },
    #[error(
        "controller node {node_id} is not a voter of the metadata group in this directory \
         (voters: {voters:?}); start it with the node id the directory was created with"
    )]
    NotAVoter { node_id: u64, voters: Vec<u64> },
    #[error(
        "cannot allocate {count} producer ids after {next} (at most {max} per block, below \
         i64::MAX); the producer id space is exhausted or the request is invalid"
    )]
    InvalidProducerIdBlock { count: i64, next: i64, max: i64 },
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
    #[error(
        "controller node {node_id} did not become leader with everything applied within {waited:?}; \
         check the metadata directory and the logs"
    )]
    NotReady { node_id: u64, waited: Duration },
}

impl From<ApplyError> for ControllerError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::TopicAlreadyExists { name } => ControllerError::TopicAlreadyExists { name },
            ApplyError::UnknownTopic { name } => ControllerError::UnknownTopic { name },
            ApplyError::InvalidPartitions {
                name,
                current,
                requested,
            } => ControllerError::InvalidPartitions {
                name,
                current,
                requested,
            },
            ApplyError::InvalidReplicationFactor { name, requested } => {
                ControllerError::InvalidReplicationFactor { name, requested }
            }
            ApplyError::ClusterIdAlreadySet { current, requested } => {
                ControllerError::ClusterIdMismatch { current, requested }
            }
            ApplyError::InvalidProducerIdBlock { count, next, max } => {
                ControllerError::InvalidProducerIdBlock { count, next, max }
            }
        }
    }
}

impl ControllerError {
    pub(crate) fn raft(op: &'static str, e: impl std::fmt::Display) -> Self {
        ControllerError::Raft {
            op,
            message: e.to_string(),
        }
    }
}
