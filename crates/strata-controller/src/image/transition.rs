//! The transition `image x command -> image`: [`apply`] and the helpers it alone uses
//! (replica placement, fencing, partition and reassignment changes).
//!
//! Kept apart from the image's types in `image.rs` so each file reads on its own: there the
//! shape of the metadata, here the rules that change it. Same contract as the parent: no I/O,
//! no clock, no randomness, and on error the image is left unchanged.

use std::collections::BTreeMap;

use super::{ApplyError, MetadataCommand, MetadataImage, TopicMeta, MAX_PRODUCER_ID_BLOCK};
use crate::partition::assign_replicas;
use crate::partition::check_replica_list;
use crate::partition::PartitionMeta;

/// Applies `cmd` to `image`. On error the image is left unchanged.
pub fn apply(image: &mut MetadataImage, cmd: &MetadataCommand) -> Result<(), ApplyError> {
    match cmd {
        MetadataCommand::InitializeCluster { cluster_id } => {
            if !image.cluster_id.is_empty() && image.cluster_id != *cluster_id {
                return Err(ApplyError::ClusterIdAlreadySet {
                    current: image.cluster_id.clone(),
                    requested: cluster_id.clone(),
                });
            }
            image.cluster_id = cluster_id.clone();
        }
        MetadataCommand::RegisterBroker(broker) => {
            let mut broker = broker.clone();
            broker.fenced = false;
            broker.shutting_down = false;
            let again = image.brokers.contains_key(&broker.node_id);
            image.brokers.insert(broker.node_id, broker.clone());
            set_fenced(image, broker.node_id, false)?;
            if again {
                reregistered(image, broker.node_id);
            }
        }
        MetadataCommand::FenceBroker { node_id } => set_fenced(image, *node_id, true)?,
        MetadataCommand::DecommissionBroker { node_id } => {
            crate::decommission::decommission(image, *node_id)?
        }
        MetadataCommand::CancelDecommission { node_id } => {
            crate::decommission::cancel_decommission(image, *node_id)?
        }
        MetadataCommand::AddReplica {
            topic,
            partition,
            node_id,
        } => crate::decommission::add_replica(image, topic, *partition, *node_id)?,
        MetadataCommand::DropReplica {
            topic,
            partition,
            node_id,
            replaced_by,
        } => crate::decommission::drop_replica(image, topic, *partition, *node_id, *replaced_by)?,
        MetadataCommand::UnfenceBroker { node_id } => set_fenced(image, *node_id, false)?,
        MetadataCommand::ShutdownBroker { node_id } => {
            set_fenced(image, *node_id, true)?;
            if let Some(b) = image.brokers.get_mut(node_id) {
                b.shutting_down = true;
            }
        }
        MetadataCommand::AlterPartition {
            topic,
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            isr,
        } => alter_partition(
            image,
            topic,
            *partition,
            (*leader, *leader_epoch, *partition_epoch),
            isr,
        )?,
        MetadataCommand::AlterPartitionReassignment {
            topic,
            partition,
            target,
        } => alter_reassignment(image, topic, *partition, target.as_deref())?,
        MetadataCommand::ElectLeader {
            topic,
            partition,
            unclean,
        } => {
            let fenced = fenced_set(image);
            let p = partition_mut(image, topic, *partition)?;
            let elected = if *unclean {
                p.elect_unclean(|b| fenced.contains(&b))
            } else {
                p.elect_preferred(|b| fenced.contains(&b))
            };
            elected.map_err(|source| ApplyError::Election {
                topic: topic.clone(),
                partition: *partition,
                source,
            })?;
        }
        MetadataCommand::CreateTopic {
            name,
            id,
            partitions,
            replication_factor,
            configs,
            internal,
            assignment,
            placement_start,
        } => {
            if image.topics.contains_key(name) {
                return Err(ApplyError::TopicAlreadyExists { name: name.clone() });
            }
            if *partitions <= 0 {
                return Err(ApplyError::InvalidPartitions {
                    name: name.clone(),
                    current: 0,
                    requested: *partitions,
                });
            }
            if *replication_factor <= 0 {
                return Err(ApplyError::InvalidReplicationFactor {
                    name: name.clone(),
                    requested: *replication_factor,
                });
            }
            let placed = place(
                image,
                name,
                0..*partitions,
                *replication_factor,
                assignment,
                *placement_start,
            )?;
            let topic = TopicMeta {
                name: name.clone(),
                id: *id,
                partitions: *partitions,
                replication_factor: *replication_factor,
                configs: configs.clone(),
                internal: *internal,
                assignment: placed,
            };
            image.topics.insert(name.clone(), topic);
        }
        MetadataCommand::DeleteTopic { name } => {
            image
                .topics
                .remove(name)
                .ok_or_else(|| ApplyError::UnknownTopic { name: name.clone() })?;
        }
        MetadataCommand::CreatePartitions {
            name,
            total,
            assignment,
        } => {
            let topic = topic_mut(image, name)?;
            let current = topic.partitions;
            if *total <= current {
                return Err(ApplyError::InvalidPartitions {
                    name: name.clone(),
                    current,
                    requested: *total,
                });
            }
            let (rf, unplaced) = (topic.replication_factor, topic.assignment.is_empty());
            let start = topic.id.as_u128() as usize;
            let placed = place(image, name, current..*total, rf, assignment, start)?;
            let topic = topic_mut(image, name)?;
            if !unplaced {
                topic.assignment.extend(placed);
            }
            topic.partitions = *total;
        }
        MetadataCommand::SetTopicConfigs { name, configs } => {
            topic_mut(image, name)?.configs = configs.clone();
        }
        MetadataCommand::SetBrokerConfigs { configs } => {
            image.broker_configs = configs.clone();
        }
        MetadataCommand::SetClientMetricsConfigs { name, configs } => {
            if configs.is_empty() {
                image.client_metrics.remove(name);
            } else {
                image.client_metrics.insert(name.clone(), configs.clone());
            }
        }
        MetadataCommand::UpsertScramCredential {
            user,
            mechanism,
            credential,
        } => crate::scram::upsert(image, user, *mechanism, credential)?,
        MetadataCommand::DeleteScramCredential { user, mechanism } => {
            crate::scram::delete(image, user, *mechanism)?
        }
        MetadataCommand::CreateAcls { acls } => crate::acl::create(image, acls)?,
        MetadataCommand::DeleteAcls { acls } => crate::acl::delete(image, acls),
        MetadataCommand::AlterClientQuotas { changes } => crate::quota::alter(image, changes)?,
        MetadataCommand::AllocateProducerIds { count } => {
            let next = image.next_producer_id;
            let end = next
                .checked_add(*count)
                .filter(|_| (1..=MAX_PRODUCER_ID_BLOCK).contains(count));
            image.next_producer_id = end.ok_or(ApplyError::InvalidProducerIdBlock {
                count: *count,
                next,
                max: MAX_PRODUCER_ID_BLOCK,
            })?;
        }
    }
    Ok(())
}

