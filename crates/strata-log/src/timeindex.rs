//! Sparse time index of one segment: `<base>.timeindex`.
//!
//! Each entry is 12 bytes, big-endian as in Kafka: a timestamp (i64) and the
//! offset relative to the segment base (u32) of the batch holding it. An entry
//! `(t, o)` means "the largest timestamp among offsets <= o is t", so entries are
//! strictly increasing in timestamp (an entry is only appended when its
//! timestamp is above the last one) and non-decreasing in offset. When a segment
//! stops being active (roll, close) its maximum timestamp is appended, so the last
//! entry of an inactive segment is the segment's largest timestamp.
//!
//! Same storage choice as [`crate::index`]: an in-memory `Vec` plus positioned
//! appends to the file (no mmap: small files, no `unsafe`, no SIGBUS), and the
//! same concurrency: concurrent lookups, one appender, no I/O under the lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use crate::index::IndexError;

pub const ENTRY_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub offset: i64,
}

pub struct TimeIndex {
    path: PathBuf,
    file: File,
    base_offset: i64,
    entries: RwLock<Vec<(i64, u32)>>,
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

impl TimeIndex {
    /// Creates an empty time index, truncating any file at `path`.
    pub fn create(path: PathBuf, base_offset: i64, max_entries: usize) -> Result<Self, IndexError> {
        let file = open_rw(&path, true).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(TimeIndex {
            path,
            file,
            base_offset,
            entries: RwLock::new(Vec::new()),
            max_entries: AtomicUsize::new(max_entries),
        })
    }

    /// Loads an existing time index: whole entries, strictly increasing
    /// timestamps, non-decreasing offsets, offsets at most `last_offset`.
    pub fn load(
        path: PathBuf,
        base_offset: i64,
        max_entries: usize,
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
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if let Some(&(last_ts, last_rel)) = entries.last() {
                if ts <= last_ts || rel < last_rel {
                    return Err(bad(format!(
                        "entry {} ({ts}, {rel}) is not after ({last_ts}, {last_rel})",
                        entries.len()
                    )));
                }
            }
            if base_offset + i64::from(rel) > last_offset {
                return Err(bad(format!(
                    "offset {} is beyond the segment's last offset {last_offset}",
                    base_offset + i64::from(rel)
                )));
            }
            entries.push((ts, rel));
        }
        let file = open_rw(&path, false).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(TimeIndex {
            path,
            file,
            base_offset,
            entries: RwLock::new(entries),
            max_entries: AtomicUsize::new(max_entries),
        })
    }

    /// Appends `(timestamp, offset)` if `timestamp` is above the last entry's
    /// (and the offset not below it); otherwise does nothing. One caller at a
    /// time.
    pub fn maybe_append(&self, timestamp: i64, offset: i64) -> io::Result<()> {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return Ok(());
        };
        let len = {
            let entries = self.entries.read();
            if let Some(&(last_ts, last_rel)) = entries.last() {
                if timestamp <= last_ts || rel < last_rel {
                    return Ok(());
                }
            }
            entries.len()
        };
        let mut buf = [0u8; ENTRY_LEN];
        buf[..8].copy_from_slice(&timestamp.to_be_bytes());
        buf[8..].copy_from_slice(&rel.to_be_bytes());
        self.file.write_all_at(&buf, (len * ENTRY_LEN) as u64)?;
        self.entries.write().push((timestamp, rel));
        Ok(())
    }

    /// Drops the entries whose offset is at or above `next_offset` (a truncation
    /// removed those batches) and shortens the file to match. Every entry kept
    /// names a batch that is still there. One caller at a time.
    pub fn truncate_to_offset(&self, next_offset: i64) -> io::Result<()> {
        let kept = {
            let mut entries = self.entries.write();
            let base = self.base_offset;
            let kept = entries.partition_point(|&(_, rel)| base + i64::from(rel) < next_offset);
            entries.truncate(kept);
            kept
        };
        self.file.set_len((kept * ENTRY_LEN) as u64)
    }

    fn entry(&self, (timestamp, rel): (i64, u32)) -> TimeEntry {
        TimeEntry {
            timestamp,
            offset: self.base_offset + i64::from(rel),
        }
    }

    /// The last entry whose timestamp is strictly below `target`: every batch at
    /// or before its offset has a max timestamp below `target`, so a search for
    /// the first batch with timestamp >= `target` can start after it.
    pub fn last_below(&self, target: i64) -> Option<TimeEntry> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|&(ts, _)| ts < target);
        idx.checked_sub(1).map(|i| self.entry(entries[i]))
    }

    /// The first entry whose timestamp is >= `target`: the first batch with a
    /// timestamp >= `target` is at or before its offset.
    pub fn first_at_or_after(&self, target: i64) -> Option<TimeEntry> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|&(ts, _)| ts < target);
        entries.get(idx).map(|&e| self.entry(e))
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.read().last().map(|&e| self.entry(e))
    }

    pub fn entries(&self) -> Vec<TimeEntry> {
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

    proptest! {
        #[test]
        fn lookups_match_brute_force(
            steps in prop::collection::vec((-20i64..100, 0u32..30), 0..60),
            targets in prop::collection::vec(-100i64..3000, 1..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.timeindex");
            let base = 500;
            let idx = TimeIndex::create(path.clone(), base, 1000).unwrap();
            let mut model: Vec<TimeEntry> = Vec::new();
            let (mut ts, mut off) = (0i64, base);
            for (d_ts, d_off) in steps {
                ts += d_ts;
                off += i64::from(d_off);
                idx.maybe_append(ts, off).unwrap();
                if model.last().is_none_or(|l| ts > l.timestamp) {
                    model.push(TimeEntry { timestamp: ts, offset: off });
                }
            }
            for t in targets {
                let below = model.iter().rev().find(|e| e.timestamp < t).copied();
                let after = model.iter().find(|e| e.timestamp >= t).copied();
                prop_assert_eq!(idx.last_below(t), below);
                prop_assert_eq!(idx.first_at_or_after(t), after);
            }
            let reloaded = TimeIndex::load(path, base, 1000, off).unwrap();
            prop_assert_eq!(reloaded.entries(), model);
        }
    }
}
