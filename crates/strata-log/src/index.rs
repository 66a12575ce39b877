//! Sparse offset index of one segment: `<base>.index`.
//!
//! Each entry is 8 bytes, big-endian as in Kafka: the offset relative to the
//! segment's base offset (u32) and the byte position in the `.log` file (u32) of
//! the batch whose *last* offset that is (Kafka indexes a batch by its last offset
//! and its start position). Entries are strictly increasing in both fields.
//!
//! Storage, concurrency and the choice not to `mmap` are those of every index
//! file, see [`crate::index_file`]; this module adds the layout, the ordering
//! rule, the check that positions lie inside the log, truncation by log
//! position and the lookup by offset.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use crate::index_file::IndexError;
use crate::index_file::{Entry, IndexFile};

pub const ENTRY_LEN: usize = 8;

/// One decoded entry, with the absolute offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: i64,
    pub position: u32,
}

/// An entry as stored: relative offset, position.
#[derive(Clone, Copy)]
struct Stored {
    rel: u32,
    position: u32,
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.rel, self.position)
    }
}

impl Entry for Stored {
    const LEN: usize = ENTRY_LEN;

    fn encode(&self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.rel.to_be_bytes());
        buf[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        Stored {
            rel: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn rel_offset(&self) -> u32 {
        self.rel
    }

    fn key(&self) -> i64 {
        i64::from(self.rel)
    }

    /// Strictly increasing in both offset and position: each entry is a later
    /// batch.
    fn follows(&self, prev: &Self) -> bool {
        self.rel > prev.rel && self.position > prev.position
    }
}

pub struct OffsetIndex(IndexFile<Stored>);

impl OffsetIndex {
    /// The same index under `path`, to which the caller renamed its file.
    pub(crate) fn renamed(self, path: PathBuf) -> Self {
        OffsetIndex(self.0.renamed(path))
    }

    /// Creates an empty index, truncating any file at `path`.
    pub fn create(path: PathBuf, base_offset: i64, max_entries: usize) -> Result<Self, IndexError> {
        IndexFile::create(path, base_offset, max_entries).map(OffsetIndex)
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
        let inside_log = |e: &Stored| {
            if u64::from(e.position) >= log_size {
                return Err(format!(
                    "position {} is beyond the log size {log_size}",
                    e.position
                ));
            }
            Ok(())
        };
        IndexFile::load(path, base_offset, max_entries, last_offset, inside_log).map(OffsetIndex)
    }

    /// Appends an entry. `offset` must be above the last entry's and fit in u32
    /// relative to the base; violations are ignored (an index is only a hint).
    /// One caller at a time.
    pub fn append(&self, offset: i64, position: u32) -> io::Result<()> {
        let Some(rel) = self.0.relative(offset) else {
            return Ok(());
        };
        self.0.append(Stored { rel, position })
    }

    /// Drops the entries of batches at or after byte `position` of the log (a
    /// truncation cuts the log there) and shortens the file to match. Returns the
    /// last entry kept. One caller at a time (the segment's writer).
    pub fn truncate_to_position(&self, position: u64) -> io::Result<Option<OffsetEntry>> {
        let last = self
            .0
            .truncate_while(|e| u64::from(e.position) < position)?;
        Ok(last.map(|e| self.entry(e)))
    }

    /// Largest entry whose offset is <= `target`.
    pub fn lookup(&self, target: i64) -> Option<OffsetEntry> {
        let rel = target - self.0.base_offset();
        if rel < 0 {
            return None;
        }
        self.0.last_at_or_below(rel).map(|e| self.entry(e))
    }

    /// Largest entry whose position is <= `position` (positions increase with
    /// offsets, so this is a binary search too).
    pub fn lookup_position(&self, position: u64) -> Option<OffsetEntry> {
        self.0
            .last_where(|e| u64::from(e.position) <= position)
            .map(|e| self.entry(e))
    }

    fn entry(&self, e: Stored) -> OffsetEntry {
        OffsetEntry {
            offset: self.0.base_offset() + i64::from(e.rel),
            position: e.position,
        }
    }

    pub fn entries(&self) -> Vec<OffsetEntry> {
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

    #[test]
    fn truncation_by_position_keeps_the_entries_of_batches_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let idx = OffsetIndex::create(path.clone(), 100, 10).unwrap();
        for (offset, position) in [(110, 100), (120, 200), (130, 300)] {
            idx.append(offset, position).unwrap();
        }
        // A cut at a batch's start drops that batch's entry.
        let kept = idx.truncate_to_position(200).unwrap();
        assert_eq!(
            kept,
            Some(OffsetEntry {
                offset: 110,
                position: 100
            })
        );
        assert_eq!(idx.lookup(125).map(|e| e.offset), Some(110));
        let reloaded = OffsetIndex::load(path, 100, 10, 200, 119).unwrap();
        assert_eq!(reloaded.entries(), idx.entries());
        assert_eq!(idx.truncate_to_position(0).unwrap(), None);
        assert!(idx.is_empty());
    }

    #[test]
    fn lookups_below_the_base_and_unindexable_offsets_find_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let idx = OffsetIndex::create(dir.path().join("0.index"), 100, 10).unwrap();
        idx.append(100 + (1 << 32), 10).unwrap(); // relative offset beyond u32: skipped
        idx.append(99, 20).unwrap(); // below the base: skipped
        assert!(idx.is_empty());
        idx.append(105, 30).unwrap();
        assert_eq!(idx.lookup(99), None);
        assert_eq!(idx.lookup(104), None);
        assert_eq!(
            idx.lookup(i64::from(u32::MAX) + 200).map(|e| e.offset),
            Some(105)
        );
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
