//! Partition reassignment as the broker proposes it (AlterPartitionReassignments). The rules
//! are the controller's (`strata_controller::reassign`); this node then follows the committed
//! metadata like any other change: it opens and fetches the replicas added here and deletes
//! the ones moved away (`ReplicaManager::apply_topic`).

use strata_controller::MetadataCommand;

use super::{Broker, BrokerError};

impl Broker {
    /// Starts (`Some(target)`), replaces or cancels (`None`) the reassignment of one partition.
    pub async fn alter_reassignment(
        &self,
        topic: &str,
        partition: i32,
        target: Option<Vec<i32>>,
    ) -> Result<(), BrokerError> {
        self.propose_and_apply(MetadataCommand::AlterPartitionReassignment {
            topic: topic.to_string(),
            partition,
            target,
        })
        .await?;
        Ok(())
    }
}

impl Broker {
    /// Partitions this node leads that are being reassigned, and the local-log bytes their
    /// adding replicas still have to copy ([`bytes_left`]), for the metrics.
    pub fn reassignment_progress(&self) -> (usize, u64) {
        let node = self.node_id();
        let mut partitions = 0;
        let mut bytes = 0;
        for part in self.replicas.all_partitions() {
            let (meta, ends) = part.with_replica(|r| {
                let ends: Vec<i64> = r
                    .meta
                    .adding
                    .iter()
                    .map(|a| r.followers.get(a).map_or(-1, |p| p.log_end))
                    .collect();
                (r.meta.clone(), ends)
            });
            if meta.leader != node || !meta.is_reassigning() {
                continue;
            }
            partitions += 1;
            let log = LocalLog {
                bytes: part.log.size_bytes(),
                start: part.log.log_start_offset(),
                end: part.log.log_end_offset(),
            };
            bytes += ends.iter().map(|e| bytes_left(log, *e)).sum::<u64>();
        }
        (partitions, bytes)
    }
}

/// The leader's local log: its size and offsets.
#[derive(Clone, Copy, Debug)]
pub struct LocalLog {
    pub bytes: u64,
    pub start: i64,
    pub end: i64,
}

/// What a follower whose log ends at `follower_end` (-1: not heard from) still has to copy:
/// the share of the leader's local bytes past that offset. A replica of a tiered partition
/// starts at the local log start (older records stay in the remote tier), so offsets below it
/// count as the whole local log, never more.
pub fn bytes_left(log: LocalLog, follower_end: i64) -> u64 {
    let span = log.end - log.start;
    if span <= 0 {
        return 0;
    }
    let from = follower_end.clamp(log.start, log.end);
    ((log.bytes as u128 * (log.end - from) as u128) / span as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_left_is_the_share_of_the_local_tail_not_yet_copied() {
        let log = LocalLog {
            bytes: 1000,
            start: 100,
            end: 200,
        };
        assert_eq!(bytes_left(log, -1), 1000, "not heard from: the whole tail");
        assert_eq!(
            bytes_left(log, 0),
            1000,
            "below the local start: the tail only"
        );
        assert_eq!(bytes_left(log, 150), 500);
        assert_eq!(bytes_left(log, 200), 0);
        assert_eq!(bytes_left(log, 300), 0);
        let empty = LocalLog {
            bytes: 0,
            start: 5,
            end: 5,
        };
        assert_eq!(bytes_left(empty, -1), 0);
    }
}
