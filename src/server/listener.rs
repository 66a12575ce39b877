//! One client listener: its security ([`ListenerRuntime`]), its accept loop, the TLS
//! handshake under a deadline, and the hand-off to the connection loop with a plain TCP
//! stream or a TLS stream.
//!
//! Every listener shares the broker's [`ConnectionLimits`]; a connection over a limit is
//! closed at accept. On SSL and SASL listeners a connection must finish its TLS handshake
//! and SASL authentication within `connection.authentication.timeout.ms`, so clients that
//! connect and never authenticate cost a socket and a small task for a bounded time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use strata_config::{ListenerSecurity, SecurityConfig, SecurityProtocol};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::auth::oauth::TokenValidator;
use super::auth::tls::TlsListener;
use super::auth::AuthSetupError;
use super::connection::{self, ConnState};
use super::limits::ConnectionLimits;
use super::Services;

/// SASL settings of a listener, ready to serve.
pub struct SaslRuntime {
    pub mechanisms: Vec<String>,
    pub plain_users: BTreeMap<String, String>,
    pub oauth: Option<Arc<TokenValidator>>,
}

/// What a listener needs at run time, built once at startup.
pub struct ListenerRuntime {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<Arc<TlsListener>>,
    pub sasl: Option<Arc<SaslRuntime>>,
    pub max_connections: i32,
    pub max_reauth_ms: i64,
    open: Arc<AtomicUsize>,
}

