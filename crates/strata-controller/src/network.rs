//! The Raft transport: how a controller node reaches its peers.
//!
//! - [`TcpNetwork`] is the real transport. Each peer client keeps one TCP connection to the
//!   address in the peer's `BasicNode` and sends one [`crate::rpc`] frame per RPC, waiting for
//!   the reply under the RPC's hard TTL. Any failure drops the connection; the next RPC
//!   reconnects, so a restarted peer is picked up without help. A failed connect is reported
//!   as `Unreachable` (openraft backs off), a failure on an open connection as `Network`.
//! - [`NoNetwork`] is for the single-voter controller: nothing is ever sent, so every RPC fails
//!   with [`openraft::error::Unreachable`].
//! - [`PeerHealth`] remembers which peers answered recently; it feeds error messages ("2 of 3
//!   voters reachable") and the broker's liveness checks, and never drives Raft decisions.
//!
//! The receiving side is the private `server` module. This module never touches the log or state machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::tls::{Conn, TransportTls};

use crate::rpc::read_frame;
use crate::rpc::write_frame;
use crate::rpc::FrameError;
use crate::rpc::Request;
use crate::rpc::Response;
use crate::TypeConfig;

/// How long a peer counts as reachable after its last successful exchange.
const REACHABLE_WINDOW: Duration = Duration::from_secs(3);
/// Upper bound on establishing a connection, below the RPC's own TTL.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

type NodeId = u64;
type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Why a peer could not be reached: a single voter has no transport.
#[derive(Debug, thiserror::Error)]
#[error("no Raft transport to controller {target}: this controller was opened as a single voter (Controller::open)")]
pub struct NoTransport {
    target: NodeId,
}

/// A network factory whose clients can reach no one.
#[derive(Clone, Debug, Default)]
pub struct NoNetwork;

/// A client for one peer that fails every RPC with `Unreachable`.
#[derive(Debug)]
pub struct NoPeer {
    target: NodeId,
}

impl NoPeer {
    // The error type is openraft's, fixed by the trait this helps implement.
    #[allow(clippy::result_large_err)]
    fn unreachable<T, E: std::error::Error>(&self) -> RpcResult<T, E> {
        Err(RPCError::Unreachable(Unreachable::new(&NoTransport {
            target: self.target,
        })))
    }
}

impl RaftNetworkFactory<TypeConfig> for NoNetwork {
    type Network = NoPeer;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> NoPeer {
        NoPeer { target }
    }
}

impl RaftNetwork<TypeConfig> for NoPeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.unreachable()
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.unreachable()
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.unreachable()
    }
}

/// Which peers answered (or called) recently. Shared by the clients, the server and the
/// controller's error reporting.
#[derive(Clone, Debug, Default)]
pub struct PeerHealth {
    // peer id -> (when we last heard from it, whether the last exchange succeeded)
    peers: Arc<Mutex<BTreeMap<NodeId, (Instant, bool)>>>,
    // peer id -> the last successful exchange
    last_ok: Arc<Mutex<BTreeMap<NodeId, Instant>>>,
}

impl PeerHealth {
    /// Records a successful exchange with `peer` (either direction).
    pub fn ok(&self, peer: NodeId) {
        let now = Instant::now();
        self.peers.lock().insert(peer, (now, true));
        self.last_ok.lock().insert(peer, now);
    }

    /// When `peer` last answered (or called) successfully.
    pub fn last_ok(&self, peer: NodeId) -> Option<Instant> {
        self.last_ok.lock().get(&peer).copied()
    }

    /// Records a failed call to `peer`.
    pub fn failed(&self, peer: NodeId) {
        self.peers.lock().insert(peer, (Instant::now(), false));
    }

    /// How many of `voters` count as reachable from `self_id` (which always does).
    pub fn reachable(&self, self_id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> usize {
        let peers = self.peers.lock();
        voters
            .into_iter()
            .filter(|v| {
                *v == self_id
                    || peers
                        .get(v)
                        .is_some_and(|(at, ok)| *ok && at.elapsed() < REACHABLE_WINDOW)
            })
            .count()
    }
}

/// Why one RPC to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to controller {target} at {addr}: {source}")]
    Connect {
        target: NodeId,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "TLS with controller {target} at {addr} failed: {source} (do both nodes have \
         certificates from the cluster CA in the controller listener's truststore?)"
    )]
    Tls {
        target: NodeId,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("controller {target} at {addr} did not accept a connection within {waited:?}")]
    ConnectTimeout {
        target: NodeId,
        addr: String,
        waited: Duration,
    },
    #[error("RPC to controller {target} at {addr} failed: {source}")]
    Frame {
        target: NodeId,
        addr: String,
        #[source]
        source: FrameError,
    },
    #[error("controller {target} at {addr} closed the connection without answering")]
    Closed { target: NodeId, addr: String },
    #[error("controller {target} at {addr} did not answer within {waited:?}")]
    Timeout {
        target: NodeId,
        addr: String,
        waited: Duration,
    },
    #[error("controller {target} at {addr} answered a {expected} RPC with a different message")]
    Mismatch {
        target: NodeId,
        addr: String,
        expected: &'static str,
    },
}

