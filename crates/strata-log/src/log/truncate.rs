//! Follower truncation: `truncate_to` (Kafka's `truncateTo`) and
//! `truncate_fully_and_start_at`, ordered so that a crash at any step leaves a
//! log that open recovers to a prefix of the original, plus the crash points
//! the tests use to prove it.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::checkpoint;
use crate::error::LogError;
use crate::leader_epoch::{self, LeaderEpochCache};
use crate::producer_snapshot;
use crate::producer_state::ProducerStateManager;
use crate::segment::Segment;

use super::{Log, Writer};

/// A point in a truncation where tests may simulate a crash (a no-op otherwise).
#[cfg(test)]
fn crash_point(w: &mut Writer, dir: &Path) -> Result<(), LogError> {
    match w.crash_at.as_mut() {
        Some(0) => {
            w.crash_at = None;
            Err(LogError::Failed {
                dir: dir.to_path_buf(),
                reason: "simulated crash".into(),
            })
        }
        Some(n) => {
            *n -= 1;
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(not(test))]
fn crash_point(_: &mut Writer, _: &Path) -> Result<(), LogError> {
    Ok(())
}

impl Log {
    /// Tests: makes the next truncation stop (with an error, leaving the log
    /// `Failed`) at its `step`-th step, as if the process were killed there.
    #[cfg(test)]
    pub(crate) fn crash_truncation_at(&self, step: u32) {
        self.writer.lock().crash_at = Some(step);
    }

    /// Kafka's `truncateTo`: removes every batch at and above `offset` (a batch
    /// holding `offset` goes whole, so the new end may be below `offset`) and
    /// returns the new log end offset. A no-op if `offset` >= the log end. If
    /// `offset` is below the first segment, this is
    /// [`Log::truncate_fully_and_start_at`]`(offset)`.
    ///
    /// Order, chosen so that a crash (kill -9) at any point leaves files that
    /// `open` recovers to a prefix of the original log: (1) the recovery point
    /// (and the log start, if above) is lowered to at most the new end and
    /// persisted, so open re-validates everything from the cut on, and queued
    /// background fsyncs stop counting; (2) the new end is published to readers;
    /// (3) the segments above the cut leave the map and their files are
    /// deleted, highest first; (4) the segment holding the cut drops its index
    /// entries past it and is cut at the batch boundary, then fsynced, and the
    /// directory fsynced; (5) producer snapshots past the end are deleted and
    /// the producer state rebuilt from the latest snapshot at or below the end
    /// plus the headers after it; (6) the leader epoch cache drops the epochs
    /// starting at or after the end (open does the same if a crash came first).
    /// On an I/O error the log refuses writes until reopened.
    pub fn truncate_to(&self, offset: i64) -> Result<i64, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let log_end = self.log_end.load(Ordering::Acquire);
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start: self.log_start_offset(),
                log_end,
            });
        }
        if offset >= log_end {
            return Ok(log_end);
        }
        let first_base = self.snapshot().first().map_or(0, |s| s.base_offset());
        let result = if offset < first_base {
            self.truncate_fully_locked(&mut w, offset).map(|()| offset)
        } else {
            self.truncate_locked(&mut w, offset)
        };
        if let Err(e) = &result {
            tracing::error!(dir = %self.dir.display(), offset, error = %e, "truncation failed; refusing writes until the log is reopened");
            w.failed = Some(e.to_string());
        }
        result
    }

    fn truncate_locked(&self, w: &mut Writer, offset: i64) -> Result<i64, LogError> {
        let segments = self.snapshot();
        let holding_at = segments
            .iter()
            .rposition(|s| s.base_offset() <= offset)
            .unwrap_or(0);
        let holding = Arc::clone(&segments[holding_at]);
        let cut = holding.cut_point(offset)?;
        // The log ends at the first batch reaching `offset`, or where the
        // segment ends; never above `offset`, which a cleaned log's gap allows
        // (that batch may start past `offset`; the segment may end past its
        // last batch).
        let new_end = cut
            .map_or(holding.next_offset(), |(_, base)| base)
            .min(offset);
        tracing::info!(dir = %self.dir.display(), offset, old_end = self.log_end_offset(), new_end, "truncating log");
        // (1) Nothing at or above the cut may count as recovered, and the log
        // start may not stay past the end (open would discard the whole log).
        if self.log_start_offset() > new_end {
            self.log_start.store(new_end, Ordering::Release);
        }
        let recovery_point = self.recovery_point().min(new_end);
        self.set_recovery_point(w, recovery_point);
        w.synced_up_to = Arc::new(AtomicI64::new(recovery_point));
        self.write_checkpoint(w)?;
        // A cleaning pass under way aborts; the first dirty offset follows the end.
        self.cleaner_truncated(new_end)?;
        crash_point(w, &self.dir)?;
        // (2) Readers stop at the new end from now on.
        self.log_end.store(new_end, Ordering::Release);
        // (3) Whole segments above the cut, highest first: every intermediate
        // state on disk is a prefix of the log.
        let above = &segments[holding_at + 1..];
        {
            let mut map = self.segments.write();
            for s in above {
                map.remove(&s.base_offset());
            }
        }
        for s in above.iter().rev() {
            tracing::info!(file = %s.log_path().display(), "deleting segment above the truncation point");
            s.delete_files()?;
            crash_point(w, &self.dir)?;
        }
        // (4) The segment holding the cut becomes the active one.
        if let Some((position, _)) = cut {
            // Reads in flight (which may have loaded the old end and size)
            // finish before the files are cut.
            holding.truncate_at(position, new_end, w.clock_ms, &self.cut)?;
        } else if holding.next_offset() > new_end {
            holding.set_next_offset(new_end);
        }
        holding.set_limits(w.config.index_limits());
        checkpoint::sync_dir(&self.dir)?;
        crash_point(w, &self.dir)?;
        // (5) Producer state for the shorter log.
        // The aborted-transaction index loses the markers cut off, and those
        // of the replayed range are indexed again.
        let (replayed, ranges) = {
            let map = self.segments.read();
            let replayed = producer_snapshot::load(&self.dir, &map, new_end, true)?;
            (replayed, super::txn::ranges(&map))
        };
        w.producers = replayed.state;
        self.segments_changed(w)?;
        {
            let mut index = self.txn.write();
            super::txn::index_replayed(
                &self.dir,
                &mut index,
                &ranges,
                replayed.from,
                &replayed.completed,
            )?;
        }
        self.publish_unstable(w);
        crash_point(w, &self.dir)?;
        // (6) Epochs that started past the end are gone with their batches.
        self.update_epochs(|c| c.truncate_from_end(new_end))?;
        Ok(new_end)
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every segment and restarts
    /// the log empty at `offset` (log start = log end = recovery point =
    /// `offset`), as a follower does when the leader's log start is past its
    /// end. Clears the producer state (and its snapshots) and the leader epoch
    /// cache. Durable on return.
    ///
    /// Order, for crashes: the epoch cache file and producer snapshots are
    /// removed first (open rebuilds both from whatever log remains), then the
    /// checkpoint (log start and recovery point = `offset`) is written, then
    /// the segments are deleted highest first and the new empty segment is
    /// created. Open after a crash in between finds either a prefix of the old
    /// log (if `offset` was below it) or, because segments below the persisted
    /// log start are discarded, the empty log at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start: self.log_start_offset(),
                log_end: self.log_end_offset(),
            });
        }
        let result = self.truncate_fully_locked(&mut w, offset);
        if let Err(e) = &result {
            tracing::error!(dir = %self.dir.display(), offset, error = %e, "truncation failed; refusing writes until the log is reopened");
            w.failed = Some(e.to_string());
        }
        result
    }

    fn truncate_fully_locked(&self, w: &mut Writer, offset: i64) -> Result<(), LogError> {
        tracing::info!(dir = %self.dir.display(), offset, old_end = self.log_end_offset(), "truncating log fully");
        leader_epoch::remove(&self.dir)?;
        *self.epochs.write() = LeaderEpochCache::default();
        crash_point(w, &self.dir)?;
        producer_snapshot::delete_below(&self.dir, i64::MAX)?;
        w.producers = ProducerStateManager::default();
        self.publish_unstable(w);
        w.synced_up_to = Arc::new(AtomicI64::new(offset));
        self.set_recovery_point(w, offset);
        w.unflushed_messages = 0;
        // Readers see the empty log at `offset` from now on; those in flight
        // keep reading the old segments through their open descriptors.
        self.log_end.store(offset, Ordering::Release);
        self.log_start.store(offset, Ordering::Release);
        self.write_checkpoint(w)?;
        self.cleaner_truncated(offset)?;
        crash_point(w, &self.dir)?;
        let segments = self.snapshot();
        for s in segments.iter().rev() {
            tracing::info!(file = %s.log_path().display(), "deleting segment");
            s.delete_files()?;
            crash_point(w, &self.dir)?;
        }
        let new = Arc::new(Segment::create(
            &self.dir,
            offset,
            w.config.index_limits(),
            w.clock_ms,
        )?);
        new.sync()?;
        {
            let mut map = self.segments.write();
            map.clear();
            map.insert(offset, new);
        }
        self.segments_changed(w)?;
        checkpoint::sync_dir(&self.dir)?;
        crash_point(w, &self.dir)?;
        leader_epoch::write(&self.dir, &LeaderEpochCache::default())
    }
}
