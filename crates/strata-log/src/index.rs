//! Sparse offset index of one segment: `<base>.index`.
//!
//! Each entry is 8 bytes, big-endian as in Kafka: the offset relative to the
//! segment's base offset (u32) and the byte position in the `.log` file (u32) of
//! the batch whose *last* offset that is (Kafka indexes a batch by its last offset
//! and its start position). Entries are strictly increasing in both fields.
//!
//! Design: the entries live in an in-memory `Vec` and every new entry is written
//! at the end of the file with a positioned write. We chose this over `mmap`
//! (what Kafka does) because an index is small (10 MiB max, 8 bytes per 4 KiB of
//! log), lookups then need no `unsafe` and cannot fault with SIGBUS if the file is
//! truncated under us, and appends are one `pwrite` of 8 bytes every
//! `index.interval.bytes`. Loading a segment reads the whole file once, which is
//! the "read indexes only" cost of a clean restart.
//!
//! Concurrency: lookups may run from any thread; `append` must be called by one
//! thread at a time (the segment's writer). The file write happens outside the
//! entries' lock, which is held only to push the new entry, so a lookup never
//! waits for I/O.
//!
//! This module never reads the `.log`; rebuilding an index from the log is
//! `segment`'s job.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

pub const ENTRY_LEN: usize = 8;

/// One decoded entry, with the absolute offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: i64,
    pub position: u32,
}

/// Why an index file on disk cannot be trusted (the caller rebuilds it).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("I/O error on index {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("index {path} is inconsistent: {reason}")]
    Inconsistent { path: PathBuf, reason: String },
}

pub struct OffsetIndex {
    path: PathBuf,
    file: File,
    base_offset: i64,
    entries: RwLock<Vec<(u32, u32)>>,
    max_entries: AtomicUsize,
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

impl OffsetIndex {
    /// Creates an empty index, truncating any file at `path`.
    pub fn create(path: PathBuf, base_offset: i64, max_entries: usize) -> Result<Self, IndexError> {
        let file = open_rw(&path, true).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(OffsetIndex {
            path,
            file,
            base_offset,
            entries: RwLock::new(Vec::new()),
            max_entries: AtomicUsize::new(max_entries),
        })
    }

    /// Loads an existing index and checks it against the segment it describes:
    /// whole entries only, strictly increasing offsets and positions, positions
    /// below `log_size` and offsets at most `last_offset`.
    pub fn load(
        path: PathBuf,
        base_offset: i64,
        max_entries: usize,
        log_size: u64,
        last_offset: i64,
    ) -> Result<Self, IndexError> {
        let bytes = std::fs::read(&path).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |reason: String| IndexError::Inconsistent {
            path: path.clone(),
            reason,
        };
        if bytes.len() % ENTRY_LEN != 0 {
            return Err(bad(format!(
                "size {} is not a multiple of {ENTRY_LEN}",
                bytes.len()
            )));
        }
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let rel = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if let Some(&(last_rel, last_pos)) = entries.last() {
                if rel <= last_rel || pos <= last_pos {
                    return Err(bad(format!(
                        "entry {} ({rel}, {pos}) is not after ({last_rel}, {last_pos})",
                        entries.len()
                    )));
                }
            }
            if u64::from(pos) >= log_size {
                return Err(bad(format!(
                    "position {pos} is beyond the log size {log_size}"
                )));
            }
            if base_offset + i64::from(rel) > last_offset {
                return Err(bad(format!(
                    "offset {} is beyond the segment's last offset {last_offset}",
                    base_offset + i64::from(rel)
                )));
            }
            entries.push((rel, pos));
        }
        let file = open_rw(&path, false).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(OffsetIndex {
            path,
            file,
            base_offset,
            entries: RwLock::new(entries),
            max_entries: AtomicUsize::new(max_entries),
        })
    }

