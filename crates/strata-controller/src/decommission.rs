//! Draining a broker (`strata cluster decommission <node>`): every replica it holds moves to
//! another broker, and no new replica is placed on it.
//!
//! # How a replica moves
//! As a partition reassignment (KIP-455, [`crate::reassign`]): the drain proposes
//! [`MetadataCommand::AlterPartitionReassignment`] with the drained broker replaced (or, with
//! enough copies elsewhere, removed). The new broker is an adding replica: it opens an empty
//! log and fetches from the leader (a tiered partition only its local tail, under the
//! replication throttles like any out-of-sync replica); the reassignment completes when the
//! target is in sync, so the partition never has fewer in-sync copies than before the move,
//! and a leader being removed hands over to the first in-sync target replica. A drain's moves
//! therefore show in ListPartitionReassignments and in the reassignment metrics.
//!
//! [`MetadataCommand::AddReplica`] and [`MetadataCommand::DropReplica`] are the two steps the
//! drain used before it went through reassignments; they still apply, for metadata logs that
//! contain them, but nothing proposes them any more.
//!
//! # Who drives it
//! [`MetadataCommand::DecommissionBroker`] only records the intent in
//! [`MetadataImage::decommissioned`]. The active controller runs [`next_moves`] (pure: image in,
//! commands out) in a loop and proposes what it returns; since the state is in the image, a new
//! controller picks up where the old one stopped. At most `max_in_flight` drain moves run at
//! once, which bounds the copy traffic.
//!
//! # Cancelling
//! [`MetadataCommand::CancelDecommission`] removes the mark and cancels the drain's moves that
//! are still copying ([`cancel_decommission`]); finished moves stay.
//!
//! A decommissioned broker may keep running (it serves nothing once drained) and may be
//! removed as a voter; it stays marked after restarts. A partition that an operator is
//! reassigning is left to that move and drained once it is done or cancelled.

use std::collections::BTreeMap;

use crate::image::ApplyError;
use crate::image::MetadataCommand;
use crate::image::MetadataImage;
use crate::partition::PartitionMeta;
use crate::partition::NO_LEADER;

fn invalid(topic: &str, partition: i32, reason: String) -> ApplyError {
    ApplyError::InvalidReassignment {
        topic: topic.to_string(),
        partition,
        reason,
    }
}

fn partition_of<'a>(
    image: &'a mut MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<&'a mut PartitionMeta, ApplyError> {
    let t = image
        .topics
        .get_mut(topic)
        .ok_or_else(|| ApplyError::UnknownTopic {
            name: topic.to_string(),
        })?;
    t.assignment
        .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
        .ok_or_else(|| ApplyError::UnknownPartition {
            name: topic.to_string(),
            partition,
        })
}

/// [`MetadataCommand::DecommissionBroker`].
pub(crate) fn decommission(image: &mut MetadataImage, node_id: i32) -> Result<(), ApplyError> {
    if !image.brokers.contains_key(&node_id) {
        return Err(ApplyError::UnknownBroker { node_id });
    }
    image.decommissioned.insert(node_id);
    Ok(())
}

/// [`MetadataCommand::AddReplica`]: step 1 of a move.
pub(crate) fn add_replica(
    image: &mut MetadataImage,
    topic: &str,
    partition: i32,
    node_id: i32,
) -> Result<(), ApplyError> {
    let usable = image.is_live(node_id) && !image.decommissioned.contains(&node_id);
    let p = partition_of(image, topic, partition)?;
    if p.replicas.contains(&node_id) {
        return Err(invalid(
            topic,
            partition,
            format!("broker {node_id} already is a replica ({:?})", p.replicas),
        ));
    }
    if !usable {
        return Err(invalid(
            topic,
            partition,
            format!("broker {node_id} is not a live, placeable broker"),
        ));
    }
    p.replicas.push(node_id);
    p.partition_epoch += 1;
    Ok(())
}

