//! The durable Raft log: openraft's [`RaftLogStorage`] over one append-only file.
//!
//! Owns, inside the metadata directory:
//! - `raft.log`: records `len:u32le | crc32c:u32le | serde_json(Entry)`, consecutive indexes.
//! - `vote.json`, `committed.json`, `purged.json`: replaced atomically (write, fsync, rename,
//!   fsync directory).
//! - `lock`: an exclusive lock, so two processes never share a directory.
//!
//! Contracts:
//! - [`RaftLogStorage::append`] writes the records and `fdatasync`s the file before it calls the
//!   flush callback and returns; the entries are then readable and survive a crash.
//! - `save_vote` / `save_committed` / `purge` / `truncate` are durable when they return.
//! - A crash may leave a torn last record (short or with a bad CRC). It was never reported as
//!   appended, so [`LogStore::open`] cuts the file at the end of the last valid record.
//! - `purge` first persists `purged.json`, then rewrites the remaining records into a new file
//!   that is renamed over `raft.log`. A crash in between leaves purged entries in the file; they
//!   are dropped again on open.
//! - A record that decodes but does not follow its predecessor's index is not a torn write: open
//!   refuses the directory instead of guessing.
//!
//! All entries are also kept in memory: the metadata log is bounded by the snapshot policy
//! (a snapshot every few thousand entries purges what precedes it). File I/O is blocking and
//! done inline; metadata writes are rare and each one needs its fsync anyway.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::File;
use std::fs::OpenOptions;
use std::io::Seek;
use std::io::SeekFrom;
use std::io::Write;
use std::ops::RangeBounds;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::LogFlushed;
use openraft::storage::RaftLogStorage;
use openraft::AnyError;
use openraft::Entry;
use openraft::LogId;
use openraft::LogState;
use openraft::RaftLogReader;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::Vote;
use parking_lot::Mutex;

use crate::disk::decode_frame;
use crate::disk::encode_frame;
use crate::disk::read_json;
use crate::disk::sync_parent;
use crate::disk::write_json_atomic;
use crate::disk::DirLock;
use crate::disk::StoreError;
use crate::TypeConfig;

/// Name of the log file inside the metadata directory.
pub const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";

type NodeId = u64;

/// The Raft log and vote of one node. Cheap handles to the same log are given out as
/// [`LogReader`]s.
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

/// A read-only handle used by openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    dir: PathBuf,
    file: File,
    /// Bytes of valid records in `raft.log`; the next record is written here.
    file_len: u64,
    /// Index -> (offset of its record in `raft.log`, entry).
    entries: BTreeMap<u64, (u64, Entry<TypeConfig>)>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    _lock: DirLock,
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, cutting a torn tail of `raft.log`.
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))?;
        let lock = DirLock::acquire(dir)?;
        let path = dir.join(LOG_FILE);
        let stale = path.with_extension("log.tmp");
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(StoreError::io("remove", &stale))?;
        }
        let last_purged: Option<LogId<NodeId>> = read_json(&dir.join(PURGED_FILE))?;
        let vote = read_json(&dir.join(VOTE_FILE))?;
        let committed = read_json(&dir.join(COMMITTED_FILE))?.flatten();

        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(StoreError::Io {
                    op: "read",
                    path,
                    source: e,
                })
            }
        };
        let (mut entries, valid_len) = scan(&path, &bytes)?;
        let purged_index = last_purged.map(|id| id.index);
        entries.retain(|index, _| Some(*index) > purged_index);
        let expected_first = purged_index.map_or(0, |p| p + 1);
        if let Some(first) = entries
            .keys()
            .next()
            .filter(|first| **first != expected_first)
        {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "log starts at entry {first}, expected {expected_first} (entries are missing)"
                ),
            });
        }

        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        if valid_len < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                valid_len,
                dropped = bytes.len() as u64 - valid_len,
                "metadata log ends with a torn record (crash during append); cutting it off"
            );
            file.set_len(valid_len)
                .map_err(StoreError::io("truncate", &path))?;
            file.sync_all().map_err(StoreError::io("fsync", &path))?;
        }
        file.seek(SeekFrom::Start(valid_len))
            .map_err(StoreError::io("seek", &path))?;
        sync_parent(&path)?;
        let last_log_id = entries
            .values()
            .next_back()
            .map(|(_, e)| e.log_id)
            .or(last_purged);
        let committed = clamp_committed(committed, last_log_id);
        let inner = LogInner {
            dir: dir.to_path_buf(),
            file,
            file_len: valid_len,
            entries,
            last_purged,
            vote,
            committed,
            _lock: lock,
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

/// A committed id beyond the log can only follow a lost tail (an fsync that lied, or a file
/// cut by hand); openraft would fail re-applying it, so start from what the log still has.
fn clamp_committed(
    committed: Option<LogId<NodeId>>,
    last_log_id: Option<LogId<NodeId>>,
) -> Option<LogId<NodeId>> {
    if committed > last_log_id {
        tracing::warn!(
            committed = ?committed,
            last_log_id = ?last_log_id,
            "committed log id is past the end of the metadata log; using the last entry"
        );
        return last_log_id;
    }
    committed
}

/// Decodes the records of `bytes`. Stops at the first torn record and returns the entries and
/// the length of the valid prefix.
#[allow(clippy::type_complexity)]
fn scan(
    path: &Path,
    bytes: &[u8],
) -> Result<(BTreeMap<u64, (u64, Entry<TypeConfig>)>, u64), StoreError> {
    let mut entries = BTreeMap::new();
    let mut pos = 0usize;
    let mut prev: Option<u64> = None;
    while let Some((payload, size)) = decode_frame(&bytes[pos..]) {
        let Ok(entry) = serde_json::from_slice::<Entry<TypeConfig>>(payload) else {
            break; // A CRC-valid record that is not an entry: treat like a torn tail.
        };
        let index = entry.log_id.index;
        if let Some(prev) = prev {
            if index != prev + 1 {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("entry {index} at byte {pos} follows entry {prev}"),
                });
            }
        }
        prev = Some(index);
        entries.insert(index, (pos as u64, entry));
        pos += size;
    }
    Ok((entries, pos as u64))
}

