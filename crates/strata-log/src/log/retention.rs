//! Removing a prefix of the log: `retention.ms/bytes`, local retention of a
//! tiered log, and DeleteRecords. The log start is raised and segments
//! unmapped under the writer lock; retention persists the checkpoint and
//! unlinks the files afterwards under `files`, so appends never wait for it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::LogError;
use crate::producer_snapshot;
use crate::segment::Segment;

use super::Log;

impl Log {
    /// DeleteRecords: raises the log start offset to `offset` (-1 = the log end)
    /// and persists it, then deletes the segments wholly below it (rolling first if
    /// that includes the active one). Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let log_end = self.log_end.load(Ordering::Acquire);
        let target = if offset == -1 { log_end } else { offset };
        if target < 0 || target > log_end {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start: self.log_start_offset(),
                log_end,
            });
        }
        if target <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        self.log_start.store(target, Ordering::Release);
        w.producers.remove_below(target);
        self.write_checkpoint(&w)?;
        self.update_epochs(|c| c.truncate_from_start(target))?;
        let active = self.active();
        if active.size() > 0 && active.next_offset() <= target {
            let now_ms = w.clock_ms;
            self.roll_locked(&mut w, log_end, now_ms)?;
        }
        let segments = self.snapshot();
        let doomed = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= target)
            .count();
        self.delete_prefix(&segments, doomed)?;
        Ok(target)
    }

    /// Deletes old segments by `retention.ms` (a segment's largest timestamp is
    /// older than now - retention.ms) and `retention.bytes` (the log is larger
    /// than that without the segment), and segments below the log start offset.
    /// Never deletes the active segment. Returns the number of segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let segments = self.snapshot();
        let inactive = &segments[..segments.len().saturating_sub(1)];
        let log_start = self.log_start_offset();
        let below_start = segments
            .windows(2)
            .take_while(|p| p[1].base_offset() <= log_start)
            .count();
        let by_time = if w.config.retention_ms < 0 {
            0
        } else {
            let mut n = 0;
            for s in inactive {
                if now_ms.saturating_sub(largest_timestamp(s)) <= w.config.retention_ms {
                    break;
                }
                n += 1;
            }
            n
        };
        let by_size = breached_by_size(
            self.size_bytes(),
            inactive.iter().map(|s| s.size()),
            w.config.retention_bytes,
        );
        let doomed = below_start.max(by_time).max(by_size);
        if doomed == 0 {
            return Ok(0);
        }
        let new_start = segments[doomed].base_offset().max(log_start);
        let raised = new_start > log_start;
        if raised {
            self.log_start.store(new_start, Ordering::Release);
            w.producers.remove_below(new_start);
            let mut epochs = self.epochs.read().clone();
            if epochs.truncate_from_start(new_start) {
                // Rare (the start passed an epoch boundary): the start is persisted
                // before the epochs that no longer cover it, under the writer lock
                // like every change of the epoch cache.
                self.write_checkpoint(&w)?;
                self.store_epochs(epochs)?;
            }
        }
        let doomed = self.unmap_prefix(&segments, doomed);
        drop(w);
        self.delete_unmapped(&segments, doomed, raised)?;
        Ok(doomed)
    }

    /// Local retention of a tiered log (`local.retention.ms/bytes`): deletes the
    /// oldest inactive segments that are *both* wholly below `tiered_up_to` (the
    /// remote tier's end offset, which the caller read from a published manifest)
    /// *and* beyond local retention (largest timestamp older than `now - local_ms`,
    /// or the log larger than `local_bytes` without them; -1 disables either), plus
    /// segments below the log start offset. Raises and persists the log start
    /// offset, which for a tiered log is the *local* log start offset. Never deletes
    /// the active segment or any segment ending above `tiered_up_to`, so no local
    /// data leaves the disk before a durable remote copy exists. A crash in the
    /// middle leaves a raised start offset and possibly files that the next open
    /// deletes, as with [`Log::enforce_retention`]. Returns the segments deleted.
    pub fn enforce_local_retention(
        &self,
        now_ms: i64,
        tiered_up_to: i64,
        local_ms: i64,
        local_bytes: i64,
    ) -> Result<usize, LogError> {
        let w = self.writer.lock();
        self.check_open(&w)?;
        let segments = self.snapshot();
        let log_start = self.log_start_offset();
        let eligible: Vec<&Arc<Segment>> = segments[..segments.len().saturating_sub(1)]
            .iter()
            .take_while(|s| s.next_offset() <= tiered_up_to)
            .collect();
        let below_start = segments
            .windows(2)
            .take_while(|p| p[1].base_offset() <= log_start)
            .count();
        let by_time = if local_ms < 0 {
            0
        } else {
            eligible
                .iter()
                .take_while(|s| now_ms.saturating_sub(largest_timestamp(s)) > local_ms)
                .count()
        };
        let by_size = breached_by_size(
            self.size_bytes(),
            eligible.iter().map(|s| s.size()),
            local_bytes,
        );
        let doomed = below_start.max(by_time).max(by_size);
        if doomed == 0 {
            return Ok(0);
        }
        let new_start = segments[doomed].base_offset().max(log_start);
        let raised = new_start > log_start;
        if raised {
            self.log_start.store(new_start, Ordering::Release);
        }
        let doomed = self.unmap_prefix(&segments, doomed);
        drop(w);
        self.delete_unmapped(&segments, doomed, raised)?;
        Ok(doomed)
    }

    /// Removes the first `n` segments (never the last) from the map, then their
    /// files. Readers holding them keep working on the open descriptors.
    fn delete_prefix(&self, segments: &[Arc<Segment>], n: usize) -> Result<(), LogError> {
        let n = self.unmap_prefix(segments, n);
        let files = self.files.lock();
        self.delete_files_of(&files, segments, n)
    }

    /// Removes the first `n` segments (never the last) from the map: no new read
    /// finds them. Returns how many were removed. Called under the writer lock.
    fn unmap_prefix(&self, segments: &[Arc<Segment>], n: usize) -> usize {
        let n = n.min(segments.len().saturating_sub(1));
        let mut map = self.segments.write();
        let mut txn = self.txn.write();
        for s in &segments[..n] {
            map.remove(&s.base_offset());
            // Its `.txnindex` file goes with its other files.
            txn.forget(s.base_offset());
        }
        n
    }

    /// Retention's second half, after the writer lock is released: persists a raised
    /// log start offset, then deletes the files of the `n` segments unmapped. A crash
    /// in between leaves files below the persisted start, which the next open deletes.
    /// Nothing is done once the log is closed (its directory may be gone or reused).
    fn delete_unmapped(
        &self,
        segments: &[Arc<Segment>],
        n: usize,
        raised: bool,
    ) -> Result<(), LogError> {
        let files = self.files.lock();
        if *files {
            return Ok(());
        }
        if raised {
            self.write_checkpoint_files(&files)?;
        }
        self.delete_files_of(&files, segments, n)
    }

    fn delete_files_of(
        &self,
        _files: &bool,
        segments: &[Arc<Segment>],
        n: usize,
    ) -> Result<(), LogError> {
        for s in &segments[..n] {
            tracing::info!(file = %s.log_path().display(), "deleting segment");
            s.delete_files()?;
        }
        if let Some(first_kept) = segments.get(n) {
            producer_snapshot::delete_below(&self.dir, first_kept.base_offset())?;
        }
        Ok(())
    }
}

/// Kafka's size rule (`deleteRetentionSizeBreachedSegments`, for `retention.bytes` and
/// `local.retention.bytes` alike): how many of the oldest segments, of `sizes`, go while the
/// log of `total` bytes stays at least `limit` bytes without them. A negative limit keeps all.
pub(crate) fn breached_by_size(total: u64, sizes: impl Iterator<Item = u64>, limit: i64) -> usize {
    if limit < 0 {
        return 0;
    }
    let mut excess = total as i64 - limit;
    sizes
        .take_while(|&size| {
            excess -= size as i64;
            excess >= 0
        })
        .count()
}

/// Kafka's largest timestamp of a segment: its max record timestamp, or the
/// file's modification time if no record had one.
pub(super) fn largest_timestamp(segment: &Segment) -> i64 {
    if let Some(m) = segment.max_timestamp().filter(|m| m.timestamp >= 0) {
        return m.timestamp;
    }
    std::fs::metadata(segment.log_path())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| d.as_millis() as i64)
}