/// [`MetadataCommand::DropReplica`]: step 2 of a move.
pub(crate) fn drop_replica(
    image: &mut MetadataImage,
    topic: &str,
    partition: i32,
    node_id: i32,
    replaced_by: Option<i32>,
) -> Result<(), ApplyError> {
    let fenced: Vec<i32> = image
        .brokers
        .values()
        .filter(|b| b.fenced)
        .map(|b| b.node_id)
        .collect();
    let p = partition_of(image, topic, partition)?;
    let Some(slot) = p.replicas.iter().position(|r| *r == node_id) else {
        return Err(invalid(
            topic,
            partition,
            format!("broker {node_id} is not a replica ({:?})", p.replicas),
        ));
    };
    let rest: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != node_id)
        .collect();
    if rest.is_empty() {
        return Err(invalid(
            topic,
            partition,
            format!("broker {node_id} is the only replica"),
        ));
    }
    if let Some(lagging) = rest.iter().find(|r| !p.isr.contains(r)) {
        return Err(invalid(
            topic,
            partition,
            format!(
                "replica {lagging} is not in the ISR {:?} yet; broker {node_id} stays until it is",
                p.isr
            ),
        ));
    }
    p.replicas.remove(slot);
    if let Some(new) = replaced_by {
        if let Some(at) = p.replicas.iter().position(|r| *r == new) {
            let r = p.replicas.remove(at);
            p.replicas.insert(slot.min(p.replicas.len()), r);
        }
    }
    p.isr.retain(|r| *r != node_id);
    if p.leader == node_id || p.leader == NO_LEADER {
        let next = p
            .replicas
            .iter()
            .copied()
            .find(|r| p.isr.contains(r) && !fenced.contains(r))
            .unwrap_or(NO_LEADER);
        if next != p.leader {
            p.leader = next;
            p.leader_epoch += 1;
        }
    }
    p.partition_epoch += 1;
    Ok(())
}

/// [`MetadataCommand::CancelDecommission`]: `node_id` takes replicas again, and the drain's
/// moves off it that are still copying are cancelled (KIP-455 cancel: the partition keeps its
/// original replicas, `node_id` included). A move is the drain's when every broker it removes
/// is `node_id` or another decommissioned broker: a reassignment an operator started that also
/// moves a replica elsewhere is left alone. Moves that completed stay done (a rebalance brings
/// replicas back).
pub(crate) fn cancel_decommission(
    image: &mut MetadataImage,
    node_id: i32,
) -> Result<(), ApplyError> {
    if !image.decommissioned.remove(&node_id) {
        return Err(ApplyError::NotDecommissioned { node_id });
    }
    let fenced: Vec<i32> = image
        .brokers
        .values()
        .filter(|b| b.fenced)
        .map(|b| b.node_id)
        .collect();
    let others = image.decommissioned.clone();
    for t in image.topics.values_mut() {
        for p in t.assignment.iter_mut() {
            let drains = p.removing.contains(&node_id)
                && p.removing
                    .iter()
                    .all(|r| *r == node_id || others.contains(r));
            if drains {
                // Cannot fail: the partition is reassigning.
                let _ = p.cancel_reassignment(|b| fenced.contains(&b));
            }
        }
    }
    Ok(())
}