fn io_err(e: StoreError) -> AnyError {
    AnyError::new(&e)
}

impl LogInner {
    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn append(&mut self, entries: Vec<Entry<TypeConfig>>) -> Result<(), StoreError> {
        let path = self.log_path();
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in &entries {
            offsets.push(self.file_len + buf.len() as u64);
            let json = serde_json::to_vec(entry).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: format!("cannot serialize entry {}: {e}", entry.log_id),
            })?;
            encode_frame(&json, &mut buf);
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
            .map_err(StoreError::io("append to", &path));
        if let Err(e) = written {
            // Cut whatever part of the batch reached the file so a later append does not land
            // behind garbage; if even that fails, openraft stops on the returned error.
            let _ = self.cut_file(self.file_len);
            return Err(e);
        }
        self.file_len += buf.len() as u64;
        for (entry, offset) in entries.into_iter().zip(offsets) {
            self.entries.insert(entry.log_id.index, (offset, entry));
        }
        Ok(())
    }

    fn cut_file(&mut self, len: u64) -> Result<(), StoreError> {
        let path = self.log_path();
        self.file
            .set_len(len)
            .map_err(StoreError::io("truncate", &path))?;
        self.file
            .sync_all()
            .map_err(StoreError::io("fsync", &path))?;
        self.file
            .seek(SeekFrom::Start(len))
            .map_err(StoreError::io("seek", &path))?;
        self.file_len = len;
        Ok(())
    }

    fn truncate(&mut self, index: u64) -> Result<(), StoreError> {
        let Some((offset, _)) = self.entries.range(index..).next().map(|(_, v)| v) else {
            return Ok(());
        };
        self.cut_file(*offset)?;
        self.entries.split_off(&index);
        Ok(())
    }

    fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StoreError> {
        if self.last_purged.map(|p| p.index) >= Some(log_id.index) {
            return Ok(());
        }
        write_json_atomic(&self.dir.join(PURGED_FILE), &log_id)?;
        self.last_purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        self.rewrite_file()
    }

    /// Rewrites `raft.log` with only the in-memory entries, via a renamed temporary file.
    fn rewrite_file(&mut self) -> Result<(), StoreError> {
        let path = self.log_path();
        let tmp = path.with_extension("log.tmp");
        let mut buf = Vec::new();
        for (offset, entry) in self.entries.values_mut() {
            *offset = buf.len() as u64;
            let json = serde_json::to_vec(entry).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: format!("cannot serialize entry {}: {e}", entry.log_id),
            })?;
            encode_frame(&json, &mut buf);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(StoreError::io("create", &tmp))?;
        file.write_all(&buf)
            .map_err(StoreError::io("write", &tmp))?;
        file.sync_all().map_err(StoreError::io("fsync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(StoreError::io("rename to", &path))?;
        sync_parent(&path)?;
        self.file = file;
        self.file_len = buf.len() as u64;
        Ok(())
    }

    fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.entries
            .values()
            .next_back()
            .map(|(_, e)| e.log_id)
            .or(self.last_purged)
    }
}

