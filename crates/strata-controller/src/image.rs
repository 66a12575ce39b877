//! The cluster metadata image and the pure function that changes it.
//!
//! Owns: [`MetadataImage`] (what every broker acts on), [`MetadataCommand`] (the payload of a
//! metadata log entry) and [`apply`] (in `image/transition.rs`), the deterministic transition
//! `image x command -> image`.
//!
//! Must never: do I/O, read the clock or draw random numbers. Every voter applies the same log
//! and must reach the same image, so anything non-deterministic (topic ids, the cluster id) is
//! decided by the proposer and carried inside the command.
//!
//! Depends on nothing else in this crate; `state_machine` calls [`apply`] for each committed entry.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

use crate::partition::ElectError;
use crate::partition::PartitionMeta;

// `apply` and its helpers live in `image/transition.rs`; re-exported so `image::apply` stays
// the path callers use.
mod transition;
pub use transition::apply;

/// One topic as the controller knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level config overrides (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
    /// Replicas and leadership per partition. Empty for topics created before any broker
    /// registered (a single-node log from before replication): every partition then lives on the
    /// one broker that hosts the log.
    #[serde(default)]
    pub assignment: Vec<PartitionMeta>,
}

impl TopicMeta {
    /// Partition `p`'s replicas and leadership, if placed.
    pub fn partition(&self, p: i32) -> Option<&PartitionMeta> {
        usize::try_from(p).ok().and_then(|i| self.assignment.get(i))
    }
}

/// One advertised listener of a broker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener name, upper-case (`SASL_SSL`).
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl BrokerMeta {
    /// The address of the listener named `listener`, else the inter-broker address.
    pub fn endpoint(&self, listener: &str) -> (&str, u16) {
        self.endpoints
            .iter()
            .find(|e| e.name == listener)
            .map_or((self.host.as_str(), self.port), |e| {
                (e.host.as_str(), e.port)
            })
    }
}

/// A broker that registered with the controller.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BrokerMeta {
    pub node_id: i32,
    /// The inter-broker listener's advertised address (what replica fetchers connect to).
    pub host: String,
    pub port: u16,
    /// Every client listener's advertised address, by listener name: a client is answered
    /// with the addresses of the listener it connected to, as in Kafka. Empty for
    /// registrations from before several listeners existed (then `host:port` is used).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Set when the controller lost the broker (no heartbeat within `broker.session.timeout.ms`)
    /// or the broker shut down; a fenced broker leads nothing and leaves every ISR.
    #[serde(default)]
    pub fenced: bool,
    /// Set by a controlled shutdown: the broker stays fenced, even though it still answers
    /// for a moment, until it registers again.
    #[serde(default)]
    pub shutting_down: bool,
}

/// The committed cluster metadata, as of the last applied log entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetadataImage {
    /// Kafka-style cluster id (22 characters, URL-safe base64 of a random UUID); empty only
    /// before the first entry of a fresh cluster has been applied.
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker-level config overrides (cluster-wide default entity).
    pub broker_configs: BTreeMap<String, String>,
    pub brokers: BTreeMap<i32, BrokerMeta>,
    /// The first producer id not yet handed out: blocks below it were allocated by
    /// [`MetadataCommand::AllocateProducerIds`] and are never reused.
    #[serde(default)]
    pub next_producer_id: i64,
    /// SCRAM credentials (salted keys only), by user and mechanism.
    #[serde(default)]
    pub scram: crate::scram::ScramCredentials,
    /// ACLs (CreateAcls/DeleteAcls), enforced by every broker's authorizer.
    #[serde(default)]
    pub acls: crate::acl::AclSet,
    /// Client quotas (AlterClientQuotas), sorted by entity.
    #[serde(default)]
    pub quotas: Vec<crate::quota::ClientQuota>,
    /// Brokers being drained or drained (`strata cluster decommission`): no new replica is
    /// placed on them and their replicas move away ([`crate::decommission`]).
    #[serde(default)]
    pub decommissioned: std::collections::BTreeSet<i32>,
    /// Client-metrics subscriptions (KIP-714's CLIENT_METRICS config resources): the
    /// settings of each subscription, by name. The broker validates them before proposing.
    #[serde(default)]
    pub client_metrics: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    /// Whether `node` is registered and not fenced.
    pub fn is_live(&self, node: i32) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }
}

