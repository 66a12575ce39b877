//! The two reading halves of a pass, over segments a `Log` handed out: build
//! the offset map from the dirty range, then write each group of segments
//! into one cleaned segment under temporary names. Neither touches the `Log`
//! (`log/clean.rs` plans the pass and commits it): they only read sealed
//! segments through their own descriptors and write `.cleaned` files, so a
//! crash or an error here leaves the log as it was.
//!
//! Every batch read is checked (length, CRC32C, offsets) before use: on-disk
//! corruption is a `LogError::Corrupt` naming the file and position, never
//! data fed to the map or copied.

use std::path::Path;
use std::sync::Arc;

use crate::error::LogError;
use crate::record::{self, BatchHeader, BatchInfo};
use crate::segment::{IndexLimits, Segment};

use super::batch::{self, Counts, Filter, MapOutcome, Verdict};
use super::offset_map::OffsetMap;
use super::txn::TxnTracker;

/// Why a pass stopped early without an error of its own.
pub(crate) enum Halt {
    Error(LogError),
    /// The log changed under the pass (truncation, close): give up, changing nothing.
    Aborted(&'static str),
}

impl From<LogError> for Halt {
    fn from(e: LogError) -> Self {
        Halt::Error(e)
    }
}

/// What the pass's reading needs besides the segments.
pub(crate) struct Io<'a> {
    pub throttle: &'a dyn Fn(u64),
    /// `Some(reason)` once the pass must stop (checked between batches).
    pub stop: &'a dyn Fn() -> Option<&'static str>,
}

/// A segment with the offset where it ends (the next segment's base).
pub(crate) type Span = (Arc<Segment>, i64);

/// Calls the throttle in steps of at least this many bytes, not per batch.
const THROTTLE_STEP: u64 = 256 << 10;

struct Meter<'a> {
    throttle: &'a dyn Fn(u64),
    pending: u64,
}

impl Meter<'_> {
    fn add(&mut self, bytes: u64) {
        self.pending += bytes;
        if self.pending >= THROTTLE_STEP {
            (self.throttle)(std::mem::take(&mut self.pending));
        }
    }
    fn flush(&mut self) {
        if self.pending > 0 {
            (self.throttle)(std::mem::take(&mut self.pending));
        }
    }
}

/// The header of `bytes` after checking the batch as recovery would.
fn checked(segment: &Segment, pos: u64, bytes: &[u8]) -> Result<BatchHeader, LogError> {
    let corrupt = |reason: String| LogError::Corrupt {
        path: segment.log_path().to_path_buf(),
        position: pos,
        reason,
    };
    record::validate_stored_batch(bytes, 0).map_err(|e| corrupt(e.to_string()))?;
    BatchHeader::parse(bytes).ok_or_else(|| corrupt("short header".into()))
}

fn opaque_warning(segment: &Segment, h: &BatchHeader, why: &str) {
    tracing::warn!(
        file = %segment.log_path().display(),
        base_offset = h.base_offset,
        reason = why,
        "the cleaner cannot decode this batch's records; keeping it whole and unmapped"
    );
}

/// What mapping the dirty range did.
pub(crate) struct Mapped {
    /// Every keyed record below this offset (and at or above the first dirty
    /// offset) is in the map; nothing at or above it is.
    pub end: i64,
    pub bytes_read: u64,
}

