//! The receiving side of the controller transport: a TCP listener whose connections each read
//! [`Request`] frames and answer them in order.
//!
//! Raft RPCs go straight to the local [`Raft`]; a forwarded proposal goes through
//! [`propose_local`], which never forwards again (a follower that receives one answers
//! `NotLeader`, and the caller retries), so a proposal cannot loop between nodes. A malformed
//! frame closes only its own connection. Stopping the server closes the listener and every
//! connection before [`RpcServer::stop`] returns, so the port can be bound again at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use openraft::raft::VoteResponse;
use openraft::Raft;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::task::JoinSet;

use crate::error::ControllerError;
use crate::image::MetadataCommand;
use crate::network::PeerHealth;
use crate::rejoin::may_vote;
use crate::rejoin::CatchUp;
use crate::rpc::read_frame;
use crate::rpc::write_frame;
use crate::rpc::ProposeOutcome;
use crate::rpc::Request;
use crate::rpc::Response;
use crate::tls::{Conn, TransportTls};
use crate::TypeConfig;

/// The longest a forwarded proposal may wait on the leader, whatever the sender asked for.
const MAX_FORWARDED_TIMEOUT: Duration = Duration::from_secs(120);

/// A running RPC listener.
pub(crate) struct RpcServer {
    accept: JoinHandle<()>,
    local_addr: SocketAddr,
}

