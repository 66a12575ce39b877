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
//! Same storage as [`crate::index`], shared in [`crate::index_file`]: an
//! in-memory `Vec` plus positioned appends to the file (no mmap: small files,
//! no `unsafe`, no SIGBUS), concurrent lookups, one appender, no I/O under the
//! lock. Unlike the offset index, entries hold no log position (so loading
//! checks none) and truncation goes by offset.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::index::IndexError;
use crate::index_file::{Entry, IndexFile};

pub const ENTRY_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub offset: i64,
}

/// An entry as stored: timestamp, relative offset.
#[derive(Clone, Copy)]
struct Stored {
    timestamp: i64,
    rel: u32,
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.timestamp, self.rel)
    }
}

impl Entry for Stored {
    const LEN: usize = ENTRY_LEN;

    fn encode(&self, buf: &mut [u8]) {
        buf[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.rel.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        Stored {
            timestamp: i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            rel: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    fn rel_offset(&self) -> u32 {
        self.rel
    }

    fn key(&self) -> i64 {
        self.timestamp
    }

    /// Strictly increasing timestamp, non-decreasing offset (Kafka's rule: its
    /// time index refuses only a smaller offset), unlike the offset index's
    /// strictly increasing offsets.
    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.rel >= prev.rel
    }
}

pub struct TimeIndex(IndexFile<Stored>);

impl TimeIndex {
    /// The same index under `path`, to which the caller renamed its file.
    pub(crate) fn renamed(self, path: PathBuf) -> Self {
        TimeIndex(self.0.renamed(path))
    }

    /// Creates an empty time index, truncating any file at `path`.
    pub fn create(path: PathBuf, base_offset: i64, max_entries: usize) -> Result<Self, IndexError> {
        IndexFile::create(path, base_offset, max_entries).map(TimeIndex)
    }

    /// Loads an existing time index: whole entries, strictly increasing
    /// timestamps, non-decreasing offsets, offsets at most `last_offset`.
    pub fn load(
        path: PathBuf,
        base_offset: i64,
        max_entries: usize,
        last_offset: i64,
    ) -> Result<Self, IndexError> {
        IndexFile::load(path, base_offset, max_entries, last_offset, |_| Ok(())).map(TimeIndex)
    }

    /// Appends `(timestamp, offset)` if `timestamp` is above the last entry's
    /// (and the offset not below it); otherwise does nothing. One caller at a
    /// time.
    pub fn maybe_append(&self, timestamp: i64, offset: i64) -> io::Result<()> {
        let Some(rel) = self.0.relative(offset) else {
            return Ok(());
        };
        self.0.append(Stored { timestamp, rel })
    }

    /// Drops the entries whose offset is at or above `next_offset` (a truncation
    /// removed those batches) and shortens the file to match. Every entry kept
    /// names a batch that is still there. One caller at a time.
    pub fn truncate_to_offset(&self, next_offset: i64) -> io::Result<()> {
        let base = self.0.base_offset();
        self.0
            .truncate_while(|e| base + i64::from(e.rel) < next_offset)
            .map(|_| ())
    }

    fn entry(&self, e: Stored) -> TimeEntry {
        TimeEntry {
            timestamp: e.timestamp,
            offset: self.0.base_offset() + i64::from(e.rel),
        }
    }

    /// The last entry whose timestamp is strictly below `target`: every batch at
    /// or before its offset has a max timestamp below `target`, so a search for
    /// the first batch with timestamp >= `target` can start after it.
    pub fn last_below(&self, target: i64) -> Option<TimeEntry> {
        self.0.last_below(target).map(|e| self.entry(e))
    }

    /// The first entry whose timestamp is >= `target`: the first batch with a
    /// timestamp >= `target` is at or before its offset.
    pub fn first_at_or_after(&self, target: i64) -> Option<TimeEntry> {
        self.0.first_at_or_above(target).map(|e| self.entry(e))
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.0.last().map(|e| self.entry(e))
    }

    pub fn entries(&self) -> Vec<TimeEntry> {
        self.0
            .entries()
            .into_iter()
            .map(|e| self.entry(e))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    pub fn set_max_entries(&self, max_entries: usize) {
        self.0.set_max_entries(max_entries);
    }

    pub fn sync(&self) -> io::Result<()> {
        self.0.sync()
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// A second descriptor of the index file (see `IndexFile::clone_file`).
    pub(crate) fn clone_file(&self) -> io::Result<std::fs::File> {
        self.0.clone_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write_entries(path: &std::path::Path, entries: &[(i64, u32)]) {
        let mut raw = Vec::new();
        for (ts, rel) in entries {
            raw.extend_from_slice(&ts.to_be_bytes());
            raw.extend_from_slice(&rel.to_be_bytes());
        }
        std::fs::write(path, raw).unwrap();
    }

    #[test]
    fn load_accepts_repeated_offsets_and_rejects_what_append_would_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let load = |path: &std::path::Path| TimeIndex::load(path.to_path_buf(), 100, 10, 130);
        // Unlike the offset index, two entries may name the same offset.
        write_entries(&path, &[(5, 10), (9, 10), (12, 30)]);
        assert_eq!(load(&path).unwrap().len(), 3);
        write_entries(&path, &[(5, 10), (5, 20)]); // timestamp not increasing
        assert!(load(&path).is_err());
        write_entries(&path, &[(5, 20), (9, 10)]); // offset going back
        assert!(load(&path).is_err());
        write_entries(&path, &[(5, 10), (9, 31)]); // past the segment's last offset
        assert!(load(&path).is_err());
        let mut raw = std::fs::read(&path).unwrap();
        raw.truncate(ENTRY_LEN + 5); // a torn last entry
        std::fs::write(&path, &raw).unwrap();
        assert!(load(&path).is_err());
    }

    #[test]
    fn truncation_by_offset_keeps_the_entries_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let idx = TimeIndex::create(path.clone(), 100, 10).unwrap();
        for (ts, offset) in [(5, 110), (9, 110), (12, 120), (20, 130)] {
            idx.maybe_append(ts, offset).unwrap();
        }
        idx.truncate_to_offset(120).unwrap();
        let kept = vec![
            TimeEntry {
                timestamp: 5,
                offset: 110,
            },
            TimeEntry {
                timestamp: 9,
                offset: 110,
            },
        ];
        assert_eq!(idx.entries(), kept);
        assert_eq!(idx.last(), kept.last().copied());
        let reloaded = TimeIndex::load(path, 100, 10, 119).unwrap();
        assert_eq!(reloaded.entries(), kept);
        // The next entry must still be above the last timestamp kept.
        idx.maybe_append(9, 115).unwrap();
        assert_eq!(idx.len(), 2);
    }

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
