//! Log compaction on a `Log`: planning a pass (the dirty range, under the
//! writer lock for a consistent view), running it (`cleaner::pass`, no lock
//! held: appends and reads go on) and committing it. See `cleaner` for what a
//! pass does and its crash contract.
//!
//! Locking: `cleaner.pass` makes passes on one log take turns; `close` raises
//! `cleaner.closing` (the pass stops at its next batch) and waits for it
//! before it takes the writer lock. Truncations bump `cleaner.generation`; a
//! pass that sees it move aborts. The commit holds the writer lock while it
//! checks that nothing it replaces changed (same generation, every replaced
//! segment still mapped: retention and DeleteRecords unmap under the writer
//! lock), writes `cleaner-swap`, renames the cleaned files into place and
//! swaps the segments in the map; it keeps the files lock (which retention's
//! deletions and every checkpoint write take) until the replaced files and
//! `cleaner-swap` are gone, so no other operation touches those files
//! meanwhile. An error after the commit point leaves the log refusing writes
//! (`Failed`): a reopen finishes the swap from `cleaner-swap`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::checkpoint;
use crate::cleaner::batch::{Counts, Filter};
use crate::cleaner::pass::{self, Halt, Io, Span, Target};
use crate::cleaner::swap::{self, Swap};
use crate::cleaner::txn::TxnTracker;
use crate::cleaner::{CleanOutcome, CleanParams, CleanStats, CleanableStats, OffsetMap};
use crate::error::LogError;
use crate::segment::Segment;
use crate::txn_index::{self, TxnIndexEntry};

use super::retention::largest_timestamp;
use super::{Log, Writer};

/// The cleaner's state in a `Log`.
pub(crate) struct CleanerState {
    /// Held for a whole pass.
    pass: Mutex<()>,
    /// Set by `close`: a running pass stops, later ones do not start.
    closing: AtomicBool,
    /// Bumped by every truncation.
    generation: AtomicU64,
    /// The first dirty offset, as persisted in `cleaner-offset-checkpoint`.
    first_dirty: AtomicI64,
    /// Tests: the commit step at which to stop as if the process died.
    #[cfg(test)]
    crash_at: Mutex<Option<u32>>,
}

const SIMULATED_CRASH: &str = "simulated crash";

impl CleanerState {
    pub(super) fn new(first_dirty: i64) -> CleanerState {
        CleanerState {
            pass: Mutex::new(()),
            closing: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            first_dirty: AtomicI64::new(first_dirty),
            #[cfg(test)]
            crash_at: Mutex::new(None),
        }
    }
}

/// The pass's view of the log, taken under the writer lock.
struct Plan {
    spans: Vec<Span>,
    first_dirty: i64,
    generation: u64,
    segment_bytes: u64,
    index_bytes: u64,
    limits: crate::segment::IndexLimits,
    last_batch_of_producer: HashMap<i64, i64>,
    /// The log end when the pass planned: the batch ending just below it keeps
    /// at least its header (it is in a sealed segment when the active one is
    /// empty, as after a time-based roll).
    log_end: i64,
}

/// The sealed segments with their ends (the active one is never cleaned).
fn spans(segments: &[Arc<Segment>]) -> Vec<Span> {
    segments
        .windows(2)
        .map(|p| (Arc::clone(&p[0]), p[1].base_offset()))
        .collect()
}

/// The spans a pass may rewrite: those starting at or above the lower bound
/// (see [`CleanParams::lower_bound`]), a suffix of `spans`.
fn rewritable<'a>(spans: &'a [Span], p: &CleanParams) -> &'a [Span] {
    let from = spans.partition_point(|(s, _)| s.base_offset() < p.lower_bound);
    &spans[from..]
}

/// Where the dirty range starts: the first dirty offset, or the lower bound
/// if that is above it (what lies between is never rewritten here).
fn dirty_start(first_dirty: i64, p: &CleanParams) -> i64 {
    first_dirty.max(p.lower_bound)
}

