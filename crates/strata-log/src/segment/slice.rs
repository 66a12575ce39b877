//! Reads that return where the bytes are instead of the bytes: a [`FileSlice`]
//! is a byte range of a segment's `.log` with the descriptor that holds it, for
//! a caller that sends it with `sendfile(2)` (a fetch on a plaintext
//! connection) and never copies the records through user space.
//!
//! The slice owns a reference to the open file, so retention deleting the
//! segment or a cleaning replacing it after the read does not affect it: the
//! bytes stay those that were read. Only a truncation (a follower cutting a
//! diverged tail, recovery) shortens the file itself; the reader holds the log's
//! `cut` lock while it decides the range, and a sender that finds the file
//! shorter than the slice must fail (the response frame already promised the
//! length), which `sendfile` reports as an early end.
//!
//! Finding the cut between whole batches reads batch headers only: from the
//! last offset-index entry at or below the byte limit (entries are batch starts
//! every `index.interval.bytes`), so a read costs a few 61-byte `pread`s, not a
//! copy of the range.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::LogError;
use crate::record::HEADER_LEN;

use super::Segment;

/// Whole batches of one segment file: `len` bytes at `position`.
#[derive(Clone, Debug)]
pub struct FileSlice {
    file: Arc<File>,
    path: PathBuf,
    position: u64,
    len: u64,
    first_offset: i64,
    end_offset: i64,
}

impl FileSlice {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the bytes start in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first batch's base offset and an offset at or above one past the
    /// last batch's last offset (the next batch's base offset, or the segment's
    /// next offset): Kafka's `fetchUpperBoundOffset`, for collecting the aborted
    /// transactions that overlap the slice.
    pub fn offset_range(&self) -> (i64, i64) {
        (self.first_offset, self.end_offset)
    }

    /// The bytes, read with one `pread` (the copy path: TLS, or a caller that
    /// needs the records in memory).
    pub fn read(&self) -> Result<Bytes, LogError> {
        let mut buf = vec![0u8; self.len as usize];
        self.file
            .read_exact_at(&mut buf, self.position)
            .map_err(LogError::io("reading", &self.path))?;
        Ok(Bytes::from(buf))
    }
}

impl Segment {
    /// [`Segment::read`], returning the range instead of the bytes. `None` if no
    /// batch in this segment reaches `offset`; an empty slice where `read` returns
    /// empty bytes.
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper: i64,
    ) -> Result<Option<FileSlice>, LogError> {
        let end = self.size();
        let Some((pos, header)) = self.locate(offset, end)? else {
            return Ok(None);
        };
        let slice = |len: u64, end_offset: i64| FileSlice {
            file: Arc::clone(&self.file),
            path: self.log_path.clone(),
            position: pos,
            len,
            first_offset: header.base_offset,
            end_offset,
        };
        if header.base_offset >= upper {
            return Ok(Some(slice(0, header.base_offset)));
        }
        let first = header.size().unwrap_or(0) as u64;
        let limit = pos + (max_bytes as u64).min(end - pos);
        if limit - pos < first {
            if !min_one_batch {
                return Ok(Some(slice(0, header.base_offset)));
            }
            return Ok(Some(slice(first, header.last_offset() + 1)));
        }
        // Every batch before `from` is within both bounds: below the byte limit
        // (it ends at or before an index entry at or below it) and, when `upper`
        // cuts inside this segment, below `upper` (it precedes an entry whose
        // offset is at most `upper`).
        let mut from = self
            .offset_index
            .lookup_position(limit)
            .map_or(pos, |e| u64::from(e.position));
        if upper < self.next_offset() {
            let by_offset = self
                .offset_index
                .lookup(upper)
                .map_or(pos, |e| u64::from(e.position));
            from = from.min(by_offset);
        }
        let mut cut = from.max(pos + first);
        let mut next_base = None;
        while cut + HEADER_LEN as u64 <= end {
            let h = self.header_at(cut)?;
            let size = h.size().unwrap_or(HEADER_LEN) as u64;
            if cut + size > limit || h.base_offset >= upper {
                next_base = Some(h.base_offset);
                break;
            }
            cut += size;
        }
        let end_offset = next_base.unwrap_or_else(|| self.next_offset());
        Ok(Some(slice(cut - pos, end_offset)))
    }
}
