//! The I/O side of voter changes: [`Controller::change_voters`] forwards the request to the
//! leader, which reads its quorum state from openraft's metrics and the transport's
//! [`PeerHealth`], asks [`crate::voters::plan`] whether the change is safe, waits (bounded) for a
//! learner to catch up, and runs `Raft::change_membership`.

use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use openraft::ChangeMembers;
use openraft::Raft;
use serde::Deserialize;
use serde::Serialize;

use crate::controller::NO_LEADER_BACKOFF;
use crate::error::ControllerError;
use crate::membership::QuorumView;
use crate::network::call_once;
use crate::network::PeerHealth;
use crate::rpc::Request;
use crate::rpc::Response;
use crate::voters::plan;
use crate::voters::Plan;
use crate::voters::QuorumState;
use crate::voters::VoterChange;
use crate::voters::VoterChangeError;
use crate::Controller;
use crate::TypeConfig;

/// What the leader did with a voter change.
#[derive(Debug, Serialize, Deserialize)]
pub enum VoterOutcome {
    /// The new membership committed; the view right after it.
    Done {
        voters: Vec<u64>,
        learners: Vec<u64>,
    },
    /// Refused as unsafe; nothing changed.
    Refused(VoterChangeError),
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    /// Not finished within the timeout (a started change may still complete).
    TimedOut,
    Failed {
        message: String,
    },
}

impl Controller {
    /// Applies `change` to the metadata quorum's voters, on whichever node leads, and returns
    /// the quorum as this node sees it afterwards. Fails with
    /// [`ControllerError::VoterChange`] when the change is unsafe (see [`crate::voters`]), and
    /// after `timeout` with [`ControllerError::MembershipChangeTimedOut`].
    pub async fn change_voters(
        &self,
        change: VoterChange,
        timeout: Duration,
    ) -> Result<QuorumView, ControllerError> {
        let Some(cluster) = self.cluster.clone() else {
            return Err(ControllerError::SingleVoter);
        };
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ControllerError::MembershipChangeTimedOut { change, timeout });
            }
            let mut outcome =
                change_voters_local(self.raft(), &cluster.health, change, remaining).await;
            if let VoterOutcome::NotLeader {
                leader_id: Some(leader),
                leader_addr: Some(addr),
            } = &outcome
            {
                if *leader != self.node_id {
                    let request = Request::ChangeVoters {
                        change,
                        timeout_ms: remaining.mul_f64(0.9).as_millis() as u64,
                    };
                    outcome =
                        match call_once(*leader, addr, &request, remaining, cluster.tls.as_ref())
                            .await
                        {
                            Ok(Response::ChangeVoters(o)) => o,
                            _ => VoterOutcome::NotLeader {
                                leader_id: None,
                                leader_addr: None,
                            },
                        };
                }
            }
            match outcome {
                VoterOutcome::Done { .. } => {
                    // Let this node's own view include the change before answering.
                    let _ = self
                        .raft()
                        .wait(Some(deadline.saturating_duration_since(Instant::now())))
                        .metrics(
                            |m| m.membership_config.membership().get_joint_config().len() == 1,
                            "uniform membership",
                        )
                        .await;
                    return Ok(self.quorum_view());
                }
                VoterOutcome::Refused(e) => return Err(e.into()),
                VoterOutcome::TimedOut => {
                    return Err(ControllerError::MembershipChangeTimedOut { change, timeout })
                }
                VoterOutcome::Failed { message } => {
                    return Err(ControllerError::MembershipChange { change, message })
                }
                VoterOutcome::NotLeader { .. } => {
                    tokio::time::sleep(NO_LEADER_BACKOFF * 4).await;
                }
            }
        }
    }
}

/// How long the leader waits for fresh answers from the members a change relies on.
const CONFIRM: Duration = Duration::from_secs(1);

