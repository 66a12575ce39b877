//! Module errors to Kafka error codes. Every handler picks codes here, so that one
//! failure always reaches clients as the same code.

use kafka_protocol::ResponseError;
use strata_config::ConfigError;
use strata_controller::{ApplyError, ControllerError};
use strata_log::record::RecordError;
use strata_log::{LogError, ProducerError};

use crate::broker::BrokerError;
use crate::group::GroupError;
use crate::replica::ReplicaError;
use crate::txn::TxnError;

pub fn error_code(e: &BrokerError) -> ResponseError {
    use ResponseError as E;
    match e {
        BrokerError::UnknownTopic { .. } => E::UnknownTopicOrPartition,
        BrokerError::InvalidTopic { .. } => E::InvalidTopicException,
        BrokerError::InvalidReplicationFactor { .. } => E::InvalidReplicationFactor,
        BrokerError::InvalidPartitions { .. } => E::InvalidPartitions,
        BrokerError::InvalidReplicaAssignment { .. } => E::InvalidReplicaAssignment,
        BrokerError::DeletionDisabled => E::TopicDeletionDisabled,
        BrokerError::Config(c) => config_code(c),
        BrokerError::Controller(c) => controller_code(c),
        BrokerError::Replica(r) => replica_code(r),
    }
}

/// Appends, fetches and offset lookups of one partition.
pub fn replica_code(e: &ReplicaError) -> ResponseError {
    use ResponseError as E;
    match e {
        ReplicaError::UnknownTopic { .. } | ReplicaError::UnknownPartition { .. } => {
            E::UnknownTopicOrPartition
        }
        ReplicaError::UnknownTopicId { .. } => E::UnknownTopicId,
        ReplicaError::NotLeader { .. } => E::NotLeaderOrFollower,
        ReplicaError::FencedLeaderEpoch { .. } => E::FencedLeaderEpoch,
        ReplicaError::UnknownLeaderEpoch { .. } => E::UnknownLeaderEpoch,
        ReplicaError::OffsetMovedToTieredStorage { .. } => E::OffsetMovedToTieredStorage,
        ReplicaError::NotEnoughReplicas { .. } => E::NotEnoughReplicas,
        ReplicaError::ReplicationTimeout { .. } => E::RequestTimedOut,
        ReplicaError::InvalidTimestamp { .. } => E::InvalidRequest,
        ReplicaError::Log { source, .. } => log_code(source),
        ReplicaError::Remote { source, .. } => tier_code(source),
        ReplicaError::OpenLog { .. } => E::KafkaStorageError,
        ReplicaError::TxnNotVerified { code, .. } => unverified_code(*code),
    }
}

/// What a producer gets for the coordinator's answer to a leader's verification
/// (KIP-890 part 1): INVALID_TXN_STATE when the partition is not in the transaction,
/// INVALID_PRODUCER_EPOCH when the epoch is stale, and NOT_ENOUGH_REPLICAS (retriable for
/// every producer) when the coordinator could not answer, as Kafka answers Produce.
fn unverified_code(code: i16) -> ResponseError {
    use ResponseError as E;
    match E::try_from_code(code) {
        Some(E::ProducerFenced | E::InvalidProducerEpoch) => E::InvalidProducerEpoch,
        Some(E::TransactionalIdAuthorizationFailed) => E::TransactionalIdAuthorizationFailed,
        Some(
            E::CoordinatorNotAvailable
            | E::NotCoordinator
            | E::CoordinatorLoadInProgress
            | E::ConcurrentTransactions
            | E::RequestTimedOut,
        ) => E::NotEnoughReplicas,
        _ => E::InvalidTxnState,
    }
}

fn config_code(_: &ConfigError) -> ResponseError {
    ResponseError::InvalidConfig
}