impl RpcServer {
    /// Binds `listen` and starts serving `raft`.
    pub(crate) async fn start(
        listen: &str,
        raft: Raft<TypeConfig>,
        health: PeerHealth,
        tls: Option<TransportTls>,
        catch_up: Arc<CatchUp>,
    ) -> Result<RpcServer, ControllerError> {
        let listener =
            TcpListener::bind(listen)
                .await
                .map_err(|source| ControllerError::Listen {
                    addr: listen.to_string(),
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ControllerError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        let accept = tokio::spawn(accept_loop(listener, raft, health, tls, catch_up));
        Ok(RpcServer { accept, local_addr })
    }

    /// The address actually bound (useful with port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes the listener and every open connection.
    pub(crate) async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    raft: Raft<TypeConfig>,
    health: PeerHealth,
    tls: Option<TransportTls>,
    catch_up: Arc<CatchUp>,
) {
    // Owned here so that aborting this task aborts every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (raft, health, tls) = (raft.clone(), health.clone(), tls.clone());
                    let catch_up = catch_up.clone();
                    connections.spawn(async move {
                        match crate::tls::accept(tls.as_ref(), stream).await {
                            Ok(conn) => serve_connection(conn, peer, raft, health, catch_up).await,
                            // A node without a certificate from the cluster CA: refused here,
                            // before any Raft message is read.
                            Err(e) => tracing::warn!(%peer, "controller RPC connection refused: TLS handshake failed: {e}"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("controller RPC accept failed: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_connection(
    Conn(mut stream): Conn,
    peer: SocketAddr,
    raft: Raft<TypeConfig>,
    health: PeerHealth,
    catch_up: Arc<CatchUp>,
) {
    loop {
        let request: Request = match read_frame(&mut stream).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%peer, "closing controller RPC connection: {e}");
                return;
            }
        };
        let response = dispatch(&raft, &health, &catch_up, request).await;
        if let Err(e) = write_frame(&mut stream, &response).await {
            tracing::debug!(%peer, "closing controller RPC connection: {e}");
            return;
        }
    }
}

async fn dispatch(
    raft: &Raft<TypeConfig>,
    health: &PeerHealth,
    catch_up: &CatchUp,
    request: Request,
) -> Response {
    match request {
        Request::AppendEntries(rpc) => {
            if let Some(from) = rpc.vote.leader_id().voted_for() {
                health.ok(from);
            }
            Response::AppendEntries(raft.append_entries(rpc).await)
        }
        Request::Vote(rpc) => {
            if let Some(from) = rpc.vote.leader_id().voted_for() {
                health.ok(from);
            }
            if !may_vote(catch_up.is_active(), &rpc) {
                // Catching up after an empty start: this node may have acknowledged entries it
                // no longer has, so its vote could elect a leader without them.
                let m = raft.metrics().borrow().clone();
                tracing::info!(candidate = %rpc.vote, "vote refused: this voter is still catching up with the metadata log");
                return Response::Vote(Ok(VoteResponse::new(m.vote, None, false)));
            }
            Response::Vote(raft.vote(rpc).await)
        }
        Request::Status => Response::Status {
            initialized: raft.is_initialized().await.unwrap_or(false),
        },
        Request::AddLearner { node_id, addr } => {
            Response::AddLearner(add_learner_local(raft, node_id, addr).await)
        }
        Request::ChangeVoters { change, timeout_ms } => {
            let timeout = Duration::from_millis(timeout_ms).min(MAX_FORWARDED_TIMEOUT);
            Response::ChangeVoters(
                crate::voters_driver::change_voters_local(raft, health, change, timeout).await,
            )
        }
        Request::InstallSnapshot(rpc) => {
            if let Some(from) = rpc.vote.leader_id().voted_for() {
                health.ok(from);
            }
            Response::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
        Request::Propose {
            command,
            timeout_ms,
        } => {
            // The timeout comes off the wire: bound it so a bad peer cannot pin a task forever.
            let timeout = Duration::from_millis(timeout_ms).min(MAX_FORWARDED_TIMEOUT);
            Response::Propose(propose_local(raft, command, timeout).await)
        }
    }
}

/// `None` when this node leads; otherwise the leader this node knows of, if any, and its
/// address: what a request that only the leader can serve answers with.
pub(crate) fn leader_elsewhere(
    m: &openraft::RaftMetrics<u64, openraft::BasicNode>,
) -> Option<(Option<u64>, Option<String>)> {
    if m.current_leader == Some(m.id) {
        return None;
    }
    let addr = m.current_leader.and_then(|l| {
        m.membership_config
            .membership()
            .get_node(&l)
            .map(|n| n.addr.clone())
    });
    Some((m.current_leader, addr))
}

/// Adds `node_id` at `addr` as a learner, if this node leads; a node that already is a member
/// (a restarted learner, or a voter) is left as it is.
async fn add_learner_local(raft: &Raft<TypeConfig>, node_id: u64, addr: String) -> ProposeOutcome {
    let m = raft.metrics().borrow().clone();
    if let Some((leader_id, leader_addr)) = leader_elsewhere(&m) {
        return ProposeOutcome::NotLeader {
            leader_id,
            leader_addr,
        };
    }
    let known = m.membership_config.membership().get_node(&node_id).cloned();
    if known.is_some_and(|n| n.addr == addr) {
        return ProposeOutcome::Applied {
            index: m.last_applied.map_or(0, |l| l.index),
            image: Default::default(),
        };
    }
    tracing::info!(node_id, %addr, "adding a broker-only node as a learner of the metadata log");
    match raft
        .add_learner(node_id, openraft::BasicNode::new(addr), false)
        .await
    {
        Ok(resp) => ProposeOutcome::Applied {
            index: resp.log_id.index,
            image: Default::default(),
        },
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            ProposeOutcome::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            }
        }
        Err(e) => ProposeOutcome::Failed {
            message: e.to_string(),
        },
    }
}

/// Writes `command` through the local Raft, waiting at most `timeout` for it to commit and
/// apply. Never forwards: a non-leader answers [`ProposeOutcome::NotLeader`].
pub(crate) async fn propose_local(
    raft: &Raft<TypeConfig>,
    command: MetadataCommand,
    timeout: Duration,
) -> ProposeOutcome {
    match tokio::time::timeout(timeout, raft.client_write(command)).await {
        Err(_) => ProposeOutcome::TimedOut,
        Ok(Ok(resp)) => match resp.data.result {
            Ok(()) => ProposeOutcome::Applied {
                index: resp.log_id.index,
                image: (*resp.data.image).clone(),
            },
            Err(error) => ProposeOutcome::Rejected {
                index: resp.log_id.index,
                error,
            },
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            ProposeOutcome::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            }
        }
        Ok(Err(e)) => ProposeOutcome::Failed {
            message: e.to_string(),
        },
    }
}