/// The first offset a pass may not clean (see `cleaner`): the base of the first
/// dirty segment past `upper_bound` or younger than the lag, else the active
/// one's. `spans` are the rewritable ones, `start` where the dirty range starts.
fn first_uncleanable(spans: &[Span], active_base: i64, start: i64, p: &CleanParams) -> i64 {
    for (segment, end) in spans.iter().filter(|(_, end)| *end > start) {
        let young = p.min_compaction_lag_ms > 0
            && largest_timestamp(segment) > p.now_ms.saturating_sub(p.min_compaction_lag_ms);
        if *end > p.upper_bound || young {
            return segment.base_offset();
        }
    }
    active_base
}

/// Producer id -> last offset of its last data batch, -1 if it has none left
/// (a pass keeps that batch's header, and the header of a marker after it,
/// which may be all that records the producer's epoch).
fn last_batches(w: &Writer) -> HashMap<i64, i64> {
    w.producers
        .entries()
        .iter()
        .map(|(id, e)| (*id, e.batches.back().map_or(-1, |b| b.last_offset)))
        .collect()
}

impl Log {
    /// `params` with the upper bound lowered to the first unstable offset:
    /// nothing of an ongoing transaction is ever cleaned (its records are not
    /// known to be committed or aborted yet).
    fn below_unstable(&self, params: &CleanParams) -> CleanParams {
        let unstable = self.first_unstable_offset().unwrap_or(i64::MAX);
        CleanParams {
            upper_bound: params.upper_bound.min(unstable),
            ..*params
        }
    }

    /// Producer id -> the last offset of that producer's last batch, as the
    /// producer state has it now: a pass over segments this log does not hold
    /// (the remote tier's) keeps at least the header of these batches, as a
    /// local pass does, so a producer's sequence survives a rebuild from them.
    pub fn last_batches_of_producers(&self) -> HashMap<i64, i64> {
        last_batches(&self.writer.lock())
    }

    /// The first offset not yet cleaned: the persisted first dirty offset,
    /// raised to the log start.
    pub fn first_dirty_offset(&self) -> i64 {
        self.cleaner
            .first_dirty
            .load(Ordering::Acquire)
            .max(self.log_start_offset())
    }

    /// Sizes of the clean, dirty and uncleanable sections under `params` (see
    /// [`CleanableStats`]). Reads no log data except, if there is a dirty
    /// segment, the first batch header of the first one.
    pub fn cleanable(&self, params: &CleanParams) -> Result<CleanableStats, LogError> {
        let params = &self.below_unstable(params);
        let segments = self.snapshot();
        let first_dirty = self.first_dirty_offset();
        let start = dirty_start(first_dirty, params);
        let spans = spans(&segments);
        let active = segments.last().map_or(0, |s| s.base_offset());
        let first_uncleanable =
            first_uncleanable(rewritable(&spans, params), active, start, params);
        let mut stats = CleanableStats {
            first_dirty_offset: start,
            first_uncleanable_offset: first_uncleanable,
            ..CleanableStats::default()
        };
        for (segment, end) in &spans {
            let below_bound = segment.base_offset() < params.lower_bound;
            if *end <= first_dirty {
                stats.clean_bytes += segment.size();
            } else if !below_bound && segment.base_offset() < first_uncleanable {
                if stats.dirty_bytes == 0 && stats.first_dirty_timestamp.is_none() {
                    stats.first_dirty_timestamp = segment.roll_times()?.0;
                }
                stats.dirty_bytes += segment.size();
            } else {
                stats.uncleanable_bytes += segment.size();
            }
        }
        stats.uncleanable_bytes += segments.last().map_or(0, |s| s.size());
        Ok(stats)
    }

