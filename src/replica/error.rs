//! The replica manager's one error enum: why an append, a fetch or an offset lookup of one
//! partition failed. Messages name the topic-partition and offset; `server::errors` turns
//! each variant into a Kafka error code (this module never picks codes).

use strata_log::LogError;
use strata_tier::TierError;
use uuid::Uuid;

use super::TopicPartition;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("topic '{topic}' does not exist; create it or enable auto.create.topics.enable")]
    UnknownTopic { topic: String },
    #[error("topic id {id} does not exist")]
    UnknownTopicId { id: Uuid },
    #[error("partition {partition} of topic '{topic}' does not exist (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        count: i32,
    },
    #[error("{tp}: this broker is not the leader (leader: {leader}); refresh metadata")]
    NotLeader { tp: TopicPartition, leader: i32 },
    #[error("{tp}: leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch {
        tp: TopicPartition,
        requested: i32,
        current: i32,
    },
    #[error("{tp}: leader epoch {requested} is newer than the current {current}; metadata here is behind")]
    UnknownLeaderEpoch {
        tp: TopicPartition,
        requested: i32,
        current: i32,
    },
    #[error("{tp}: offset {offset} is below the local log start {local_start}; it is in the remote tier")]
    OffsetMovedToTieredStorage {
        tp: TopicPartition,
        offset: i64,
        local_start: i64,
    },
    #[error(
        "{tp}: only {isr} in-sync replicas and min.insync.replicas is {min}; acks=all produce \
         refused until replicas catch up"
    )]
    NotEnoughReplicas {
        tp: TopicPartition,
        isr: usize,
        min: i32,
    },
    #[error("{tp}: the in-sync replicas did not confirm offset {offset} within {timeout_ms} ms")]
    ReplicationTimeout {
        tp: TopicPartition,
        offset: i64,
        timeout_ms: i32,
    },
    #[error("{tp}: timestamp {timestamp} is not a valid ListOffsets target")]
    InvalidTimestamp { tp: TopicPartition, timestamp: i64 },
    #[error("{tp}: {source}")]
    Log {
        tp: TopicPartition,
        #[source]
        source: LogError,
    },
    #[error("{tp}: remote tier at offset {offset}: {source}")]
    Remote {
        tp: TopicPartition,
        offset: i64,
        /// Boxed: the tier's errors are large, and this enum travels in every result.
        #[source]
        source: Box<TierError>,
    },
    #[error(
        "{tp}: transactional batch of producer {producer_id} epoch {epoch} not appended: {reason}"
    )]
    TxnNotVerified {
        tp: TopicPartition,
        producer_id: i64,
        epoch: i16,
        /// The coordinator's answer (a Kafka error code of AddPartitionsToTxn);
        /// `server::errors` turns it into the producer's.
        code: i16,
        reason: String,
    },
    #[error("cannot open the log of {tp} in {dir}: {source}")]
    OpenLog {
        tp: TopicPartition,
        dir: std::path::PathBuf,
        #[source]
        source: LogError,
    },
}

impl ReplicaError {
    pub(crate) fn log(tp: &TopicPartition, source: LogError) -> ReplicaError {
        ReplicaError::Log {
            tp: tp.clone(),
            source,
        }
    }

    pub(crate) fn remote(tp: &TopicPartition, offset: i64, source: TierError) -> ReplicaError {
        ReplicaError::Remote {
            tp: tp.clone(),
            offset,
            source: Box::new(source),
        }
    }
}
