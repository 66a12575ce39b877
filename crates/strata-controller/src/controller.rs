//! [`Controller`]: the broker's handle on the metadata Raft group.
//!
//! Owns the `openraft::Raft` instance built from [`LogStore`], [`StateMachine`] and a transport:
//! [`NoNetwork`] for a single voter ([`Controller::open`]), [`TcpNetwork`] plus an RPC server
//! for a quorum ([`Controller::open_cluster`]). It never interprets commands itself: validation
//! happens in [`crate::image::apply`] when the entry is applied, and the verdict comes back as
//! the entry's response.
//!
//! In a quorum, [`Controller::propose`] works on every node: a follower forwards the command to
//! the leader openraft names, retries while no leader is known, and gives up at
//! [`ControllerConfig::propose_timeout`] with [`ControllerError::NoQuorum`] when too few voters
//! answer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use openraft::error::ClientWriteError;
use openraft::error::InitializeError;
use openraft::error::RaftError;
use openraft::BasicNode;
use openraft::Raft;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::ControllerError;
use crate::image::new_cluster_id;
use crate::image::ApplyError;
use crate::image::MetadataCommand;
use crate::image::MetadataImage;
use crate::log_store::LogStore;
use crate::network::call_once;
use crate::network::NoNetwork;
use crate::network::PeerHealth;
use crate::network::TcpNetwork;
use crate::rejoin::caught_up;
use crate::rejoin::CatchUp;
use crate::rpc::ProposeOutcome;
use crate::rpc::Request;
use crate::rpc::Response;
use crate::server::propose_local;
use crate::server::RpcServer;
use crate::state_machine::StateMachine;
use crate::tls::TransportTls;
use crate::TypeConfig;

/// Tunables of the metadata Raft group.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot (for followers that lag, once there are some).
    pub logs_to_keep_after_snapshot: u64,
    /// How long [`Controller::open`] waits to become leader with everything applied, and
    /// [`Controller::open_cluster`] to see a leader and the cluster id.
    pub ready_timeout: Duration,
    /// How long [`Controller::propose`] on a quorum keeps trying (electing, forwarding,
    /// committing) before it fails with [`ControllerError::NoQuorum`].
    pub propose_timeout: Duration,
    /// Leader heartbeat interval of a quorum; the election timeout is 5 to 10 times this.
    pub heartbeat_interval: Duration,
    /// Mutual TLS for the Raft transport; `None` is plain TCP.
    pub tls: Option<TransportTls>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            snapshot_every: 1000,
            logs_to_keep_after_snapshot: 0,
            ready_timeout: Duration::from_secs(30),
            propose_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(100),
            tls: None,
        }
    }
}

/// A running controller node. Cheap to clone; all clones share one Raft instance.
#[derive(Clone)]
pub struct Controller {
    pub(crate) node_id: u64,
    raft: Raft<TypeConfig>,
    images: watch::Receiver<Arc<MetadataImage>>,
    /// Quorum state; `None` for a single voter.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

/// What a quorum member needs beyond the Raft handle.
pub(crate) struct Cluster {
    pub(crate) health: PeerHealth,
    server: Mutex<Option<RpcServer>>,
    listen_addr: std::net::SocketAddr,
    propose_timeout: Duration,
    pub(crate) tls: Option<TransportTls>,
    /// Set while this voter rebuilds its log after an empty start (see [`crate::rejoin`]).
    catch_up: Arc<CatchUp>,
}

/// How long to wait before asking again while no leader is known.
pub(crate) const NO_LEADER_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

fn raft_config(
    config: &ControllerConfig,
    quorum: bool,
) -> Result<Arc<openraft::Config>, ControllerError> {
    let mut raft_config = openraft::Config {
        cluster_name: "strata-metadata".to_string(),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.logs_to_keep_after_snapshot,
        ..Default::default()
    };
    if quorum {
        let heartbeat = config.heartbeat_interval.as_millis().max(1) as u64;
        raft_config.heartbeat_interval = heartbeat;
        raft_config.election_timeout_min = heartbeat * 5;
        raft_config.election_timeout_max = heartbeat * 10;
    }
    raft_config
        .validate()
        .map(Arc::new)
        .map_err(|e| ControllerError::raft("config validation", e))
}

impl Controller {
    /// Opens the metadata directory `dir` with the default [`ControllerConfig`].
    pub async fn open(dir: &Path, node_id: u64) -> Result<Controller, ControllerError> {
        Controller::open_with(dir, node_id, ControllerConfig::default()).await
    }

