//! Draining a broker (`strata cluster decommission <node>`): every replica it holds moves to
//! another broker, and no new replica is placed on it.
//!
//! # How a replica moves
//! Two metadata commands, with the data copied in between by ordinary follower fetching:
//! 1. [`MetadataCommand::AddReplica`] appends the new broker to the partition's replicas (not to
//!    the ISR). The new broker opens an empty log and fetches from the leader (a tiered
//!    partition only its local tail); the leader's ISR rules add it to the ISR once it reached
//!    the high watermark.
//! 2. [`MetadataCommand::DropReplica`] removes the drained broker from the replicas and the ISR,
//!    and puts the new replica in its place in the order (so preferred leadership moves with
//!    it). It is refused unless every other replica is in the ISR, so the partition never has
//!    fewer in-sync copies than before the move. If the drained broker led, the first in-sync
//!    replica takes over with a new leader epoch.
//!
//! # Who drives it
//! [`MetadataCommand::DecommissionBroker`] only records the intent in
//! [`MetadataImage::decommissioned`]. The active controller runs [`next_moves`] (pure: image in,
//! commands out) in a loop and proposes what it returns; since the state is in the image, a new
//! controller picks up where the old one stopped. At most `max_in_flight` partitions are
//! between step 1 and step 2 at once, which bounds the copy traffic.
//!
//! A decommissioned broker may keep running (it serves nothing once drained) and may be
//! removed as a voter; it stays marked after restarts. Partitions reassigned otherwise
//! (AlterPartitionReassignments) are not this module's business.

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

/// The next commands that drain the decommissioned brokers of `image`: a [`DropReplica`] for
/// every partition whose move is complete, and [`AddReplica`]s for partitions not yet started,
/// keeping at most `max_in_flight` moves between the two steps.
///
/// [`DropReplica`]: MetadataCommand::DropReplica
/// [`AddReplica`]: MetadataCommand::AddReplica
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
    let mut drops = Vec::new();
    let mut adds = Vec::new();
    let mut in_flight = 0;
    for t in image.topics.values() {
        let wanted = usize::try_from(t.replication_factor).unwrap_or(1).max(1);
        for (i, p) in t.assignment.iter().enumerate() {
            let Some(&from) = p.replicas.iter().find(|r| drained(r)) else {
                continue;
            };
            // A partition being reassigned (AlterPartitionReassignments) is left to that
            // move; the drain takes it up once the move is done or cancelled.
            if p.is_reassigning() {
                continue;
            }
            let partition = i as i32;
            let kept: Vec<i32> = p.replicas.iter().copied().filter(|r| !drained(r)).collect();
            if kept.len() >= wanted {
                if kept.iter().all(|r| p.isr.contains(r)) {
                    drops.push(MetadataCommand::DropReplica {
                        topic: t.name.clone(),
                        partition,
                        node_id: from,
                        replaced_by: kept.last().copied(),
                    });
                } else {
                    in_flight += 1;
                }
                continue;
            }
            // Start a move: the least loaded placeable broker, preferring the drained one's rack.
            let rack = image.brokers.get(&from).and_then(|b| b.rack.clone());
            let target = load
                .iter()
                .filter(|(b, _)| !p.replicas.contains(b))
                .min_by_key(|(b, n)| {
                    let other_rack = image.brokers.get(b).and_then(|x| x.rack.clone()) != rack;
                    (other_rack, **n, **b)
                })
                .map(|(b, _)| *b);
            if let Some(to) = target {
                adds.push(MetadataCommand::AddReplica {
                    topic: t.name.clone(),
                    partition,
                    node_id: to,
                });
                *load.entry(to).or_default() += 1;
            }
        }
    }
    let room = max_in_flight.saturating_sub(in_flight);
    drops.extend(adds.into_iter().take(room));
    drops
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

    #[test]
    fn a_drain_adds_a_replica_waits_for_the_isr_then_drops_the_old_one() {
        let mut img = image(&[&[2, 1, 3]]);
        run(
            &mut img,
            &[MetadataCommand::DecommissionBroker { node_id: 2 }],
        );
        // Step 1: node 4 (same rack as 2, least loaded) is added, not in the ISR.
        let moves = next_moves(&img, 8);
        assert_eq!(
            moves,
            vec![MetadataCommand::AddReplica {
                topic: "t".into(),
                partition: 0,
                node_id: 4
            }]
        );
        run(&mut img, &moves);
        assert_eq!(img.topics["t"].assignment[0].replicas, vec![2, 1, 3, 4]);
        // Nothing to do until 4 is in sync; the drop is refused if proposed early.
        assert!(next_moves(&img, 8).is_empty());
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
        // 4 joins the ISR: 2 is dropped and 4 takes its slot (and, 2 having led, the lead).
        img.topics.get_mut("t").unwrap().assignment[0].isr = vec![2, 1, 3, 4];
        let moves = next_moves(&img, 8);
        assert_eq!(moves, vec![early]);
        let epoch = img.topics["t"].assignment[0].leader_epoch;
        run(&mut img, &moves);
        let p = &img.topics["t"].assignment[0];
        assert_eq!(p.replicas, vec![4, 1, 3]);
        assert_eq!(p.isr, vec![1, 3, 4]);
        assert_eq!(p.leader, 4, "the first in-sync replica, now in 2's slot");
        assert_eq!(p.leader_epoch, epoch + 1);
        assert!(next_moves(&img, 8).is_empty());
        assert_eq!(replicas_left(&img, 2), 0);
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
        assert!(moves
            .iter()
            .all(|m| !matches!(m, MetadataCommand::AddReplica { node_id: 2, .. })));
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