/// The next commands that drain the decommissioned brokers of `image`: one
/// [`MetadataCommand::AlterPartitionReassignment`] (KIP-455, [`crate::reassign`]) per partition
/// holding a drained replica and not being reassigned yet, keeping at most `max_in_flight`
/// drain moves running. The target replaces each drained replica, in its slot (so preferred
/// leadership moves with it), by the least loaded placeable broker (the drained one's rack
/// first) while the partition has fewer than its replication factor of other replicas, and
/// drops it otherwise. The reassignment then completes by itself once the target is in sync.
pub fn next_moves(image: &MetadataImage, max_in_flight: usize) -> Vec<MetadataCommand> {
    if image.decommissioned.is_empty() {
        return Vec::new();
    }
    let drained = |b: &i32| image.decommissioned.contains(b);
    let mut load: BTreeMap<i32, usize> = image
        .brokers
        .values()
        .filter(|b| !b.fenced && !drained(&b.node_id))
        .map(|b| (b.node_id, 0))
        .collect();
    for t in image.topics.values() {
        for p in &t.assignment {
            for r in &p.replicas {
                if let Some(n) = load.get_mut(r) {
                    *n += 1;
                }
            }
        }
    }
    let mut starts = Vec::new();
    let mut in_flight = 0;
    for t in image.topics.values() {
        let wanted = usize::try_from(t.replication_factor).unwrap_or(1).max(1);
        for (i, p) in t.assignment.iter().enumerate() {
            if !p.replicas.iter().any(drained) {
                continue;
            }
            // A running move: the drain's own (it removes a drained broker) counts against the
            // bound; another is left to finish, and the drain takes the partition up after.
            if p.is_reassigning() {
                if p.removing.iter().any(drained) {
                    in_flight += 1;
                }
                continue;
            }
            let mut others = p.replicas.iter().filter(|r| !drained(r)).count();
            let mut target = Vec::with_capacity(p.replicas.len());
            for r in &p.replicas {
                if !drained(r) {
                    target.push(*r);
                    continue;
                }
                if others >= wanted {
                    continue; // enough copies elsewhere: dropped
                }
                let rack = image.brokers.get(r).and_then(|b| b.rack.clone());
                let to = load
                    .iter()
                    .filter(|(b, _)| !p.replicas.contains(b) && !target.contains(b))
                    .min_by_key(|(b, n)| {
                        let other_rack = image.brokers.get(b).and_then(|x| x.rack.clone()) != rack;
                        (other_rack, **n, **b)
                    })
                    .map(|(b, _)| *b);
                match to {
                    Some(to) => {
                        target.push(to);
                        *load.entry(to).or_default() += 1;
                        others += 1;
                    }
                    // Nowhere to go (UnregisterBroker refuses this up front): it stays.
                    None => target.push(*r),
                }
            }
            if target != p.replicas && !target.is_empty() {
                starts.push(MetadataCommand::AlterPartitionReassignment {
                    topic: t.name.clone(),
                    partition: i as i32,
                    target: Some(target),
                });
            }
        }
    }
    starts.truncate(max_in_flight.saturating_sub(in_flight));
    starts
}