/// Puts the key of every record at or above `first_dirty` of `dirty` (in
/// order) into `map`, segment by segment. Before a segment, stops there if
/// the map might not hold all its offsets (an offset count is a bound on its
/// new keys); so the mapped range ends at a segment boundary, except when a
/// single segment holds more new keys than the whole map: then it ends after
/// the last record that fit, and records past it are kept by the rewrite.
/// `txns` knows the aborted transactions of the range: their records are not
/// mapped.
pub(crate) fn build_map(
    dirty: &[Span],
    first_dirty: i64,
    map: &mut OffsetMap,
    io: &Io<'_>,
    txns: &mut TxnTracker,
) -> Result<Mapped, Halt> {
    map.clear();
    let mut meter = Meter {
        throttle: io.throttle,
        pending: 0,
    };
    let mut bytes_read = 0;
    let mut end = first_dirty;
    for (segment, seg_end) in dirty {
        let from = first_dirty.max(segment.base_offset());
        let span = usize::try_from(seg_end - from).unwrap_or(usize::MAX);
        if !map.is_empty() && map.len().saturating_add(span) > map.capacity() {
            break;
        }
        let mut full_at = None;
        bytes_read += segment.for_each_batch(|pos, bytes| -> Result<(), Halt> {
            meter.add(bytes.len() as u64);
            if let Some(reason) = (io.stop)() {
                return Err(Halt::Aborted(reason));
            }
            let h = checked(segment, pos, bytes)?;
            if full_at.is_some() {
                return Ok(());
            }
            match batch::map_batch(map, bytes, &h, from, Some(&mut *txns)) {
                MapOutcome::Done => {}
                MapOutcome::Opaque(why) => opaque_warning(segment, &h, &why),
                MapOutcome::FullAt(offset) => full_at = Some(offset),
            }
            Ok(())
        })?;
        if let Some(offset) = full_at {
            tracing::warn!(
                file = %segment.log_path().display(),
                capacity = map.capacity(),
                offset,
                "one segment holds more keys than the cleaner's offset map; cleaning up to this offset (raise log.cleaner.dedupe.buffer.size)"
            );
            end = offset;
            break;
        }
        end = *seg_end;
    }
    meter.flush();
    Ok(Mapped { end, bytes_read })
}

/// Splits `segments` into consecutive groups that one cleaned segment can
/// hold (Kafka's `groupSegmentsBySize`): together at most `segment_bytes` of
/// log and `index_bytes` of each index, and offsets that fit the index's
/// 32-bit relative offsets. A group has at least one segment.
pub(crate) fn group(segments: &[Span], segment_bytes: u64, index_bytes: u64) -> Vec<&[Span]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let base = segments[start].0.base_offset();
        let mut log = segments[start].0.size();
        let (mut oi, mut ti) = segments[start].0.index_bytes();
        let mut end = start + 1;
        while let Some((next, next_end)) = segments.get(end) {
            let (noi, nti) = next.index_bytes();
            let fits = log + next.size() <= segment_bytes
                && oi + noi <= index_bytes
                && ti + nti <= index_bytes
                && next_end - 1 - base <= i64::from(u32::MAX);
            if !fits {
                break;
            }
            log += next.size();
            oi += noi;
            ti += nti;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

/// Where a group's cleaned copy is written, and how.
pub(crate) struct Target<'a> {
    pub dir: &'a Path,
    pub limits: IndexLimits,
    pub now_ms: i64,
}

/// A cleaned segment being written under `.cleaned` names. Consecutive groups go into one
/// output while what it holds plus the next group's whole input fit one segment: the
/// grouping is by the sizes before cleaning (Kafka's rule, which bounds a segment whatever
/// the filter keeps), and a group left small or empty by cleaning merges into the next
/// instead of leaving a small or empty segment behind.
pub(crate) struct CleanedOutput {
    segment: Segment,
    written: u64,
    modified: Option<std::time::SystemTime>,
}

impl CleanedOutput {
    /// A new cleaned segment at `base` (the first group's base offset).
    pub(crate) fn open(base: i64, target: &Target<'_>) -> Result<CleanedOutput, Halt> {
        let segment = Segment::create_cleaned(target.dir, base, target.limits, target.now_ms)?;
        Ok(CleanedOutput {
            segment,
            written: 0,
            modified: None,
        })
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.segment.base_offset()
    }

    /// Whether all of `group` would still fit with what this output holds: at most
    /// `segment_bytes` of log and `index_bytes` of each index, and offsets that fit the
    /// index's 32-bit relative offsets.
    pub(crate) fn fits(&self, group: &[Span], segment_bytes: u64, index_bytes: u64) -> bool {
        let (mut oi, mut ti) = self.segment.index_bytes();
        let mut log = self.written;
        for (s, _) in group {
            let (i, t) = s.index_bytes();
            log += s.size();
            oi += i;
            ti += t;
        }
        let end = group.last().map_or(self.base_offset(), |g| g.1);
        log <= segment_bytes
            && oi <= index_bytes
            && ti <= index_bytes
            && end - 1 - self.base_offset() <= i64::from(u32::MAX)
    }

