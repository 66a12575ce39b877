//! The file type both sparse indexes of a segment share: a vector of
//! fixed-size entries kept in memory and persisted by appending each new entry
//! to the file. [`crate::index`] (`.index`) and [`crate::timeindex`]
//! (`.timeindex`) are thin wrappers that give an [`Entry`] its layout, its
//! ordering rule and the key lookups search on.
//!
//! Design: every new entry is written at the end of the file with a positioned
//! write. We chose this over `mmap` (what Kafka does) because an index is small
//! (10 MiB max, 8 or 12 bytes per 4 KiB of log), lookups then need no `unsafe`
//! and cannot fault with SIGBUS if the file is truncated under us, and appends
//! are one `pwrite` every `index.interval.bytes`. Loading a segment reads the
//! whole file once, which is the "read indexes only" cost of a clean restart.
//!
//! Concurrency: lookups may run from any thread; `append` and `truncate_while`
//! must be called by one thread at a time (the segment's writer). The file
//! write happens outside the entries' lock, which is held only to push the new
//! entry, so a lookup never waits for I/O.
//!
//! Descriptors: an index holds no open file until it writes (issue 14, many
//! partitions on one node). `load` reads the file and closes it, `create` creates
//! it and closes it; the first `append` or `truncate_while` opens it again (by
//! path, never creating it: a deleted segment is not brought back) and keeps it.
//! An idle partition's segments then cost one descriptor each (the `.log`), not
//! three. `clone_file` of an index that is not open hands out an anonymous copy of
//! the entries (the in-memory entries are the file's content), so it never opens
//! by a name a cleaning may since have renamed another generation's file to.
//!
//! This module never reads the `.log`; rebuilding an index from the log is
//! `segment`'s job.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::error::LogError;

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

impl IndexError {
    /// The log's view of the error: an index that cannot be opened is an I/O
    /// failure, one that fails its checks is corrupt data.
    pub(crate) fn into_log_error(self) -> LogError {
        match self {
            IndexError::Io { path, source } => LogError::Io {
                op: "writing index",
                path,
                source,
            },
            IndexError::Inconsistent { path, reason } => LogError::Corrupt {
                path,
                position: 0,
                reason,
            },
        }
    }
}

/// One entry as stored: relative to the segment's base offset, so it fits the
/// file's fixed-size layout. Displays as `(a, b)` in load errors.
pub(crate) trait Entry: Copy + fmt::Display {
    /// Bytes per entry in the file.
    const LEN: usize;

    /// Writes the entry, big-endian as in Kafka, into `buf` (`LEN` bytes).
    fn encode(&self, buf: &mut [u8]);

    /// Reads an entry from `buf` (`LEN` bytes).
    fn decode(buf: &[u8]) -> Self;

    /// The offset the entry names, relative to the segment base.
    fn rel_offset(&self) -> u32;

    /// What lookups binary-search on; non-decreasing along the file because
    /// every entry `follows` the one before.
    fn key(&self) -> i64;

    /// The file's ordering rule: whether `self` may come right after `prev`.
    /// `append` drops an entry that does not; `load` rejects such a file.
    fn follows(&self, prev: &Self) -> bool;
}

/// The largest `Entry::LEN` (the time index's 12 bytes), so `append` encodes
/// into a stack buffer; `append` checks it at compile time.
const MAX_ENTRY_LEN: usize = 12;

/// The entries of one index file, in memory and on disk.
pub(crate) struct IndexFile<E> {
    path: PathBuf,
    /// Open once the index has written (see the module docs).
    file: Mutex<Option<File>>,
    base_offset: i64,
    entries: RwLock<Vec<E>>,
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

impl<E: Entry> IndexFile<E> {
    /// Creates an empty index, truncating any file at `path`.
    pub fn create(path: PathBuf, base_offset: i64, max_entries: usize) -> Result<Self, IndexError> {
        open_rw(&path, true).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(IndexFile {
            path,
            file: Mutex::new(None),
            base_offset,
            entries: RwLock::new(Vec::new()),
            max_entries: AtomicUsize::new(max_entries),
        })
    }

