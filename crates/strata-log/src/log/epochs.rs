//! The leader epoch cache of a `Log`: changing it (file first, then the
//! in-memory copy readers see), answering OffsetForLeaderEpoch, and loading
//! or rebuilding it when the log is opened.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::LogError;
use crate::leader_epoch::{self, LeaderEpochCache};
use crate::segment::Segment;

use super::Log;

impl Log {
    /// Applies `change` to a copy of the leader epoch cache and, if it says it
    /// changed anything, writes the file and then publishes the copy. Called
    /// with the writer lock held.
    pub(super) fn update_epochs(
        &self,
        change: impl FnOnce(&mut LeaderEpochCache) -> bool,
    ) -> Result<(), LogError> {
        let mut cache = self.epochs.read().clone();
        if change(&mut cache) {
            self.store_epochs(cache)?;
        }
        Ok(())
    }

    /// Persists `cache` as the leader epoch file, then serves it. Under the writer lock.
    pub(super) fn store_epochs(&self, cache: LeaderEpochCache) -> Result<(), LogError> {
        leader_epoch::write(&self.dir, &cache)?;
        *self.epochs.write() = cache;
        Ok(())
    }

    /// The latest leader epoch in the leader epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.read().latest_epoch()
    }

    /// Kafka's `endOffsetFor(requestedEpoch)` for OffsetForLeaderEpoch: the
    /// latest epoch ends at the log end offset; an older epoch answers the
    /// largest cached epoch <= `requested` with the start offset of the first
    /// epoch above it; an epoch older than the whole cache answers `requested`
    /// with the first cached start offset (as Kafka); `None` (the caller
    /// answers UNDEFINED_EPOCH_OFFSET) for `requested` < 0, an empty cache or an
    /// epoch above the latest.
    pub fn end_offset_for_epoch(&self, requested: i32) -> Option<(i32, i64)> {
        let cache = self.epochs.read();
        cache.end_offset_for(requested, self.log_end_offset())
    }

    /// The leader epoch cache's `(epoch, start offset)` entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs.read().entries().to_vec()
    }
}

/// The leader epoch cache of an opened log: the checkpoint file if readable,
/// otherwise rebuilt from the `partitionLeaderEpoch` of every batch header
/// (epochs < 0 mean "none") and written. Entries at or past the log end (a
/// crash after the file was written but before the batches were) are dropped.
pub(super) fn load_epochs(
    dir: &Path,
    segments: &BTreeMap<i64, Arc<Segment>>,
    log_end: i64,
) -> Result<LeaderEpochCache, LogError> {
    let (mut cache, mut dirty) = match leader_epoch::read(dir)? {
        Some(cache) => (cache, false),
        None => {
            let mut cache = LeaderEpochCache::default();
            for segment in segments.values() {
                segment.for_each_header(segment.base_offset(), |h| {
                    cache.assign(h.partition_leader_epoch, h.base_offset);
                })?;
            }
            tracing::debug!(dir = %dir.display(), epochs = cache.entries().len(), "rebuilt the leader epoch cache from the log");
            (cache, true)
        }
    };
    dirty |= cache.truncate_from_end(log_end);
    if dirty {
        leader_epoch::write(dir, &cache)?;
    }
    Ok(cache)
}
