//! Consumer groups: the classic group membership protocol and committed offsets.
//!
//! - `state.rs` (with `state/join.rs`, `state/snapshot.rs`): one group's membership
//!   state machine (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead);
//!   pure, clock passed in. `state/types.rs`: the requests, responses and actions it
//!   consumes and produces.
//! - `coordinator.rs`: every group of this coordinator, `on_event(now, ..) -> actions`.
//! - `offsets.rs`: committed offsets in memory.
//! - `codec.rs`: Kafka's key/value schemas of `__consumer_offsets`; the values of
//!   KIP-848 consumer groups in `codec_consumer.rs`.
//! - `store.rs`: `__consumer_offsets` as storage: creating it, appending to a group's
//!   partition, waiting for the ISR, replaying a partition. The topic is compacted by the
//!   log cleaner (`crate::cleaner`), like any topic with `cleanup.policy=compact`.
//! - `driver.rs`: the async layer, [`GroupCoordinator`]: parks JoinGroup/SyncGroup
//!   until the state machine answers, runs timers, serves the membership and admin
//!   requests and decides what to write.
//! - `commits.rs`: OffsetCommit, OffsetFetch, OffsetDelete and offsets expiry.
//! - `ownership.rs`: which groups this node coordinates; loads and forgets partitions.
//! - `consumer/`: consumer groups of the KIP-848 protocol (ConsumerGroupHeartbeat), a
//!   pure state machine of their own, with classic members inside them and the online
//!   conversions between the two group types; `consumer_api.rs` serves them from the
//!   driver, `consumer_classic_api.rs` routes classic requests to them and converts.
//! - `embedded.rs`: the embedded consumer protocol (subscription, assignment bytes).
//! - `txn_offsets.rs`: TxnOffsetCommit: offsets held per producer until the
//!   transaction's marker commits or aborts them.
//!
//! Inside the module, dependencies point one way: `driver.rs` (with `commits.rs`,
//! `ownership.rs`) -> `store.rs` -> `offsets.rs` -> `coordinator.rs`
//! -> `state` -> `codec.rs`, which imports nothing from `group/`. Outside, this module
//! uses `broker` for the partitions of `__consumer_offsets` (storage in `store.rs`,
//! leadership in `ownership.rs`; `driver.rs` only reads the `group.*` settings when it
//! starts) and never sees a Kafka request type; `server/` translates requests and maps
//! [`GroupError`] to Kafka error codes.

pub mod codec;
pub mod codec_consumer;
mod commits;
pub mod consumer;
mod consumer_api;
mod consumer_classic_api;
pub mod coordinator;
mod driver;
pub mod embedded;
mod lag;
pub mod offsets;
mod ownership;
pub mod state;
#[cfg(test)]
mod state_tests;
mod store;
mod txn_offsets;