    /// Loads an existing index and checks it against the segment it describes:
    /// whole entries only (a torn last entry fails the whole file), each entry
    /// following the one before, then `check` (what only one kind of index can
    /// check), then offsets at most `last_offset`.
    pub fn load(
        path: PathBuf,
        base_offset: i64,
        max_entries: usize,
        last_offset: i64,
        check: impl Fn(&E) -> Result<(), String>,
    ) -> Result<Self, IndexError> {
        let bytes = std::fs::read(&path).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |reason: String| IndexError::Inconsistent {
            path: path.clone(),
            reason,
        };
        if bytes.len() % E::LEN != 0 {
            return Err(bad(format!(
                "size {} is not a multiple of {}",
                bytes.len(),
                E::LEN
            )));
        }
        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::LEN);
        for chunk in bytes.chunks_exact(E::LEN) {
            let entry = E::decode(chunk);
            if let Some(last) = entries.last() {
                if !entry.follows(last) {
                    return Err(bad(format!(
                        "entry {} {entry} is not after {last}",
                        entries.len()
                    )));
                }
            }
            check(&entry).map_err(bad)?;
            let offset = base_offset + i64::from(entry.rel_offset());
            if offset > last_offset {
                return Err(bad(format!(
                    "offset {offset} is beyond the segment's last offset {last_offset}"
                )));
            }
            entries.push(entry);
        }
        Ok(IndexFile {
            path,
            file: Mutex::new(None),
            base_offset,
            entries: RwLock::new(entries),
            max_entries: AtomicUsize::new(max_entries),
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// `offset` relative to the base, if it fits an entry (an index is only a
    /// hint, so callers skip offsets that do not).
    pub fn relative(&self, offset: i64) -> Option<u32> {
        u32::try_from(offset - self.base_offset).ok()
    }

    /// Appends `entry` if it follows the last one; otherwise does nothing (an
    /// index is only a hint). One caller at a time.
    pub fn append(&self, entry: E) -> io::Result<()> {
        let len = {
            let entries = self.entries.read();
            if let Some(last) = entries.last() {
                if !entry.follows(last) {
                    return Ok(());
                }
            }
            entries.len()
        };
        const { assert!(E::LEN <= MAX_ENTRY_LEN) };
        let mut buf = [0u8; MAX_ENTRY_LEN];
        let buf = &mut buf[..E::LEN];
        entry.encode(buf);
        self.with_file(|f| f.write_all_at(buf, (len * E::LEN) as u64))?;
        self.entries.write().push(entry);
        Ok(())
    }

    /// Keeps the entries up to the first one for which `keep` is false (`keep`
    /// must hold for a prefix of the file), shortens the file to match and
    /// returns the last entry kept. One caller at a time.
    pub fn truncate_while(&self, keep: impl Fn(&E) -> bool) -> io::Result<Option<E>> {
        let (kept, last) = {
            let mut entries = self.entries.write();
            let kept = entries.partition_point(keep);
            entries.truncate(kept);
            (kept, entries.last().copied())
        };
        self.with_file(|f| f.set_len((kept * E::LEN) as u64))?;
        Ok(last)
    }

    /// The last entry whose key is <= `key`.
    pub fn last_at_or_below(&self, key: i64) -> Option<E> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|e| e.key() <= key);
        idx.checked_sub(1).map(|i| entries[i])
    }

    /// The last entry for which `below` holds, where `below` holds for a prefix of
    /// the entries (a search on a second non-decreasing field, such as position).
    pub fn last_where(&self, below: impl Fn(&E) -> bool) -> Option<E> {
        let entries = self.entries.read();
        let idx = entries.partition_point(below);
        idx.checked_sub(1).map(|i| entries[i])
    }