pub fn controller_code(e: &ControllerError) -> ResponseError {
    use ApplyError as A;
    use ResponseError as E;
    match e {
        ControllerError::Rejected(a) => match a {
            A::TopicAlreadyExists { .. } => E::TopicAlreadyExists,
            A::UnknownTopic { .. } | A::UnknownPartition { .. } => E::UnknownTopicOrPartition,
            A::InvalidPartitions { .. } => E::InvalidPartitions,
            A::InvalidReplicationFactor { .. } | A::NotEnoughBrokers { .. } => {
                E::InvalidReplicationFactor
            }
            A::InvalidReplicaAssignment { .. } | A::UnknownBroker { .. } => {
                E::InvalidReplicaAssignment
            }
            A::StalePartitionEpoch { .. } => E::FencedLeaderEpoch,
            A::Reassign { .. } => E::NoReassignmentInProgress,
            A::InvalidIsr { .. } => E::InvalidRequest,
            A::Election { source, .. } => match source {
                strata_controller::partition::ElectError::PreferredNotAvailable { .. } => {
                    E::PreferredLeaderNotAvailable
                }
                strata_controller::partition::ElectError::NoLiveReplica => {
                    E::EligibleLeadersNotAvailable
                }
            },
            A::UnknownScramCredential { .. } => E::ResourceNotFound,
            A::InvalidScramCredential { .. } => E::UnacceptableCredential,
            A::InvalidAcl { .. } | A::InvalidQuota { .. } | A::NotDecommissioned { .. } => {
                E::InvalidRequest
            }
            A::InvalidReassignment { .. } => E::InvalidReplicaAssignment,
            A::ClusterIdAlreadySet { .. } | A::InvalidProducerIdBlock { .. } => {
                E::UnknownServerError
            }
        },
        ControllerError::NoQuorum { .. } | ControllerError::ProposeTimedOut { .. } => {
            E::RequestTimedOut
        }
        ControllerError::NotLeader { .. } => E::NotController,
        _ => E::UnknownServerError,
    }
}

/// Remote-tier failures: an offset the tier does not hold is out of range; any
/// store or data error is a storage error for that partition only (the
/// connection stays open, the client retries).
fn tier_code(e: &strata_tier::TierError) -> ResponseError {
    match e {
        strata_tier::TierError::OffsetNotTiered { .. } => ResponseError::OffsetOutOfRange,
        _ => ResponseError::KafkaStorageError,
    }
}

fn log_code(e: &LogError) -> ResponseError {
    match e {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Record { source, .. } => record_code(source),
        LogError::Producer { source, .. } => producer_code(source),
        _ => ResponseError::KafkaStorageError,
    }
}

/// INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED: since KIP-588 Kafka answers a
/// Produce from a stale epoch with the former (the latter is for the transaction
/// coordinator's APIs).
fn producer_code(e: &ProducerError) -> ResponseError {
    match e {
        ProducerError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        ProducerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProducerError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        ProducerError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
        ProducerError::InvalidSequence { .. } | ProducerError::ControlBatchFromClient { .. } => {
            ResponseError::InvalidRecord
        }
    }
}

fn record_code(e: &RecordError) -> ResponseError {
    match e {
        RecordError::TooLarge { .. } => ResponseError::MessageTooLarge,
        RecordError::Corrupt { .. } => ResponseError::CorruptMessage,
        RecordError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        _ => ResponseError::InvalidRecord,
    }
}

