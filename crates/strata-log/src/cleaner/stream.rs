//! Cleaning segments that no `Log` holds (the remote tier's), batch by batch
//! over their stored bytes. The broker reads the bytes (the remote tier's
//! chunk cache), hands them here in offset order and uploads what comes out;
//! this module only decides and encodes, with the same offset map, record
//! filter (`batch.rs`) and segment format as a local pass, so the two never
//! disagree on what a cleaned record or segment is.
//!
//! - [`KeyMapper`]: the map half. Segments are announced before their
//!   batches ([`KeyMapper::begin_segment`]) so that mapping stops at a segment
//!   boundary when the map might not hold the next one, exactly as a local
//!   pass does (`pass::build_map`).
//! - [`BatchFilter`]: the rewrite half's verdict on one batch: keep it, write
//!   a rewritten copy, or drop it.
//! - [`SegmentWriter`]: a new segment (`.log`, `.index`, `.timeindex`, plain
//!   names) in a scratch directory, to be uploaded and then deleted.
//!
//! Every batch handed in is checked as recovery checks a stored batch
//! (length, CRC32C, offsets); a bad one is [`StreamError::Corrupt`], naming
//! its offset and where it was in the bytes given, never data fed to the map
//! or copied.

use std::collections::HashMap;
use std::path::Path;

use crate::error::LogError;
use crate::log::{OpenSegment, SegmentInfo};
use crate::record::{self, BatchHeader};
use crate::segment::Segment;
use crate::LogConfig;

use super::batch::{self, Counts, Filter, MapOutcome, Verdict};
use super::txn::TxnTracker;
use super::{CleanParams, OffsetMap};
use crate::txn_index::TxnIndexEntry;

/// This module's one error type.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("corrupt batch at byte {position} of the bytes read (offset {base_offset}): {reason}")]
    Corrupt {
        position: usize,
        /// The batch's base offset as its header says, -1 if unreadable.
        base_offset: i64,
        reason: String,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The whole batches of `bytes` (as a segment stores them, back to back),
/// each checked, with its header and position. A torn tail is an error: the
/// caller hands over whole batches only.
pub fn batches(bytes: &[u8]) -> impl Iterator<Item = Result<(BatchHeader, &[u8]), StreamError>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        let rest = &bytes[pos..];
        let corrupt = |reason: String| StreamError::Corrupt {
            position: pos,
            base_offset: BatchHeader::parse(rest).map_or(-1, |h| h.base_offset),
            reason,
        };
        let item = record::batch_size_at(rest)
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| corrupt("illegal or torn batch length".into()))
            .and_then(|n| {
                let b = &rest[..n];
                record::validate_stored_batch(b, 0).map_err(|e| corrupt(e.to_string()))?;
                let h = BatchHeader::parse(b).ok_or_else(|| corrupt("short header".into()))?;
                Ok((h, b))
            });
        match &item {
            Ok((_, b)) => pos += b.len(),
            Err(_) => pos = bytes.len(),
        }
        Some(item)
    })
}

fn opaque_warning(h: &BatchHeader, why: &str) {
    tracing::warn!(
        base_offset = h.base_offset,
        reason = why,
        "the cleaner cannot decode this batch's records; keeping it whole and unmapped"
    );
}

/// Builds the offset map of a dirty range from its segments' bytes, in offset
/// order: the latest offset of every key at or above `from`.
pub struct KeyMapper<'a> {
    map: &'a mut OffsetMap,
    from: i64,
    /// Everything below this offset (and at or above `from`) is mapped.
    end: i64,
    /// The end of the segment being mapped, between `begin_segment` and `end_segment`.
    open: Option<i64>,
    stopped: bool,
    /// The aborted transactions, when known (see [`KeyMapper::with_aborted_txns`]).
    txns: Option<TxnTracker>,
}

