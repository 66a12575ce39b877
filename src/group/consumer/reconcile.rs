//! How one member moves from its current assignment towards its target, one step per
//! heartbeat (Kafka's `CurrentAssignmentBuilder`, KIP-848 "reconciliation"):
//!
//! 1. Partitions the member has but its target lacks are revoked first: the member is
//!    told its assignment without them, stays at its epoch in `UnrevokedPartitions`,
//!    and moves on only when a heartbeat's owned partitions no longer hold them.
//! 2. Then it moves to the target epoch and receives the target partitions that no
//!    other member still holds (assigned or being revoked).
//! 3. Partitions still held by another member are waited for in
//!    `UnreleasedPartitions`; each later heartbeat picks up those released meanwhile.
//!
//! So a partition never has two owners: it is given to its new owner only after the
//! previous owner acknowledged its revocation.
//!
//! Dependencies: the assignment helpers of `mod.rs`; pure.

use super::group::MemberState;
use super::{intersect, minus, Assignment};

/// Where a member is after one reconciliation step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub state: MemberState,
    pub epoch: i32,
    pub assigned: Assignment,
    pub revoking: Assignment,
}

/// The member's current position and what the request said it owns.
pub struct Current<'a> {
    pub state: MemberState,
    pub epoch: i32,
    pub assigned: &'a Assignment,
    pub revoking: &'a Assignment,
    /// `None` when the heartbeat did not carry owned partitions.
    pub owned: Option<&'a Assignment>,
}

/// One step towards `target` at `target_epoch`. `held_by_other(topic, partition)`
/// says whether another member still holds the partition.
pub fn step(
    cur: &Current<'_>,
    target: &Assignment,
    target_epoch: i32,
    held_by_other: impl Fn(&str, i32) -> bool,
) -> Option<Step> {
    match cur.state {
        MemberState::Stable if cur.epoch == target_epoch => None,
        MemberState::Stable | MemberState::UnreleasedPartitions => {
            Some(next(cur, cur.epoch, target, target_epoch, held_by_other))
        }
        MemberState::UnrevokedPartitions => {
            // Only a heartbeat that no longer owns the revoked partitions moves on.
            let owned = cur.owned?;
            if !intersect(owned, cur.revoking).is_empty() {
                return None;
            }
            let epoch = (cur.epoch + 1).min(target_epoch);
            let released = Current {
                revoking: &Assignment::new(),
                ..*cur
            };
            Some(next(&released, epoch, target, target_epoch, held_by_other))
        }
    }
}

fn next(
    cur: &Current<'_>,
    epoch: i32,
    target: &Assignment,
    target_epoch: i32,
    held_by_other: impl Fn(&str, i32) -> bool,
) -> Step {
    let kept = intersect(cur.assigned, target);
    let revoke = minus(cur.assigned, target);
    let wanted = minus(target, cur.assigned);
    let mut ready = Assignment::new();
    let mut unreleased = false;
    for (t, ps) in &wanted {
        for &p in ps {
            if held_by_other(t, p) {
                unreleased = true;
            } else {
                ready.entry(t.clone()).or_default().insert(p);
            }
        }
    }
    // A member that already reported it no longer owns the partitions to revoke
    // (Kafka's `ownsRevokedPartitions`) need not be asked again.
    let still_owned = match cur.owned {
        None => !revoke.is_empty(),
        Some(owned) => !intersect(owned, &revoke).is_empty(),
    };
    if !revoke.is_empty() && still_owned {
        return Step {
            state: MemberState::UnrevokedPartitions,
            epoch,
            assigned: kept,
            revoking: revoke,
        };
    }
    let mut assigned = kept;
    for (t, ps) in ready {
        assigned.entry(t).or_default().extend(ps);
    }
    Step {
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        epoch: target_epoch,
        assigned,
        revoking: Assignment::new(),
    }
}