    /// Opens the metadata directory `dir` as voter `node_id`.
    ///
    /// A fresh directory becomes a single-voter cluster with a new cluster id (proposed as the
    /// first command, so it is in the log and in every later snapshot). Returns once this node
    /// is leader and has applied every committed entry.
    pub async fn open_with(
        dir: &Path,
        node_id: u64,
        config: ControllerConfig,
    ) -> Result<Controller, ControllerError> {
        let log_store = LogStore::open(dir)?;
        let state_machine = StateMachine::open(dir)?;
        let images = state_machine.subscribe();
        let raft = Raft::new(
            node_id,
            raft_config(&config, false)?,
            NoNetwork,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ControllerError::raft("start", e))?;
        let controller = Controller {
            node_id,
            raft,
            images,
            cluster: None,
        };
        controller.initialize_if_fresh().await?;
        controller.wait_ready(config.ready_timeout).await?;
        if controller.image().cluster_id.is_empty() {
            let cluster_id = new_cluster_id();
            tracing::info!(%cluster_id, "fresh metadata directory; created a new cluster");
            controller
                .propose(MetadataCommand::InitializeCluster { cluster_id })
                .await?;
        }
        Ok(controller)
    }

    /// Opens `dir` as voter `node_id` of the quorum `voters` (node id -> `host:port`, usually
    /// from [`crate::parse_quorum_voters`]), serving controller RPCs on `listen`, with the
    /// default [`ControllerConfig`].
    pub async fn open_cluster(
        dir: &Path,
        node_id: u64,
        voters: BTreeMap<u64, String>,
        listen: &str,
    ) -> Result<Controller, ControllerError> {
        Controller::open_cluster_with(dir, node_id, voters, listen, ControllerConfig::default())
            .await
    }

    /// Opens `dir` as voter `node_id` of the quorum `voters`; see [`Controller::open_cluster`].
    ///
    /// If the log is empty and `node_id` is the lowest voter id, this node initializes the
    /// membership with all `voters` and, once a leader is elected, proposes a new cluster id.
    /// Every other node waits to learn both from the log. Reopening a directory never
    /// initializes again. Returns once a leader is known and this node has applied the cluster
    /// id, or fails with [`ControllerError::ClusterNotReady`] after `ready_timeout`; open the
    /// voters concurrently, since a majority must be up for either to happen.
    pub async fn open_cluster_with(
        dir: &Path,
        node_id: u64,
        voters: BTreeMap<u64, String>,
        listen: &str,
        config: ControllerConfig,
    ) -> Result<Controller, ControllerError> {
        if !voters.contains_key(&node_id) {
            return Err(ControllerError::NotAVoter {
                node_id,
                voters: voters.keys().copied().collect(),
            });
        }
        let controller = Controller::start_member(dir, node_id, listen, &config).await?;
        let ready = controller.bootstrap(&voters, config.ready_timeout).await;
        if let Err(e) = ready {
            let _ = controller.shutdown().await;
            return Err(e);
        }
        controller.spawn_catch_up_watch();
        Ok(controller)
    }

