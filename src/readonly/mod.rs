//! Read-only nodes (`process.roles=reader`, issue 14 item 3): a node that follows the
//! partition manifests in the bucket (`remote.storage.url`) and serves Fetch, ListOffsets and
//! Metadata of tiered data straight from it. It is no replica, has no vote and no partition
//! log: the cluster does not know it exists, so adding readers scales history reads out at no
//! cost to the cluster (no replication, no metadata traffic, no placement).
//!
//! Pieces:
//! - `catalog.rs` (pure): the topics and partition manifests served, and where a fetch
//!   offset stands in them;
//! - `follow.rs`: polls the bucket every `remote.log.manifest.poll.interval.ms` with the
//!   discovery `strata recover` uses and publishes a new catalog;
//! - `fetch.rs`: Fetch through the broker's remote read path (`RemoteReader`, the read pool,
//!   the KIP-74 cut, fetch sessions);
//! - `handlers.rs`, `server.rs`: the other APIs and the listener.
//!
//! Dependencies point down: this module uses `replica` (its fetch types and helpers),
//! `server` (fetch sessions and the Fetch encoding), `rlm::open_remote` and `strata-tier`;
//! nothing uses it but `startup`.

mod catalog;
mod fetch;
mod follow;
mod handlers;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_config::{BrokerConfig, Configs, Listener, SecurityProtocol};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use catalog::Catalog;

use crate::replica::RemoteTier;
use crate::server::fetch_session::FetchSessions;

/// Why a read-only node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyError {
    #[error("invalid config for a read-only node (process.roles=reader): {reason}")]
    Config { reason: String },
    #[error(transparent)]
    Settings(#[from] strata_config::ConfigError),
    #[error("cannot create log dir {dir} (it holds the remote chunk cache): {source}")]
    LogDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tier(#[from] crate::rlm::TierOpenError),
    #[error("cannot listen on {addr}: {source}; is another process using the port? (listeners)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// What the handlers of a read-only node share.
pub struct Node {
    pub id: i32,
    /// The address Metadata names for this node.
    pub advertised: Listener,
    pub rack: Option<String>,
    pub remote: RemoteTier,
    /// The latest catalog; fetches waiting at a partition's end subscribe to it.
    pub catalog: watch::Sender<Arc<Catalog>>,
    pub sessions: Mutex<FetchSessions>,
    /// `socket.request.max.bytes`.
    pub max_request_bytes: usize,
    /// `connections.max.idle.ms`.
    pub idle: Option<Duration>,
}

/// What a read-only node refuses at startup: settings that it would otherwise accept and
/// ignore (a setting accepted must act).
/// Returns the reason.
fn check(config: &BrokerConfig) -> Result<(), String> {
    let refuse = |reason: &str| Err(reason.to_string());
    if !config.remote.enabled {
        return refuse("remote.log.storage.system.enable=false: a reader serves the remote tier only; enable it and set remote.storage.url to the cluster's bucket");
    }
    if config
        .security
        .listeners
        .iter()
        .any(|l| l.protocol != SecurityProtocol::Plaintext)
    {
        return refuse("its listeners are PLAINTEXT only for now (TLS and SASL are not built for readers); put it behind a TLS proxy or use PLAINTEXT listeners");
    }
    if config.console_listener.is_some() {
        return refuse("console.listener is not served by a reader; set it to none");
    }
    if config.security.authorizer.is_some() {
        return refuse("authorizer.class.name: readers have no ACLs (they do not follow the metadata log); unset it");
    }
    Ok(())
}

/// A running read-only node.
pub struct Running {
    pub node: Arc<Node>,
    /// Every listener: name and bound address.
    pub listeners: Vec<(String, SocketAddr)>,
    pub metrics_addr: Option<SocketAddr>,
    /// `remote.storage.url`.
    pub url: String,
    shutdown: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

/// Opens the bucket, reads it once, binds the listeners and starts following the bucket.
pub async fn start(configs: Configs) -> Result<Running, ReadOnlyError> {
    let config = configs.broker(&Default::default())?;
    check(&config).map_err(|reason| ReadOnlyError::Config { reason })?;
    let dir = config.log_dirs[0].clone();
    std::fs::create_dir_all(&dir).map_err(|source| ReadOnlyError::LogDir {
        dir: dir.clone(),
        source,
    })?;
    // The chunk cache's disk tier lives under the first log dir, as on a broker; no
    // partition directory is ever created.
    let remote = crate::rlm::open_remote(&config.remote, dir.join("remote-cache")).await?;
    let mut follower = follow::Follower::new(remote.store.clone(), remote.reader.clone());
    let first = match follower.poll(&Catalog::default()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "first manifest poll failed; serving nothing until a poll succeeds");
            Catalog::default()
        }
    };
    let (catalog, _) = watch::channel(Arc::new(first));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut sockets = Vec::new();
    for ls in &config.security.listeners {
        let bind = ls.listener.socket_addr();
        let socket = TcpListener::bind(&bind)
            .await
            .map_err(|source| ReadOnlyError::Bind {
                addr: bind.clone(),
                source,
            })?;
        let addr = socket
            .local_addr()
            .map_err(|source| ReadOnlyError::Bind { addr: bind, source })?;
        sockets.push((ls.listener.clone(), socket, addr));
    }
    let (first_listener, _, first_addr) = sockets.first().ok_or(ReadOnlyError::Config {
        reason: "no listener configured; set listeners, e.g. PLAINTEXT://:9092".into(),
    })?;
    let advertised = crate::startup::advertised_for(&config, first_listener, *first_addr);
    let slots = config.fetch_session_slots.max(0) as usize;
    let first_id = (uuid::Uuid::new_v4().as_u128() as i32 & i32::MAX).max(1);
    let node = Arc::new(Node {
        id: config.node_id,
        advertised,
        rack: config.broker_rack.clone(),
        remote,
        catalog,
        sessions: Mutex::new(FetchSessions::new(slots, first_id)),
        max_request_bytes: config.socket_request_max_bytes.max(0) as usize,
        idle: (config.security.connections_max_idle_ms > 0)
            .then(|| Duration::from_millis(config.security.connections_max_idle_ms as u64)),
    });
    let metrics_addr = match &config.metrics_listener {
        Some(addr) => Some(crate::metrics::spawn_server(addr, shutdown_rx.clone()).await?),
        None => None,
    };
    let interval = Duration::from_millis(config.remote.manifest_poll_interval_ms.max(1) as u64);
    let mut servers = vec![tokio::spawn(follow::run(
        follower,
        node.catalog.clone(),
        interval,
        shutdown_rx.clone(),
    ))];
    let mut listeners = Vec::new();
    for (l, socket, addr) in sockets {
        listeners.push((l.name.clone(), addr));
        servers.push(tokio::spawn(server::serve(
            node.clone(),
            socket,
            shutdown_rx.clone(),
        )));
    }
    Ok(Running {
        node,
        listeners,
        metrics_addr,
        url: config.remote.url.clone(),
        shutdown,
        servers,
    })
}

impl Running {
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for s in self.servers {
            let _ = s.await;
        }
        if let Err(e) = self.node.remote.reader.close().await {
            tracing::warn!(error = %e, "closing the remote chunk cache failed");
        }
    }
}