/// The quorum state for [`plan`] from the leader's metrics and transport health. With
/// `heard_since`, a member counts as reachable only if it answered after that instant (the
/// leader's heartbeats reach every member each `heartbeat_interval`), not merely within the
/// transport's recent window: a node killed a moment ago must not be counted.
fn quorum_state(
    raft: &Raft<TypeConfig>,
    health: &PeerHealth,
    heard_since: Option<Instant>,
) -> QuorumState {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let configs: Vec<BTreeSet<u64>> = membership.get_joint_config().clone();
    let learners: BTreeSet<u64> = membership.learner_ids().collect();
    let members = membership.nodes().map(|(id, _)| *id).collect::<Vec<_>>();
    let reachable = members
        .iter()
        .copied()
        .filter(|id| {
            *id == m.id
                || match heard_since {
                    Some(since) => health.last_ok(*id).is_some_and(|t| t > since),
                    None => health.reachable(m.id, [*id]) == 1,
                }
        })
        .collect();
    let matched = members
        .iter()
        .map(|id| {
            let index = if *id == m.id {
                m.last_log_index
            } else {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .and_then(|l| l.as_ref().map(|l| l.index))
            };
            (*id, index)
        })
        .collect();
    QuorumState {
        configs,
        learners,
        reachable,
        matched,
        leader_last_index: m.last_log_index.unwrap_or(0),
    }
}

/// Runs `change` if this node leads: plans it (waiting up to `timeout` for a learner to catch
/// up with the log end as of the call) and commits it. Never forwards.
pub(crate) async fn change_voters_local(
    raft: &Raft<TypeConfig>,
    health: &PeerHealth,
    change: VoterChange,
    timeout: Duration,
) -> VoterOutcome {
    let deadline = Instant::now() + timeout;
    let m = raft.metrics().borrow().clone();
    if let Some((leader_id, leader_addr)) = crate::server::leader_elsewhere(&m) {
        return VoterOutcome::NotLeader {
            leader_id,
            leader_addr,
        };
    }
    let target_end = m.last_log_index.unwrap_or(0);
    let planned = loop {
        let mut state = quorum_state(raft, health, None);
        state.leader_last_index = target_end;
        match plan(&state, change) {
            Err(VoterChangeError::NotCaughtUp { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(NO_LEADER_BACKOFF * 2).await;
            }
            Err(e) => return VoterOutcome::Refused(e),
            Ok(p) => break p,
        }
    };
    // Confirm with answers that arrive from now on: the joint configuration needs a majority
    // of the new voters, and one that cannot commit would stall every metadata change.
    let since = Instant::now();
    let confirm_until = (since + CONFIRM).min(deadline);
    loop {
        let mut state = quorum_state(raft, health, Some(since));
        state.leader_last_index = 0;
        match plan(&state, change) {
            Ok(_) => break,
            Err(e) if Instant::now() >= confirm_until => return VoterOutcome::Refused(e),
            Err(_) => tokio::time::sleep(NO_LEADER_BACKOFF).await,
        }
    }
    tracing::info!(?change, plan = ?planned, "changing the metadata quorum's voters");
    let (members, retain): (ChangeMembers<u64, openraft::BasicNode>, bool) = match planned {
        Plan::Promote(id) => (ChangeMembers::AddVoterIds([id].into()), true),
        Plan::Demote { node_id, retain } => (ChangeMembers::RemoveVoters([node_id].into()), retain),
        Plan::ForgetLearner(id) => (ChangeMembers::RemoveNodes([id].into()), true),
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(remaining, raft.change_membership(members, retain)).await {
        Err(_) => VoterOutcome::TimedOut,
        Ok(Ok(resp)) => {
            let membership = resp.membership.unwrap_or_else(|| {
                raft.metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .clone()
            });
            tracing::info!(?change, %membership, "metadata quorum's voters changed");
            VoterOutcome::Done {
                voters: membership.voter_ids().collect(),
                learners: membership.learner_ids().collect(),
            }
        }
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            VoterOutcome::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            }
        }
        Ok(Err(e)) => VoterOutcome::Failed {
            message: e.to_string(),
        },
    }
}
