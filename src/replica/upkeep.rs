//! Disk upkeep of the hosted logs, as Kafka's `LogManager` schedules it: retention, time-based
//! rolls and flushes, and the expiration of idle producer state. Each is a pass over the partitions that asks the log to decide from
//! `now`; `broker::tasks` runs the passes on the blocking pool, off the request workers.

use super::ReplicaManager;

impl ReplicaManager {
    /// Whether `topic`'s partitions are tiered on this node (the topic enables remote storage
    /// and the node has a remote tier).
    pub fn is_tiered(&self, topic: &str) -> bool {
        self.remote.is_some()
            && self
                .metadata
                .topic(topic)
                .is_some_and(|t| t.config.remote_storage_enable)
    }

    /// Deletes segments past `retention.ms` / `retention.bytes`. Tiered logs are skipped:
    /// local retention in the RemoteLogManager trims them, and never deletes a segment the
    /// remote tier does not hold.
    pub fn enforce_retention(&self) {
        let now = crate::now_ms();
        for p in self.all_partitions() {
            if self.is_tiered(&p.tp.topic) {
                continue;
            }
            match p.log.enforce_retention(now) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(tp = %p.tp, segments = n, log_start_offset = p.log.log_start_offset(), "retention deleted segments")
                }
                Err(e) => tracing::warn!(tp = %p.tp, error = %e, "retention failed; will retry"),
            }
        }
    }

    /// Drops the producer state idle past `producer.id.expiration.ms` (no ongoing transaction,
    /// last write older) on every hosted log, as Kafka's `removeExpiredProducers`.
    pub fn expire_producers(&self) {
        let now = crate::now_ms();
        let expiration = i64::from(self.metadata.config().txn.producer_id_expiration_ms);
        for p in self.all_partitions() {
            match p.log.remove_expired_producers(now, expiration) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(tp = %p.tp, producers = n, "expired idle producer state"),
                Err(e) => {
                    tracing::warn!(tp = %p.tp, error = %e, "producer expiration failed; will retry")
                }
            }
        }
    }

    /// Rolls segments older than `segment.ms` and flushes by `flush.ms`.
    pub fn roll_and_flush(&self) {
        let now = crate::now_ms();
        for p in self.all_partitions() {
            if let Err(e) = p.log.roll_if_due(now) {
                tracing::warn!(tp = %p.tp, error = %e, "time-based roll failed; will retry");
            }
            if let Err(e) = p.log.flush_if_due(now) {
                tracing::warn!(tp = %p.tp, error = %e, "flush failed; will retry");
            }
        }
    }
}
