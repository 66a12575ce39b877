//! Replicas that moved away from this node (a decommission drained it, or the controller
//! otherwise dropped it from a partition's replicas): it stops following the leader, wakes the
//! fetches waiting on the partition (they answer NOT_LEADER_OR_FOLLOWER and clients refresh
//! their metadata) and deletes the local copy. Unlike a topic deletion, the partition's data in
//! the remote tier belongs to the partition, not to this replica, and is left alone.

use std::sync::Arc;

use super::partition::Partition;
use super::{delete_partition_dir, ReplicaManager};

impl ReplicaManager {
    pub(super) fn drop_moved(&self, moved: Vec<Arc<Partition>>) {
        for p in moved {
            self.fetchers.unfollow(&p.tp);
            p.notify_deleted();
            let dir = self.partition_dir(&p.tp);
            match delete_partition_dir(&dir) {
                Ok(()) => {
                    tracing::info!(tp = %p.tp, "replica moved to other brokers; deleted the local copy")
                }
                Err(e) => {
                    tracing::warn!(tp = %p.tp, dir = %dir.display(), error = %e, "replica moved away but its directory could not be deleted; remove it by hand")
                }
            }
        }
    }
}

impl ReplicaManager {
    /// Deletes the partition directories in `log.dirs` that this node no longer hosts: a
    /// replica moved away, or a topic deleted, while the node was down. Run at startup, once
    /// the first image (which a restarted node of a cluster has caught up to) is applied, so
    /// a directory is stray only if the committed metadata does not place that partition
    /// here; otherwise it would stay forever, and a later move back to this node would open
    /// its outdated log. Remote data is left alone, as for a move while running.
    pub fn delete_stray_logs(&self, image: &strata_controller::MetadataImage) {
        let node = self.metadata.node_id();
        for dir in self.metadata.config().log_dirs.iter() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some((topic, partition)) =
                    name.to_str().and_then(strata_log::parse_partition_dir_name)
                else {
                    continue;
                };
                if !entry.path().is_dir()
                    || self
                        .topic_partitions(topic)
                        .iter()
                        .any(|p| p.tp.partition == partition)
                {
                    continue;
                }
                let placed_here = image.topics.get(topic).is_some_and(|meta| {
                    partition < meta.partitions
                        && self
                            .metadata
                            .partition_meta(meta, partition)
                            .replicas
                            .contains(&node)
                });
                if placed_here {
                    continue;
                }
                match delete_partition_dir(&entry.path()) {
                    Ok(()) => tracing::info!(
                        topic,
                        partition,
                        "deleted a partition log this node no longer hosts (moved away or deleted while it was down)"
                    ),
                    Err(e) => tracing::warn!(
                        topic,
                        partition,
                        dir = %entry.path().display(),
                        error = %e,
                        "a partition log this node no longer hosts could not be deleted; remove it by hand"
                    ),
                }
            }
        }
    }
}
