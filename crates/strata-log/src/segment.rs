//! One segment: `<base:020>.log` plus its `.index` and `.timeindex`.
//!
//! Owns the segment's files, its committed size and next offset, and the
//! in-memory indexes. Writes come from one writer at a time (the `Log`'s writer
//! mutex); reads may run concurrently from any thread. A write is published by
//! storing the new `size` (Release) after the bytes are written, and readers only
//! read below the `size` they loaded (Acquire), so they never see a partial batch.
//! A `Segment` lives in an `Arc`: deleting its files while a reader holds it is
//! fine, the reader keeps its open descriptor.
//!
//! Never decodes records; only batch headers are read, and whole batches are
//! CRC-checked only by recovery (`scan`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::error::LogError;
use crate::index::{IndexError, OffsetIndex};
use crate::record::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::timeindex::TimeIndex;

mod cleaned;
mod sealed;
mod slice;
pub(crate) use cleaned::CLEANED_SUFFIX;
pub use slice::FileSlice;

/// Index capacities derived from `segment.index.bytes`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexLimits {
    pub offset_entries: usize,
    pub time_entries: usize,
    pub interval_bytes: u64,
}

pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Parses `<20 digits>.log` into a base offset.
pub(crate) fn parse_log_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Largest timestamp in a segment and the last offset of the batch holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MaxTimestamp {
    pub timestamp: i64,
    pub offset: i64,
}

/// State only the writer touches.
struct WriterState {
    bytes_since_index: u64,
    /// maxTimestamp of the first batch (Kafka's rolling-based timestamp), loaded
    /// lazily after a reopen.
    first_batch_ts: Option<i64>,
    created_ms: i64,
    /// Running max timestamp, ahead of the published `Segment::max_ts` while an
    /// append is in flight.
    max_ts: Option<MaxTimestamp>,
}

pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    /// Shared with the [`FileSlice`]s a fetch hands to the socket, so a slice stays
    /// readable after retention or a cleaning dropped the segment.
    file: Arc<File>,
    size: AtomicU64,
    next_offset: AtomicI64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    max_ts: Mutex<Option<MaxTimestamp>>,
    writer: Mutex<WriterState>,
}

/// What a full scan of a segment's log found.
pub(crate) struct ScanOutcome {
    /// Bytes of whole, valid batches from the start of the file.
    pub valid_bytes: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<String>,
    pub bytes_scanned: u64,
}

fn open_log(path: &Path, truncate: bool) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(LogError::io("opening", path))
}

/// A segment's opened files.
struct Files {
    log_path: PathBuf,
    file: File,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
}

impl Files {
    /// Opens the log (truncating it if `truncate_log`) and creates empty indexes;
    /// every file name ends with `suffix` (the cleaner's `.cleaned` files).
    fn with_new_indexes(
        dir: &Path,
        base_offset: i64,
        limits: IndexLimits,
        truncate_log: bool,
        suffix: &str,
    ) -> Result<Files, LogError> {
        let name = |ext| format!("{}{suffix}", file_name(base_offset, ext));
        let log_path = dir.join(name("log"));
        let file = open_log(&log_path, truncate_log)?;
        let offset_index =
            OffsetIndex::create(dir.join(name("index")), base_offset, limits.offset_entries)
                .map_err(IndexError::into_log_error)?;
        let time_index = TimeIndex::create(
            dir.join(name("timeindex")),
            base_offset,
            limits.time_entries,
        )
        .map_err(IndexError::into_log_error)?;
        Ok(Files {
            log_path,
            file,
            offset_index,
            time_index,
        })
    }
}

