//! Strata's controller: cluster metadata as a state machine applied from an openraft log.
//!
//! # What it owns
//! The metadata Raft group and its directory (`<log.dirs>/meta/` in the broker): broker
//! registrations, topics (id, partition count, replication factor, config overrides), dynamic
//! broker configs and the cluster id. Brokers read the committed [`MetadataImage`] through
//! [`Controller::image`] / [`Controller::subscribe`] and change it only through
//! [`Controller::propose`]. It knows nothing of Kafka requests, sockets or partition logs.
//!
//! # Layers (dependencies point down)
//! - [`controller`]: [`Controller`], the handle the broker holds.
//! - [`log_store`] ([`LogStore`]) and [`state_machine`] ([`StateMachine`]): openraft's storage
//!   traits (v2). Checked against `openraft::testing::Suite`.
//! - [`image`]: the pure `apply(image, command)`; no I/O, deterministic.
//! - [`network`]: the transport seam (unreachable for now).
//! - `disk`: atomic JSON files, record framing, the directory lock.
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
//! # More voters
//! Nothing here assumes one voter except [`network::NoNetwork`] and the bootstrap in
//! [`Controller::open`]. A cluster adds a real `RaftNetworkFactory` (gRPC/TCP) in [`network`],
//! a server that hands incoming RPCs to [`Controller::raft`], bootstraps the initial voter set
//! once, grows it with `Raft::change_membership`, and maps [`ControllerError::NotLeader`] to a
//! forward to the leader. The log, state machine and commands stay as they are.

pub mod controller;
mod disk;
pub mod error;
pub mod image;
pub mod log_store;
pub mod network;
pub mod quorum;
pub mod rpc;
mod server;
pub mod state_machine;

use std::io::Cursor;

pub use controller::Controller;
pub use controller::ControllerConfig;
pub use disk::StoreError;
pub use error::ControllerError;
pub use image::apply;
pub use image::ApplyError;
pub use image::BrokerMeta;
pub use image::MetadataCommand;
pub use image::MetadataImage;
pub use image::TopicMeta;
pub use log_store::LogStore;
pub use quorum::parse_quorum_voters;
pub use state_machine::ApplyResponse;
pub use state_machine::StateMachine;

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
