//! The Kafka listeners: each client listener (`listener.rs`) accepts connections under
//! the connection limits (`limits.rs`), does its TLS handshake, and runs the connection
//! loop (`connection.rs`), which reads frames, drives SASL (`auth/`), dispatches each
//! request to its handler in `handlers/`, and writes responses in order (a Fetch answer
//! as parts, `parts.rs`, written by `send.rs`).
//!
//! This is the only layer that turns module errors into Kafka error codes
//! (`errors.rs`). The principal of every request is on its [`Ctx`].

pub mod auth;
pub(crate) mod connection;
mod errors;
pub mod fetch_session;
pub(crate) mod handlers;
pub mod limits;
pub mod listener;
pub(crate) mod parts;
pub(crate) mod send;
mod throttle;

use std::sync::Arc;

use crate::broker::Broker;
use crate::cleaner::LogCleaner;
use crate::group::GroupCoordinator;
use crate::metadata::MetadataCache;
use crate::replica::ReplicaManager;
use crate::rlm::RemoteLogManager;
use crate::txn::TxnCoordinator;

pub use auth::authorizer::Authorizer;
use auth::authorizer::Requester;
pub use auth::Principal;
pub use errors::{
    controller_code, error_code, group_code, group_result_code, replica_code, telemetry_code,
    txn_code,
};
use fetch_session::FetchSessions;
pub use listener::{serve, Bound, ListenerRuntime};
use strata_controller::{AclOperation, ResourceType};

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
    /// Incremental fetch sessions (KIP-227), shared by every connection.
    pub fetch_sessions: Arc<parking_lot::Mutex<FetchSessions>>,
    /// The ACL checker, when `authorizer.class.name` is set; `None` allows everything.
    pub authorizer: Option<Arc<Authorizer>>,
    pub txns: Arc<TxnCoordinator>,
    /// KIP-890: asks the coordinator before a transaction's first batch here (part 1,
    /// when `transaction.partition.verification.enable`), or has it add the partition
    /// (part 2, Produce v12+, always).
    pub txn_verifier: Arc<crate::txn::verify::TxnVerifier>,
    /// `transaction.partition.verification.enable`.
    pub txn_verify: bool,
    /// The meters of clients under a quota.
    pub quotas: Arc<crate::quota::QuotaManager>,
    /// KIP-612 connection creation rates (per IP and broker-wide), used by the listeners.
    pub connection_rates: Arc<crate::quota::connections::ConnectionRates>,
    /// Client telemetry (KIP-714): client instances and where their metrics go.
    pub telemetry: Arc<crate::telemetry::ClientTelemetry>,
}

impl Services {
    pub fn new(
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        txns: Arc<TxnCoordinator>,
    ) -> Services {
        let slots = broker.metadata.config().fetch_session_slots.max(0) as usize;
        // Ids start at a random point so that a restarted broker does not hand out the
        // ids its clients still hold (they get FETCH_SESSION_ID_NOT_FOUND, not another's).
        let first_id = (uuid::Uuid::new_v4().as_u128() as i32 & i32::MAX).max(1);
        let authorizer = broker
            .metadata
            .config()
            .security
            .authorizer
            .as_ref()
            .map(|c| Arc::new(Authorizer::new(c)));
        let [samples, window, mutation_samples, mutation_window] =
            broker.metadata.config().quota_windows;
        let quotas = Arc::new(crate::quota::QuotaManager::new(
            samples,
            window,
            mutation_samples,
            mutation_window,
        ));
        let connection_rates = Arc::new(crate::quota::connections::ConnectionRates::new(
            samples,
            window,
            broker
                .metadata
                .config()
                .security
                .max_connection_creation_rate,
        ));
        let txn_verifier = Arc::new(crate::txn::verify::TxnVerifier::new(
            broker.node_id(),
            broker.metadata.clone(),
            txns.clone(),
        ));
        let config = broker.metadata.config();
        let destination = crate::telemetry::Destination::resolve(
            config.client_telemetry_otlp_endpoint.as_deref(),
            config.otlp_endpoint.as_deref(),
        );
        let telemetry = crate::telemetry::ClientTelemetry::new(
            config.telemetry_max_bytes,
            destination,
            broker.node_id(),
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "client telemetry is shown on /metrics only");
            crate::telemetry::ClientTelemetry::new(
                config.telemetry_max_bytes,
                crate::telemetry::Destination::None,
                broker.node_id(),
            )
            .expect("no forwarder to start")
        });
        Services {
            telemetry: Arc::new(telemetry),
            txn_verify: broker.config().txn.partition_verification_enable,
            txn_verifier,
            quotas,
            connection_rates,
            fetch_sessions: Arc::new(parking_lot::Mutex::new(FetchSessions::new(slots, first_id))),
            authorizer,
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
    /// The client's source port (KIP-714's `client_source_port`).
    pub client_port: u16,
    pub client_id: String,
    /// `(name, version)` the client gave in ApiVersions v3+, empty before.
    pub client_software: &'a (String, String),
    /// Who is asking: the SASL user, the subject of a verified client certificate, or
    /// `User:ANONYMOUS`. This is what an authorizer checks.
    pub principal: &'a Principal,
    /// The listener the request came in on; Metadata and FindCoordinator answer with
    /// that listener's addresses.
    pub listener: &'a str,
    /// A throttle a handler decided on (a permissive mutation quota); the connection
    /// mutes the client for the largest of it and the byte and request throttles.
    throttle_ms: std::sync::atomic::AtomicU64,
    /// The connection can send file ranges with `sendfile` (plaintext transport).
    zero_copy: bool,
    /// The file ranges a Fetch answer's placeholders stand for (`parts`).
    pub slices: parking_lot::Mutex<parts::Slices>,
}