/// The payload of one metadata log entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetadataCommand {
    /// Sets the cluster id; proposed once by the first leader of a fresh cluster.
    InitializeCluster {
        cluster_id: String,
    },
    /// Adds or replaces a broker registration (a broker re-registers after a restart).
    RegisterBroker(BrokerMeta),
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        internal: bool,
        /// Replicas per partition; empty means placed by [`assign_replicas`] over the unfenced
        /// brokers (none registered: left unplaced, see [`TopicMeta::assignment`]).
        #[serde(default)]
        assignment: Vec<Vec<i32>>,
        /// Where placement starts in the broker order; the proposer draws it.
        #[serde(default)]
        placement_start: usize,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows the topic to `total` partitions (Kafka never shrinks a topic).
    CreatePartitions {
        name: String,
        total: i32,
        /// Replicas of each new partition; empty means automatic placement.
        #[serde(default)]
        assignment: Vec<Vec<i32>>,
    },
    /// Full replacement of the topic's config overrides.
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Full replacement of the dynamic broker config overrides.
    SetBrokerConfigs {
        configs: BTreeMap<String, String>,
    },
    /// Reserves the producer ids `[next_producer_id, next_producer_id + count)` for
    /// the proposer (the image after this entry tells it where its block ends).
    /// Idempotent producers get ids from such blocks; a transaction coordinator
    /// will use the same command.
    AllocateProducerIds {
        count: i64,
    },
    /// The controller lost the broker, or it is shutting down: it leaves every ISR and hands
    /// leadership over ([`PartitionMeta::on_fenced`]).
    FenceBroker {
        node_id: i32,
    },
    /// A fenced broker heartbeats again: it may lead partitions that have no leader.
    UnfenceBroker {
        node_id: i32,
    },
    /// Controlled shutdown: fenced like `FenceBroker`, and not unfenced by liveness until the
    /// broker registers again.
    ShutdownBroker {
        node_id: i32,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition). Refused unless `leader`,
    /// `leader_epoch` and `partition_epoch` are current.
    AlterPartition {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Drain `node_id`: no new replicas, and the active controller moves its replicas away
    /// ([`crate::decommission`]).
    DecommissionBroker {
        node_id: i32,
    },
    /// Step 1 of moving a replica, as the decommission drain did before it proposed
    /// reassignments: `node_id` joins the replicas (not the ISR) and copies. Applied from
    /// older metadata logs; nothing proposes it now ([`crate::decommission`]).
    AddReplica {
        topic: String,
        partition: i32,
        node_id: i32,
    },
    /// Step 2: `node_id` leaves; refused unless every other replica is in the ISR.
    /// `replaced_by` takes its place in the replica order. Like [`Self::AddReplica`], only
    /// applied from older metadata logs.
    DropReplica {
        topic: String,
        partition: i32,
        node_id: i32,
        replaced_by: Option<i32>,
    },
    /// AlterPartitionReassignments for one partition: `Some(target)` starts (or replaces) a
    /// reassignment to those replicas, `None` cancels the running one ([`crate::reassign`]).
    AlterPartitionReassignment {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// ElectLeaders: `unclean` elects any live replica of a leaderless partition, otherwise the
    /// preferred replica.
    ElectLeader {
        topic: String,
        partition: i32,
        unclean: bool,
    },
    /// AlterUserScramCredentials upsertion: the keys were derived by the proposer.
    UpsertScramCredential {
        user: String,
        mechanism: crate::scram::ScramMechanism,
        credential: crate::scram::ScramCredential,
    },
    /// AlterUserScramCredentials deletion.
    DeleteScramCredential {
        user: String,
        mechanism: crate::scram::ScramMechanism,
    },
    /// CreateAcls: adds the bindings (all or none, if one is invalid).
    CreateAcls {
        acls: Vec<crate::acl::AclBinding>,
    },
    /// DeleteAcls: removes exactly these bindings, which the proposer's filters matched.
    DeleteAcls {
        acls: Vec<crate::acl::AclBinding>,
    },
    /// AlterClientQuotas: all changes or none.
    AlterClientQuotas {
        changes: Vec<crate::quota::QuotaChange>,
    },
    /// Full replacement of one client-metrics subscription's settings; empty removes it.
    SetClientMetricsConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Undo [`MetadataCommand::DecommissionBroker`]: `node_id` takes replicas again and the
    /// drain's moves still copying are cancelled ([`crate::decommission`]).
    CancelDecommission {
        node_id: i32,
    },
}

/// Why a command was rejected by [`apply`]. A rejection is a normal, committed outcome: the entry
/// stays in the log and every voter rejects it the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
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
    #[error(
        "the cluster id is already {current}; refusing to change it to {requested} \
         (a metadata directory belongs to one cluster)"
    )]
    ClusterIdAlreadySet { current: String, requested: String },
    #[error(
        "cannot allocate {count} producer ids after {next}: a block must hold 1..={max} ids \
         and stay below i64::MAX"
    )]
    InvalidProducerIdBlock { count: i64, next: i64, max: i64 },
    #[error("invalid client quota: {reason}")]
    InvalidQuota { reason: String },
    #[error("broker {node_id} is not registered")]
    UnknownBroker { node_id: i32 },
    #[error("broker {node_id} is not decommissioned; there is nothing to cancel")]
    NotDecommissioned { node_id: i32 },
    #[error("partition {partition} of topic {name} does not exist")]
    UnknownPartition { name: String, partition: i32 },
    #[error(
        "topic {name}: {reason}; give every partition the same number of distinct, registered \
         brokers"
    )]
    InvalidReplicaAssignment { name: String, reason: String },
    #[error(
        "topic {name} needs {requested} replicas but only {available} brokers are alive; lower \
         the replication factor or start more brokers"
    )]
    NotEnoughBrokers {
        name: String,
        requested: i16,
        available: usize,
    },
    #[error(
        "{topic}-{partition}: the ISR change from broker {leader} at leader epoch {leader_epoch} \
         / partition epoch {partition_epoch} is stale (now leader {current_leader}, epochs \
         {current_leader_epoch} / {current_partition_epoch}); reload metadata and retry"
    )]
    StalePartitionEpoch {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        current_leader: i32,
        current_leader_epoch: i32,
        current_partition_epoch: i32,
    },
    #[error("{topic}-{partition}: invalid ISR {isr:?}: {reason}")]
    InvalidIsr {
        topic: String,
        partition: i32,
        isr: Vec<i32>,
        reason: String,
    },
    #[error("no {mechanism} credential for user {user}")]
    UnknownScramCredential { user: String, mechanism: String },
    #[error(
        "invalid {mechanism} credential for user {user}: the user name and salt must not be \
         empty and iterations must be in 4096..=16384"
    )]
    InvalidScramCredential { user: String, mechanism: String },
    #[error("cannot store ACL {acl}: {reason}")]
    InvalidAcl { acl: String, reason: String },
    #[error("{topic}-{partition}: cannot move a replica: {reason}")]
    InvalidReassignment {
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error("{topic}-{partition}: {source}")]
    Reassign {
        topic: String,
        partition: i32,
        source: crate::reassign::ReassignError,
    },
    #[error("{topic}-{partition}: cannot elect a leader: {source}")]
    Election {
        topic: String,
        partition: i32,
        source: ElectError,
    },
}

/// The largest block of producer ids one [`MetadataCommand::AllocateProducerIds`] may take.
pub const MAX_PRODUCER_ID_BLOCK: i64 = 1 << 20;

/// A new Kafka-style cluster id: the URL-safe, unpadded base64 of a random UUID (22 chars).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
