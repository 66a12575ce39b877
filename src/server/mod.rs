//! The Kafka listeners: each client listener (`listener.rs`) accepts connections under
//! the connection limits (`limits.rs`), does its TLS handshake, and runs the connection
//! loop (`connection.rs`), which reads frames, drives SASL (`auth/`), dispatches each
//! request to its handler in `handlers/`, and writes responses in order.
//!
//! This is the only layer that turns module errors into Kafka error codes
//! (`errors.rs`). The principal of every request is on its [`Ctx`].

pub mod auth;
mod connection;
mod errors;
mod handlers;
pub mod limits;
pub mod listener;

use std::sync::Arc;

use crate::broker::Broker;
use crate::cleaner::LogCleaner;
use crate::group::GroupCoordinator;
use crate::metadata::MetadataCache;
use crate::replica::ReplicaManager;
use crate::rlm::RemoteLogManager;
use crate::txn::TxnCoordinator;

pub use auth::Principal;
pub use errors::{
    controller_code, error_code, group_code, group_result_code, replica_code, txn_code,
};
pub use listener::{serve, Bound, ListenerRuntime};

/// The components the handlers call, built once at startup.
#[derive(Clone)]
pub struct Services {
    /// Metadata changes (topic administration) and cluster information.
    pub broker: Arc<Broker>,
    pub metadata: Arc<MetadataCache>,
    /// Appends, fetches and offset lookups.
    pub replicas: Arc<ReplicaManager>,
    /// The RemoteLogManager, when the node has a remote tier.
    pub rlm: Option<Arc<RemoteLogManager>>,
    /// The log cleaner, for its per-partition state in DescribeLogDirs.
    pub cleaner: Arc<LogCleaner>,
    pub groups: Arc<GroupCoordinator>,
    pub txns: Arc<TxnCoordinator>,
}

impl Services {
    pub fn new(
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        txns: Arc<TxnCoordinator>,
    ) -> Services {
        Services {
            metadata: broker.metadata.clone(),
            replicas: broker.replicas.clone(),
            rlm: broker.rlm.clone(),
            cleaner: broker.cleaner.clone(),
            broker,
            groups,
            txns,
        }
    }
}

/// Per-request context handed to every handler: the components (through `Deref` to
/// [`Services`], so a handler writes `ctx.replicas`) and who is asking.
pub struct Ctx<'a> {
    services: &'a Services,
    pub version: i16,
    /// The client's host as Kafka reports it in DescribeGroups (`/127.0.0.1`).
    pub client_host: String,
    pub client_id: String,
    /// Who is asking: the SASL user, the subject of a verified client certificate, or
    /// `User:ANONYMOUS`. This is what an authorizer checks.
    pub principal: &'a Principal,
    /// The listener the request came in on; Metadata and FindCoordinator answer with
    /// that listener's addresses.
    pub listener: &'a str,
}

impl std::ops::Deref for Ctx<'_> {
    type Target = Services;

    fn deref(&self) -> &Services {
        self.services
    }
}
