//! The partition-health gauges a scrape reads (Kafka's `UnderReplicatedPartitions`,
//! `UnderMinIsrPartitionCount` and `OfflinePartitionsCount`), counted from the metadata this
//! node applied.
//!
//! - under-replicated and under min ISR: partitions this node leads whose ISR is smaller than
//!   their replica set, or than the topic's `min.insync.replicas` (acks=all is refused there);
//! - offline: partitions without a leader, counted by the active controller only (every other
//!   node reports 0), so that the cluster's total is the sum over nodes, as in Kafka.

use strata_controller::{PartitionMeta, TopicMeta, NO_LEADER};

use super::Broker;

/// Partition counts of the health gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionHealth {
    pub under_replicated: usize,
    pub under_min_isr: usize,
    pub offline: usize,
}

/// Counts the partitions `node` leads among `hosted` (each with its topic's
/// `min.insync.replicas`), and, on the active controller only, the leaderless partitions of
/// `topics` (the whole cluster's).
pub fn partition_health<'a>(
    hosted: impl IntoIterator<Item = (PartitionMeta, i32)>,
    node: i32,
    controller_view: Option<impl IntoIterator<Item = &'a TopicMeta>>,
) -> PartitionHealth {
    let mut h = PartitionHealth::default();
    for (p, min_isr) in hosted {
        if p.leader != node {
            continue;
        }
        h.under_replicated += usize::from(p.isr.len() < p.replicas.len());
        h.under_min_isr += usize::from((p.isr.len() as i32) < min_isr);
    }
    for topic in controller_view.into_iter().flatten() {
        h.offline += topic
            .assignment
            .iter()
            .filter(|p| p.leader == NO_LEADER)
            .count();
    }
    h
}

impl crate::metrics::ScrapeSource for Broker {
    fn partition_offsets(&self) -> Vec<crate::metrics::PartitionOffsets> {
        crate::metrics::ScrapeSource::partition_offsets(&*self.replicas)
    }

    fn partition_health(&self) -> crate::metrics::PartitionHealthCounts {
        let hosted = self.replicas.all_partitions().into_iter().map(|p| {
            let min_isr = self
                .metadata
                .topic(&p.tp.topic)
                .map_or(1, |t| t.config.min_insync_replicas);
            (p.meta(), min_isr)
        });
        let image = self.controller.image();
        let active = self.controller.is_leader();
        let h = partition_health(
            hosted,
            self.node_id(),
            active.then(|| image.topics.values()),
        );
        let (reassigning, reassignment_bytes_left) = self.reassignment_progress();
        crate::metrics::PartitionHealthCounts {
            under_replicated: h.under_replicated,
            under_min_isr: h.under_min_isr,
            offline: h.offline,
            reassigning,
            reassignment_bytes_left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn topic(parts: Vec<PartitionMeta>) -> TopicMeta {
        TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partitions: parts.len() as i32,
            replication_factor: 3,
            configs: BTreeMap::new(),
            internal: false,
            assignment: parts,
        }
    }

    fn part(leader: i32, isr: Vec<i32>) -> PartitionMeta {
        PartitionMeta {
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
        }
    }

    #[test]
    fn leaders_count_their_own_partitions_and_the_controller_counts_offline_ones() {
        let t = topic(vec![
            part(1, vec![1, 2, 3]),
            part(1, vec![1, 2]),
            part(1, vec![1]),
            part(2, vec![2]),
            part(NO_LEADER, vec![3]),
        ]);
        let on = |node, active: bool| {
            let hosted = t.assignment.iter().map(|p| (p.clone(), 2));
            partition_health(hosted, node, active.then_some([&t]))
        };
        assert_eq!(
            on(1, false),
            PartitionHealth {
                under_replicated: 2,
                under_min_isr: 1,
                offline: 0
            }
        );
        assert_eq!(
            on(2, true),
            PartitionHealth {
                under_replicated: 1,
                under_min_isr: 1,
                offline: 1
            }
        );
        assert_eq!(on(3, false), PartitionHealth::default());
    }
}
