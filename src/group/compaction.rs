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
//! - Replay (`OffsetsTopic::replay`, `store.rs`) starts at the log start and is
//!   "last write wins, tombstones delete"; the fresh copy holds the same values as the
//!   records it supersedes, so replaying from either gives the same state.
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
//!
//! This file decides when and what to rewrite; the appends and the move of the log
//! start are `OffsetsTopic::rewrite` (`store.rs`). Dependencies: `driver.rs` (the
//! coordinator's state), `store.rs` and `codec.rs`.

use super::codec::{self, Key};
use super::driver::{GroupCoordinator, Inner};
use super::store::Record;
use super::GroupError;

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
        for p in self.store.led_partitions() {
            let base = self
                .inner
                .lock()
                .compacted_size
                .get(&p.index)
                .copied()
                .unwrap_or(0);
            if p.size_bytes.saturating_sub(base) <= 2 * p.segment_bytes {
                continue;
            }
            if let Err(e) = self.compact(p.index) {
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
            .store
            .partitions()
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let part = self
            .store
            .partition(index)
            .map_err(|e| storage(e.to_string()))?;
        let mut inner = self.inner.lock();
        let records = live_records(&inner, index, partitions);
        let rewrite = self.store.rewrite(&part, &records).map_err(storage)?;
        inner.compacted_size.insert(index, rewrite.bytes_after);
        drop(inner);
        let done = Compaction {
            partition: index,
            records: records.len(),
            log_start_before: rewrite.log_start_before,
            log_start_after: rewrite.log_start_after,
            bytes_before: rewrite.bytes_before,
            bytes_after: rewrite.bytes_after,
        };
        tracing::info!(
            partition = index,
            records = done.records,
            log_start = done.log_start_after,
            bytes_before = done.bytes_before,
            bytes_after = done.bytes_after,
            "compacted __consumer_offsets"
        );
        Ok(done)
    }
}

/// Every live key of the groups stored in partition `index`, with its current value:
/// group metadata first, then committed offsets, groups in id order.
fn live_records(inner: &Inner, index: i32, partitions: i32) -> Vec<Record> {
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
