//! Runtime changes of the metadata quorum's voters (KIP-853 in spirit): promote a learner
//! (a broker-only node) to voter, demote a voter to learner, or forget a node entirely.
//!
//! # Why this shape
//! openraft's `change_membership` does the joint-consensus dance; what it does not do is decide
//! whether a change is *safe*. That decision is [`plan`], pure: from the current membership,
//! which members the leader heard from recently, and how far each learner's log goes, it either
//! returns the openraft change or a [`VoterChangeError`] saying why not. The leader runs it
//! (its view of the peers is the only complete one), so followers forward the request
//! ([`crate::rpc::Request::ChangeVoters`]).
//!
//! # Rules
//! - Add: the node must already be a learner (it joined with `process.roles=broker`), and its
//!   log must reach the leader's log end as of the request (a voter that is far behind would
//!   count for the quorum without being able to vote usefully, and could stall commits).
//! - Remove: the voters left must be non-empty and a majority of them must be reachable from
//!   the leader right now; otherwise the change could leave a quorum that cannot commit. The
//!   removed voter stays a learner (it keeps the metadata it needs as a broker) unless
//!   `forget` is set, which drops it from the membership entirely (a dead node being replaced).
//! - Only one change at a time: a joint configuration in flight refuses the next one.
//!
//! # Config and committed membership
//! `controller.quorum.voters` only bootstraps an empty cluster. Once the log holds a
//! membership, that membership (in the log and in snapshots) is the truth: a node restarted
//! with a stale `controller.quorum.voters` takes its role from its log, never from the file.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

/// One requested change of the voter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoterChange {
    /// Promote learner `node_id` to voter.
    Add { node_id: u64 },
    /// Demote voter `node_id`; with `forget`, also drop it from the membership (a learner may
    /// be forgotten this way too).
    Remove { node_id: u64, forget: bool },
}

/// Why a voter change was refused. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VoterChangeError {
    #[error(
        "node {node_id} is not a member of the metadata quorum (voters {voters:?}, learners \
         {learners:?}); start it with process.roles=broker so it joins as a learner first"
    )]
    UnknownNode {
        node_id: u64,
        voters: Vec<u64>,
        learners: Vec<u64>,
    },
    #[error("node {node_id} is already a voter (voters {voters:?})")]
    AlreadyVoter { node_id: u64, voters: Vec<u64> },
    #[error("node {node_id} is not a voter (voters {voters:?})")]
    NotAVoter { node_id: u64, voters: Vec<u64> },
    #[error("node {node_id} is the last voter; add another voter before removing it")]
    LastVoter { node_id: u64 },
    #[error(
        "changing the voters to {after:?} would leave only {reachable} reachable of the {needed} \
         needed for a quorum; bring the other voters back first"
    )]
    NoQuorumAfter {
        after: Vec<u64>,
        reachable: usize,
        needed: usize,
    },
    #[error(
        "learner {node_id} has the metadata log up to {matched:?} but the leader's ends at \
         {leader_end}; it must catch up before it can vote (is it running and reachable?)"
    )]
    NotCaughtUp {
        node_id: u64,
        matched: Option<u64>,
        leader_end: u64,
    },
    #[error("another voter change is in progress (joint configuration {configs:?}); retry once it finished")]
    InProgress { configs: Vec<Vec<u64>> },
}

/// What [`plan`] needs to know about the quorum, as the leader sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumState {
    /// Each configuration of the effective membership: one outside a change, two in a joint one.
    pub configs: Vec<BTreeSet<u64>>,
    pub learners: BTreeSet<u64>,
    /// Members the leader heard from recently (including itself).
    pub reachable: BTreeSet<u64>,
    /// The last log index each member holds as far as the leader knows (`None`: nothing yet).
    pub matched: std::collections::BTreeMap<u64, Option<u64>>,
    /// The leader's last log index.
    pub leader_last_index: u64,
}

/// The openraft change to make for `change`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// `change_membership(AddVoterIds)`, keeping the others.
    Promote(u64),
    /// `change_membership(RemoveVoters)`, with `retain` = keep as learner.
    Demote { node_id: u64, retain: bool },
    /// `change_membership(RemoveNodes)` of a learner.
    ForgetLearner(u64),
}