impl<'a> KeyMapper<'a> {
    /// Clears `map` and maps from `from` on.
    pub fn new(map: &'a mut OffsetMap, from: i64) -> KeyMapper<'a> {
        map.clear();
        KeyMapper {
            map,
            from,
            end: from,
            open: None,
            stopped: false,
            txns: None,
        }
    }

    /// Knows the aborted transactions overlapping what is mapped (every one whose data
    /// may be there; all of it must be below the last stable offset): their records are
    /// not mapped, and committed transactional records are. Without this, transactional
    /// batches are not mapped at all.
    pub fn with_aborted_txns(mut self, aborted: Vec<TxnIndexEntry>) -> Self {
        self.txns = Some(TxnTracker::new(aborted, i64::MIN));
        self
    }

    /// Announces the next segment, `[base, end)`. `false` when mapping is over:
    /// the map might not hold its offsets (their count bounds its new keys;
    /// the first segment is always taken), or it filled up inside an earlier
    /// one. Then no more batches may be added and [`KeyMapper::mapped_end`] is final.
    pub fn begin_segment(&mut self, base: i64, end: i64) -> bool {
        if self.stopped {
            return false;
        }
        let from = self.from.max(base);
        let span = usize::try_from(end - from).unwrap_or(usize::MAX);
        if !self.map.is_empty() && self.map.len().saturating_add(span) > self.map.capacity() {
            self.stopped = true;
            return false;
        }
        self.open = Some(end);
        true
    }

    /// Maps the keys of `bytes`, whole batches of the segment announced last.
    /// If a single segment holds more new keys than the map, mapping ends
    /// after the last record that fit (and [`KeyMapper::begin_segment`] then
    /// answers `false`).
    pub fn add(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        for item in batches(bytes) {
            let (h, b) = item?;
            if self.stopped || self.open.is_none() {
                return Ok(());
            }
            match batch::map_batch(self.map, b, &h, self.from, self.txns.as_mut()) {
                MapOutcome::Done => {}
                MapOutcome::Opaque(why) => opaque_warning(&h, &why),
                MapOutcome::FullAt(offset) => {
                    tracing::warn!(
                        capacity = self.map.capacity(),
                        offset,
                        "one segment holds more keys than the cleaner's offset map; cleaning up to this offset (raise log.cleaner.dedupe.buffer.size)"
                    );
                    self.end = offset;
                    self.open = None;
                    self.stopped = true;
                }
            }
        }
        Ok(())
    }

    /// Ends the segment announced last: all of it is mapped.
    pub fn end_segment(&mut self) {
        if let Some(end) = self.open.take() {
            self.end = end;
        }
    }

    /// Where the mapped range ends: every keyed record in `[from, end)` is in the map.
    pub fn mapped_end(&self) -> i64 {
        self.end
    }
}

/// What to do with one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Write the batch as it was.
    Keep,
    /// Write these bytes instead (fewer records, or a delete horizon set).
    Rewrite(Vec<u8>),
    /// Write nothing.
    Drop,
}

/// What a filter did, summed over the batches it saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    pub records_read: u64,
    pub records_kept: u64,
    pub tombstones_removed: u64,
    pub keyless_removed: u64,
    pub emptied_batches: u64,
    pub horizons_set: u64,
    /// The earliest delete horizon among the batches kept with a tombstone:
    /// from then on a pass can remove one.
    pub next_horizon: Option<i64>,
}

/// The record-level filter of a pass, batch by batch: keeps a keyed record
/// only if no later offset of its key is in the map (records at or above
/// `map_end` are kept as they are), handles tombstones and delete horizons
/// by `params` (`now_ms`, `delete_retention_ms`, `keep_tombstones`), and keeps
/// at least the header of each producer's last batch.
pub struct BatchFilter<'a> {
    filter: Filter<'a>,
    counts: Counts,
}