/// Replicas for `partitions`: `manual` checked against the registered brokers, or placed over the
/// unfenced ones. With no broker registered at all the topic stays unplaced (empty).
fn place(
    image: &MetadataImage,
    name: &str,
    partitions: std::ops::Range<i32>,
    replication_factor: i16,
    manual: &[Vec<i32>],
    start: usize,
) -> Result<Vec<PartitionMeta>, ApplyError> {
    let fenced = fenced_set(image);
    let is_fenced = |b: i32| fenced.contains(&b);
    if !manual.is_empty() {
        let bad = |reason: String| ApplyError::InvalidReplicaAssignment {
            name: name.to_string(),
            reason,
        };
        if manual.len() != partitions.len() {
            return Err(bad(format!(
                "{} replica lists for {} partitions",
                manual.len(),
                partitions.len()
            )));
        }
        for replicas in manual {
            if replicas.len() != manual[0].len() {
                return Err(bad("replica lists differ in length".into()));
            }
            check_replica_list(replicas, |b| image.brokers.contains_key(&b)).map_err(bad)?;
        }
        return Ok(manual
            .iter()
            .map(|r| PartitionMeta::new(r.clone(), is_fenced))
            .collect());
    }
    if image.brokers.is_empty() {
        return Ok(Vec::new());
    }
    let live: BTreeMap<i32, Option<String>> = image
        .brokers
        .values()
        .filter(|b| !b.fenced && !image.decommissioned.contains(&b.node_id))
        .map(|b| (b.node_id, b.rack.clone()))
        .collect();
    let placed = assign_replicas(&live, partitions, replication_factor as usize, start)
        .ok_or_else(|| ApplyError::NotEnoughBrokers {
            name: name.to_string(),
            requested: replication_factor,
            available: live.len(),
        })?;
    Ok(placed
        .into_iter()
        .map(|r| PartitionMeta::new(r, is_fenced))
        .collect())
}

fn fenced_set(image: &MetadataImage) -> Vec<i32> {
    image
        .brokers
        .values()
        .filter(|b| b.fenced)
        .map(|b| b.node_id)
        .collect()
}