impl Segment {
    /// Creates a new empty segment, truncating any files of the same name.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        limits: IndexLimits,
        now_ms: i64,
    ) -> Result<Segment, LogError> {
        let files = Files::with_new_indexes(dir, base_offset, limits, true, "")?;
        Ok(Segment::from_files(base_offset, files, now_ms))
    }

    /// An empty segment over `files`; `set_loaded` or a scan fills it in.
    fn from_files(base_offset: i64, files: Files, now_ms: i64) -> Segment {
        Segment {
            base_offset,
            log_path: files.log_path,
            file: Arc::new(files.file),
            size: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            offset_index: files.offset_index,
            time_index: files.time_index,
            max_ts: Mutex::new(None),
            writer: Mutex::new(WriterState {
                bytes_since_index: 0,
                first_batch_ts: None,
                created_ms: now_ms,
                max_ts: None,
            }),
        }
    }

    /// Sets what a trusted open learned from metadata and the indexes.
    fn set_loaded(&self, size: u64, next_offset: i64, max_ts: Option<MaxTimestamp>) {
        self.writer.lock().max_ts = max_ts;
        *self.max_ts.lock() = max_ts;
        self.next_offset.store(next_offset, Ordering::Release);
        self.size.store(size, Ordering::Release);
    }

    /// Opens a segment whose log is trusted (below the recovery point, or after a
    /// clean shutdown) without reading its log data. `next_offset` comes from the
    /// caller (the next segment's base, or the clean-shutdown marker). Indexes
    /// that fail their consistency checks are rebuilt from the log; the bytes read
    /// to do so are added to `scanned`.
    pub fn open_trusted(
        dir: &Path,
        base_offset: i64,
        next_offset: i64,
        limits: IndexLimits,
        now_ms: i64,
        scanned: &AtomicU64,
    ) -> Result<Segment, LogError> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = open_log(&log_path, false)?;
        let size = file
            .metadata()
            .map_err(LogError::io("reading metadata of", &log_path))?
            .len();
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_path = dir.join(file_name(base_offset, "timeindex"));
        let last = next_offset - 1;
        let offset_index =
            OffsetIndex::load(index_path, base_offset, limits.offset_entries, size, last);
        let time_index = TimeIndex::load(time_path, base_offset, limits.time_entries, last);
        match (offset_index, time_index) {
            (Ok(oi), Ok(ti)) => {
                let max_ts = ti.last().map(|e| MaxTimestamp {
                    timestamp: e.timestamp,
                    offset: e.offset,
                });
                let files = Files {
                    log_path,
                    file,
                    offset_index: oi,
                    time_index: ti,
                };
                let segment = Segment::from_files(base_offset, files, now_ms);
                segment.set_loaded(size, next_offset, max_ts);
                Ok(segment)
            }
            (oi, ti) => {
                let reason = [oi.err(), ti.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(segment = %log_path.display(), %reason, "rebuilding indexes");
                drop(file);
                let (segment, outcome) = Segment::recover(dir, base_offset, limits, now_ms)?;
                scanned.fetch_add(outcome.bytes_scanned, Ordering::Relaxed);
                if let Some(reason) = &outcome.stopped {
                    tracing::warn!(
                        file = %segment.log_path().display(),
                        position = outcome.valid_bytes,
                        %reason,
                        "truncated a trusted segment at the first invalid batch"
                    );
                }
                // Trusted segments were sealed (rolled, or closed cleanly).
                segment.seal()?;
                Ok(segment)
            }
        }
    }

    /// Scans the whole log, validating every batch (length, magic, CRC, offsets),
    /// truncates the file after the last valid batch and rebuilds both indexes.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        limits: IndexLimits,
        now_ms: i64,
    ) -> Result<(Segment, ScanOutcome), LogError> {
        let files = Files::with_new_indexes(dir, base_offset, limits, false, "")?;
        let segment = Segment::from_files(base_offset, files, now_ms);
        let log_path = segment.log_path.clone();
        let outcome = segment.scan_and_index(limits.interval_bytes)?;
        let file_len = segment
            .file
            .metadata()
            .map_err(LogError::io("reading metadata of", &log_path))?
            .len();
        if outcome.valid_bytes < file_len {
            segment
                .file
                .set_len(outcome.valid_bytes)
                .map_err(LogError::io("truncating", &log_path))?;
        }
        Ok((segment, outcome))
    }

    /// Walks batches from position 0, indexing each valid one as `append` would.
    fn scan_and_index(&self, interval: u64) -> Result<ScanOutcome, LogError> {
        let file_len = self
            .file
            .metadata()
            .map_err(LogError::io("reading metadata of", &self.log_path))?
            .len();
        let mut reader = ChunkReader::new(&self.file, file_len);
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let mut stopped = None;
        while pos < file_len {
            let Some(size) = reader
                .get(pos, LOG_OVERHEAD)
                .map_err(LogError::io("reading", &self.log_path))?
                .and_then(record::batch_size_at)
            else {
                stopped = Some("torn or invalid batch length".to_string());
                break;
            };
            let Some(batch) = reader
                .get(pos, size)
                .map_err(LogError::io("reading", &self.log_path))?
            else {
                stopped = Some(format!(
                    "batch of {size} bytes runs past the end of the file (torn write)"
                ));
                break;
            };
            let info = match record::validate_stored_batch(batch, pos as usize) {
                Ok(info) => info,
                Err(e) => {
                    stopped = Some(e.to_string());
                    break;
                }
            };
            // Offsets only grow. Leader appends write them contiguously, but
            // the cleaner leaves gaps (removed batches, a first batch above the
            // base of a merged segment) and followers copy a cleaned leader's
            // gaps, as in Kafka, so only an overlap or a step back means
            // corruption.
            if info.base_offset < expected
                || info.last_offset() - self.base_offset > i64::from(u32::MAX)
            {
                stopped = Some(format!(
                    "batch offsets {}..={} go back below offset {} in a segment based at {}",
                    info.base_offset,
                    info.last_offset(),
                    expected,
                    self.base_offset
                ));
                break;
            }
            self.index_batch(
                pos,
                size as u64,
                info.last_offset(),
                info.max_timestamp,
                interval,
            )?;
            expected = info.last_offset() + 1;
            pos += size as u64;
        }
        self.size.store(pos, Ordering::Release);
        self.publish_max_timestamp();
        self.next_offset.store(expected, Ordering::Release);
        Ok(ScanOutcome {
            valid_bytes: pos,
            stopped,
            bytes_scanned: reader.bytes_read,
        })
    }

    /// Index bookkeeping for one batch written at `position` (Kafka's rule: an
    /// entry for a batch once more than `interval` bytes were written since the
    /// last entry).
    fn index_batch(
        &self,
        position: u64,
        len: u64,
        last_offset: i64,
        max_timestamp: i64,
        interval: u64,
    ) -> Result<(), LogError> {
        let mut w = self.writer.lock();
        if w.max_ts.is_none_or(|m| max_timestamp > m.timestamp) {
            w.max_ts = Some(MaxTimestamp {
                timestamp: max_timestamp,
                offset: last_offset,
            });
        }
        let max = w.max_ts;
        if w.first_batch_ts.is_none() && position == 0 {
            w.first_batch_ts = Some(max_timestamp);
        }
        if w.bytes_since_index > interval {
            let pos = u32::try_from(position).unwrap_or(u32::MAX);
            self.offset_index
                .append(last_offset, pos)
                .map_err(LogError::io("writing index for", &self.log_path))?;
            if let Some(m) = max {
                self.time_index
                    .maybe_append(m.timestamp, m.offset)
                    .map_err(LogError::io("writing time index for", &self.log_path))?;
            }
            w.bytes_since_index = 0;
        }
        w.bytes_since_index += len;
        Ok(())
    }

    /// Writes already validated batches (offsets assigned) at the end of the
    /// segment, updates the indexes, then publishes the new size and next
    /// offset. `batches` describes `data` (positions relative to `data`);
    /// `headers`, if not empty, replaces each batch's header (`patched`).
    pub fn append(
        &self,
        data: &[u8],
        headers: &[[u8; HEADER_LEN]],
        batches: &[record::BatchInfo],
        interval: u64,
    ) -> Result<(), LogError> {
        let start = self.size.load(Ordering::Acquire);
        crate::patched::write_at(&self.file, data, batches, headers, start)
            .map_err(LogError::io("writing", &self.log_path))?;
        for b in batches {
            self.index_batch(
                start + b.position as u64,
                b.len as u64,
                b.last_offset(),
                b.max_timestamp,
                interval,
            )?;
        }
        if let Some(last) = batches.last() {
            self.next_offset
                .store(last.last_offset() + 1, Ordering::Release);
        }
        self.size
            .store(start + data.len() as u64, Ordering::Release);
        self.publish_max_timestamp();
        Ok(())
    }

    /// Makes the writer's running max timestamp visible to readers; called only
    /// after the batch holding it is published, so a reader looking for it finds
    /// it.
    fn publish_max_timestamp(&self) {
        let max = self.writer.lock().max_ts;
        *self.max_ts.lock() = max;
    }

    /// Appends the segment's max timestamp to the time index (so its last entry
    /// is the segment's largest timestamp) and fsyncs everything. Called when the
    /// segment stops being active and on close.
    pub fn seal(&self) -> Result<(), LogError> {
        self.seal_indexes()?;
        self.sync()
    }

    /// Writes the final time-index entry (the segment's max timestamp), without
    /// fsyncing: a roll leaves the fsync to the background flusher.
    pub fn seal_indexes(&self) -> Result<(), LogError> {
        if let Some(m) = *self.max_ts.lock() {
            self.time_index
                .maybe_append(m.timestamp, m.offset)
                .map_err(LogError::io("writing time index for", &self.log_path))?;
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(LogError::io("fsyncing", &self.log_path))?;
        let oi = &self.offset_index;
        oi.sync().map_err(LogError::io("fsyncing", oi.path()))?;
        let ti = &self.time_index;
        ti.sync().map_err(LogError::io("fsyncing", ti.path()))
    }

    /// Where a truncation to `offset` cuts this segment: the position and base
    /// offset of the first batch whose last offset is >= `offset` (a batch
    /// holding `offset` goes whole, as in Kafka). `None` if no batch reaches it.
    pub fn cut_point(&self, offset: i64) -> Result<Option<(u64, i64)>, LogError> {
        Ok(self
            .locate(offset, self.size())?
            .map(|(pos, header)| (pos, header.base_offset)))
    }

    /// Removes every batch from byte `position` (a [`Segment::cut_point`]) on:
    /// publishes the shorter size and `next_offset` first (so new readers stop
    /// before the cut), drops the index entries past it, cuts the file,
    /// recomputes the max timestamp and the index bookkeeping as a rebuild of the
    /// shorter log would, and fsyncs the files. Called under the log's writer
    /// lock; `cut` is held exclusively (waiting for reads in flight, which hold
    /// it shared) from the size update to the file cut, not across the fsync.
    pub fn truncate_at(
        &self,
        position: u64,
        next_offset: i64,
        now_ms: i64,
        cut: &RwLock<()>,
    ) -> Result<(), LogError> {
        if position >= self.size() {
            return Ok(());
        }
        let oi = &self.offset_index;
        let ti = &self.time_index;
        let last_entry = {
            let _cut = cut.write();
            self.next_offset.store(next_offset, Ordering::Release);
            self.size.store(position, Ordering::Release);
            let last_entry = oi
                .truncate_to_position(position)
                .map_err(LogError::io("truncating", oi.path()))?;
            ti.truncate_to_offset(next_offset)
                .map_err(LogError::io("truncating", ti.path()))?;
            self.file
                .set_len(position)
                .map_err(LogError::io("truncating", &self.log_path))?;
            last_entry
        };
        // Every time-index entry kept names a batch below the cut; the batches
        // after the last offset-index entry are the only ones it may not cover.
        let from = last_entry.map_or(0, |e| u64::from(e.position));
        let mut max = ti.last().map(|e| MaxTimestamp {
            timestamp: e.timestamp,
            offset: e.offset,
        });
        self.scan_headers(from, position, |h| {
            if max.is_none_or(|m| h.max_timestamp > m.timestamp) {
                max = Some(MaxTimestamp {
                    timestamp: h.max_timestamp,
                    offset: h.last_offset(),
                });
            }
            false
        })?;
        {
            let mut w = self.writer.lock();
            w.bytes_since_index = position - from;
            w.max_ts = max;
            if position == 0 {
                w.first_batch_ts = None;
                w.created_ms = now_ms;
            }
        }
        *self.max_ts.lock() = max;
        self.sync()
    }

    pub fn delete_files(&self) -> Result<(), LogError> {
        let paths = [
            // The aborted-transaction index the log keeps beside it.
            self.log_path.with_extension(crate::txn_index::EXT),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
            self.log_path.clone(),
        ];
        for path in paths {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LogError::io("deleting", path)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn max_timestamp(&self) -> Option<MaxTimestamp> {
        *self.max_ts.lock()
    }

    /// True when one more index entry would not fit, or `extra_offsets` more
    /// offsets would overflow the u32 relative offset.
    pub fn needs_roll_for_index(&self, last_offset_after: i64) -> bool {
        self.offset_index.is_full()
            || self.time_index.is_full()
            || last_offset_after - self.base_offset > i64::from(u32::MAX)
    }

    pub fn set_limits(&self, limits: IndexLimits) {
        self.offset_index.set_max_entries(limits.offset_entries);
        self.time_index.set_max_entries(limits.time_entries);
    }

    /// Kafka's rolling-based timestamp (the first batch's maxTimestamp, loaded
    /// lazily after a reopen; `None` if the segment is empty or the timestamp
    /// is -1) and the time this `Segment` was created or opened.
    pub fn roll_times(&self) -> Result<(Option<i64>, i64), LogError> {
        let mut w = self.writer.lock();
        if w.first_batch_ts.is_none() && self.size() >= HEADER_LEN as u64 {
            let header = self.header_at(0)?;
            w.first_batch_ts = Some(header.max_timestamp);
        }
        Ok((w.first_batch_ts.filter(|ts| *ts >= 0), w.created_ms))
    }

    /// Reads and sanity-checks the header of the batch at `position`.
    fn header_at(&self, position: u64) -> Result<BatchHeader, LogError> {
        let mut buf = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(LogError::io("reading", &self.log_path))?;
        let corrupt = |reason: &str| LogError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason: reason.to_string(),
        };
        let header = BatchHeader::parse(&buf).ok_or_else(|| corrupt("short header"))?;
        if header.size().is_none() {
            return Err(corrupt("batch length below the minimum"));
        }
        Ok(header)
    }

    /// Position and header of the first batch whose last offset is >= `target`,
    /// searching below `end`. Starts from the offset index. A returned batch
    /// lies wholly below `end`.
    fn locate(&self, target: i64, end: u64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let start = self
            .offset_index
            .lookup(target)
            .map_or(0, |e| u64::from(e.position));
        self.scan_headers(start, end, |h| h.last_offset() >= target)
    }

    /// Calls `f` with the header of every batch whose last offset is >= `from`,
    /// in order, reading only headers. Returns the bytes read.
    pub fn for_each_header(
        &self,
        from: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<u64, LogError> {
        let end = self.size();
        let Some((start, _)) = self.locate(from, end)? else {
            return Ok(0);
        };
        let mut headers = 0u64;
        self.scan_headers(start, end, |h| {
            f(h);
            headers += 1;
            false
        })?;
        Ok(headers * HEADER_LEN as u64)
    }

    fn scan_headers(
        &self,
        mut pos: u64,
        end: u64,
        mut found: impl FnMut(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        while pos + HEADER_LEN as u64 <= end {
            let header = self.header_at(pos)?;
            // header_at checked the length is legal.
            let size = header.size().unwrap_or(HEADER_LEN) as u64;
            if pos + size > end {
                return Err(LogError::Corrupt {
                    path: self.log_path.clone(),
                    position: pos,
                    reason: format!("batch of {size} bytes runs past the segment end {end}"),
                });
            }
            if found(&header) {
                return Ok(Some((pos, header)));
            }
            pos += size;
        }
        Ok(None)
    }

    /// Whole batches starting with the one containing `offset` (or the first one
    /// after it), up to `max_bytes`, at least one batch if `min_one_batch`, and
    /// only batches whose base offset is below `upper`.
    /// `None` if no batch in this segment reaches `offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper: i64,
    ) -> Result<Option<Bytes>, LogError> {
        let end = self.size();
        let Some((pos, header)) = self.locate(offset, end)? else {
            return Ok(None);
        };
        if header.base_offset >= upper {
            return Ok(Some(Bytes::new()));
        }
        let first = header.size().unwrap_or(0) as u64;
        let avail = end - pos;
        let want = (max_bytes as u64).min(avail);
        if want < first {
            if !min_one_batch {
                return Ok(Some(Bytes::new()));
            }
            return self.read_range(pos, first).map(Some);
        }
        let mut buf = vec![0u8; want as usize];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(LogError::io("reading", &self.log_path))?;
        let mut whole = 0usize;
        while let Some(size) = buf.get(whole..).and_then(record::batch_size_at) {
            let base = buf.get(whole..whole + 8).map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                i64::from_be_bytes(a)
            });
            if whole + size > buf.len() || base.is_none_or(|b| b >= upper) {
                break;
            }
            whole += size;
        }
        buf.truncate(whole);
        Ok(Some(Bytes::from(buf)))
    }

    fn read_range(&self, pos: u64, len: u64) -> Result<Bytes, LogError> {
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(LogError::io("reading", &self.log_path))?;
        Ok(Bytes::from(buf))
    }

    /// The batch containing `offset`, if any.
    pub fn batch_containing(&self, offset: i64) -> Result<Option<Bytes>, LogError> {
        let end = self.size();
        match self.locate(offset, end)? {
            Some((pos, h)) if h.base_offset <= offset => {
                self.read_range(pos, h.size().unwrap_or(0) as u64).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The first batch whose maxTimestamp is >= `ts` and that reaches
    /// `min_offset` (the log start offset). Starts from the later of the
    /// positions given by the time index (after its last entry below `ts`) and
    /// the offset index (for `min_offset`), then scans batch headers.
    pub fn batch_at_timestamp(&self, ts: i64, min_offset: i64) -> Result<Option<Bytes>, LogError> {
        let end = self.size();
        let by_time = self.time_index.last_below(ts).map(|e| e.offset);
        let index = &self.offset_index;
        let position_of = |offset: Option<i64>| {
            offset
                .and_then(|o| index.lookup(o))
                .map_or(0, |e| u64::from(e.position))
        };
        let start = position_of(by_time).max(position_of(Some(min_offset)));
        let found = self.scan_headers(start, end, |h| {
            h.max_timestamp >= ts && h.last_offset() >= min_offset
        })?;
        match found {
            Some((pos, h)) => self.read_range(pos, h.size().unwrap_or(0) as u64).map(Some),
            None => Ok(None),
        }
    }

    #[cfg(test)]
    pub fn index_entries(
        &self,
    ) -> (
        Vec<crate::index::OffsetEntry>,
        Vec<crate::timeindex::TimeEntry>,
    ) {
        (self.offset_index.entries(), self.time_index.entries())
    }
}

/// Reads a file through a 1 MiB window, so recovery costs few syscalls.
pub(crate) struct ChunkReader<'a> {
    file: &'a File,
    file_len: u64,
    buf: Vec<u8>,
    start: u64,
    bytes_read: u64,
}

const CHUNK: usize = 1 << 20;

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(file: &'a File, file_len: u64) -> Self {
        ChunkReader {
            file,
            file_len,
            buf: Vec::new(),
            start: 0,
            bytes_read: 0,
        }
    }

    /// `len` bytes at `pos`, or `None` if the file ends before.
    pub(crate) fn get(&mut self, pos: u64, len: usize) -> std::io::Result<Option<&[u8]>> {
        if pos.saturating_add(len as u64) > self.file_len {
            return Ok(None);
        }
        let in_window = pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64;
        if !in_window {
            let n = (self.file_len - pos).min(len.max(CHUNK) as u64) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
            self.bytes_read += n as u64;
        }
        let from = (pos - self.start) as usize;
        Ok(Some(&self.buf[from..from + len]))
    }
}
