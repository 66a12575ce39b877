//! What the log cleaner needs of a segment: reading every batch in file
//! order, and writing a cleaned replacement under temporary names
//! (`<base>.log.cleaned`, `.index.cleaned`, `.timeindex.cleaned`) that becomes
//! an ordinary segment once the cleaner renamed its files into place.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::LogError;
use crate::record::{self, LOG_OVERHEAD};

use super::{file_name, ChunkReader, Files, IndexLimits, Segment};

/// Suffix of the files a cleaning pass writes before it commits.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

impl Segment {
    /// A new, empty segment whose three files are `<base>.<ext>.cleaned`
    /// (truncated if present). Its paths are those temporary names until
    /// [`Segment::renamed`].
    pub(crate) fn create_cleaned(
        dir: &Path,
        base_offset: i64,
        limits: IndexLimits,
        now_ms: i64,
    ) -> Result<Segment, LogError> {
        let files = Files::with_new_indexes(dir, base_offset, limits, true, CLEANED_SUFFIX)?;
        Ok(Segment::from_files(base_offset, files, now_ms))
    }

    /// The same segment known by its final names (`<base>.log`, ...), after the
    /// caller renamed its files there: the open descriptors follow the renames.
    pub(crate) fn renamed(self, dir: &Path) -> Segment {
        let base = self.base_offset;
        Segment {
            log_path: dir.join(file_name(base, "log")),
            offset_index: self
                .offset_index
                .renamed(dir.join(file_name(base, "index"))),
            time_index: self
                .time_index
                .renamed(dir.join(file_name(base, "timeindex"))),
            ..self
        }
    }

    /// Declares the segment to cover offsets up to `next_offset` (a cleaned
    /// segment covers what it replaced, up to the base of the next segment, even
    /// if its last batch ends earlier; a truncation inside such a gap ends it
    /// there). Only for a segment no append is writing to.
    pub(crate) fn set_next_offset(&self, next_offset: i64) {
        self.next_offset.store(next_offset, Ordering::Release);
    }

    /// Bytes of the offset and time index files (for the cleaner's grouping,
    /// and what `Log::open_segment` reports).
    pub(crate) fn index_bytes(&self) -> (u64, u64) {
        (
            (self.offset_index.len() * crate::index::ENTRY_LEN) as u64,
            (self.time_index.len() * crate::timeindex::ENTRY_LEN) as u64,
        )
    }

    /// The log file's modification time (the cleaner carries it over, as
    /// Kafka, so retention by time of a segment without timestamps is unchanged).
    pub(crate) fn modified(&self) -> Option<std::time::SystemTime> {
        self.file.metadata().and_then(|m| m.modified()).ok()
    }

    pub(crate) fn set_modified(&self, time: std::time::SystemTime) -> Result<(), LogError> {
        self.file.set_modified(time).map_err(LogError::io(
            "setting the modification time of",
            &self.log_path,
        ))
    }

    /// Calls `f(position, batch)` with every whole batch below the published
    /// size, in file order, reading through a 1 MiB window. Only the length
    /// field is checked here (`f` validates what it needs); a length that is
    /// illegal or runs past the size is `Corrupt`. Returns the bytes read.
    pub(crate) fn for_each_batch<E: From<LogError>>(
        &self,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let end = self.size();
        let mut reader = ChunkReader::new(&self.file, end);
        let mut pos = 0u64;
        let corrupt = |position, reason: String| LogError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason,
        };
        while pos < end {
            let size = reader
                .get(pos, LOG_OVERHEAD)
                .map_err(LogError::io("reading", &self.log_path))?
                .and_then(record::batch_size_at)
                .ok_or_else(|| corrupt(pos, "illegal or torn batch length".into()))?;
            let batch = reader
                .get(pos, size)
                .map_err(LogError::io("reading", &self.log_path))?
                .ok_or_else(|| {
                    corrupt(
                        pos,
                        format!("batch of {size} bytes runs past the segment end {end}"),
                    )
                })?;
            f(pos, batch)?;
            pos += size as u64;
        }
        Ok(reader.bytes_read)
    }
}
