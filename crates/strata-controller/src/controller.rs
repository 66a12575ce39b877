//! [`Controller`]: the broker's handle on the metadata Raft group.
//!
//! Owns the `openraft::Raft` instance built from [`LogStore`], [`StateMachine`] and the
//! [`NoNetwork`] transport. It never interprets commands itself: validation happens in
//! [`crate::image::apply`] when the entry is applied, and the verdict comes back as the
//! entry's response.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::ClientWriteError;
use openraft::error::InitializeError;
use openraft::error::RaftError;
use openraft::BasicNode;
use openraft::Raft;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use tokio::sync::watch;

use crate::error::ControllerError;
use crate::image::new_cluster_id;
use crate::image::MetadataCommand;
use crate::image::MetadataImage;
use crate::log_store::LogStore;
use crate::network::NoNetwork;
use crate::state_machine::StateMachine;
use crate::TypeConfig;

/// Tunables of the metadata Raft group.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot (for followers that lag, once there are some).
    pub logs_to_keep_after_snapshot: u64,
    /// How long [`Controller::open`] waits to become leader with everything applied.
    pub ready_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            snapshot_every: 1000,
            logs_to_keep_after_snapshot: 0,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A running controller node. Cheap to clone; all clones share one Raft instance.
#[derive(Clone)]
pub struct Controller {
    node_id: u64,
    raft: Raft<TypeConfig>,
    images: watch::Receiver<Arc<MetadataImage>>,
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
        let raft_config = openraft::Config {
            cluster_name: "strata-metadata".to_string(),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.logs_to_keep_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::raft("config validation", e))?;
        let raft = Raft::new(
            node_id,
            Arc::new(raft_config),
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
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<MetadataImage, ControllerError> {
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

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The underlying Raft instance: the seam for adding voters (`change_membership`) and for
    /// feeding RPCs received by a transport (`append_entries`, `vote`, `install_snapshot`).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Stops Raft and releases the metadata directory. Later calls on any clone fail.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| ControllerError::raft("shutdown", e))
    }
}