/// Sends `req` over a fresh connection to `addr` and returns the reply. Used for forwarding
/// proposals, which are rare enough not to need a pooled connection.
pub async fn call_once(
    target: NodeId,
    addr: &str,
    req: &Request,
    timeout: Duration,
    tls: Option<&TransportTls>,
) -> Result<Response, PeerError> {
    let mut conn = None;
    exchange(&mut conn, target, addr, req, timeout, tls).await
}

/// One request/response on `conn`, connecting first if needed. The connection is put back only
/// after a complete exchange, so any error or timeout leaves the next call to reconnect.
async fn exchange(
    conn: &mut Option<Conn>,
    target: NodeId,
    addr: &str,
    req: &Request,
    timeout: Duration,
    tls: Option<&TransportTls>,
) -> Result<Response, PeerError> {
    let pooled = conn.take();
    let attempt = async {
        let Conn(mut stream) = match pooled {
            Some(stream) => stream,
            None => connect(target, addr, timeout.min(CONNECT_TIMEOUT), tls).await?,
        };
        let frame = |source| PeerError::Frame {
            target,
            addr: addr.to_string(),
            source,
        };
        write_frame(&mut stream, req).await.map_err(frame)?;
        let reply = read_frame(&mut stream).await.map_err(frame)?;
        let reply = reply.ok_or_else(|| PeerError::Closed {
            target,
            addr: addr.to_string(),
        })?;
        Ok((Conn(stream), reply))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok((stream, reply))) => {
            *conn = Some(stream);
            Ok(reply)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PeerError::Timeout {
            target,
            addr: addr.to_string(),
            waited: timeout,
        }),
    }
}

async fn connect(
    target: NodeId,
    addr: &str,
    timeout: Duration,
    tls: Option<&TransportTls>,
) -> Result<Conn, PeerError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Raft RPCs are small and latency-bound.
            let _ = stream.set_nodelay(true);
            crate::tls::connect(tls, addr, stream)
                .await
                .map_err(|source| PeerError::Tls {
                    target,
                    addr: addr.to_string(),
                    source,
                })
        }
        Ok(Err(source)) => Err(PeerError::Connect {
            target,
            addr: addr.to_string(),
            source,
        }),
        Err(_) => Err(PeerError::ConnectTimeout {
            target,
            addr: addr.to_string(),
            waited: timeout,
        }),
    }
}

/// The TCP transport factory: one [`TcpPeer`] per peer, addressed by `BasicNode::addr`.
#[derive(Clone, Debug, Default)]
pub struct TcpNetwork {
    health: PeerHealth,
    tls: Option<TransportTls>,
}

impl TcpNetwork {
    /// A factory whose clients record their outcomes in `health`, speaking mutual TLS when
    /// `tls` is given.
    pub fn new(health: PeerHealth, tls: Option<TransportTls>) -> Self {
        TcpNetwork { health, tls }
    }
}

/// A client for one peer over a reused TCP connection.
#[derive(Debug)]
pub struct TcpPeer {
    target: NodeId,
    addr: String,
    conn: Option<Conn>,
    health: PeerHealth,
    tls: Option<TransportTls>,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = TcpPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> TcpPeer {
        TcpPeer {
            target,
            addr: node.addr.clone(),
            conn: None,
            health: self.health.clone(),
            tls: self.tls.clone(),
        }
    }
}

impl TcpPeer {
    async fn call(&mut self, req: Request, ttl: Duration) -> Result<Response, PeerError> {
        let tls = self.tls.as_ref();
        let result = exchange(&mut self.conn, self.target, &self.addr, &req, ttl, tls).await;
        match &result {
            Ok(_) => self.health.ok(self.target),
            Err(e) => {
                tracing::debug!("{e}");
                self.health.failed(self.target);
            }
        }
        result
    }

    fn mismatch(&self, expected: &'static str) -> PeerError {
        PeerError::Mismatch {
            target: self.target,
            addr: self.addr.clone(),
            expected,
        }
    }
}

/// Maps a transport failure to openraft's categories: a peer we could not connect to is
/// `Unreachable` (openraft backs off), anything after that is a `Network` error.
fn rpc_error<E: std::error::Error>(
    e: PeerError,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    match e {
        PeerError::Connect { .. } | PeerError::ConnectTimeout { .. } => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

// The error type is openraft's, fixed by the trait this helps implement.
#[allow(clippy::result_large_err)]
fn remote<T, E: std::error::Error>(
    target: NodeId,
    reply: Result<T, RaftError<NodeId, E>>,
) -> RpcResult<T, E> {
    reply.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

impl RaftNetwork<TypeConfig> for TcpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self
            .call(Request::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::AppendEntries(reply)) => remote(self.target, reply),
            Ok(_) => Err(rpc_error(self.mismatch("AppendEntries"))),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self
            .call(Request::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::InstallSnapshot(reply)) => remote(self.target, reply),
            Ok(_) => Err(rpc_error(self.mismatch("InstallSnapshot"))),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(Request::Vote(rpc), option.hard_ttl()).await {
            Ok(Response::Vote(reply)) => remote(self.target, reply),
            Ok(_) => Err(rpc_error(self.mismatch("Vote"))),
            Err(e) => Err(rpc_error(e)),
        }
    }
}