/// Runs a read-only node until SIGINT or SIGTERM; prints the lines a broker prints.
pub async fn run(configs: Configs) -> Result<(), ReadOnlyError> {
    let running = start(configs).await?;
    let node = &running.node;
    let (topics, partitions) = {
        let c = node.catalog.borrow();
        (
            c.topics().count(),
            c.topics().map(|(_, t)| t.partitions.len()).sum::<usize>(),
        )
    };
    println!(
        "strata {}: node {} read-only, following {} ({topics} topics, {partitions} partitions)",
        env!("CARGO_PKG_VERSION"),
        node.id,
        running.url,
    );
    if let Some(m) = running.metrics_addr {
        println!("strata: metrics on {m}");
    }
    for (name, addr) in &running.listeners {
        println!("strata: listener {name} on {addr}");
    }
    if let Some((_, addr)) = running.listeners.first() {
        println!(
            "strata: listening on {addr} (advertised {}:{})",
            node.advertised.host, node.advertised.port
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(node_id = node.id, "read-only node started");
    crate::startup::wait_for_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[(&str, &str)]) -> BrokerConfig {
        let mut cli = vec![("process.roles".to_string(), "reader".to_string())];
        cli.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Configs::load(None, &[], &cli)
            .and_then(|c| c.broker(&Default::default()))
            .expect("config")
    }

    #[test]
    fn settings_a_reader_would_ignore_are_refused() {
        assert_eq!(check(&config(&[])), Ok(()));
        let refused = |extra: &[(&str, &str)], says: &str| {
            let reason = check(&config(extra)).unwrap_err();
            assert!(reason.contains(says), "{reason}");
        };
        refused(
            &[("remote.log.storage.system.enable", "false")],
            "remote.log.storage.system.enable",
        );
        refused(&[("console.listener", "127.0.0.1:0")], "console.listener");
        refused(
            &[
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
                ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            ],
            "PLAINTEXT only",
        );
    }
}
