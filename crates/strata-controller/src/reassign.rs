//! Partition reassignment (KIP-455) as pure rules on a [`PartitionMeta`].
//!
//! Owns: how a reassignment starts, completes and is cancelled. [`crate::image::apply`] calls
//! these for `MetadataCommand::AlterPartitionReassignment` and after every ISR change; nothing
//! here does I/O or reads the clock.
//!
//! The rules are Kafka's KRaft controller's (`PartitionReassignmentReplicas`,
//! `PartitionReassignmentRevert`):
//! - Starting: with `current` the partition's replicas and `target` the ones asked for,
//!   `adding = target - current`, `removing = current - target`, and the replicas become
//!   `target ++ removing`, so Metadata lists every broker that holds or receives a copy while
//!   the move runs. A new target replaces a running reassignment the same way (from the
//!   replicas as they are, adding ones included).
//! - The adding replicas are followers like any other: they copy from the leader (a tiered
//!   partition's copy starts at the leader's local log start) and the leader's ISR loop adds
//!   them to the ISR once caught up.
//! - Completing: as soon as every target replica is in the ISR, the replicas become `target`,
//!   the ISR loses the removed ones, and a leader that is being removed hands over to the first
//!   in-sync, live target replica. The removed brokers then stop hosting the partition.
//! - Cancelling: the replicas go back to `replicas - adding` (the original ones), the ISR
//!   keeps only those, and a leader among the adding replicas hands back.

use serde::Deserialize;
use serde::Serialize;

use crate::partition::PartitionMeta;
use crate::partition::NO_LEADER;

/// Why a reassignment change was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReassignError {
    #[error("no reassignment is in progress")]
    NoReassignmentInProgress,
}

impl PartitionMeta {
    /// Whether a reassignment is running.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition will have when its reassignment completes (its replicas when
    /// none runs).
    pub fn target_replicas(&self) -> Vec<i32> {
        without(&self.replicas, &self.removing)
    }

    /// The replicas the partition had before its reassignment (its replicas when none runs).
    pub fn original_replicas(&self) -> Vec<i32> {
        without(&self.replicas, &self.adding)
    }

    /// Starts (or replaces) a reassignment to `target`, which the caller checked (non-empty,
    /// distinct, registered brokers). Completes at once when every target replica is already
    /// in sync. Returns whether anything changed.
    pub fn reassign(&mut self, target: &[i32], fenced: impl Fn(i32) -> bool) -> bool {
        let before = self.clone();
        let current = self.replicas.clone();
        self.adding = without(target, &current);
        self.removing = without(&current, target);
        let mut replicas = target.to_vec();
        replicas.extend(self.removing.iter().copied());
        self.replicas = replicas;
        self.isr = self
            .replicas
            .iter()
            .copied()
            .filter(|r| self.isr.contains(r))
            .collect();
        self.complete_reassignment(&fenced);
        self.bump_if_changed(&before)
    }

    /// Cancels the running reassignment: back to the original replicas.
    pub fn cancel_reassignment(
        &mut self,
        fenced: impl Fn(i32) -> bool,
    ) -> Result<bool, ReassignError> {
        if !self.is_reassigning() {
            return Err(ReassignError::NoReassignmentInProgress);
        }
        let before = self.clone();
        let original = self.original_replicas();
        let isr: Vec<i32> = original
            .iter()
            .copied()
            .filter(|r| self.isr.contains(r))
            .collect();
        // Every original replica fell out of sync while the move ran: as Kafka's revert, the
        // original replicas come back as the ISR (an unclean revert) rather than none at all.
        self.isr = if isr.is_empty() {
            original.clone()
        } else {
            isr
        };
        self.replicas = original;
        self.adding.clear();
        self.removing.clear();
        self.elect_if_leader_left(&fenced);
        Ok(self.bump_if_changed(&before))
    }