    /// The last entry whose key is < `key`.
    pub fn last_below(&self, key: i64) -> Option<E> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|e| e.key() < key);
        idx.checked_sub(1).map(|i| entries[i])
    }

    /// The first entry whose key is >= `key`.
    pub fn first_at_or_above(&self, key: i64) -> Option<E> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|e| e.key() < key);
        entries.get(idx).copied()
    }

    pub fn last(&self) -> Option<E> {
        self.entries.read().last().copied()
    }

    pub fn entries(&self) -> Vec<E> {
        self.entries.read().clone()
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries.load(Ordering::Relaxed)
    }

    pub fn set_max_entries(&self, max_entries: usize) {
        self.max_entries.store(max_entries, Ordering::Relaxed);
    }

    /// Syncs what this index wrote; one that never opened its file wrote nothing
    /// since `create` or `load`.
    pub fn sync(&self) -> io::Result<()> {
        match self.file.lock().as_ref() {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// Runs `f` with the file, opening it (without creating it) if it is not open.
    fn with_file<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let mut file = self.file.lock();
        if file.is_none() {
            *file = Some(OpenOptions::new().read(true).write(true).open(&self.path)?);
        }
        f(file.as_ref().expect("opened above"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second descriptor of the file (for reading it elsewhere; it stays
    /// valid after the file is renamed over or unlinked).
    pub fn clone_file(&self) -> io::Result<File> {
        if let Some(f) = self.file.lock().as_ref() {
            return f.try_clone();
        }
        let entries = self.entries.read();
        let mut bytes = vec![0u8; entries.len() * E::LEN];
        for (e, chunk) in entries.iter().zip(bytes.chunks_exact_mut(E::LEN)) {
            e.encode(chunk);
        }
        anonymous_file(&bytes)
    }

    /// The same index, known by `path` from now on: the caller renamed the
    /// file (the open descriptor follows it).
    pub fn renamed(self, path: PathBuf) -> Self {
        IndexFile { path, ..self }
    }
}

/// A file with no name holding `bytes` (`memfd_create`), for positioned reads.
fn anonymous_file(bytes: &[u8]) -> io::Result<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: a NUL-terminated name; the returned descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"strata-index".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.write_all_at(bytes, 0)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal entry: a 4-byte relative offset that is also the key, so the
    /// tests exercise only what `IndexFile` itself does.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Rel(u32);

    impl fmt::Display for Rel {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "({})", self.0)
        }
    }

    impl Entry for Rel {
        const LEN: usize = 4;
        fn encode(&self, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0.to_be_bytes());
        }
        fn decode(b: &[u8]) -> Self {
            Rel(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn rel_offset(&self) -> u32 {
            self.0
        }
        fn key(&self) -> i64 {
            i64::from(self.0)
        }
        fn follows(&self, prev: &Self) -> bool {
            self.0 > prev.0
        }
    }

    fn no_check(_: &Rel) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn append_drops_what_does_not_follow_and_load_rejects_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.idx");
        let idx = IndexFile::<Rel>::create(path.clone(), 10, 2).unwrap();
        for rel in [3, 3, 1, 7] {
            idx.append(Rel(rel)).unwrap();
        }
        assert_eq!(idx.entries(), [Rel(3), Rel(7)]);
        assert!(idx.is_full());
        idx.set_max_entries(3);
        assert!(!idx.is_full());
        assert_eq!(std::fs::read(&path).unwrap(), [0, 0, 0, 3, 0, 0, 0, 7]);
        let loaded = IndexFile::<Rel>::load(path.clone(), 10, 3, 17, no_check).unwrap();
        assert_eq!(loaded.entries(), [Rel(3), Rel(7)]);
        // The last offset (base 10 + 7) bounds what a file may name.
        assert!(IndexFile::<Rel>::load(path.clone(), 10, 3, 16, no_check).is_err());
        // A kind-specific check runs on every entry.
        let no_sevens = |e: &Rel| match e.0 {
            7 => Err("seven".to_string()),
            _ => Ok(()),
        };
        let err = IndexFile::<Rel>::load(path.clone(), 10, 3, 17, no_sevens).err();
        assert!(err.is_some_and(|e| e.to_string().ends_with("seven")));
        std::fs::write(&path, [0, 0, 0, 7, 0, 0, 0, 3]).unwrap();
        assert!(IndexFile::<Rel>::load(path, 10, 3, 17, no_check).is_err());
    }

    #[test]
    fn a_torn_last_entry_fails_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.idx");
        std::fs::write(&path, [0, 0, 0, 1, 0, 0, 0, 2, 0, 0]).unwrap();
        let err = IndexFile::<Rel>::load(path, 0, 10, 100, no_check).err();
        assert!(matches!(err, Some(IndexError::Inconsistent { .. })));
    }

    #[test]
    fn truncation_shortens_the_file_and_returns_the_last_entry_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.idx");
        let idx = IndexFile::<Rel>::create(path.clone(), 0, 10).unwrap();
        for rel in [2, 4, 6, 8] {
            idx.append(Rel(rel)).unwrap();
        }
        assert_eq!(idx.truncate_while(|e| e.0 < 6).unwrap(), Some(Rel(4)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        // Appends continue at the new end of the file.
        idx.append(Rel(5)).unwrap();
        let loaded = IndexFile::<Rel>::load(path.clone(), 0, 10, 100, no_check).unwrap();
        assert_eq!(loaded.entries(), [Rel(2), Rel(4), Rel(5)]);
        assert_eq!(idx.truncate_while(|_| false).unwrap(), None);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    proptest! {
        #[test]
        fn searches_match_brute_force(
            rels in prop::collection::btree_set(0u32..200, 0..40),
            keys in prop::collection::vec(-5i64..210, 1..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let idx = IndexFile::<Rel>::create(dir.path().join("r.idx"), 0, 100).unwrap();
            let model: Vec<Rel> = rels.into_iter().map(Rel).collect();
            for &e in &model {
                idx.append(e).unwrap();
            }
            for k in keys {
                let at_or_below = model.iter().rev().find(|e| e.key() <= k).copied();
                let below = model.iter().rev().find(|e| e.key() < k).copied();
                let at_or_above = model.iter().find(|e| e.key() >= k).copied();
                prop_assert_eq!(idx.last_at_or_below(k), at_or_below);
                prop_assert_eq!(idx.last_below(k), below);
                prop_assert_eq!(idx.first_at_or_above(k), at_or_above);
            }
            prop_assert_eq!(idx.last(), model.last().copied());
        }
    }
}