/// How many replicas the decommissioned broker `node_id` still holds.
pub fn replicas_left(image: &MetadataImage, node_id: i32) -> usize {
    image
        .topics
        .values()
        .flat_map(|t| &t.assignment)
        .filter(|p| p.replicas.contains(&node_id))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::apply;
    use crate::image::BrokerMeta;
    use crate::image::TopicMeta;

    fn broker(id: i32, rack: &str) -> BrokerMeta {
        BrokerMeta {
            node_id: id,
            host: "h".into(),
            port: 9000 + id as u16,
            endpoints: vec![],
            rack: Some(rack.into()),
            fenced: false,
            shutting_down: false,
        }
    }

    fn image(replicas: &[&[i32]]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (id, rack) in [(1, "a"), (2, "b"), (3, "c"), (4, "b")] {
            image.brokers.insert(id, broker(id, rack));
        }
        image.topics.insert(
            "t".into(),
            TopicMeta {
                name: "t".into(),
                id: uuid::Uuid::nil(),
                partitions: replicas.len() as i32,
                replication_factor: replicas[0].len() as i16,
                configs: Default::default(),
                internal: false,
                assignment: replicas
                    .iter()
                    .map(|r| PartitionMeta::new(r.to_vec(), |_| false))
                    .collect(),
            },
        );
        image
    }

    fn run(image: &mut MetadataImage, cmds: &[MetadataCommand]) {
        for c in cmds {
            apply(image, c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        }
    }

    fn move_to(partition: i32, target: &[i32]) -> MetadataCommand {
        MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition,
            target: Some(target.to_vec()),
        }
    }

    #[test]
    fn a_drain_is_a_reassignment_that_completes_once_the_new_replica_is_in_sync() {
        let mut img = image(&[&[2, 1, 3]]);
        run(
            &mut img,
            &[MetadataCommand::DecommissionBroker { node_id: 2 }],
        );
        // Node 4 (same rack as 2, least loaded) takes 2's slot.
        let moves = next_moves(&img, 8);
        assert_eq!(moves, vec![move_to(0, &[4, 1, 3])]);
        run(&mut img, &moves);
        let p = &img.topics["t"].assignment[0];
        assert_eq!(p.replicas, vec![4, 1, 3, 2]);
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![2]));
        // Nothing more to do while it copies.
        assert!(next_moves(&img, 8).is_empty());
        // 4 joins the ISR: the move completes, 2 leaves, and 4 (in 2's slot) leads.
        let epoch = img.topics["t"].assignment[0].leader_epoch;
        let p = &img.topics["t"].assignment[0];
        let isr = MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![2, 1, 3, 4],
        };
        run(&mut img, &[isr]);
        let p = &img.topics["t"].assignment[0];
        assert_eq!(p.replicas, vec![4, 1, 3]);
        assert_eq!(p.isr, vec![4, 1, 3]);
        assert_eq!(p.leader, 4, "the first in-sync replica, now in 2's slot");
        assert_eq!(p.leader_epoch, epoch + 1);
        assert!(next_moves(&img, 8).is_empty());
        assert_eq!(replicas_left(&img, 2), 0);
    }

    #[test]
    fn cancelling_a_decommission_cancels_the_drains_running_moves_only() {
        let mut img = image(&[&[2, 1], &[1, 2], &[2, 3]]);
        run(
            &mut img,
            &[MetadataCommand::DecommissionBroker { node_id: 2 }],
        );
        let moves = next_moves(&img, 2);
        assert_eq!(moves.len(), 2, "{moves:?}");
        run(&mut img, &moves);
        // An operator's move of partition 2 off 2 and 3 is not the drain's.
        run(&mut img, &[move_to(2, &[1, 4])]);
        run(
            &mut img,
            &[MetadataCommand::CancelDecommission { node_id: 2 }],
        );
        assert!(img.decommissioned.is_empty());
        let t = &img.topics["t"];
        // Back to the original replicas (in the order a KIP-455 revert leaves them).
        let sorted = |p: &PartitionMeta| {
            let mut r = p.replicas.clone();
            r.sort();
            r
        };
        assert_eq!(sorted(&t.assignment[0]), vec![1, 2]);
        assert_eq!(sorted(&t.assignment[1]), vec![1, 2]);
        assert!(!t.assignment[0].is_reassigning() && !t.assignment[1].is_reassigning());
        assert_eq!(t.assignment[2].target_replicas(), vec![1, 4], "left alone");
        assert!(next_moves(&img, 8).is_empty(), "no drain any more");
        // Cancelling again: nothing to cancel.
        assert_eq!(
            apply(
                &mut img,
                &MetadataCommand::CancelDecommission { node_id: 2 }
            ),
            Err(ApplyError::NotDecommissioned { node_id: 2 })
        );
    }

    #[test]
    fn an_old_log_with_add_and_drop_replica_still_applies() {
        let mut img = image(&[&[2, 1, 3]]);
        run(
            &mut img,
            &[
                MetadataCommand::DecommissionBroker { node_id: 2 },
                MetadataCommand::AddReplica {
                    topic: "t".into(),
                    partition: 0,
                    node_id: 4,
                },
            ],
        );
        let early = MetadataCommand::DropReplica {
            topic: "t".into(),
            partition: 0,
            node_id: 2,
            replaced_by: Some(4),
        };
        assert!(matches!(
            apply(&mut img, &early),
            Err(ApplyError::InvalidReassignment { .. })
        ));
        img.topics.get_mut("t").unwrap().assignment[0].isr = vec![2, 1, 3, 4];
        run(&mut img, &[early]);
        assert_eq!(img.topics["t"].assignment[0].replicas, vec![4, 1, 3]);
    }

    #[test]
    fn drained_brokers_get_no_new_replicas_and_moves_are_bounded() {
        let mut img = image(&[&[1, 2], &[2, 3], &[3, 1], &[2, 1]]);
        run(
            &mut img,
            &[MetadataCommand::DecommissionBroker { node_id: 2 }],
        );
        let moves = next_moves(&img, 2);
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert!(moves.iter().all(|m| matches!(
            m,
            MetadataCommand::AlterPartitionReassignment { target: Some(t), .. } if !t.contains(&2)
        )));
        // The bound counts the moves running: two are, so none more starts.
        run(&mut img, &moves);
        assert!(next_moves(&img, 2).is_empty());
        // New topics avoid broker 2.
        run(
            &mut img,
            &[MetadataCommand::CreateTopic {
                name: "new".into(),
                id: uuid::Uuid::nil(),
                partitions: 6,
                replication_factor: 3,
                configs: Default::default(),
                internal: false,
                assignment: vec![],
                placement_start: 0,
            }],
        );
        assert!(img.topics["new"]
            .assignment
            .iter()
            .all(|p| !p.replicas.contains(&2)));
        assert!(matches!(
            apply(
                &mut img,
                &MetadataCommand::AddReplica {
                    topic: "t".into(),
                    partition: 0,
                    node_id: 2
                }
            ),
            Err(ApplyError::InvalidReassignment { .. })
        ));
    }
}
