//! Starting and stopping a broker: configuration, the controller, the logs, the
//! listener. `main.rs` is a thin CLI over [`run`]; tests may call [`start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use strata_config::{Configs, Listener};
use strata_controller::{BrokerMeta, Controller, Endpoint, MetadataCommand};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::group::GroupCoordinator;
use crate::txn::TxnCoordinator;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] strata_config::ConfigError),
    #[error("cannot create log dir {dir}: {source}; check log.dirs and permissions")]
    LogDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the metadata log in {dir}: {source}")]
    Controller {
        dir: PathBuf,
        source: strata_controller::ControllerError,
    },
    #[error("cannot listen on {addr}: {source}; is another broker using the port? (listeners)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("no listener configured; set listeners, e.g. PLAINTEXT://127.0.0.1:9092")]
    NoListener,
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error(transparent)]
    Tier(#[from] crate::rlm::TierOpenError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    Security(crate::server::auth::AuthSetupError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    ReadOnly(#[from] crate::readonly::ReadOnlyError),
}

async fn bind(l: &Listener) -> Result<(TcpListener, SocketAddr), StartupError> {
    let bind = l.socket_addr();
    let socket = TcpListener::bind(&bind)
        .await
        .map_err(|source| StartupError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let addr = socket
        .local_addr()
        .map_err(|source| StartupError::Bind { addr: bind, source })?;
    Ok((socket, addr))
}

/// The advertised address of listener `l` bound at `addr`: `advertised.listeners`' entry
/// of the same name (port 0 standing for the bound port), else the listener itself.
/// The advertised address of listener `l` bound at `addr`: its `advertised.listeners` entry,
/// with the bound port when that entry says port 0, or `l` itself with the bound port.
pub(crate) fn advertised_for(
    config: &strata_config::BrokerConfig,
    l: &Listener,
    addr: SocketAddr,
) -> Listener {
    match config
        .advertised_listeners
        .iter()
        .find(|a| a.name == l.name)
    {
        Some(a) if a.port != 0 => a.clone(),
        Some(a) => Listener {
            port: addr.port(),
            ..a.clone()
        },
        None => Listener {
            port: addr.port(),
            ..l.clone()
        },
    }
}

/// Why [`open_data`] failed; `serve` and `recover` each word it with their own hint.
pub(crate) enum OpenDataError {
    LogDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    Controller {
        dir: PathBuf,
        source: strata_controller::ControllerError,
    },
    Security(crate::server::auth::AuthSetupError),
}

impl From<OpenDataError> for StartupError {
    fn from(e: OpenDataError) -> Self {
        match e {
            OpenDataError::LogDir { dir, source } => StartupError::LogDir { dir, source },
            OpenDataError::Controller { dir, source } => StartupError::Controller { dir, source },
            OpenDataError::Security(e) => StartupError::Security(e),
        }
    }
}

/// The metadata log's directory: `meta` under the first log dir.
pub(crate) fn meta_dir(config: &strata_config::BrokerConfig) -> PathBuf {
    config.log_dirs[0].join("meta")
}

/// What `serve` and `recover` both start with: creates the log dirs and opens the
/// controller on [`meta_dir`].
pub(crate) async fn open_data(
    config: &strata_config::BrokerConfig,
) -> Result<Controller, OpenDataError> {
    for dir in &config.log_dirs {
        std::fs::create_dir_all(dir).map_err(|source| OpenDataError::LogDir {
            dir: dir.clone(),
            source,
        })?;
    }
    let dir = meta_dir(config);
    let tls = match &config.security.controller_ssl {
        Some(ssl) => Some(transport_tls(config, ssl).map_err(OpenDataError::Security)?),
        None => None,
    };
    open_controller(config, &dir, tls)
        .await
        .map_err(|source| OpenDataError::Controller { dir, source })
}

/// Mutual TLS for the Raft transport from the controller listener's PEM files: the server
/// requires a certificate from the truststore's CA, the client presents the keystore.
fn transport_tls(
    config: &strata_config::BrokerConfig,
    ssl: &strata_config::SslConfig,
) -> Result<strata_controller::TransportTls, crate::server::auth::AuthSetupError> {
    let name = config
        .controller_listener
        .as_ref()
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let server = crate::server::auth::tls::server_config(&name, ssl)?;
    let client = crate::protocol::client_security::client_tls(ssl).map_err(|reason| {
        crate::server::auth::AuthSetupError::Tls {
            listener: name.clone(),
            reason,
        }
    })?;
    Ok(strata_controller::TransportTls {
        server: std::sync::Arc::new(server),
        client: std::sync::Arc::new(client),
    })
}

/// The embedded single-voter controller, or this node's voter of `controller.quorum.voters`
/// serving controller RPCs on the controller listener.
async fn open_controller(
    config: &strata_config::BrokerConfig,
    meta_dir: &std::path::Path,
    tls: Option<strata_controller::TransportTls>,
) -> Result<Controller, strata_controller::ControllerError> {
    if config.quorum_voters.is_empty() {
        return Controller::open(meta_dir, config.node_id as u64).await;
    }
    let voters = strata_controller::parse_quorum_voters(&config.quorum_voters)?;
    let listen = config
        .controller_listener
        .as_ref()
        .map(|l| l.socket_addr())
        .unwrap_or_default();
    tracing::info!(node_id = config.node_id, voters = %config.quorum_voters, %listen, tls = tls.is_some(), "joining the controller quorum");
    let controller_config = strata_controller::ControllerConfig {
        tls,
        ..Default::default()
    };
    if config.broker_only {
        // The leader replicates the metadata log to this address: the controller listener as
        // configured (a broker-only node needs one the voters can reach).
        return Controller::open_learner_with(
            meta_dir,
            config.node_id as u64,
            voters,
            &listen,
            &listen,
            controller_config,
        )
        .await;
    }
    Controller::open_cluster_with(
        meta_dir,
        config.node_id as u64,
        voters,
        &listen,
        controller_config,
    )
    .await
}

/// The remote tier (store and reader) under the first log dir's `remote-cache`, when
/// `remote.log.storage.system.enable`.
pub(crate) async fn open_remote(
    config: &strata_config::BrokerConfig,
) -> Result<Option<crate::replica::RemoteTier>, crate::rlm::TierOpenError> {
    if !config.remote.enabled {
        return Ok(None);
    }
    let cache_dir = config.log_dirs[0].join("remote-cache");
    Ok(Some(
        crate::rlm::open_remote(&config.remote, cache_dir).await?,
    ))
}

/// `addr` with 127.0.0.1 (or ::1) in place of an unspecified (wildcard) IP, to connect to.
fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// A running broker.
pub struct Running {
    pub broker: Arc<Broker>,
    /// The first client listener's bound address.
    pub addr: SocketAddr,
    /// Every client listener: name and bound address.
    pub listeners: Vec<(String, SocketAddr)>,
    /// Where `GET /metrics` is served; `None` when `metrics.listener` is `none`.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the web console is served; `None` when `console.listener` is `none`.
    pub console_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

/// Opens everything and starts serving; returns once the listener is bound.
pub async fn start(configs: Configs) -> Result<Running, StartupError> {
    let config = configs.broker(&Default::default())?;
    for name in configs.deprecated_statics() {
        tracing::warn!(
            config = name,
            "deprecated broker config accepted and ignored, as Kafka 3.9 does; remove it"
        );
    }
    let controller = open_data(&config).await?;

    // Every client listener is bound (and its TLS files, users and JWKS loaded) before
    // the broker registers, so a listener that cannot work stops startup.
    let security = Arc::new(config.security.clone());
    let mut bound = Vec::new();
    let mut endpoints = Vec::new();
    for ls in &security.listeners {
        let runtime = crate::server::ListenerRuntime::open(ls)
            .await
            .map_err(StartupError::Security)?;
        let (socket, addr) = bind(&ls.listener).await?;
        let advertised = advertised_for(&config, &ls.listener, addr);
        endpoints.push((ls.listener.name.clone(), addr, advertised));
        bound.push(crate::server::Bound {
            runtime: Arc::new(runtime),
            socket,
        });
    }
    let (_, addr, _) = endpoints.first().cloned().ok_or(StartupError::NoListener)?;
    let advertised = endpoints
        .iter()
        .find(|(name, _, _)| *name == security.inter_broker_listener)
        .map(|(_, _, a)| a.clone())
        .ok_or(StartupError::NoListener)?;
    let me = BrokerMeta {
        node_id: config.node_id,
        host: advertised.host.clone(),
        port: advertised.port,
        endpoints: endpoints
            .iter()
            .map(|(name, _, a)| Endpoint {
                name: name.clone(),
                host: a.host.clone(),
                port: a.port,
            })
            .collect(),
        rack: config.broker_rack.clone(),
        fenced: false,
        shutting_down: false,
    };
    // Registering also unfences a broker that was fenced when it stopped.
    // In a cluster, always: the proposal commits only once this node has applied the
    // committed metadata up to it, so the node never serves a stale image after a restart.
    if controller.is_quorum() || controller.image().brokers.get(&config.node_id) != Some(&me) {
        controller
            .propose(MetadataCommand::RegisterBroker(me))
            .await
            .map_err(|source| StartupError::Controller {
                dir: meta_dir(&config),
                source,
            })?;
    }

    let remote = open_remote(&config).await?;
    let broker = Broker::new(configs, config, controller, advertised, remote);
    let image = broker.image();
    broker.apply_image(&image)?;
    broker.replicas.delete_stray_logs(&image);
    if let Some(rlm) = &broker.rlm {
        rlm.load_manifests().await;
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    crate::metrics::watch_partitions(broker.clone());
    crate::metrics::cleaner::watch(broker.cleaner.clone());
    let metrics_addr = match &broker.config().metrics_listener {
        Some(addr) => Some(crate::metrics::spawn_server(addr, shutdown_rx.clone()).await?),
        None => None,
    };
    broker.spawn_tasks(shutdown_rx.clone());
    let groups = GroupCoordinator::start(broker.clone(), shutdown_rx.clone()).await?;
    let local_markers = Arc::new(crate::txn::markers::ReplicaMarkers {
        replicas: broker.replicas.clone(),
        groups: groups.clone(),
    });
    let markers = Arc::new(crate::txn::markers::ClusterMarkers::new(
        broker.node_id(),
        broker.metadata.clone(),
        local_markers,
    ));
    let txns = TxnCoordinator::start(broker.clone(), markers, shutdown_rx.clone()).await?;
    crate::metrics::groups::watch(groups.clone());
    let services = crate::server::Services::new(broker.clone(), groups, txns);
    // The console reads the cluster over this broker's own PLAINTEXT or SASL_PLAINTEXT
    // listener (as the browser's user with SASL).
    let addrs: Vec<SocketAddr> = endpoints
        .iter()
        .map(|(_, a, _)| loopback_if_unspecified(*a))
        .collect();
    let console_addr = match &broker.config().console_listener {
        Some(at) => {
            let c = broker.config();
            let settings = crate::console::Settings {
                addr: at.clone(),
                target: crate::console::Target::choose(&security.listeners, &addrs),
                read_only: c.console_read_only,
                prices: c.tier_prices,
                sample_interval: std::time::Duration::from_millis(c.console_sample_interval_ms),
            };
            Some(crate::console::spawn_server(settings, shutdown_rx.clone()).await?)
        }
        None => None,
    };
    let server = tokio::spawn(crate::server::serve(bound, services, security, shutdown_rx));
    Ok(Running {
        broker,
        addr,
        listeners: endpoints.into_iter().map(|(n, a, _)| (n, a)).collect(),
        metrics_addr,
        console_addr,
        shutdown,
        server,
    })
}

impl Running {
    /// Stops accepting, closes every log cleanly, and stops the controller.
    pub async fn stop(self) {
        self.broker.controlled_shutdown().await;
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        // The chunk cache's tasks end before the runtime does (foyer otherwise logs "sending
        // on a disconnected channel" from tasks the runtime drops).
        if let Some(remote) = self.broker.replicas.remote() {
            if let Err(e) = remote.reader.close().await {
                tracing::warn!(error = %e, "closing the remote chunk cache failed");
            }
        }
        self.broker.close_logs();
        if let Err(e) = self.broker.controller.shutdown().await {
            tracing::warn!(error = %e, "controller shutdown failed");
        }
    }
}

/// The first line a started broker prints: what it is and where its data lives. The
/// lines after it name the bound addresses (metrics, controller, listeners); together they
/// are the start a user reads (issue 20: at most 15 lines at the default level).
fn banner(config: &strata_config::BrokerConfig, node_id: i32) -> String {
    let dirs: Vec<String> = config
        .log_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let remote = if config.remote.enabled {
        config.remote.url.as_str()
    } else {
        "off"
    };
    format!(
        "strata {}: node {node_id}, data {}, remote tier {remote}",
        env!("CARGO_PKG_VERSION"),
        dirs.join(",")
    )
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(configs: Configs) -> Result<(), StartupError> {
    // A read-only node (process.roles=reader) opens no metadata log and no partition log:
    // it is another process shape, not a broker with parts switched off.
    if configs.broker(&Default::default())?.read_only {
        return Ok(crate::readonly::run(configs).await?);
    }
    let running = start(configs).await?;
    let a = &running.broker.advertised;
    println!(
        "{}",
        banner(&running.broker.metadata.config(), running.broker.node_id())
    );
    if let Some(m) = running.metrics_addr {
        // Printed before the listening line, which tells readers startup is done.
        println!("strata: metrics on {m}");
    }
    if let Some(c) = running.console_addr {
        println!("strata: console on http://{c}/");
    }
    if let Some(c) = running.broker.controller.listen_addr() {
        println!("strata: controller on {c}");
    }
    for (name, addr) in &running.listeners {
        println!("strata: listener {name} on {addr}");
    }
    // Tests and scripts read this line to learn the bound port (of the first listener).
    println!(
        "strata: listening on {} (advertised {}:{})",
        running.addr, a.host, a.port
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(addr = %running.addr, node_id = running.broker.node_id(), "broker started");
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