impl LogInner {
    /// The entries in `range`; the one read path of both `LogStore` and `LogReader`.
    fn entries_in<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry<TypeConfig>> {
        self.entries
            .range(range)
            .map(|(_, (_, e))| e.clone())
            .collect()
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.inner.lock().entries_in(range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.inner.lock().entries_in(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        write_json_atomic(&inner.dir.join(VOTE_FILE), vote)
            .map_err(|e| StorageIOError::write_vote(io_err(e)))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        write_json_atomic(&inner.dir.join(COMMITTED_FILE), &committed)
            .map_err(|e| StorageIOError::write(io_err(e)))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let result = self.inner.lock().append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(io_err(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner
            .lock()
            .truncate(log_id.index)
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner
            .lock()
            .purge(log_id)
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;
    use openraft::EntryPayload;

    use super::*;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(dir: &Path) -> Vec<u64> {
        let store = LogStore::open(dir).unwrap();
        let inner = store.inner.lock();
        inner.entries.keys().copied().collect()
    }

    fn append_all(dir: &Path, range: std::ops::RangeInclusive<u64>) {
        let store = LogStore::open(dir).unwrap();
        let mut inner = store.inner.lock();
        inner.append(range.map(entry).collect()).unwrap();
    }

    #[test]
    fn every_truncation_point_reopens_at_a_record_boundary() {
        let dir = tempfile::tempdir().unwrap();
        append_all(dir.path(), 0..=4);
        let path = dir.path().join(LOG_FILE);
        let full = std::fs::read(&path).unwrap();
        let boundaries: Vec<u64> = {
            let store = LogStore::open(dir.path()).unwrap();
            let inner = store.inner.lock();
            inner
                .entries
                .values()
                .map(|(o, _)| *o)
                .chain([full.len() as u64])
                .collect()
        };
        for cut in 0..=full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let kept = indexes(dir.path());
            let complete = boundaries.iter().filter(|b| **b <= cut as u64).count() as u64 - 1;
            assert_eq!(kept, (0..complete).collect::<Vec<_>>(), "cut at {cut}");
            let on_disk = std::fs::metadata(&path).unwrap().len();
            assert_eq!(
                on_disk, boundaries[complete as usize],
                "file cut back at {cut}"
            );
            // The log stays appendable after recovery.
            append_all(dir.path(), complete..=complete);
            assert_eq!(indexes(dir.path()), (0..=complete).collect::<Vec<_>>());
        }
    }

    #[test]
    fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        append_all(dir.path(), 0..=10);
        {
            let store = LogStore::open(dir.path()).unwrap();
            let mut inner = store.inner.lock();
            inner.truncate(8).unwrap();
            inner.purge(entry(3).log_id).unwrap();
            inner.append(vec![entry(8)]).unwrap();
        }
        assert_eq!(indexes(dir.path()), (4..=8).collect::<Vec<_>>());
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.inner.lock().last_purged, Some(entry(3).log_id));
    }

    #[test]
    fn crash_between_purge_point_and_rewrite_drops_purged_entries_on_open() {
        let dir = tempfile::tempdir().unwrap();
        append_all(dir.path(), 0..=5);
        write_json_atomic(&dir.path().join(PURGED_FILE), &entry(2).log_id).unwrap();
        assert_eq!(indexes(dir.path()), vec![3, 4, 5]);
    }

    #[test]
    fn a_missing_head_is_reported_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        encode_frame(&serde_json::to_vec(&entry(4)).unwrap(), &mut buf);
        std::fs::write(dir.path().join(LOG_FILE), buf).unwrap();
        assert!(matches!(
            LogStore::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_gap_in_the_log_is_reported_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        for index in [0, 2] {
            encode_frame(&serde_json::to_vec(&entry(index)).unwrap(), &mut buf);
        }
        std::fs::write(dir.path().join(LOG_FILE), buf).unwrap();
        assert!(matches!(
            LogStore::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
