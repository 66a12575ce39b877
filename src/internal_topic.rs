//! The broker's own compacted topics (`__consumer_offsets`, `__transaction_state`) as
//! their coordinators see them: which partition a key lives in, the replicas of the topic
//! hosted on this node, and each partition's leader. The group and transaction stores
//! both build on [`InternalTopic`]; what they write differs, these lookups do not.

use std::sync::Arc;

use crate::metadata::MetadataCache;
use crate::replica::{Partition, ReplicaError, ReplicaManager};

/// Kafka's partition of an internal topic for a key (a group id or a transactional id):
/// `Utils.abs(key.hashCode) % partitions`, with Java's `String.hashCode`.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// One internal topic, by name, over the node's metadata and replicas.
pub struct InternalTopic {
    name: &'static str,
    pub metadata: Arc<MetadataCache>,
    pub replicas: Arc<ReplicaManager>,
}

impl InternalTopic {
    pub fn new(
        name: &'static str,
        metadata: Arc<MetadataCache>,
        replicas: Arc<ReplicaManager>,
    ) -> InternalTopic {
        InternalTopic {
            name,
            metadata,
            replicas,
        }
    }

    /// The topic's partition count, if the topic exists.
    pub fn partitions(&self) -> Option<i32> {
        self.metadata.topic(self.name).map(|t| t.meta.partitions)
    }

    /// The partition of `key`, if the topic exists and has partitions.
    pub fn partition_of(&self, key: &str) -> Option<i32> {
        let n = self.partitions()?;
        (n > 0).then(|| partition_for(key, n))
    }

    /// The replica of partition `index` hosted here.
    pub fn partition(&self, index: i32) -> Result<Arc<Partition>, ReplicaError> {
        self.replicas.partition(self.name, index)
    }

    /// The replicas of the topic hosted here.
    pub fn hosted(&self) -> Vec<Arc<Partition>> {
        self.replicas.topic_partitions(self.name)
    }

    /// The leader of partition `index`, from the applied metadata (-1: none).
    pub fn leader_of(&self, index: i32) -> Option<i32> {
        let topic = self.metadata.topic(self.name)?;
        Some(self.metadata.partition_meta(&topic.meta, index).leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_partitioning() {
        // Java: "test-group".hashCode() == 627841412, "g".hashCode() == 103.
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("g", 50), 3);
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