    /// One cleaning pass (see the `cleaner` module): maps the keys of the dirty
    /// range into `map` (cleared first; its memory bounds how much one pass
    /// covers), rewrites the log from its first segment (the first at or above
    /// `params.lower_bound`) to the end of the mapped range and commits. `throttle` is called with the bytes read and
    /// written, in steps of about 256 KiB, and may sleep to rate-limit the pass.
    ///
    /// Before: any open log. After `Ok(Cleaned)`: the log holds the same
    /// offsets with superseded records, expired tombstones and keyless records
    /// removed from the cleaned range, the first dirty offset is its end, and
    /// all of it is durable. `Ok(Aborted)` and `Err` before the commit leave the
    /// log unchanged (the `.cleaned` files deleted); an `Err` after the commit
    /// point (an I/O error while installing the cleaned files) leaves the log
    /// refusing writes until a reopen finishes the swap. Appends, reads and
    /// flushes are not blocked except for the commit's metadata writes; a
    /// truncation or `close` makes a running pass abort.
    pub fn clean(
        &self,
        map: &mut OffsetMap,
        params: &CleanParams,
        throttle: &dyn Fn(u64),
    ) -> Result<CleanOutcome, LogError> {
        let Some(_pass) = self.cleaner.pass.try_lock() else {
            return Ok(CleanOutcome::Aborted {
                reason: "another pass is running on this log",
            });
        };
        let plan = {
            let w = self.writer.lock();
            self.check_open(&w)?;
            if self.cleaner.closing.load(Ordering::Acquire) {
                return Ok(CleanOutcome::Aborted {
                    reason: "the log is closing",
                });
            }
            let last_batch_of_producer = last_batches(&w);
            Plan {
                spans: spans(&self.snapshot()),
                first_dirty: self.first_dirty_offset(),
                generation: self.cleaner.generation.load(Ordering::Acquire),
                segment_bytes: w.config.segment_bytes,
                index_bytes: w.config.segment_index_bytes,
                limits: w.config.index_limits(),
                last_batch_of_producer,
                log_end: self.log_end_offset(),
            }
        };
        match self.run_pass(&plan, map, &self.below_unstable(params), throttle) {
            Ok(outcome) => Ok(outcome),
            Err(Halt::Aborted(reason)) => Ok(CleanOutcome::Aborted { reason }),
            Err(Halt::Error(e)) => Err(e),
        }
    }