pub fn group_code(e: &GroupError) -> ResponseError {
    use ResponseError as E;
    match e {
        GroupError::UnknownMemberId => E::UnknownMemberId,
        GroupError::IllegalGeneration { .. } => E::IllegalGeneration,
        GroupError::RebalanceInProgress => E::RebalanceInProgress,
        GroupError::MemberIdRequired => E::MemberIdRequired,
        GroupError::FencedInstanceId { .. } => E::FencedInstanceId,
        GroupError::InconsistentGroupProtocol { .. } => E::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout { .. } => E::InvalidSessionTimeout,
        GroupError::CoordinatorNotAvailable => E::CoordinatorNotAvailable,
        GroupError::GroupNotFound { .. } => E::GroupIdNotFound,
        GroupError::NonEmptyGroup { .. } => E::NonEmptyGroup,
        GroupError::SubscribedToTopic { .. } => E::GroupSubscribedToTopic,
        GroupError::MetadataTooLarge { .. } => E::OffsetMetadataTooLarge,
        GroupError::UnknownTopicPartition { .. } => E::UnknownTopicOrPartition,
        GroupError::Storage { .. } => E::CoordinatorNotAvailable,
        GroupError::NotCoordinator { .. } => E::NotCoordinator,
        GroupError::LoadInProgress { .. } => E::CoordinatorLoadInProgress,
        GroupError::ProducerFenced { .. } => E::InvalidProducerEpoch,
        GroupError::FencedMemberEpoch { .. } => E::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => E::StaleMemberEpoch,
        GroupError::UnsupportedAssignor { .. } => E::UnsupportedAssignor,
        GroupError::InvalidRegex { .. } => E::InvalidRegularExpression,
        GroupError::UnreleasedInstanceId { .. } => E::UnreleasedInstanceId,
        // Kafka answers a request for the other group type as if the group did not
        // exist (ConsumerGroupHeartbeat/Describe on a classic group).
        GroupError::GroupTypeMismatch { .. }
        | GroupError::UpgradeDisabled { .. }
        | GroupError::UpgradeNotConsumerProtocol { .. }
        | GroupError::UpgradeMalformed { .. }
        | GroupError::UpgradeCustomAssignor { .. }
        | GroupError::NotConsumerGroup { .. } => E::GroupIdNotFound,
        GroupError::InvalidRequest { .. } => E::InvalidRequest,
    }
}

/// The Kafka code of a group result: 0 for success.
pub fn group_result_code(r: &Result<(), GroupError>) -> i16 {
    match r {
        Ok(()) => 0,
        Err(e) => group_code(e).code(),
    }
}

/// The transaction coordinator's errors. PRODUCER_FENCED is answered as
/// INVALID_PRODUCER_EPOCH to clients older than the request versions that know it
/// (the handlers pass `fenced_known`).
pub fn txn_code(e: &TxnError, fenced_known: bool) -> ResponseError {
    use ResponseError as E;
    match e {
        TxnError::InvalidProducerIdMapping { .. } => E::InvalidProducerIdMapping,
        TxnError::ProducerFenced { .. } if fenced_known => E::ProducerFenced,
        TxnError::ProducerFenced { .. } => E::InvalidProducerEpoch,
        TxnError::InvalidTxnState { .. } => E::InvalidTxnState,
        TxnError::ConcurrentTransactions { .. } => E::ConcurrentTransactions,
        TxnError::InvalidTimeout { .. } => E::InvalidTransactionTimeout,
        TxnError::CoordinatorNotAvailable => E::CoordinatorNotAvailable,
        TxnError::NotCoordinator { .. } => E::NotCoordinator,
        TxnError::LoadInProgress { .. } => E::CoordinatorLoadInProgress,
        // Kafka answers a failed write of the transaction log as a retriable
        // coordinator error, so the client looks the coordinator up again.
        TxnError::Storage { .. } => E::CoordinatorNotAvailable,
    }
}

/// Client telemetry (KIP-714), with Kafka's codes.
pub fn telemetry_code(e: &crate::telemetry::TelemetryError) -> ResponseError {
    use crate::telemetry::TelemetryError as T;
    use ResponseError as E;
    match e {
        T::Throttled { .. } => E::ThrottlingQuotaExceeded,
        T::UnknownSubscription { .. } => E::UnknownSubscriptionId,
        T::UnsupportedCompression { .. } => E::UnsupportedCompressionType,
        T::TooLarge { .. } => E::TelemetryTooLarge,
        T::AfterTerminating { .. } | T::NilInstanceId => E::InvalidRequest,
        T::InvalidRecord { .. } => E::InvalidRecord,
        T::Forwarder { .. } => E::UnknownServerError,
    }
}
