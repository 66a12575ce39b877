//! Reading: `read` / `read_up_to` (whole batches from one segment, never past
//! the log end or a caller's bound) and the timestamp lookups of ListOffsets.
//! Readers take no lock an append holds; each holds `cut` shared so that a
//! truncation never cuts a file under it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::LogError;
use crate::segment::{FileSlice, Segment};

use super::Log;

impl Log {
    /// Whole batches starting with the one containing `offset` (which may begin
    /// before it, as in Kafka), up to `max_bytes`, but at least one whole batch if
    /// `min_one_batch`. Empty at the log end. Reads from one segment; the caller
    /// continues from the offset after the last batch returned.
    ///
    /// Errors with `OffsetOutOfRange` outside `[log_start, log_end]`. Never
    /// returns a batch at or past the log end offset loaded at the start, and
    /// holds no lock an append takes while reading the file (only `cut`
    /// shared, which a truncation takes briefly to cut a segment).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, LogError> {
        self.read_up_to(offset, max_bytes, min_one_batch, i64::MAX)
    }

    /// [`Log::read`], also leaving out batches whose base offset is at or above
    /// `max_offset` (for consumers: the high watermark). Empty if `offset >=
    /// max_offset`.
    pub fn read_up_to(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<Bytes, LogError> {
        let _cut = self.cut.read();
        self.read_once(offset, max_bytes, min_one_batch, max_offset)
    }

    fn read_once(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<Bytes, LogError> {
        let log_end = self.log_end.load(Ordering::Acquire);
        self.check_range(offset, log_end)?;
        let upper = max_offset.min(log_end);
        if offset >= upper {
            return Ok(Bytes::new());
        }
        let first = {
            let segments = self.segments.read();
            let floor = segments.range(..=offset).next_back();
            floor
                .or_else(|| segments.iter().next())
                .map(|(_, s)| Arc::clone(s))
        };
        // Retention may have moved the start while we were not looking.
        self.check_range(offset, log_end)?;
        // Usually the floor segment holds the offset; a segment that ends early
        // (a gap left by recovery or the cleaner) sends us on to the next one.
        let mut segment = first;
        while let Some(s) = segment {
            if let Some(bytes) = s.read(offset, max_bytes, min_one_batch, upper)? {
                return Ok(bytes);
            }
            segment = self.next_segment(&s, offset);
        }
        Ok(Bytes::new())
    }

    /// [`Log::read_up_to`] returning the range of the segment file instead of
    /// its bytes (see [`FileSlice`]), for a fetch answered with `sendfile`. An
    /// empty slice (or `None` at the log end or past the last segment) where
    /// `read_up_to` returns empty bytes.
    pub fn read_slice_up_to(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<Option<FileSlice>, LogError> {
        let _cut = self.cut.read();
        let log_end = self.log_end.load(Ordering::Acquire);
        self.check_range(offset, log_end)?;
        let upper = max_offset.min(log_end);
        if offset >= upper {
            return Ok(None);
        }
        let mut segment = {
            let segments = self.segments.read();
            let floor = segments.range(..=offset).next_back();
            floor
                .or_else(|| segments.iter().next())
                .map(|(_, s)| Arc::clone(s))
        };
        self.check_range(offset, log_end)?;
        while let Some(s) = segment {
            if let Some(slice) = s.read_slice(offset, max_bytes, min_one_batch, upper)? {
                return Ok(Some(slice));
            }
            segment = self.next_segment(&s, offset);
        }
        Ok(None)
    }

    /// The segment to read after `current` held nothing at or after `offset`:
    /// the next one in the map, or, if a cleaning replaced `current` meanwhile
    /// (its successors may now be merged into a segment that starts lower),
    /// the one that now holds `offset`.
    fn next_segment(&self, current: &Arc<Segment>, offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        let base = current.base_offset();
        let next = match segments.get(&base) {
            Some(s) if Arc::ptr_eq(s, current) => segments.range(base.saturating_add(1)..).next(),
            _ => segments
                .range(..=offset)
                .next_back()
                .or_else(|| segments.iter().next()),
        };
        next.map(|(_, s)| Arc::clone(s))
    }

    fn check_range(&self, offset: i64, log_end: i64) -> Result<(), LogError> {
        let log_start = self.log_start.load(Ordering::Acquire);
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start,
                log_end,
            });
        }
        Ok(())
    }

    /// The first batch whose maxTimestamp is >= `ts`, ignoring batches wholly
    /// below the log start offset (the server decodes it to find the exact
    /// record, and clamps that offset to the log start offset, as Kafka does).
    pub fn find_batch_by_timestamp(&self, ts: i64) -> Result<Option<Bytes>, LogError> {
        let _cut = self.cut.read();
        self.find_batch_by_timestamp_once(ts)
    }

    fn find_batch_by_timestamp_once(&self, ts: i64) -> Result<Option<Bytes>, LogError> {
        let log_start = self.log_start_offset();
        for segment in self.snapshot() {
            if segment.max_timestamp().is_some_and(|m| m.timestamp >= ts) {
                if let Some(batch) = segment.batch_at_timestamp(ts, log_start)? {
                    return Ok(Some(batch));
                }
            }
        }
        Ok(None)
    }

    /// The (first) batch holding the largest timestamp, for ListOffsets -3.
    pub fn max_timestamp_batch(&self) -> Result<Option<Bytes>, LogError> {
        let _cut = self.cut.read();
        self.max_timestamp_batch_once()
    }

    fn max_timestamp_batch_once(&self) -> Result<Option<Bytes>, LogError> {
        let mut best: Option<(Arc<Segment>, i64, i64)> = None;
        for segment in self.snapshot() {
            if let Some(m) = segment.max_timestamp() {
                if best.as_ref().is_none_or(|b| m.timestamp > b.1) {
                    best = Some((segment, m.timestamp, m.offset));
                }
            }
        }
        match best {
            Some((segment, _, offset)) => segment.batch_containing(offset),
            None => Ok(None),
        }
    }
}