/// Marks `node_id` fenced or not and moves leadership and ISRs accordingly.
fn set_fenced(image: &mut MetadataImage, node_id: i32, fenced: bool) -> Result<(), ApplyError> {
    image
        .brokers
        .get_mut(&node_id)
        .ok_or(ApplyError::UnknownBroker { node_id })?
        .fenced = fenced;
    let down = fenced_set(image);
    let is_fenced = |b: i32| down.contains(&b);
    for topic in image.topics.values_mut() {
        for p in &mut topic.assignment {
            if !p.replicas.contains(&node_id) {
                continue;
            }
            if fenced {
                p.on_fenced(node_id, is_fenced);
            } else {
                p.on_unfenced(is_fenced);
            }
        }
    }
    Ok(())
}

/// A known broker registered again: out of every ISR until it has caught up
/// ([`PartitionMeta::on_reregistered`]).
fn reregistered(image: &mut MetadataImage, node_id: i32) {
    let down = fenced_set(image);
    let is_fenced = |b: i32| down.contains(&b);
    for topic in image.topics.values_mut() {
        for p in topic
            .assignment
            .iter_mut()
            .filter(|p| p.replicas.contains(&node_id))
        {
            p.on_reregistered(node_id, is_fenced);
        }
    }
}

fn alter_partition(
    image: &mut MetadataImage,
    topic: &str,
    partition: i32,
    (leader, leader_epoch, partition_epoch): (i32, i32, i32),
    isr: &[i32],
) -> Result<(), ApplyError> {
    let fenced = fenced_set(image);
    let p = partition_mut(image, topic, partition)?;
    if p.leader != leader || p.leader_epoch != leader_epoch || p.partition_epoch != partition_epoch
    {
        return Err(ApplyError::StalePartitionEpoch {
            topic: topic.to_string(),
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            current_leader: p.leader,
            current_leader_epoch: p.leader_epoch,
            current_partition_epoch: p.partition_epoch,
        });
    }
    let invalid = |reason: &str| ApplyError::InvalidIsr {
        topic: topic.to_string(),
        partition,
        isr: isr.to_vec(),
        reason: reason.to_string(),
    };
    if !isr.contains(&leader) {
        return Err(invalid("it must contain the leader"));
    }
    if isr.iter().any(|r| !p.replicas.contains(r)) {
        return Err(invalid("every member must be an assigned replica"));
    }
    if isr.iter().any(|r| !p.isr.contains(r) && fenced.contains(r)) {
        return Err(invalid("a fenced broker cannot join the ISR"));
    }
    // Keep the assignment order, so the ISR reads the same on every node.
    p.isr = p
        .replicas
        .iter()
        .copied()
        .filter(|r| isr.contains(r))
        .collect();
    // The ISR change may bring the last target replica of a reassignment in sync.
    p.complete_reassignment(&|b| fenced.contains(&b));
    p.partition_epoch += 1;
    Ok(())
}

/// Starts, replaces or cancels the reassignment of one partition ([`crate::reassign`]).
fn alter_reassignment(
    image: &mut MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
) -> Result<(), ApplyError> {
    let fenced = fenced_set(image);
    let is_fenced = |b: i32| fenced.contains(&b);
    if let Some(target) = target {
        check_replica_list(target, |b| image.brokers.contains_key(&b)).map_err(|reason| {
            ApplyError::InvalidReplicaAssignment {
                name: format!("{topic}-{partition}"),
                reason,
            }
        })?;
        // A drained broker takes no new replica (the drain would move it away again).
        let current = partition_mut(image, topic, partition)?.replicas.clone();
        if let Some(b) = target
            .iter()
            .find(|b| image.decommissioned.contains(b) && !current.contains(b))
        {
            return Err(ApplyError::InvalidReplicaAssignment {
                name: format!("{topic}-{partition}"),
                reason: format!("broker {b} is decommissioned"),
            });
        }
    }
    let p = partition_mut(image, topic, partition)?;
    match target {
        Some(target) => {
            p.reassign(target, is_fenced);
        }
        None => {
            p.cancel_reassignment(is_fenced)
                .map_err(|source| ApplyError::Reassign {
                    topic: topic.to_string(),
                    partition,
                    source,
                })?;
        }
    }
    Ok(())
}

fn partition_mut<'a>(
    image: &'a mut MetadataImage,
    name: &str,
    partition: i32,
) -> Result<&'a mut PartitionMeta, ApplyError> {
    topic_mut(image, name)?
        .assignment
        .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
        .ok_or_else(|| ApplyError::UnknownPartition {
            name: name.to_string(),
            partition,
        })
}

fn topic_mut<'a>(
    image: &'a mut MetadataImage,
    name: &str,
) -> Result<&'a mut TopicMeta, ApplyError> {
    image
        .topics
        .get_mut(name)
        .ok_or_else(|| ApplyError::UnknownTopic {
            name: name.to_string(),
        })
}
