//! Log compaction (Kafka's log cleaner), the storage half: one cleaning pass
//! over one `Log` at a time, driven by the broker ([`crate::Log::clean`]), which
//! decides when (dirty ratio, `max.compaction.lag.ms`), with which budget and
//! I/O rate, and on which thread.
//!
//! # What a pass does
//!
//! The log is a clean section (cleaned before; it starts at the log start) and
//! a dirty section from the *first dirty offset* (persisted per partition, see
//! `swap.rs`) up to the *first uncleanable offset*: the base of the active
//! segment, or of the first dirty segment that ends above the caller's upper
//! bound (the last stable offset) or holds a record
//! newer than `min.compaction.lag.ms`. Only whole sealed segments are cleaned.
//! The caller's *lower bound* (the remote tier's end offset for a tiered
//! topic, whose uploaded segments a separate remote pass compacts) hides the
//! segments that start below it from the pass: they are neither mapped nor
//! rewritten nor merged, and if the first dirty offset is below the bound the
//! dirty section starts at the bound (the offsets in between count as clean
//! once the pass commits).
//!
//! 1. **Map** (`pass.rs`): the latest offset of every key of the
//!    dirty section goes into an [`OffsetMap`] of bounded memory. If it cannot
//!    take the next segment, mapping stops at that segment boundary: the pass
//!    cleans up to there and the rest stays dirty for the next pass.
//! 2. **Rewrite** (`pass.rs`): every segment from the log's first (the
//!    first at or above the lower bound) up to the end of the mapped range, in groups that fit `segment.bytes`
//!    and the index size (small cleaned segments merge), is copied into one
//!    new segment per group under `.cleaned` names, keeping a keyed record only
//!    if no later offset of its key is mapped (records of the clean section
//!    whose key is not in the map are kept). Offsets never change; batches are
//!    rewritten record by record (see `batch.rs`). A batch left without records
//!    disappears, except the last batch of a producer (as the producer state
//!    had it when the pass started), which keeps its header so that the
//!    producer's sequence and epoch survive a restart, and the log's last
//!    batch, which keeps its header so that a reader can reach the log end
//!    (Kafka never cleans its last batch, which is always in the active
//!    segment; here a time-based roll can leave the active segment empty, and
//!    a remote tier's last batch may be the log's). Keyless records are
//!    dropped, as Kafka's cleaner does (a compacted topic cannot hold them;
//!    they predate a switch from `delete`).
//! 3. **Commit** (`log/clean.rs`): see the crash contract below.
//!
//! # Tombstones (KIP-534)
//!
//! A record with a null value is a tombstone. The first pass that rewrites a
//! batch still holding a tombstone sets the batch's *delete horizon* to `now +
//! delete.retention.ms` (stored as Kafka 3.x does: attribute bit 6 set and the
//! horizon in `baseTimestamp`; record timestamps unchanged). Until then, and
//! until the horizon has passed, the tombstone stays (if it is its key's
//! latest record), so a consumer reading from the start within
//! `delete.retention.ms` of the cleaning sees it; a pass after the horizon
//! removes it. A tombstone superseded by a later record of its key goes like
//! any superseded record. `now` is the caller's, so tests inject it. With
//! [`CleanParams::keep_tombstones`] (a tiered partition) a pass neither sets a
//! horizon nor removes a latest tombstone: the remote pass does both.
//!
//! # Crash contract
//!
//! A crash at any point of a pass leaves the log exactly as before the pass
//! or exactly as after it, never in between:
//!
//! - Until the commit, the pass only writes `.cleaned` files (fsynced, then
//!   the directory). Open deletes them: the log is as before.
//! - The commit is the atomic, durable creation of `cleaner-swap`, naming the
//!   replaced and the cleaned segments. From then on open finishes the pass
//!   (renames, deletions, see `swap.rs`): the log is as after. The running log
//!   renames the files and publishes the new segments under the writer lock,
//!   then deletes the replaced files and `cleaner-swap` under the files lock.
//! - The first dirty offset is persisted last: a crash before it only means
//!   some of the range is cleaned again.
//!
//! # Segments no `Log` holds
//!
//! [`stream`] exposes the same map, filter and segment format over stored
//! batch bytes, for the broker's remote pass over the remote tier's segments.
//!
//! # Transactions
//!
//! A pass never reaches the last stable offset (the log lowers the caller's
//! upper bound to its first unstable offset), so every transactional batch it
//! sees was committed or aborted. With the aborted transactions of the range
//! (the `.txnindex`), as Kafka's cleaner does (`txn.rs`): records of aborted
//! transactions are neither mapped nor kept; committed transactional records
//! are mapped and filtered like any others; a COMMIT or ABORT marker whose
//! transaction has no batch left gets a delete horizon (`now +
//! delete.retention.ms`) and goes in a pass after it; the `.txnindex` of each
//! cleaned segment (`<base>.txnindex.cleaned`, renamed in with the segment at
//! the commit) keeps only the aborted transactions whose data the pass still
//! saw. Headers stay where a producer's sequence or epoch needs them.
//!
//! The remote pass ([`stream`]) does not know the aborted transactions of
//! remote segments yet: there, transactional and control batches are kept
//! whole and never mapped.