impl<'a> BatchFilter<'a> {
    pub fn new(
        map: &'a OffsetMap,
        map_end: i64,
        params: &CleanParams,
        last_batch_of_producer: &'a HashMap<i64, i64>,
    ) -> BatchFilter<'a> {
        BatchFilter {
            filter: Filter {
                map,
                map_end,
                now_ms: params.now_ms,
                delete_retention_ms: params.delete_retention_ms,
                last_batch_of_producer,
                keep_tombstones: params.keep_tombstones,
                last_batch_of_log: None,
                txns: None,
            },
            counts: Counts::default(),
        }
    }

    /// Knows the aborted transactions overlapping the batches filtered (see
    /// [`KeyMapper::with_aborted_txns`]): their records go, and markers no longer needed
    /// go after their delete horizon, as in a local pass (`txn.rs`). Transactions that
    /// started below `seen_below` keep their markers (their data is out of sight).
    pub fn with_aborted_txns(mut self, aborted: Vec<TxnIndexEntry>, seen_below: i64) -> Self {
        self.filter.txns = Some(std::cell::RefCell::new(TxnTracker::new(
            aborted, seen_below,
        )));
        self
    }

    /// The aborted transactions whose markers were kept with data still needing them, in
    /// marker order: the `.txnindex` entries of the segments written (empty without
    /// [`BatchFilter::with_aborted_txns`]).
    pub fn kept_txn_entries(&self) -> Vec<TxnIndexEntry> {
        self.filter
            .txns
            .as_ref()
            .map(|t| t.borrow().kept_entries().to_vec())
            .unwrap_or_default()
    }

    /// The batch ending at `last_offset`, the log's last, keeps at least its
    /// header (see the local pass's rule in `batch.rs`): pass the log end
    /// minus one when the segments filtered may hold the log's last batch.
    pub fn keeping_last_batch(mut self, last_offset: i64) -> Self {
        self.filter.last_batch_of_log = Some(last_offset);
        self
    }

    /// The verdict on one whole stored batch (checked here).
    pub fn filter(&mut self, batch: &[u8]) -> Result<Filtered, StreamError> {
        let mut it = batches(batch);
        let (h, b) = match it.next() {
            Some(item) => item?,
            None => {
                return Err(StreamError::Corrupt {
                    position: 0,
                    base_offset: -1,
                    reason: "no batch".into(),
                })
            }
        };
        if b.len() != batch.len() {
            return Err(StreamError::Corrupt {
                position: b.len(),
                base_offset: h.base_offset,
                reason: "more than one batch given".into(),
            });
        }
        let verdict = self
            .filter
            .verdict(b, &h, &mut self.counts, &mut |why| opaque_warning(&h, why))
            .map_err(|reason| StreamError::Corrupt {
                position: 0,
                base_offset: h.base_offset,
                reason: format!("cannot rewrite it: {reason}"),
            })?;
        Ok(match verdict {
            Verdict::Keep => Filtered::Keep,
            Verdict::Rewrite(bytes) => Filtered::Rewrite(bytes),
            Verdict::Drop => Filtered::Drop,
        })
    }

    pub fn stats(&self) -> FilterStats {
        let c = &self.counts;
        FilterStats {
            records_read: c.records_read,
            records_kept: c.records_kept,
            tombstones_removed: c.tombstones_removed,
            keyless_removed: c.keyless_removed,
            emptied_batches: c.emptied_batches,
            horizons_set: c.horizons_set,
            next_horizon: c.next_horizon,
        }
    }
}

/// A new segment written batch by batch into a directory of its own (the
/// files have their ordinary names, `<base:020>.log`, `.index`, `.timeindex`,
/// and are truncated if present), with the indexes a log would build for it.
pub struct SegmentWriter {
    segment: Segment,
    written: u64,
    segment_bytes: u64,
    interval: u64,
    /// The last offset of the last batch written.
    last_offset: Option<i64>,
}

