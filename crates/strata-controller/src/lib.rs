//! Strata's controller: cluster metadata as a state machine applied from an openraft log.
//!
//! # What it owns
//! The metadata Raft group and its directory (`<log.dirs>/meta/` in the broker): broker
//! registrations, topics (id, partition count, replication factor, config overrides), dynamic
//! broker configs, SCRAM credentials, ACLs and the cluster id. Brokers read the committed
//! [`MetadataImage`] through [`Controller::image`] / [`Controller::subscribe`] and change it only through
//! [`Controller::propose`]. It knows nothing of Kafka requests, sockets or partition logs.
//!
//! # Layers (dependencies point down)
//! - [`controller`]: [`Controller`], the handle the broker holds.
//! - [`log_store`] ([`LogStore`]) and [`state_machine`] ([`StateMachine`]): openraft's storage
//!   traits (v2). Checked against `openraft::testing::Suite`.
//! - [`image`]: the pure `apply(image, command)`; no I/O, deterministic. [`partition`]: replica
//!   placement and the leader/ISR rules it applies; [`reassign`]: partition reassignment
//!   (adding and removing replicas, completion, cancellation).
//! - [`network`] (clients), `server` (listener) and [`rpc`] (frames): the TCP transport of a
//!   quorum; [`quorum`]: parsing `controller.quorum.voters`.
//! - `disk`: atomic JSON files, record framing, the directory lock.
//! - [`rejoin`]: a voter that starts with an empty log (a replaced node) catches up before it
//!   votes; `learner`: broker-only nodes as openraft learners; [`membership`]: the quorum as
//!   one node sees it (DescribeQuorum); [`voters`]: runtime voter changes;
//!   [`decommission`]: draining a broker (moving its replicas, no new placement).
//!
//! # Storage contracts
//! - After `append` returns (and its flush callback fires) the entries were written to
//!   `raft.log` as `len | crc32c | json` records and `fdatasync`'d: they survive a crash.
//! - The vote, the committed log id, the purge point and the snapshot are each replaced
//!   atomically (temporary file, fsync, rename, directory fsync): a crash leaves the old or the
//!   new version, never a mix.
//! - A crash may leave a torn last record in `raft.log`; it was never acknowledged, and opening
//!   cuts the file back to the last valid record. A gap in the indexes is reported as
//!   corruption instead.
//! - The state machine is not persisted on apply: a restart loads `snapshot.json` and openraft
//!   re-applies the committed entries after it before [`Controller::open`] returns.
//! - A snapshot is taken every [`ControllerConfig::snapshot_every`] entries, and the log before
//!   it is purged (keeping [`ControllerConfig::logs_to_keep_after_snapshot`] entries).
//!
//! # A quorum of voters
//! [`Controller::open`] runs a single voter with no transport. [`Controller::open_cluster`] runs
//! one voter of a quorum configured Kafka's way, `node.id` plus
//! `controller.quorum.voters = "1@host:9093,2@host:9093,3@host:9093"` (parsed by
//! [`parse_quorum_voters`]); the id's address is the one peers dial, and this node listens on
//! the address it is given.
//! - Bootstrap: only when its log is empty, the lowest voter id calls `Raft::initialize` with all
//!   voters and then proposes the cluster id; the others learn both from the log. Reopening a
//!   directory never initializes again; an empty lowest voter first asks its peers and, if they
//!   hold a log, rejoins instead.
//! - Changing the voters at runtime: [`Controller::change_voters`] promotes a caught-up learner
//!   or demotes a voter, on the leader, after [`voters::plan`] checked that a quorum remains.
//!   The committed membership (log and snapshots) is the truth after bootstrap; a stale
//!   `controller.quorum.voters` never overrides it.
//! - Replacing a node: a voter whose directory was wiped restarts empty with the same id and
//!   catches up from the leader; until it has, it neither votes nor campaigns ([`rejoin`]).
//! - Transport: each RPC (AppendEntries, Vote, InstallSnapshot, and forwarded proposals) is one
//!   length-prefixed JSON frame over a reused TCP connection (mutual TLS with
//!   [`ControllerConfig::tls`], see [`tls`]), bounded by the RPC's TTL; a failure drops the
//!   connection and the next RPC reconnects.
//! - Forwarding: [`Controller::propose`] on a follower sends the command to the leader that
//!   openraft's `ForwardToLeader` names, retries with backoff while no leader is known, and
//!   waits for the entry to be applied locally before returning the leader's image. After
//!   [`ControllerConfig::propose_timeout`] it fails with [`ControllerError::NoQuorum`] (how many
//!   voters answered recently) or [`ControllerError::ProposeTimedOut`]; such a proposal may
//!   still commit later.
//! - Every node's [`Controller::image`] / [`Controller::subscribe`] follow committed entries.

pub mod acl;
pub mod controller;
pub mod decommission;
mod disk;
pub mod error;
pub mod image;
mod learner;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod partition;
pub mod quorum;
pub mod quota;
pub mod reassign;
pub mod rejoin;
pub mod rpc;
pub mod scram;
mod server;
pub mod state_machine;
pub mod tls;
pub mod voters;
mod voters_driver;

use std::io::Cursor;

pub use acl::{AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType};
pub use controller::Controller;
pub use controller::ControllerConfig;
pub use disk::StoreError;
pub use error::ControllerError;
pub use image::apply;
pub use image::ApplyError;
pub use image::BrokerMeta;
pub use image::Endpoint;
pub use image::MetadataCommand;
pub use image::MetadataImage;
pub use image::TopicMeta;
pub use log_store::LogStore;
pub use membership::{QuorumMember, QuorumView};
pub use partition::PartitionMeta;
pub use partition::NO_LEADER;
pub use quorum::parse_quorum_voters;
pub use quota::{ClientQuota, EntityName, QuotaChange, QuotaEntity, QUOTA_KEYS};
pub use scram::{ScramCredential, ScramMechanism};
pub use state_machine::ApplyResponse;
pub use state_machine::StateMachine;
pub use tls::TransportTls;
pub use voters::{VoterChange, VoterChangeError};
pub use voters_driver::VoterOutcome;

openraft::declare_raft_types!(
    /// openraft type configuration of the metadata group.
    pub TypeConfig:
        D = MetadataCommand,
        R = ApplyResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