pub(crate) mod batch;
pub(crate) mod compression;
pub mod offset_map;
pub(crate) mod pass;
pub mod stream;
pub(crate) mod swap;
pub(crate) mod txn;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod open_segment_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

pub use offset_map::OffsetMap;

/// Kafka's default `delete.retention.ms` (one day).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// What a pass needs from the topic's configuration and the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanParams {
    /// The cleaner's clock: delete horizons are set from it and compared with it.
    pub now_ms: i64,
    /// `delete.retention.ms`: how long a tombstone stays after its batch was
    /// first cleaned.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a segment holding a record younger than this
    /// is not cleaned (nor any after it). 0 = no lag.
    pub min_compaction_lag_ms: i64,
    /// Nothing at or above this offset is cleaned: a segment is cleanable only
    /// if it ends at or below it. The broker passes the last stable offset
    /// (the log lowers it to its first unstable offset in any case);
    /// `i64::MAX` for none.
    pub upper_bound: i64,
    /// Nothing below this offset is rewritten: only segments starting at or
    /// above it are mapped, rewritten or merged (so segments ending at or
    /// below it, and one holding it, stay as they are), and the dirty range
    /// starts here if the first dirty offset is below it; the first dirty
    /// offset then moves past it when the pass commits. The broker passes the
    /// remote tier's end offset for a tiered compacted topic (a segment
    /// boundary: uploads are whole segments), so uploaded segments are never
    /// rewritten locally; `i64::MIN` for none.
    pub lower_bound: i64,
    /// Keep every tombstone that is its key's latest record and set no delete
    /// horizon. The broker sets it for a tiered compacted partition: older
    /// values of a key may live in remote segments that only the remote pass
    /// compacts, so dropping the tombstone locally could bring them back for a
    /// reader from the start. The tombstone is uploaded, and the remote pass
    /// (which sees every older value) sets and honours its horizon. Superseded
    /// records, tombstones included, still go.
    pub keep_tombstones: bool,
}

impl CleanParams {
    /// Kafka's defaults at `now_ms`, with no upper or lower bound.
    pub fn at(now_ms: i64) -> CleanParams {
        CleanParams {
            now_ms,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            min_compaction_lag_ms: 0,
            upper_bound: i64::MAX,
            lower_bound: i64::MIN,
            keep_tombstones: false,
        }
    }
}

/// How a call to [`crate::Log::clean`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanOutcome {
    /// There is no dirty segment below the first uncleanable offset.
    NothingToClean,
    /// A pass committed; the log is as after it.
    Cleaned(CleanStats),
    /// The pass gave up and changed nothing: the log was truncated or closed
    /// while it ran, retention or DeleteRecords removed a segment it was
    /// rewriting, or another pass was running on this log.
    Aborted { reason: &'static str },
}

/// What one committed pass did, for the broker's metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Base offset of the first segment rewritten (the log's first segment,
    /// or the first at or above the lower bound).
    pub start_offset: i64,
    /// Where the pass mapped from: the first dirty offset, or the lower bound
    /// if that is above it.
    pub first_dirty_offset: i64,
    /// End (exclusive) of what the pass cleaned: the new first dirty offset.
    pub end_offset: i64,
    /// The first uncleanable offset when the pass planned (the end of what it
    /// could have mapped with a large enough map).
    pub first_uncleanable_offset: i64,
    /// Segments rewritten, and the cleaned segments that replaced them.
    pub segments_before: usize,
    pub segments_after: usize,
    /// Distinct keys mapped, and what the map could hold.
    pub map_keys: usize,
    pub map_capacity: usize,
    /// Log bytes read (mapping and rewriting) and written.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Records of the rewritten segments, and those kept.
    pub records_read: u64,
    pub records_kept: u64,
    /// Of the records removed: tombstones past their horizon, keyless records.
    pub tombstones_removed: u64,
    pub keyless_removed: u64,
    /// Batches reduced to their header (a producer's last batch).
    pub emptied_batches: u64,
    /// Batches that got a delete horizon in this pass (tombstones, markers).
    pub horizons_set: u64,
    /// Records of aborted transactions removed, and marker batches removed.
    pub aborted_removed: u64,
    pub markers_removed: u64,
}

impl CleanStats {
    pub fn records_removed(&self) -> u64 {
        self.records_read - self.records_kept
    }
}

/// The log's sections by bytes, for the broker's choice of the next log to
/// clean (Kafka's `LogToClean`). Sizes count whole segments: clean = ending at
/// or below the first dirty offset, dirty = the cleanable segments from there,
/// uncleanable = the rest (the active segment included, and segments below
/// the lower bound that are not clean).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanableStats {
    /// Where the dirty range starts: the first dirty offset, or the lower
    /// bound if that is above it.
    pub first_dirty_offset: i64,
    pub first_uncleanable_offset: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    pub uncleanable_bytes: u64,
    /// The max timestamp of the first dirty segment's first batch (Kafka's
    /// `firstBatchTimestamp`, for `max.compaction.lag.ms`), if there is one.
    pub first_dirty_timestamp: Option<i64>,
}

impl CleanableStats {
    /// `dirty / (clean + dirty)`, compared with `min.cleanable.dirty.ratio`;
    /// 0 when both are empty.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            return 0.0;
        }
        self.dirty_bytes as f64 / total as f64
    }
}