    /// While this voter is catching up, waits until it holds every entry committed before it
    /// came back, then lets it vote and campaign again.
    pub(crate) fn spawn_catch_up_watch(&self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        if !cluster.catch_up.is_active() {
            return;
        }
        tracing::warn!(
            node_id = self.node_id,
            "this voter started with an empty metadata log: it rebuilds the log from the leader \
             and neither votes nor campaigns until it has caught up"
        );
        let raft = self.raft.clone();
        tokio::spawn(async move {
            let mut metrics = raft.metrics();
            loop {
                let done = caught_up(&metrics.borrow());
                if done {
                    if let Err(e) = cluster.catch_up.finish() {
                        tracing::error!("could not record that the metadata log caught up: {e}; still not voting");
                        return;
                    }
                    raft.runtime_config().elect(true);
                    let applied = metrics.borrow().last_applied;
                    tracing::info!(
                        ?applied,
                        "metadata log caught up with the leader; this voter votes again"
                    );
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Whether this voter is still rebuilding its metadata log after an empty start.
    pub fn is_catching_up(&self) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.catch_up.is_active())
    }

    /// Whether any other voter already holds an initialized metadata log (asked concurrently,
    /// each for at most `timeout`; an unreachable voter counts as "no").
    async fn peers_initialized(&self, voters: &BTreeMap<u64, String>, timeout: Duration) -> bool {
        let tls = self.cluster.as_ref().and_then(|c| c.tls.clone());
        let mut asks = tokio::task::JoinSet::new();
        for (id, addr) in voters.iter().filter(|(id, _)| **id != self.node_id) {
            let (id, addr, tls) = (*id, addr.clone(), tls.clone());
            asks.spawn(async move {
                matches!(
                    call_once(id, &addr, &Request::Status, timeout, tls.as_ref()).await,
                    Ok(Response::Status { initialized: true })
                )
            });
        }
        while let Some(answer) = asks.join_next().await {
            if answer.unwrap_or(false) {
                return true;
            }
        }
        false
    }

    /// Opens `dir` with a transport and starts the RPC server on `listen`: what voters and
    /// learners share.
    pub(crate) async fn start_member(
        dir: &Path,
        node_id: u64,
        listen: &str,
        config: &ControllerConfig,
    ) -> Result<Controller, ControllerError> {
        let log_store = LogStore::open(dir)?;
        let state_machine = StateMachine::open(dir)?;
        let images = state_machine.subscribe();
        let health = PeerHealth::default();
        let network = TcpNetwork::new(health.clone(), config.tls.clone());
        let raft = Raft::new(
            node_id,
            raft_config(config, true)?,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ControllerError::raft("start", e))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::raft("is_initialized", e))?;
        let catch_up = match CatchUp::open(dir, !initialized) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                let _ = raft.shutdown().await;
                return Err(e.into());
            }
        };
        if catch_up.is_active() {
            // Campaigning with a partial log would only disturb the leader it must learn from.
            raft.runtime_config().elect(false);
        }
        let server = match RpcServer::start(
            listen,
            raft.clone(),
            health.clone(),
            config.tls.clone(),
            catch_up.clone(),
        )
        .await
        {
            Ok(server) => server,
            Err(e) => {
                let _ = raft.shutdown().await;
                return Err(e);
            }
        };
        let controller = Controller {
            node_id,
            raft,
            images,
            cluster: Some(Arc::new(Cluster {
                health,
                listen_addr: server.local_addr(),
                server: Mutex::new(Some(server)),
                propose_timeout: config.propose_timeout,
                tls: config.tls.clone(),
                catch_up,
            })),
        };
        Ok(controller)
    }