    /// Seals the segment (fsynced) with the newest modification time of what it replaced.
    pub(crate) fn finish(self) -> Result<Segment, Halt> {
        self.segment.seal()?;
        if let Some(time) = self.modified {
            self.segment.set_modified(time)?;
        }
        Ok(self.segment)
    }
}

/// Appends the records `filter` keeps from `group` to `out`, which then covers the group's
/// offsets (it ends where the group ended) and carries the newest modification time of the
/// group's files. Returns the bytes read and written.
pub(crate) fn clean_group(
    group: &[Span],
    out: &mut CleanedOutput,
    filter: &Filter<'_>,
    target: &Target<'_>,
    io: &Io<'_>,
    counts: &mut Counts,
) -> Result<(u64, u64), Halt> {
    let written_before = out.written;
    let mut w = Output {
        segment: &out.segment,
        buf: Vec::with_capacity(OUT_CHUNK + (1 << 16)),
        infos: Vec::new(),
        written: out.written,
        interval: target.limits.interval_bytes,
        meter: Meter {
            throttle: io.throttle,
            pending: 0,
        },
    };
    let mut read = 0;
    for (segment, _) in group {
        out.modified = out.modified.max(segment.modified());
        read += segment.for_each_batch(|pos, bytes| -> Result<(), Halt> {
            w.meter.add(bytes.len() as u64);
            if let Some(reason) = (io.stop)() {
                return Err(Halt::Aborted(reason));
            }
            let h = checked(segment, pos, bytes)?;
            let verdict = filter
                .verdict(bytes, &h, counts, &mut |why| {
                    opaque_warning(segment, &h, why)
                })
                .map_err(|why| LogError::Corrupt {
                    path: segment.log_path().to_path_buf(),
                    position: pos,
                    reason: format!(
                        "cannot rewrite the batch at offset {}: {why}",
                        h.base_offset
                    ),
                })?;
            match verdict {
                Verdict::Keep => w.push(bytes),
                Verdict::Rewrite(new) => w.push(&new),
                Verdict::Drop => Ok(()),
            }
        })?;
    }
    w.flush()?;
    w.meter.flush();
    out.written = w.written;
    out.segment.set_next_offset(group[group.len() - 1].1);
    Ok((read, out.written - written_before))
}

/// Output is appended to the cleaned segment in chunks of about this size.
const OUT_CHUNK: usize = 1 << 20;

struct Output<'a> {
    segment: &'a Segment,
    buf: Vec<u8>,
    infos: Vec<BatchInfo>,
    written: u64,
    interval: u64,
    meter: Meter<'a>,
}

impl Output<'_> {
    fn push(&mut self, bytes: &[u8]) -> Result<(), Halt> {
        let Some(h) = BatchHeader::parse(bytes) else {
            return Ok(());
        };
        if self.written + (self.buf.len() + bytes.len()) as u64 > u64::from(u32::MAX) {
            return Err(Halt::Error(LogError::Corrupt {
                path: self.segment.log_path().to_path_buf(),
                position: self.written,
                reason: "a cleaned segment would exceed 4 GiB; lower segment.bytes".into(),
            }));
        }
        self.infos.push(BatchInfo {
            base_offset: h.base_offset,
            last_offset_delta: h.last_offset_delta,
            records_count: h.records_count,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            attributes: h.attributes,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            position: self.buf.len(),
            len: bytes.len(),
        });
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= OUT_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Halt> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.segment
            .append(&self.buf, &[], &self.infos, self.interval)?;
        self.written += self.buf.len() as u64;
        self.meter.add(self.buf.len() as u64);
        self.buf.clear();
        self.infos.clear();
        Ok(())
    }
}
