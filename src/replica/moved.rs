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
