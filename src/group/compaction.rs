//! Compaction of `__consumer_offsets`, owned by the group coordinator.
//!
//! Kafka's log cleaner rewrites a compacted topic keeping the last value of each key.
//! Strata gets the same result without a cleaner: the coordinator already holds the
//! complete live state of every partition in memory (the last committed offset of each
//! group, topic and partition, and the last group metadata value written for each
//! group, byte for byte). A pass over one partition:
//!
//! 1. **Rewrite**: under the coordinator mutex (so no other write to the topic
//!    interleaves), appends a fresh copy of every live key of the groups that map to
//!    that partition, with Kafka's record schemas. Deleted and expired keys are simply
//!    not rewritten, so their tombstones disappear with the old segments.
//! 2. **Advance**: `Log::delete_records_before(first offset of the fresh copy)` (the
//!    log end when the partition has no live key). It persists the new log start,
//!    then deletes the segments wholly below it.
//!
//! # Contracts
//!
//! - Replay (`driver.rs`) starts at the log start and is "last write wins, tombstones
//!   delete"; the fresh copy holds the same values as the records it supersedes, so
//!   replaying from either gives the same state.
//! - **Crash safety**: the log start moves only after the whole fresh copy is
//!   appended. A crash during or after step 1 and before step 2 leaves the old records
//!   plus (part of) a duplicate copy, which replay absorbs. A crash during step 2 is
//!   the log's own contract (the log start checkpoint is written before any segment
//!   is deleted).
//! - **Trigger**: `offsets.topic.segment.bytes` is the segment size of the topic (set
//!   when it is created). A partition is compacted when it grew by more than two
//!   segments since its last compaction (since startup for the first), checked every
//!   `offsets.retention.check.interval.ms` after the expiry pass. Disk and replay time
//!   are so bounded by the live state plus about three segments.

use bytes::Bytes;

use super::codec::{self, Key};
use super::driver::{GroupCoordinator, Inner, OFFSETS_TOPIC};
use super::GroupError;
use crate::broker::now_ms;

/// Records per batch of the fresh copy, so that one batch stays far below
/// `max.message.bytes` whatever the state's size.
const BATCH_RECORDS: usize = 500;

/// The outcome of one pass over one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    pub partition: i32,
    /// Live keys rewritten.
    pub records: usize,
    pub log_start_before: i64,
    pub log_start_after: i64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl GroupCoordinator {
    /// Compacts every partition of `__consumer_offsets` that grew by more than two
    /// segments since its last compaction. Failures are logged; the next check retries.
    pub(super) fn compact_due(&self) {
        let Some(topic) = self.broker.topic(OFFSETS_TOPIC) else {
            return;
        };
        for p in topic.partitions.iter().filter(|p| p.is_leader()) {
            let segment = p.log.config().segment_bytes.max(1);
            let size = p.log.size_bytes();
            let base = self
                .inner
                .lock()
                .compacted_size
                .get(&p.tp.partition)
                .copied()
                .unwrap_or(0);
            if size.saturating_sub(base) <= 2 * segment {
                continue;
            }
            if let Err(e) = self.compact(p.tp.partition) {
                tracing::warn!(error = %e, "could not compact __consumer_offsets");
            }
        }
    }

    /// One compaction pass over partition `index` of `__consumer_offsets`.
    pub fn compact(&self, index: i32) -> Result<Compaction, GroupError> {
        let storage = |reason: String| GroupError::Storage {
            group: String::new(),
            partition: index,
            reason,
        };
        let partitions = self
            .broker
            .topic(OFFSETS_TOPIC)
            .map(|t| t.meta.partitions)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let part = self
            .broker
            .partition(OFFSETS_TOPIC, index)
            .map_err(|e| storage(e.to_string()))?;
        let mut inner = self.inner.lock();
        let log_start_before = part.log.log_start_offset();
        let bytes_before = part.log.size_bytes();
        let records = live_records(&inner, index, partitions);
        let now = now_ms();
        let mut first = None;
        for chunk in records.chunks(BATCH_RECORDS) {
            let batch = codec::batch(chunk, now).map_err(storage)?;
            let info = part
                .append(&batch, now)
                .map_err(|e| storage(e.to_string()))?;
            first.get_or_insert(info.base_offset);
        }
        let target = first.unwrap_or_else(|| part.log.log_end_offset());
        let log_start_after = part
            .log
            .delete_records_before(target)
            .map_err(|e| storage(e.to_string()))?;
        let bytes_after = part.log.size_bytes();
        inner.compacted_size.insert(index, bytes_after);
        drop(inner);
        let done = Compaction {
            partition: index,
            records: records.len(),
            log_start_before,
            log_start_after,
            bytes_before,
            bytes_after,
        };
        tracing::info!(
            partition = index,
            records = done.records,
            log_start = log_start_after,
            bytes_before,
            bytes_after,
            "compacted __consumer_offsets"
        );
        Ok(done)
    }
}

/// Every live key of the groups stored in partition `index`, with its current value:
/// group metadata first, then committed offsets, groups in id order.
fn live_records(inner: &Inner, index: i32, partitions: i32) -> Vec<(Bytes, Option<Bytes>)> {
    let mut groups: Vec<String> = inner
        .offsets
        .group_ids()
        .into_iter()
        .chain(inner.group_meta.keys().cloned())
        .filter(|g| codec::partition_for(g, partitions) == index)
        .collect();
    groups.sort();
    groups.dedup();
    let mut out = Vec::new();
    for group in groups {
        if let Some(meta) = inner.group_meta.get(&group) {
            let key = codec::encode_key(&Key::Group {
                group: group.clone(),
            });
            out.push((key, Some(meta.clone())));
        }
        for (topic, partition, v) in inner.offsets.all(&group) {
            let key = codec::encode_key(&Key::Offset {
                group: group.clone(),
                topic: topic.to_string(),
                partition,
            });
            out.push((key, Some(codec::encode_offset(v))));
        }
    }
    out
}