impl ListenerRuntime {
    /// Loads the listener's key material, users and JWKS; any problem stops startup.
    pub async fn open(ls: &ListenerSecurity) -> Result<ListenerRuntime, AuthSetupError> {
        let name = ls.listener.name.clone();
        let tls = match &ls.ssl {
            Some(ssl) => Some(Arc::new(TlsListener::open(&name, ssl)?)),
            None => None,
        };
        let sasl = match &ls.sasl {
            Some(s) => {
                let oauth = match &s.oauth {
                    Some(o) => Some(Arc::new(TokenValidator::open(o).await?)),
                    None => None,
                };
                Some(Arc::new(SaslRuntime {
                    mechanisms: s.mechanisms.clone(),
                    plain_users: s
                        .plain_users
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                    oauth,
                }))
            }
            None => None,
        };
        Ok(ListenerRuntime {
            name,
            protocol: ls.protocol,
            tls,
            sasl,
            max_connections: ls.max_connections,
            max_reauth_ms: ls.max_reauth_ms,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// A bound listener, ready for [`serve`].
pub struct Bound {
    pub runtime: Arc<ListenerRuntime>,
    pub socket: TcpListener,
}

/// Accepts connections on every listener until `shutdown` turns true; also re-reads TLS
/// files and JWKS on their intervals.
pub async fn serve(
    listeners: Vec<Bound>,
    services: Services,
    security: Arc<SecurityConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = ConnectionLimits::new(security.max_connections, security.max_connections_per_ip);
    let mut tasks = Vec::new();
    for bound in listeners {
        spawn_reloaders(&bound.runtime, &security, shutdown.clone());
        tasks.push(tokio::spawn(accept_loop(
            bound,
            services.clone(),
            security.clone(),
            limits.clone(),
            shutdown.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn accept_loop(
    bound: Bound,
    services: Services,
    security: Arc<SecurityConfig>,
    limits: Arc<ConnectionLimits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let rt = bound.runtime;
    loop {
        tokio::select! {
            accepted = bound.socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let permit = match limits.acquire(peer.ip(), &rt.open, rt.max_connections) {
                        Ok(p) => p,
                        Err(limit) => {
                            tracing::warn!(%peer, listener = %rt.name, ?limit, "connection refused: limit reached");
                            continue;
                        }
                    };
                    let now = crate::now_ms().max(0) as u64;
                    let pause = services.connection_rates.accept_delay(now);
                    if pause > 0 {
                        // KIP-612: over max.connection.creation.rate the listener stops
                        // accepting for the throttle time (clients wait in the backlog).
                        crate::metrics::quota::connection_throttled("max.connection.creation.rate", &rt.name, pause);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    let image = services.broker.image();
                    let hold = services.connection_rates.admit_ip(&image.quotas, peer.ip(), now);
                    if hold > 0 {
                        // KIP-612: an IP over its connection_creation_rate is not served;
                        // its connection is closed after the throttle time, as Kafka does.
                        crate::metrics::quota::connection_throttled("connection_creation_rate", &peer.ip().to_string(), hold);
                        tracing::debug!(%peer, listener = %rt.name, hold_ms = hold, "connection throttled: connection_creation_rate");
                        tokio::spawn(async move {
                            let _permit = permit;
                            tokio::time::sleep(Duration::from_millis(hold)).await;
                            drop(stream);
                        });
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let (services, security, rt, shutdown) =
                        (services.clone(), security.clone(), rt.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(e) = handle(stream, peer, &rt, services, &security, shutdown).await {
                            tracing::debug!(%peer, listener = %rt.name, error = %e, "connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// TLS handshake if the listener has TLS, then the connection loop.
async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    rt: &ListenerRuntime,
    services: Services,
    security: &SecurityConfig,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let auth_timeout = Duration::from_millis(security.authentication_timeout_ms.max(1) as u64);
    let mut state = ConnState::new(peer, rt, security);
    let Some(tls) = &rt.tls else {
        let (rd, wr) = stream.into_split();
        return connection::serve(rd, wr, services, &mut state, shutdown).await;
    };
    // rustls reads the socket 4 KiB at a time; a buffer under it turns that into one
    // `recv` per 128 KiB, which is most of the produce throughput TLS would otherwise
    // cost (docs/benchmarks.md, "Security"). Writes pass through it unbuffered.
    let stream = tokio::io::BufReader::with_capacity(128 * 1024, stream);
    let tls_stream = match tokio::time::timeout(auth_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, listener = %rt.name, error = %e, "TLS handshake failed");
            return Ok(());
        }
        Err(_) => {
            tracing::info!(%peer, listener = %rt.name, "no TLS handshake within connection.authentication.timeout.ms; closing");
            return Ok(());
        }
    };
    let client_cert = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    if let Some(cert) = client_cert {
        match tls.principal_of(cert.as_ref()) {
            Ok(p) => state.set_tls_principal(p),
            Err(reason) => {
                tracing::info!(%peer, listener = %rt.name, %reason, "client certificate refused; closing");
                return Ok(());
            }
        }
    }
    let (rd, wr) = tokio::io::split(tls_stream);
    connection::serve(rd, wr, services, &mut state, shutdown).await
}

/// Background refreshes: TLS files every `ssl.reload.interval.ms`, the JWKS every
/// `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
fn spawn_reloaders(
    rt: &Arc<ListenerRuntime>,
    security: &SecurityConfig,
    shutdown: watch::Receiver<bool>,
) {
    if let (Some(tls), interval) = (&rt.tls, security.ssl_reload_interval_ms) {
        if interval > 0 {
            let tls = tls.clone();
            every(
                Duration::from_millis(interval as u64),
                shutdown.clone(),
                move || {
                    let tls = tls.clone();
                    async move {
                        match tls.reload_if_changed() {
                            Ok(true) => {
                                tracing::info!(listener = %tls.name(), "TLS key, certificate or truststore reloaded")
                            }
                            Ok(false) => {}
                            Err(e) => {
                                tracing::error!(error = %e, "TLS files changed but cannot be loaded; still serving the previous ones")
                            }
                        }
                    }
                },
            );
        }
    }
    if let Some(oauth) = rt.sasl.as_ref().and_then(|s| s.oauth.clone()) {
        every(oauth.refresh_interval(), shutdown, move || {
            let oauth = oauth.clone();
            async move {
                if let Err(e) = oauth.refresh().await {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys");
                }
            }
        });
    }
}

fn every<F, Fut>(interval: Duration, mut shutdown: watch::Receiver<bool>, f: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => f().await,
                _ = shutdown.changed() => return,
            }
        }
    });
}