    fn run_pass(
        &self,
        plan: &Plan,
        map: &mut OffsetMap,
        params: &CleanParams,
        throttle: &dyn Fn(u64),
    ) -> Result<CleanOutcome, Halt> {
        let active = self.active().base_offset();
        // Segments below the lower bound are neither mapped nor rewritten: the
        // dirty range starts at the bound if the first dirty offset is below it.
        let spans = rewritable(&plan.spans, params);
        let start = dirty_start(plan.first_dirty, params);
        let first_uncleanable = first_uncleanable(spans, active, start, params);
        let dirty: Vec<Span> = spans
            .iter()
            .filter(|(s, end)| *end > start && s.base_offset() < first_uncleanable)
            .cloned()
            .collect();
        if dirty.is_empty() {
            return Ok(CleanOutcome::NothingToClean);
        }
        let stop = || -> Option<&'static str> {
            if self.cleaner.closing.load(Ordering::Acquire) {
                Some("the log is closing")
            } else if self.cleaner.generation.load(Ordering::Acquire) != plan.generation {
                Some("the log was truncated")
            } else {
                None
            }
        };
        let io = Io {
            throttle,
            stop: &stop,
        };
        // Transactions: everything here is below the last stable offset, so a
        // transactional batch is aborted (the index says so) or committed.
        let mut map_txns = TxnTracker::new(self.aborted_txns(start, first_uncleanable), i64::MIN);
        let mapped = pass::build_map(&dirty, start, map, &io, &mut map_txns)?;
        if mapped.end <= start {
            return Ok(CleanOutcome::NothingToClean);
        }
        let to_clean: Vec<Span> = spans
            .iter()
            .filter(|(s, _)| s.base_offset() < mapped.end)
            .cloned()
            .collect();
        let groups = pass::group(&to_clean, plan.segment_bytes, plan.index_bytes);
        let rewrite_start = to_clean[0].0.base_offset();
        let rewrite_end = to_clean[to_clean.len() - 1].1;
        // A transaction that started below the first rewritten segment (still
        // in the log: a tiered topic's uploaded segments) keeps its marker.
        let seen_below = if rewrite_start > self.log_start_offset() {
            rewrite_start
        } else {
            i64::MIN
        };
        let filter = Filter {
            map,
            map_end: mapped.end,
            now_ms: params.now_ms,
            delete_retention_ms: params.delete_retention_ms,
            last_batch_of_producer: &plan.last_batch_of_producer,
            keep_tombstones: params.keep_tombstones,
            last_batch_of_log: Some(plan.log_end - 1),
            txns: Some(std::cell::RefCell::new(TxnTracker::new(
                self.aborted_txns(rewrite_start, rewrite_end),
                seen_below,
            ))),
        };
        let target = Target {
            dir: &self.dir,
            limits: plan.limits,
            now_ms: params.now_ms,
        };
        let mut counts = Counts::default();
        let mut stats = CleanStats {
            start_offset: rewrite_start,
            first_dirty_offset: start,
            end_offset: mapped.end,
            first_uncleanable_offset: first_uncleanable,
            segments_before: to_clean.len(),
            map_keys: map.len(),
            map_capacity: map.capacity(),
            bytes_read: mapped.bytes_read,
            ..CleanStats::default()
        };
        let mut cleaned = Vec::with_capacity(groups.len());
        let mut bases = Vec::new();
        let written = self.write_cleaned(
            &groups,
            &mut cleaned,
            &mut bases,
            &mut stats,
            (plan, &filter, &target, &io, &mut counts),
        );
        let kept = filter
            .txns
            .as_ref()
            .map(|t| t.borrow().kept_entries().to_vec())
            .unwrap_or_default();
        let indexed = written.and_then(|()| self.write_cleaned_txn_index(&cleaned, &kept));
        let indexes = match indexed {
            Ok(indexes) => indexes,
            Err(halt) => {
                self.discard(&bases, &halt);
                return Err(halt);
            }
        };
        stats.segments_after = cleaned.len();
        stats.records_read = counts.records_read;
        stats.records_kept = counts.records_kept;
        stats.tombstones_removed = counts.tombstones_removed;
        stats.keyless_removed = counts.keyless_removed;
        stats.emptied_batches = counts.emptied_batches;
        stats.horizons_set = counts.horizons_set;
        stats.aborted_removed = counts.aborted_removed;
        stats.markers_removed = counts.markers_removed;
        let replaced: Vec<Arc<Segment>> = to_clean.iter().map(|(s, _)| Arc::clone(s)).collect();
        self.commit(plan, replaced, (cleaned, indexes), mapped.end)?;
        tracing::info!(dir = %self.dir.display(), ?stats, "cleaned log");
        Ok(CleanOutcome::Cleaned(stats))
    }

    /// Writes the cleaned copies of `groups` (`.cleaned` files, fsynced, then the directory),
    /// coalescing consecutive groups into one output while they fit (see
    /// [`pass::CleanedOutput`]). `bases` receives each output's base as it is created, so that
    /// the caller can discard them if this fails.
    fn write_cleaned(
        &self,
        groups: &[&[Span]],
        cleaned: &mut Vec<Segment>,
        bases: &mut Vec<i64>,
        stats: &mut CleanStats,
        (plan, filter, target, io, counts): (&Plan, &Filter<'_>, &Target<'_>, &Io<'_>, &mut Counts),
    ) -> Result<(), Halt> {
        let mut out: Option<pass::CleanedOutput> = None;
        for group in groups {
            let full = out
                .as_ref()
                .is_some_and(|o| !o.fits(group, plan.segment_bytes, plan.index_bytes));
            if full {
                if let Some(done) = out.take() {
                    cleaned.push(done.finish()?);
                }
            }
            let o = match &mut out {
                Some(o) => o,
                None => {
                    let o = pass::CleanedOutput::open(group[0].0.base_offset(), target)?;
                    bases.push(o.base_offset());
                    out.insert(o)
                }
            };
            let (read, written) = pass::clean_group(group, o, filter, target, io, counts)?;
            stats.bytes_read += read;
            stats.bytes_written += written;
            self.crash_point()?;
        }
        if let Some(done) = out.take() {
            cleaned.push(done.finish()?);
        }
        checkpoint::sync_dir(&self.dir)?;
        self.crash_point()?;
        Ok(())
    }

    /// Writes the `.txnindex.cleaned` of every cleaned segment: the aborted
    /// transactions whose markers it keeps with data still needing them
    /// (`kept`, in marker order), then fsyncs the directory. Returns them by
    /// segment, for the in-memory index at the commit.
    fn write_cleaned_txn_index(
        &self,
        cleaned: &[Segment],
        kept: &[TxnIndexEntry],
    ) -> Result<Vec<(i64, Vec<TxnIndexEntry>)>, Halt> {
        let mut out = Vec::with_capacity(cleaned.len());
        for s in cleaned {
            let (base, next) = (s.base_offset(), s.next_offset());
            let mine: Vec<TxnIndexEntry> = kept
                .iter()
                .filter(|e| (base..next).contains(&e.last_offset))
                .copied()
                .collect();
            txn_index::write_cleaned(&self.dir, base, &mine)?;
            out.push((base, mine));
        }
        checkpoint::sync_dir(&self.dir)?;
        Ok(out)
    }

    /// Removes the `.cleaned` files of a pass that stops before its commit
    /// (not after a simulated crash, which must leave them as a real one would,
    /// nor once the log is closed: its directory may be in use by a new `Log`).
    fn discard(&self, bases: &[i64], halt: &Halt) {
        if let Halt::Error(LogError::Failed { reason, .. }) = halt {
            if reason == SIMULATED_CRASH {
                return;
            }
        }
        let files = self.files.lock();
        if *files {
            return;
        }
        if let Err(e) = swap::discard(&self.dir, bases) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not delete the files of an aborted cleaning; the next open deletes them");
        }
        drop(files);
    }

    /// The commit (see the module docs). `replaced` are the segments rewritten,
    /// `cleaned` their replacements (under `.cleaned` names), `end` the new first
    /// dirty offset.
    fn commit(
        &self,
        plan: &Plan,
        replaced: Vec<Arc<Segment>>,
        (cleaned, indexes): (Vec<Segment>, Vec<(i64, Vec<TxnIndexEntry>)>),
        end: i64,
    ) -> Result<(), Halt> {
        let swap = Swap {
            replaced: replaced.iter().map(|s| s.base_offset()).collect(),
            cleaned: cleaned.iter().map(|s| s.base_offset()).collect(),
        };
        let mut w = self.writer.lock();
        let unchanged = {
            let map = self.segments.read();
            replaced
                .iter()
                .all(|s| map.get(&s.base_offset()).is_some_and(|m| Arc::ptr_eq(m, s)))
        };
        let reason = if w.closed || self.cleaner.closing.load(Ordering::Acquire) {
            Some("the log is closing")
        } else if w.failed.is_some() {
            Some("the log failed")
        } else if self.cleaner.generation.load(Ordering::Acquire) != plan.generation {
            Some("the log was truncated")
        } else if !unchanged {
            Some("retention or DeleteRecords removed a segment being cleaned")
        } else {
            None
        };
        if let Some(reason) = reason {
            drop(w);
            let halt = Halt::Aborted(reason);
            self.discard(&swap.cleaned, &halt);
            return Err(halt);
        }
        let files = self.files.lock();
        let result = self
            .install(&mut w, &swap, replaced, (cleaned, indexes))
            .and_then(|()| {
                drop(w);
                self.finish_swap(&swap, end)
            });
        drop(files);
        if let Err(e) = &result {
            tracing::error!(dir = %self.dir.display(), error = %e, "cleaning failed after its commit; refusing writes until the log is reopened, which completes it");
            let mut w = self.writer.lock();
            w.failed.get_or_insert_with(|| e.to_string());
        }
        result.map_err(Halt::Error)
    }

    /// Under the writer and files locks: the commit point, the renames and the
    /// swap in the segment map.
    fn install(
        &self,
        w: &mut Writer,
        swap: &Swap,
        replaced: Vec<Arc<Segment>>,
        (cleaned, indexes): (Vec<Segment>, Vec<(i64, Vec<TxnIndexEntry>)>),
    ) -> Result<(), LogError> {
        swap::write_swap(&self.dir, swap)?;
        self.crash_point()?;
        let mut installed = Vec::with_capacity(cleaned.len());
        for segment in cleaned {
            swap::rename_group(&self.dir, segment.base_offset())?;
            installed.push(Arc::new(segment.renamed(&self.dir)));
            self.crash_point()?;
        }
        let mut map = self.segments.write();
        for s in &replaced {
            map.remove(&s.base_offset());
        }
        for s in installed {
            map.insert(s.base_offset(), s);
        }
        drop(map);
        // The cleaned segments' `.txnindex` files (renamed above) hold the
        // aborted transactions whose markers stay; the replaced ones' entries go.
        self.txn.write().replace_cleaned(&swap.replaced, indexes);
        self.segments_changed(w)
    }

    /// Under the files lock, after the writer lock is released: deletes the
    /// replaced files, removes `cleaner-swap` and persists the first dirty offset.
    fn finish_swap(&self, swap: &Swap, end: i64) -> Result<(), LogError> {
        for base in swap::obsolete(swap) {
            for ext in ["index", "timeindex", "log", "txnindex"] {
                let path = self.dir.join(crate::segment::file_name(base, ext));
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(LogError::io("deleting", path)(e));
                    }
                    _ => {}
                }
            }
            self.crash_point()?;
        }
        swap::finish(&self.dir, swap)?;
        self.crash_point()?;
        swap::write_checkpoint(&self.dir, end)?;
        self.cleaner.first_dirty.store(end, Ordering::Release);
        Ok(())
    }

    /// A truncation to `new_end` is under way (writer lock held): a running
    /// pass must not commit, and the first dirty offset may not stay above the
    /// new end (new data there will not have been cleaned).
    pub(super) fn cleaner_truncated(&self, new_end: i64) -> Result<(), LogError> {
        self.cleaner.generation.fetch_add(1, Ordering::AcqRel);
        let files = self.files.lock();
        if self.cleaner.first_dirty.load(Ordering::Acquire) > new_end {
            swap::write_checkpoint(&self.dir, new_end)?;
            self.cleaner.first_dirty.store(new_end, Ordering::Release);
        }
        drop(files);
        Ok(())
    }

    /// Makes a running pass stop and waits for it; later passes abort.
    pub(super) fn stop_cleaning(&self) {
        self.cleaner.closing.store(true, Ordering::Release);
        drop(self.cleaner.pass.lock());
    }

    /// Tests: the `step`-th crash point of the next pass fails as if the
    /// process died there (files are left as they are; the log must be dropped).
    #[cfg(test)]
    pub(crate) fn crash_cleaning_at(&self, step: u32) {
        *self.cleaner.crash_at.lock() = Some(step);
    }

    #[cfg(test)]
    fn crash_point(&self) -> Result<(), LogError> {
        let mut at = self.cleaner.crash_at.lock();
        match at.as_mut() {
            Some(0) => {
                *at = None;
                Err(LogError::Failed {
                    dir: self.dir.clone(),
                    reason: SIMULATED_CRASH.into(),
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
    fn crash_point(&self) -> Result<(), LogError> {
        Ok(())
    }
}