pub use commits::CommitEntry;
pub use consumer_api::ConsumerGroupDescription;
pub use driver::{GroupCoordinator, GroupDescription, GroupListing};
pub use state::{JoinRequest, JoinResponse, MemberInfo, SyncRequest};
pub use store::OFFSETS_TOPIC;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GroupError {
    #[error("the member id is not known to the group; rejoin with an empty member id")]
    UnknownMemberId,
    #[error(
        "generation {generation} is not the group's current generation {current}; rejoin the group"
    )]
    IllegalGeneration { generation: i32, current: i32 },
    #[error("the group is rebalancing; rejoin the group")]
    RebalanceInProgress,
    #[error("a new member must rejoin with the member id it was given (KIP-394)")]
    MemberIdRequired,
    #[error(
        "static member '{instance}' was replaced by a newer member with the same group.instance.id"
    )]
    FencedInstanceId { instance: String },
    #[error("group '{group}': the member's protocol type or protocols match no protocol of the other members")]
    InconsistentGroupProtocol { group: String },
    #[error("session timeout {requested} ms is outside [group.min.session.timeout.ms {min}, group.max.session.timeout.ms {max}]")]
    InvalidSessionTimeout { requested: i32, min: i32, max: i32 },
    #[error("group '{group}': producer {producer_id} epoch {epoch} was fenced by a newer epoch; its transactional offsets are refused")]
    ProducerFenced {
        group: String,
        producer_id: i64,
        epoch: i16,
    },
    #[error(
        "the coordinator is not available for this group (it is loading or was deleted); retry"
    )]
    CoordinatorNotAvailable,
    #[error("group '{group}' does not exist")]
    GroupNotFound { group: String },
    #[error("group '{group}' still has members; stop its consumers first")]
    NonEmptyGroup { group: String },
    #[error("group '{group}' is subscribed to topic '{topic}'; its offsets cannot be deleted while it is")]
    SubscribedToTopic { group: String, topic: String },
    #[error("offset metadata of {size} bytes is larger than the 4096 allowed")]
    MetadataTooLarge { size: usize },
    #[error("topic partition {topic}-{partition} does not exist")]
    UnknownTopicPartition { topic: String, partition: i32 },
    #[error("this broker is not the coordinator of group '{group}'; find the coordinator again")]
    NotCoordinator { group: String },
    #[error("the coordinator of group '{group}' is loading its state; retry")]
    LoadInProgress { group: String },
    #[error("group '{group}': member '{member}' sent epoch {received} but its epoch is {current}; abandon the partitions and rejoin with epoch 0")]
    FencedMemberEpoch {
        group: String,
        member: String,
        received: i32,
        current: i32,
    },
    #[error("group '{group}': member '{member}' committed with epoch {received} but its epoch is {current}; heartbeat and retry")]
    StaleMemberEpoch {
        group: String,
        member: String,
        received: i32,
        current: i32,
    },
    #[error("assignor '{assignor}' is not one of group.consumer.assignors ({available})")]
    UnsupportedAssignor { assignor: String, available: String },
    #[error("subscription regex '{regex}' is not valid: {reason}")]
    InvalidRegex { regex: String, reason: String },
    #[error("group '{group}': instance id '{instance}' is still used by another member; that member must leave first")]
    UnreleasedInstanceId { group: String, instance: String },
    /// Kafka's GROUP_ID_NOT_FOUND text for a join that would need an online upgrade of
    /// a classic group with members while `group.consumer.migration.policy` forbids it.
    #[error("Cannot upgrade classic group {group} to consumer group because online upgrade is disabled.")]
    UpgradeDisabled { group: String },
    /// Kafka's GROUP_ID_NOT_FOUND text: the classic group's protocol type is not `consumer`.
    #[error("Cannot upgrade classic group {group} to consumer group because the group does not use the consumer embedded protocol.")]
    UpgradeNotConsumerProtocol { group: String },
    /// Kafka's GROUP_ID_NOT_FOUND text: a member's subscription or assignment is unreadable.
    #[error("Cannot upgrade classic group {group} to consumer group because the embedded consumer protocol is malformed.")]
    UpgradeMalformed { group: String },
    /// Kafka's GROUP_ID_NOT_FOUND text: an assignment carries a custom assignor's user
    /// data, which the consumer group would lose.
    #[error("Cannot upgrade classic group {group} to consumer group because an unsupported custom assignor is in use. Please refer to the documentation or switch to a default assignor before re-attempting the upgrade.")]
    UpgradeCustomAssignor { group: String },
    /// Kafka's GROUP_ID_NOT_FOUND text for a consumer heartbeat to a classic group.
    #[error("Group {group} is not a consumer group.")]
    NotConsumerGroup { group: String },
    #[error("group '{group}' is a {actual} group, not a {wanted} group")]
    GroupTypeMismatch {
        group: String,
        actual: &'static str,
        wanted: &'static str,
    },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error("could not write group '{group}' to {OFFSETS_TOPIC}-{partition}: {reason}")]
    Storage {
        group: String,
        partition: i32,
        reason: String,
    },
}
