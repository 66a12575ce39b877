//! Broker-only nodes (`process.roles=broker`): a [`Controller`] that is an openraft learner of
//! the metadata group. It asks the voters (following the leader they name) to add it
//! ([`Request::AddLearner`], `Raft::add_learner` on the leader), then follows the log like a
//! voter's follower and proposes through the leader, but never votes or counts for the quorum.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use crate::controller::NO_LEADER_BACKOFF;
use crate::error::ControllerError;
use crate::network::call_once;
use crate::rpc::ProposeOutcome;
use crate::rpc::Request;
use crate::rpc::Response;
use crate::Controller;
use crate::ControllerConfig;

impl Controller {
    /// Opens `dir` as a learner (a broker-only node, `process.roles=broker`): it receives the
    /// metadata log from the leader of `voters` without voting or counting for the quorum.
    /// `listen` is where it serves controller RPCs, and `advertised` the address the leader
    /// replicates to. Asks the voters (following the leader they name) to add it, then waits
    /// for the cluster id, up to `ready_timeout`.
    pub async fn open_learner_with(
        dir: &Path,
        node_id: u64,
        voters: BTreeMap<u64, String>,
        listen: &str,
        advertised: &str,
        config: ControllerConfig,
    ) -> Result<Controller, ControllerError> {
        if voters.contains_key(&node_id) {
            return Err(ControllerError::LearnerIsAVoter { node_id });
        }
        let controller = Controller::start_member(dir, node_id, listen, &config).await?;
        let joined = controller
            .join_as_learner(&voters, advertised, config.ready_timeout)
            .await;
        if let Err(e) = joined {
            let _ = controller.shutdown().await;
            return Err(e);
        }
        controller.spawn_catch_up_watch();
        Ok(controller)
    }

    async fn join_as_learner(
        &self,
        voters: &BTreeMap<u64, String>,
        advertised: &str,
        timeout: Duration,
    ) -> Result<(), ControllerError> {
        let deadline = Instant::now() + timeout;
        let not_ready = || ControllerError::ClusterNotReady {
            node_id: self.node_id,
            voters: voters.keys().copied().collect(),
            waited: timeout,
        };
        let tls = self.cluster.as_ref().and_then(|c| c.tls.clone());
        let request = Request::AddLearner {
            node_id: self.node_id,
            addr: advertised.to_string(),
        };
        let targets: Vec<(u64, String)> = voters.iter().map(|(id, a)| (*id, a.clone())).collect();
        let mut leader: Option<(u64, String)> = None;
        let mut next = 0usize;
        loop {
            if Instant::now() >= deadline {
                return Err(not_ready());
            }
            // The leader a voter named, else the voters in turn.
            let (id, addr) = leader.take().unwrap_or_else(|| {
                next += 1;
                targets[(next - 1) % targets.len()].clone()
            });
            let answer = call_once(id, &addr, &request, Duration::from_secs(5), tls.as_ref()).await;
            match answer {
                Ok(Response::AddLearner(ProposeOutcome::Applied { .. })) => break,
                Ok(Response::AddLearner(ProposeOutcome::NotLeader {
                    leader_id: Some(l),
                    leader_addr: Some(a),
                })) if l != id => leader = Some((l, a)),
                other => {
                    tracing::debug!(
                        voter = id,
                        ok = other.is_ok(),
                        "not added as a learner yet; retrying"
                    );
                    tokio::time::sleep(NO_LEADER_BACKOFF * 4).await;
                }
            }
        }
        tracing::info!(
            node_id = self.node_id,
            "joined the metadata quorum as a learner (observer)"
        );
        let mut images = self.subscribe();
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, images.wait_for(|i| !i.cluster_id.is_empty()))
            .await
            .map_err(|_| not_ready())?
            .map_err(|_| not_ready())?;
        Ok(())
    }
}