impl std::ops::Deref for Ctx<'_> {
    type Target = Services;

    fn deref(&self) -> &Services {
        self.services
    }
}

/// Authorization at the edge: each handler asks before calling a component. With no
/// authorizer configured every answer is yes.
impl Ctx<'_> {
    fn requester(&self) -> Requester<'_> {
        Requester {
            principal: self.principal,
            host: self.client_host.trim_start_matches('/'),
        }
    }

    /// Whether the principal may do `op` on the resource `name` of type `rtype`.
    pub fn allowed(&self, op: AclOperation, rtype: ResourceType, name: &str) -> bool {
        match &self.authorizer {
            None => true,
            Some(a) => a.authorize(&self.broker.image().acls, self.requester(), op, rtype, name),
        }
    }

    /// `allowed` on a topic.
    pub fn topic_allowed(&self, op: AclOperation, topic: &str) -> bool {
        self.allowed(op, ResourceType::Topic, topic)
    }

    /// `allowed` on a group.
    pub fn group_allowed(&self, op: AclOperation, group: &str) -> bool {
        self.allowed(op, ResourceType::Group, group)
    }

    /// `allowed` on the cluster.
    /// KIP-599's `controller_mutation_rate`: whether a request creating or deleting
    /// `partitions` may go ahead, or how many milliseconds the client must wait. Only the
    /// versions that know THROTTLING_QUOTA_EXCEEDED (`strict`) are refused; older ones
    /// are admitted and their client is muted for the wait, as Kafka's permissive mode
    /// does.
    pub fn admit_mutation(&self, partitions: i32, strict: bool) -> Result<(), u64> {
        let image = self.broker.image();
        let client = crate::quota::Client {
            user: &self.principal.name,
            client_id: &self.client_id,
        };
        let now = crate::now_ms().max(0) as u64;
        let outcome =
            self.quotas
                .admit_mutation(&image.quotas, client, partitions.max(0) as f64, now);
        match outcome {
            Err(ms) if !strict => {
                self.throttle_ms
                    .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    }

    /// Whether a Fetch may answer with file ranges (`parts`): a plaintext connection
    /// and the placeholder region reserved.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy && parts::available() && !strata_log::bench_copy_path()
    }

    /// The throttle a handler decided on, 0 if none.
    pub fn handler_throttle_ms(&self) -> u64 {
        self.throttle_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn cluster_allowed(&self, op: AclOperation) -> bool {
        self.allowed(
            op,
            ResourceType::Cluster,
            strata_controller::acl::CLUSTER_NAME,
        )
    }

    /// Whether the principal may do `op` on some resource of type `rtype` (Kafka's
    /// `authorizeByResourceType`).
    pub fn any_allowed(&self, op: AclOperation, rtype: ResourceType) -> bool {
        match &self.authorizer {
            None => true,
            Some(a) => a.authorize_any(&self.broker.image().acls, self.requester(), op, rtype),
        }
    }

    /// Kafka's `authorizedOperations` bit field: the operations of `rtype` the principal may
    /// do on `name` (every supported one without an authorizer), bit `1 << code`.
    pub fn authorized_operations(&self, rtype: ResourceType, name: &str) -> i32 {
        use AclOperation as O;
        let supported: &[AclOperation] = match rtype {
            ResourceType::Topic => &[
                O::Read,
                O::Write,
                O::Create,
                O::Describe,
                O::Delete,
                O::Alter,
                O::DescribeConfigs,
                O::AlterConfigs,
            ],
            ResourceType::Group => &[O::Read, O::Describe, O::Delete],
            ResourceType::Cluster => &[
                O::Create,
                O::ClusterAction,
                O::DescribeConfigs,
                O::AlterConfigs,
                O::IdempotentWrite,
                O::Alter,
                O::Describe,
            ],
            _ => &[],
        };
        supported
            .iter()
            .filter(|op| self.allowed(**op, rtype, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// Whether an authorizer is on (CreateAcls and friends answer SECURITY_DISABLED if not).
    pub fn authorizer_on(&self) -> bool {
        self.authorizer.is_some()
    }
}