impl SegmentWriter {
    /// An empty segment at `base_offset` in `dir`, sized by `config`'s
    /// `segment.bytes`, `segment.index.bytes` and `index.interval.bytes`.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<SegmentWriter, StreamError> {
        let segment = Segment::create(dir, base_offset, config.index_limits(), now_ms)?;
        Ok(SegmentWriter {
            segment,
            written: 0,
            segment_bytes: config.segment_bytes,
            interval: config.index_interval_bytes,
            last_offset: None,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.segment.base_offset()
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.written
    }

    /// Whether `batch` goes into this segment: it stays within
    /// `segment.bytes` (an empty segment takes any batch), its indexes have
    /// room, and the batch's offsets fit the indexes' 32-bit relative offsets.
    pub fn fits(&self, batch: &[u8]) -> bool {
        let Some(h) = BatchHeader::parse(batch) else {
            return false;
        };
        if self.segment.needs_roll_for_index(h.last_offset()) {
            return false;
        }
        self.written == 0 || self.written + batch.len() as u64 <= self.segment_bytes
    }

    /// Appends one whole stored batch (checked here), which must start above
    /// the last one written and at or above the base offset.
    pub fn push(&mut self, batch: &[u8]) -> Result<(), StreamError> {
        let corrupt = |base_offset, reason: String| StreamError::Corrupt {
            position: 0,
            base_offset,
            reason,
        };
        let info = record::validate_stored_batch(batch, 0).map_err(|e| {
            corrupt(
                BatchHeader::parse(batch).map_or(-1, |h| h.base_offset),
                e.to_string(),
            )
        })?;
        let floor = self.last_offset.map_or(self.base_offset(), |l| l + 1);
        if info.base_offset < floor {
            return Err(corrupt(
                info.base_offset,
                format!(
                    "the batch goes back: segment {} continues at {floor}",
                    self.base_offset()
                ),
            ));
        }
        if self.written + batch.len() as u64 > u64::from(u32::MAX) {
            return Err(corrupt(
                info.base_offset,
                "a segment would exceed 4 GiB; lower segment.bytes".into(),
            ));
        }
        self.segment.append(batch, &[], &[info], self.interval)?;
        self.written += batch.len() as u64;
        self.last_offset = Some(info.last_offset());
        Ok(())
    }

    /// Deletes what was written (the segment is not wanted after all).
    pub fn discard(self) -> Result<(), StreamError> {
        Ok(self.segment.delete_files()?)
    }

    /// Seals the segment (final time-index entry, fsync) as covering offsets
    /// up to `next_offset` (at or above the end of its last batch: a cleaned
    /// segment ends where what it replaced ended), and hands its files over
    /// open, as [`crate::Log::open_segment`] does for a log's segment. The
    /// files stay where they are (`log_path` and its `.index` and
    /// `.timeindex` siblings) for the caller to delete when done.
    pub fn finish(self, next_offset: i64) -> Result<OpenSegment, StreamError> {
        let end = self.last_offset.map_or(self.base_offset(), |l| l + 1);
        if next_offset < end {
            return Err(StreamError::Corrupt {
                position: 0,
                base_offset: self.base_offset(),
                reason: format!(
                    "segment holds offsets up to {end}, more than the {next_offset} it was given"
                ),
            });
        }
        self.segment.set_next_offset(next_offset);
        self.segment.seal()?;
        let [log, index, timeindex] = self.segment.clone_files()?;
        let (index_bytes, timeindex_bytes) = self.segment.index_bytes();
        Ok(OpenSegment {
            info: SegmentInfo {
                base_offset: self.segment.base_offset(),
                next_offset,
                size_bytes: self.written,
                max_timestamp: self.segment.max_timestamp().map(|m| m.timestamp),
            },
            log,
            index,
            timeindex,
            index_bytes,
            timeindex_bytes,
            // The caller knows the aborted transactions of what it rewrote.
            txnindex: Vec::new(),
            producer_snapshot: None,
            log_path: self.segment.log_path().to_path_buf(),
        })
    }
}