    /// Appends an entry. `offset` must be above the last entry's and fit in u32
    /// relative to the base; violations are ignored (an index is only a hint).
    /// One caller at a time.
    pub fn append(&self, offset: i64, position: u32) -> io::Result<()> {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return Ok(());
        };
        let len = {
            let entries = self.entries.read();
            if let Some(&(last_rel, last_pos)) = entries.last() {
                if rel <= last_rel || position <= last_pos {
                    return Ok(());
                }
            }
            entries.len()
        };
        let mut buf = [0u8; ENTRY_LEN];
        buf[..4].copy_from_slice(&rel.to_be_bytes());
        buf[4..].copy_from_slice(&position.to_be_bytes());
        self.file.write_all_at(&buf, (len * ENTRY_LEN) as u64)?;
        self.entries.write().push((rel, position));
        Ok(())
    }

    /// Drops the entries of batches at or after byte `position` of the log (a
    /// truncation cuts the log there) and shortens the file to match. Returns the
    /// last entry kept. One caller at a time (the segment's writer).
    pub fn truncate_to_position(&self, position: u64) -> io::Result<Option<OffsetEntry>> {
        let (kept, last) = {
            let mut entries = self.entries.write();
            let kept = entries.partition_point(|&(_, p)| u64::from(p) < position);
            entries.truncate(kept);
            (kept, entries.last().map(|&e| self.entry(e)))
        };
        self.file.set_len((kept * ENTRY_LEN) as u64)?;
        Ok(last)
    }

    /// Largest entry whose offset is <= `target`.
    pub fn lookup(&self, target: i64) -> Option<OffsetEntry> {
        let rel = target - self.base_offset;
        if rel < 0 {
            return None;
        }
        let entries = self.entries.read();
        let idx = entries.partition_point(|&(r, _)| i64::from(r) <= rel);
        idx.checked_sub(1).map(|i| self.entry(entries[i]))
    }

    fn entry(&self, (rel, position): (u32, u32)) -> OffsetEntry {
        OffsetEntry {
            offset: self.base_offset + i64::from(rel),
            position,
        }
    }

    pub fn entries(&self) -> Vec<OffsetEntry> {
        self.entries.read().iter().map(|&e| self.entry(e)).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries.load(Ordering::Relaxed)
    }

    pub fn set_max_entries(&self, max_entries: usize) {
        self.max_entries.store(max_entries, Ordering::Relaxed);
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn load_rejects_non_monotonic_and_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let idx = OffsetIndex::create(path.clone(), 100, 10).unwrap();
        idx.append(110, 0).unwrap();
        idx.append(120, 4000).unwrap();
        assert_eq!(
            OffsetIndex::load(path.clone(), 100, 10, 5000, 130)
                .unwrap()
                .len(),
            2
        );
        assert!(OffsetIndex::load(path.clone(), 100, 10, 4000, 130).is_err());
        assert!(OffsetIndex::load(path.clone(), 100, 10, 5000, 115).is_err());
        let mut raw = std::fs::read(&path).unwrap();
        raw.swap(3, 11);
        std::fs::write(&path, &raw).unwrap();
        assert!(OffsetIndex::load(path.clone(), 100, 10, 5000, 130).is_err());
        std::fs::write(&path, [0u8; 5]).unwrap();
        assert!(OffsetIndex::load(path, 100, 10, 5000, 130).is_err());
    }

    proptest! {
        #[test]
        fn lookup_matches_brute_force(
            deltas in prop::collection::vec((1u32..50, 1u32..5000), 0..60),
            targets in prop::collection::vec(0i64..3000, 1..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("i.index");
            let base = 1000;
            let idx = OffsetIndex::create(path.clone(), base, 1000).unwrap();
            let mut model = Vec::new();
            let (mut off, mut pos) = (base, 0u32);
            for (d_off, d_pos) in deltas {
                off += i64::from(d_off);
                pos += d_pos;
                idx.append(off, pos).unwrap();
                model.push(OffsetEntry { offset: off, position: pos });
            }
            for t in targets {
                let target = base - 5 + t;
                let expected = model.iter().rev().find(|e| e.offset <= target).copied();
                prop_assert_eq!(idx.lookup(target), expected);
            }
            let reloaded = OffsetIndex::load(path, base, 1000, u64::from(pos) + 1, off).unwrap();
            prop_assert_eq!(reloaded.entries(), model);
        }
    }
}