    async fn bootstrap(
        &self,
        voters: &BTreeMap<u64, String>,
        timeout: Duration,
    ) -> Result<(), ControllerError> {
        let deadline = Instant::now() + timeout;
        let lowest = voters.keys().next() == Some(&self.node_id);
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::raft("is_initialized", e))?;
        // An empty lowest voter of a running cluster is a replaced node: it must not start a
        // second history, so it asks first.
        let rejoining =
            lowest && !initialized && self.peers_initialized(voters, Duration::from_secs(1)).await;
        if rejoining {
            tracing::warn!(
                "empty metadata log but the other voters hold the cluster's log; rejoining instead of initializing"
            );
        }
        if lowest && !initialized && !rejoining {
            let members: BTreeMap<u64, BasicNode> = voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            tracing::info!(
                ?voters,
                "empty metadata log; initializing the controller quorum"
            );
            match self.raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(ControllerError::raft("initialize", e)),
            }
            // The origin of the log has nothing to catch up with.
            if let Some(c) = &self.cluster {
                c.catch_up.finish()?;
                self.raft.runtime_config().elect(true);
            }
        }
        let not_ready = || ControllerError::ClusterNotReady {
            node_id: self.node_id,
            voters: voters.keys().copied().collect(),
            waited: timeout,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .metrics(|m| m.current_leader.is_some(), "a known leader")
            .await
            .map_err(|_| not_ready())?;
        if lowest && self.image().cluster_id.is_empty() {
            let cluster_id = new_cluster_id();
            tracing::info!(%cluster_id, "new controller quorum; proposing a cluster id");
            match self
                .propose(MetadataCommand::InitializeCluster { cluster_id })
                .await
            {
                // Another attempt (an earlier run of this node) already set it.
                Ok(_) | Err(ControllerError::Rejected(ApplyError::ClusterIdAlreadySet { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        let mut images = self.subscribe();
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, images.wait_for(|i| !i.cluster_id.is_empty()))
            .await
            .map_err(|_| not_ready())?
            .map_err(|_| not_ready())?;
        Ok(())
    }

    async fn initialize_if_fresh(&self) -> Result<(), ControllerError> {
        let members = BTreeMap::from([(self.node_id, BasicNode::default())]);
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                let voters: Vec<u64> = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .voter_ids()
                    .collect();
                if voters.contains(&self.node_id) {
                    Ok(())
                } else {
                    Err(ControllerError::NotAVoter {
                        node_id: self.node_id,
                        voters,
                    })
                }
            }
            Err(e) => Err(ControllerError::raft("initialize", e)),
        }
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), ControllerError> {
        let id = self.node_id;
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| {
                    m.state == ServerState::Leader
                        && m.current_leader == Some(id)
                        && m.last_applied.map(|l| l.index) >= m.last_log_index
                },
                "leader with all entries applied",
            )
            .await
            .map(|_| ())
            .map_err(|_| ControllerError::NotReady {
                node_id: id,
                waited: timeout,
            })
    }

    /// Commits `cmd` and returns the image right after it was applied. A command rejected by
    /// validation is still committed (as a no-op) and its error returned.
    ///
    /// On a quorum member this works on any node (see the module docs); when it returns `Ok`,
    /// this node's own [`Controller::image`] already includes the entry unless applying it
    /// locally took longer than the remaining propose timeout.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<MetadataImage, ControllerError> {
        let Some(cluster) = &self.cluster else {
            return self.propose_single(cmd).await;
        };
        let started = Instant::now();
        let deadline = started + cluster.propose_timeout;
        let mut backoff = NO_LEADER_BACKOFF;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.unavailable(cluster, started.elapsed()));
            }
            let (outcome, forwarded) = match propose_local(&self.raft, cmd.clone(), remaining).await
            {
                ProposeOutcome::NotLeader {
                    leader_id: Some(leader),
                    leader_addr: Some(addr),
                } if leader != self.node_id => {
                    (self.forward(leader, &addr, &cmd, remaining).await, true)
                }
                outcome => (outcome, false),
            };
            match outcome {
                ProposeOutcome::Applied { index, image } => {
                    self.wait_applied(index, deadline).await;
                    return Ok(image);
                }
                ProposeOutcome::Rejected { index, error } => {
                    self.wait_applied(index, deadline).await;
                    return Err(error.into());
                }
                ProposeOutcome::TimedOut => {
                    return Err(self.unavailable(cluster, started.elapsed()));
                }
                ProposeOutcome::Failed { message } if !forwarded => {
                    return Err(ControllerError::Raft {
                        op: "client_write",
                        message,
                    });
                }
                ProposeOutcome::Failed { .. } | ProposeOutcome::NotLeader { .. } => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(backoff.min(remaining)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn propose_single(&self, cmd: MetadataCommand) -> Result<MetadataImage, ControllerError> {
        match self.raft.client_write(cmd).await {
            Ok(resp) => {
                resp.data.result?;
                Ok((*resp.data.image).clone())
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(ControllerError::raft("client_write", e)),
        }
    }

    /// Sends `cmd` to `leader` and returns its outcome. A transport failure counts as "no leader
    /// yet", so the caller retries.
    async fn forward(
        &self,
        leader: u64,
        addr: &str,
        cmd: &MetadataCommand,
        remaining: Duration,
    ) -> ProposeOutcome {
        // Leave the leader time to answer TimedOut before our own read gives up.
        let leader_timeout = remaining.mul_f64(0.9);
        let request = Request::Propose {
            command: cmd.clone(),
            timeout_ms: leader_timeout.as_millis() as u64,
        };
        let tls = self.cluster.as_ref().and_then(|c| c.tls.as_ref());
        match call_once(leader, addr, &request, remaining, tls).await {
            Ok(Response::Propose(outcome)) => outcome,
            Ok(_) => ProposeOutcome::Failed {
                message: format!("controller {leader} answered a proposal with another message"),
            },
            Err(e) => {
                tracing::debug!("forwarding a proposal failed: {e}; retrying");
                ProposeOutcome::NotLeader {
                    leader_id: None,
                    leader_addr: None,
                }
            }
        }
    }

    /// Waits (best effort, until `deadline`) for this node to apply log index `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "proposal applied locally")
            .await;
    }

    /// The error for a proposal that ran out of time: `NoQuorum` when too few voters answer.
    fn unavailable(&self, cluster: &Cluster, waited: Duration) -> ControllerError {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: Vec<u64> = metrics.membership_config.voter_ids().collect();
        let reachable = cluster
            .health
            .reachable(self.node_id, voters.iter().copied());
        let needed = voters.len() / 2 + 1;
        if reachable < needed {
            ControllerError::NoQuorum {
                reachable,
                voters: voters.len(),
                needed,
                waited,
            }
        } else {
            ControllerError::ProposeTimedOut {
                waited,
                reachable,
                voters: voters.len(),
                leader: metrics.current_leader,
            }
        }
    }

    /// Reserves `count` producer ids through the metadata log and returns them. The block is
    /// durable once this returns: no later call, on any node or after any restart, gets an id
    /// from it again.
    pub async fn allocate_producer_ids(
        &self,
        count: i64,
    ) -> Result<std::ops::Range<i64>, ControllerError> {
        let image = self
            .propose(MetadataCommand::AllocateProducerIds { count })
            .await?;
        let end = image.next_producer_id;
        Ok(end - count..end)
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// A receiver that is notified after each applied batch of entries.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// Whether this node is the Raft leader (the active controller).
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// When this node last exchanged a Raft message with voter `peer` successfully: the leader
    /// hears from every live voter at each heartbeat, so this is the broker liveness signal in
    /// combined mode. `None` for a single voter or a peer never heard from.
    pub fn last_heard_from(&self, peer: u64) -> Option<Instant> {
        self.cluster.as_ref().and_then(|c| c.health.last_ok(peer))
    }

    /// Voters, learners and their progress as this node sees them (the leader knows everyone's).
    pub fn quorum_view(&self) -> crate::QuorumView {
        crate::membership::quorum_view(&self.raft.metrics().borrow())
    }

    /// Whether this node runs a quorum with a transport (`open_cluster`).
    pub fn is_quorum(&self) -> bool {
        self.cluster.is_some()
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The underlying Raft instance: the seam for adding voters (`change_membership`) and for
    /// feeding RPCs received by a transport (`append_entries`, `vote`, `install_snapshot`).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The address the controller RPC server listens on (`None` for a single voter).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.cluster.as_ref().map(|c| c.listen_addr)
    }

    /// Stops the RPC server (closing its port) and Raft, and releases the metadata directory.
    /// Later calls on any clone fail. A quorum member must be shut down this way: dropping the
    /// handles leaves the server and Raft running.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        if let Some(server) = self.cluster.as_ref().and_then(|c| c.server.lock().take()) {
            server.stop().await;
        }
        self.raft
            .shutdown()
            .await
            .map_err(|e| ControllerError::raft("shutdown", e))
    }
}