    /// Finishes the reassignment if every target replica is in the ISR. Called after each ISR
    /// change; does not bump the epoch itself (the caller's change does). Returns whether it
    /// finished one.
    pub fn complete_reassignment(&mut self, fenced: &impl Fn(i32) -> bool) -> bool {
        if !self.is_reassigning() {
            return false;
        }
        let target = self.target_replicas();
        if !target.iter().all(|r| self.isr.contains(r)) {
            return false;
        }
        self.isr = target.clone();
        self.replicas = target;
        self.adding.clear();
        self.removing.clear();
        self.elect_if_leader_left(fenced);
        true
    }

    /// A leader that is no longer an in-sync replica hands over to the first one that is.
    fn elect_if_leader_left(&mut self, fenced: &impl Fn(i32) -> bool) {
        if self.leader == NO_LEADER || !self.isr.contains(&self.leader) || fenced(self.leader) {
            let next = self.first_eligible(fenced).unwrap_or(NO_LEADER);
            self.set_leader(next);
        }
    }
}

/// `a` without the members of `b`, in `a`'s order.
fn without(a: &[i32], b: &[i32]) -> Vec<i32> {
    a.iter().copied().filter(|r| !b.contains(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(_: i32) -> bool {
        false
    }

    #[test]
    fn a_move_lists_both_sets_until_the_new_replica_is_in_sync() {
        let mut p = PartitionMeta::new(vec![1, 2, 3], live);
        assert!(p.reassign(&[1, 2, 4], live));
        assert_eq!(p.replicas, vec![1, 2, 4, 3]);
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![3]));
        assert_eq!(p.isr, vec![1, 2, 3]);
        assert_eq!(p.partition_epoch, 1);
        assert_eq!(p.target_replicas(), vec![1, 2, 4]);
        assert_eq!(p.original_replicas(), vec![1, 2, 3]);
        // The leader adds 4 to the ISR: the move completes and 3 leaves.
        p.isr = vec![1, 2, 4, 3];
        assert!(p.complete_reassignment(&live));
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![1, 2, 4], vec![1, 2, 4])
        );
        assert!(!p.is_reassigning());
        assert_eq!((p.leader, p.leader_epoch), (1, 0));
    }

    #[test]
    fn the_leader_moves_off_a_removed_replica_at_completion() {
        let mut p = PartitionMeta::new(vec![1, 2], live);
        p.reassign(&[3, 4], live);
        assert_eq!(p.replicas, vec![3, 4, 1, 2]);
        assert_eq!(p.leader, 1, "the leader stays while the move runs");
        p.isr = vec![3, 1, 2];
        assert!(!p.complete_reassignment(&live), "4 is not in sync yet");
        p.isr = vec![3, 4, 1, 2];
        assert!(p.complete_reassignment(&live));
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (3, 1, vec![3, 4])
        );
        // A fenced target replica is skipped.
        let mut q = PartitionMeta::new(vec![1], live);
        q.reassign(&[2, 3], live);
        q.isr = vec![2, 3, 1];
        assert!(q.complete_reassignment(&|b| b == 2));
        assert_eq!(q.leader, 3);
    }

    #[test]
    fn a_reorder_or_shrink_of_in_sync_replicas_completes_at_once() {
        let mut p = PartitionMeta::new(vec![1, 2, 3], live);
        assert!(p.reassign(&[3, 1], live));
        assert!(!p.is_reassigning());
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![3, 1], vec![3, 1])
        );
        assert_eq!(p.leader, 1, "an in-sync leader keeps leading");
        // The same target again changes nothing.
        assert!(!p.reassign(&[3, 1], live));
        // A shrink to a replica out of sync waits for it.
        let mut q = PartitionMeta::new(vec![1, 2, 3], live);
        q.isr = vec![1, 2];
        assert!(q.reassign(&[1, 3], live));
        assert_eq!((q.adding.clone(), q.removing.clone()), (vec![], vec![2]));
        assert!(q.is_reassigning());
    }

    #[test]
    fn cancelling_restores_the_original_replicas() {
        let mut p = PartitionMeta::new(vec![1, 2, 3], live);
        assert_eq!(
            p.clone().cancel_reassignment(live),
            Err(ReassignError::NoReassignmentInProgress)
        );
        p.reassign(&[4, 5, 6], live);
        p.isr = vec![4, 1, 2, 3];
        assert!(p.cancel_reassignment(live).unwrap());
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![1, 2, 3], vec![1, 2, 3])
        );
        assert!(!p.is_reassigning());
        assert_eq!(p.leader, 1);
    }

    #[test]
    fn a_new_target_replaces_a_running_move() {
        let mut p = PartitionMeta::new(vec![1, 2], live);
        p.reassign(&[1, 3], live);
        assert_eq!(p.replicas, vec![1, 3, 2]);
        // 3 was being added; now 4 is wanted instead: 3 and 2 are both removed.
        p.reassign(&[1, 4], live);
        assert_eq!(p.replicas, vec![1, 4, 3, 2]);
        assert_eq!(
            (p.adding.clone(), p.removing.clone()),
            (vec![4], vec![3, 2])
        );
        // Cancelling keeps what was there before this target.
        p.cancel_reassignment(live).unwrap();
        assert_eq!(p.replicas, vec![1, 3, 2]);
        assert_eq!(p.isr, vec![1, 2]);
    }

    #[test]
    fn cancelling_when_only_adding_replicas_are_in_sync_reverts_unclean() {
        let mut p = PartitionMeta::new(vec![1], live);
        p.reassign(&[1, 2], live);
        // 1 failed; 2 had caught up and leads.
        p.isr = vec![2];
        p.leader = 2;
        p.cancel_reassignment(|b| b == 1).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone()), (vec![1], vec![1]));
        assert_eq!(p.leader, NO_LEADER, "the only original replica is fenced");
    }

    /// Through `apply`: a move is refused or started as Kafka does, and completes when the
    /// leader's AlterPartition adds the new replica to the ISR.
    #[test]
    fn through_the_metadata_log() {
        use crate::image::{apply, ApplyError, BrokerMeta, MetadataCommand, MetadataImage};
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            let b = BrokerMeta {
                node_id: id,
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
                endpoints: Vec::new(),
                rack: None,
                fenced: false,
                shutting_down: false,
            };
            apply(&mut image, &MetadataCommand::RegisterBroker(b)).unwrap();
        }
        let create = MetadataCommand::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::new_v4(),
            partitions: 1,
            replication_factor: 2,
            configs: Default::default(),
            internal: false,
            assignment: vec![vec![1, 2]],
            placement_start: 0,
        };
        apply(&mut image, &create).unwrap();
        let move_to = |target: Option<Vec<i32>>| MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target,
        };
        for bad in [vec![], vec![1, 1], vec![1, 9]] {
            assert!(matches!(
                apply(&mut image, &move_to(Some(bad))),
                Err(ApplyError::InvalidReplicaAssignment { .. })
            ));
        }
        assert!(matches!(
            apply(&mut image, &move_to(None)),
            Err(ApplyError::Reassign { .. })
        ));
        let unknown = MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 5,
            target: Some(vec![1]),
        };
        assert!(matches!(
            apply(&mut image, &unknown),
            Err(ApplyError::UnknownPartition { .. })
        ));
        apply(&mut image, &move_to(Some(vec![3, 2]))).unwrap();
        let p = image.topics["t"].assignment[0].clone();
        assert_eq!(
            (p.replicas, p.adding, p.removing),
            (vec![3, 2, 1], vec![3], vec![1])
        );
        // Leader 1 sees 3 caught up and adds it to the ISR: the move completes.
        let expand = MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![1, 2, 3],
        };
        apply(&mut image, &expand).unwrap();
        let p = &image.topics["t"].assignment[0];
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![3, 2], vec![3, 2])
        );
        assert_eq!(p.leader, 3);
        assert!(!p.is_reassigning());
    }
}