/// Decides whether `change` is safe on `q`; see the module docs for the rules.
pub fn plan(q: &QuorumState, change: VoterChange) -> Result<Plan, VoterChangeError> {
    if q.configs.len() > 1 {
        return Err(VoterChangeError::InProgress {
            configs: q
                .configs
                .iter()
                .map(|c| c.iter().copied().collect())
                .collect(),
        });
    }
    let voters: BTreeSet<u64> = q.configs.first().cloned().unwrap_or_default();
    let voter_list = || voters.iter().copied().collect::<Vec<_>>();
    let check_quorum = |after: &BTreeSet<u64>| {
        let needed = after.len() / 2 + 1;
        let reachable = after.iter().filter(|v| q.reachable.contains(v)).count();
        if reachable < needed {
            return Err(VoterChangeError::NoQuorumAfter {
                after: after.iter().copied().collect(),
                reachable,
                needed,
            });
        }
        Ok(())
    };
    match change {
        VoterChange::Add { node_id } => {
            if voters.contains(&node_id) {
                return Err(VoterChangeError::AlreadyVoter {
                    node_id,
                    voters: voter_list(),
                });
            }
            if !q.learners.contains(&node_id) {
                return Err(VoterChangeError::UnknownNode {
                    node_id,
                    voters: voter_list(),
                    learners: q.learners.iter().copied().collect(),
                });
            }
            let matched = q.matched.get(&node_id).copied().flatten();
            if matched.unwrap_or(0) < q.leader_last_index || !q.reachable.contains(&node_id) {
                return Err(VoterChangeError::NotCaughtUp {
                    node_id,
                    matched,
                    leader_end: q.leader_last_index,
                });
            }
            let mut after = voters.clone();
            after.insert(node_id);
            check_quorum(&after)?;
            Ok(Plan::Promote(node_id))
        }
        VoterChange::Remove { node_id, forget } => {
            if !voters.contains(&node_id) {
                if forget && q.learners.contains(&node_id) {
                    return Ok(Plan::ForgetLearner(node_id));
                }
                return Err(VoterChangeError::NotAVoter {
                    node_id,
                    voters: voter_list(),
                });
            }
            let mut after = voters.clone();
            after.remove(&node_id);
            if after.is_empty() {
                return Err(VoterChangeError::LastVoter { node_id });
            }
            check_quorum(&after)?;
            Ok(Plan::Demote {
                node_id,
                retain: !forget,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn quorum(voters: &[u64], learners: &[u64], reachable: &[u64]) -> QuorumState {
        let all = voters.iter().chain(learners);
        QuorumState {
            configs: vec![voters.iter().copied().collect()],
            learners: learners.iter().copied().collect(),
            reachable: reachable.iter().copied().collect(),
            matched: all.map(|id| (*id, Some(10))).collect::<BTreeMap<_, _>>(),
            leader_last_index: 10,
        }
    }

    #[test]
    fn a_caught_up_learner_is_promoted_and_a_lagging_or_unknown_one_is_not() {
        let q = quorum(&[1, 2, 3], &[4], &[1, 2, 3, 4]);
        assert_eq!(
            plan(&q, VoterChange::Add { node_id: 4 }),
            Ok(Plan::Promote(4))
        );
        let mut lagging = q.clone();
        lagging.matched.insert(4, Some(7));
        assert!(matches!(
            plan(&lagging, VoterChange::Add { node_id: 4 }),
            Err(VoterChangeError::NotCaughtUp {
                matched: Some(7),
                leader_end: 10,
                ..
            })
        ));
        let mut silent = q.clone();
        silent.reachable.remove(&4);
        assert!(matches!(
            plan(&silent, VoterChange::Add { node_id: 4 }),
            Err(VoterChangeError::NotCaughtUp { .. })
        ));
        assert!(matches!(
            plan(&q, VoterChange::Add { node_id: 9 }),
            Err(VoterChangeError::UnknownNode { node_id: 9, .. })
        ));
        assert!(matches!(
            plan(&q, VoterChange::Add { node_id: 2 }),
            Err(VoterChangeError::AlreadyVoter { node_id: 2, .. })
        ));
    }

    #[test]
    fn removal_keeps_a_reachable_majority_and_never_the_last_voter() {
        let q = quorum(&[1, 2, 3, 4], &[], &[1, 2, 4]);
        // {1,3,4} with 3 unreachable: 2 of 3, enough.
        assert_eq!(
            plan(
                &q,
                VoterChange::Remove {
                    node_id: 2,
                    forget: false
                }
            ),
            Ok(Plan::Demote {
                node_id: 2,
                retain: true
            })
        );
        // {1,3} with 3 unreachable: 1 of 2, refused.
        let q3 = quorum(&[1, 2, 3], &[], &[1, 2]);
        assert!(matches!(
            plan(
                &q3,
                VoterChange::Remove {
                    node_id: 2,
                    forget: true
                }
            ),
            Err(VoterChangeError::NoQuorumAfter {
                reachable: 1,
                needed: 2,
                ..
            })
        ));
        // Removing the dead one is fine: {1,2} both reachable.
        assert_eq!(
            plan(
                &q3,
                VoterChange::Remove {
                    node_id: 3,
                    forget: true
                }
            ),
            Ok(Plan::Demote {
                node_id: 3,
                retain: false
            })
        );
        let single = quorum(&[1], &[], &[1]);
        assert!(matches!(
            plan(
                &single,
                VoterChange::Remove {
                    node_id: 1,
                    forget: false
                }
            ),
            Err(VoterChangeError::LastVoter { node_id: 1 })
        ));
    }

    #[test]
    fn learners_can_be_forgotten_but_not_demoted_and_joint_configs_refuse_changes() {
        let q = quorum(&[1, 2, 3], &[5], &[1, 2, 3]);
        assert_eq!(
            plan(
                &q,
                VoterChange::Remove {
                    node_id: 5,
                    forget: true
                }
            ),
            Ok(Plan::ForgetLearner(5))
        );
        assert!(matches!(
            plan(
                &q,
                VoterChange::Remove {
                    node_id: 5,
                    forget: false
                }
            ),
            Err(VoterChangeError::NotAVoter { node_id: 5, .. })
        ));
        let mut joint = q.clone();
        joint.configs.push([1, 2].into());
        assert!(matches!(
            plan(&joint, VoterChange::Add { node_id: 5 }),
            Err(VoterChangeError::InProgress { .. })
        ));
    }
}
