//! `Log`: one partition's segmented log. See the crate docs for the contracts.
//!
//! This file owns the `Log` struct and its state, open and close, flushing and
//! the checkpoint, configuration, accessors and the directory lock. The
//! operations live in child modules, each an `impl Log` block: `append`
//! (append, follower append, roll), `read` (reads and timestamp lookups),
//! `retention` (retention, local retention, DeleteRecords), `truncate`
//! (follower truncation and its crash points), `epochs` (the leader epoch
//! cache) and `clean` (log compaction passes and their commit).
//!
//! Locking: `writer` (a mutex) serialises append, roll, flush, retention,
//! deletion, config changes and close. Readers never take it: they load the
//! published log end offset / log start offset (atomics), clone the `Arc`s of
//! the segments they need under a short read lock of `segments`, and then read
//! with positioned reads, holding only `cut` shared, a lock that appends never
//! take and a truncation holds exclusively just while it cuts a segment's
//! files. Publication order on append: bytes written -> segment size -> log
//! end offset, so a reader that sees an offset below the log end offset finds
//! its bytes.

pub(crate) mod append;
mod clean;
mod dir_lock;
mod epochs;
mod read;
mod retention;
mod truncate;
mod txn;

pub use dir_lock::{lock_log_dir, LogDirLock};
pub use txn::TxnMarkerSpec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{self, Checkpoint, CleanShutdown};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_snapshot;
use crate::producer_state::ProducerStateManager;
use crate::recovery;
use crate::segment::Segment;

// Kafka's size rule is unit-tested in `log_tests`, which names it here.
#[cfg(test)]
pub(crate) use retention::breached_by_size;

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batches, or -1 with CreateTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The batches were a retry of an idempotent producer's earlier batch: nothing
    /// was written and the offsets are those of the original.
    pub duplicate: bool,
}

/// A segment as seen from outside (DescribeLogDirs, tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: i64,
    /// One past the last offset the segment holds.
    pub next_offset: i64,
    pub size_bytes: u64,
    /// The largest batch maxTimestamp in the segment, if known.
    pub max_timestamp: Option<i64>,
}

/// A sealed segment opened by [`Log::open_segment`]: its three files and what
/// they hold, all of one generation of the segment.
#[derive(Debug)]
pub struct OpenSegment {
    /// Base and next offset, `.log` bytes and max timestamp.
    pub info: SegmentInfo,
    pub log: std::fs::File,
    pub index: std::fs::File,
    pub timeindex: std::fs::File,
    /// Bytes of the `.index` and `.timeindex` files (whole entries).
    pub index_bytes: u64,
    pub timeindex_bytes: u64,
    /// The segment's `.txnindex` content (its aborted transactions; empty if none), as
    /// the log holds it in memory.
    pub txnindex: Vec<u8>,
    /// The producer snapshot at the segment's next offset (written when it rolled), if any.
    pub producer_snapshot: Option<Vec<u8>>,
    /// Where the `.log` file was when opened (for messages; the other two
    /// have the same stem).
    pub log_path: PathBuf,
}

struct Writer {
    config: LogConfig,
    unflushed_messages: u64,
    last_flush_ms: i64,
    /// The latest `now_ms` a caller gave us (for rolls that have no clock).
    clock_ms: i64,
    closed: bool,
    /// Set by an I/O error in the middle of an append: the file may hold bytes
    /// past the published end and the indexes entries for them, so no further
    /// writes are accepted until a reopen repairs the log (like Kafka taking the
    /// log dir offline).
    failed: Option<String>,
    /// Exclusive `flock` on `<dir>/.lock`, held until close (or drop, or process
    /// death), so two `Log`s never write the same directory.
    dir_lock: Option<dir_lock::DirLock>,
    /// Idempotent producers' epochs and last batches (see `producer_state`).
    producers: ProducerStateManager,
    /// Raised by the background flusher when a rolled segment's fsync completes;
    /// the writer turns it into the persisted recovery point (see `flusher`). A
    /// truncation replaces it, so fsyncs queued before it (of data that may be
    /// gone or rewritten) cannot raise the recovery point afterwards.
    synced_up_to: Arc<AtomicI64>,
    /// Tests: the truncation step at which to stop as if the process died.
    #[cfg(test)]
    crash_at: Option<u32>,
}

pub struct Log {
    dir: PathBuf,
    writer: Mutex<Writer>,
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    log_start: AtomicI64,
    log_end: AtomicI64,
    recovery_bytes_scanned: AtomicU64,
    producer_replay_bytes: u64,
    /// The leader epoch cache; changed only under `writer`, read by anyone.
    epochs: RwLock<LeaderEpochCache>,
    /// Held shared by every read while it looks at segment sizes, indexes and
    /// file bytes, and exclusively by a truncation only while it cuts a
    /// segment's files (no fsync under it), so no read runs across a cut.
    /// Appends never take it.
    cut: RwLock<()>,
    /// The offset below which everything is fsynced. Changed only under the writer lock;
    /// read without it, so a checkpoint written by retention holds the latest value.
    recovery_point: AtomicI64,
    /// Serializes checkpoint writes and retention's file deletions, which run outside
    /// the writer lock so that appends never wait on their fsyncs and unlinks (Kafka
    /// deletes segments asynchronously for the same reason). `true` once the log is
    /// closed: nothing more is written to or deleted from its directory. Lock order:
    /// `writer`, then `files`.
    pub(crate) files: Mutex<bool>,
    /// Log compaction: the running pass, the first dirty offset (see `clean.rs`).
    cleaner: clean::CleanerState,
    /// The aborted transactions (`.txnindex` files); changed under `writer`.
    txn: RwLock<crate::txn_index::TxnIndex>,
    /// The producer state's first unstable offset (`txn::NONE_UNSTABLE`: none),
    /// published under `writer`.
    first_unstable: AtomicI64,
}

impl Log {
    /// Opens the log in `dir` (created if missing), repairing it if the last
    /// shutdown was not clean (see the crate docs). Removes the clean-shutdown
    /// marker, so a crash from now on is detected. Takes an exclusive lock on the
    /// directory: a second open of the same directory fails with `Locked` until
    /// this `Log` is closed or dropped.
    pub fn open(dir: PathBuf, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        std::fs::create_dir_all(&dir).map_err(LogError::io("creating", &dir))?;
        let dir_lock = dir_lock::lock_dir(&dir)?;
        let scanned = AtomicU64::new(0);
        let loaded = recovery::load(&dir, &config, now_ms, &scanned)?;
        let ranges = txn::ranges(&loaded.segments);
        let (mut txn_index, complete) = txn::open_index(&dir, &ranges)?;
        let replayed =
            producer_snapshot::load(&dir, &loaded.segments, loaded.log_end_offset, complete)?;
        txn::index_replayed(
            &dir,
            &mut txn_index,
            &ranges,
            replayed.from,
            &replayed.completed,
        )?;
        let producers = replayed.state;
        let producer_replay_bytes = replayed.scanned;
        let first_unstable = producers
            .first_unstable_offset()
            .unwrap_or(txn::NONE_UNSTABLE);
        let epochs = epochs::load_epochs(&dir, &loaded.segments, loaded.log_end_offset)?;
        let first_dirty = crate::cleaner::swap::read_checkpoint(&dir)?
            .unwrap_or(loaded.log_start_offset)
            .clamp(loaded.log_start_offset, loaded.log_end_offset);
        Ok(Log {
            dir,
            writer: Mutex::new(Writer {
                config,
                unflushed_messages: 0,
                last_flush_ms: now_ms,
                clock_ms: now_ms,
                closed: false,
                failed: None,
                dir_lock: Some(dir_lock),
                producers,
                synced_up_to: Arc::new(AtomicI64::new(loaded.recovery_point)),
                #[cfg(test)]
                crash_at: None,
            }),
            segments: RwLock::new(loaded.segments),
            log_start: AtomicI64::new(loaded.log_start_offset),
            log_end: AtomicI64::new(loaded.log_end_offset),
            recovery_bytes_scanned: scanned,
            producer_replay_bytes,
            epochs: RwLock::new(epochs),
            cut: RwLock::new(()),
            recovery_point: AtomicI64::new(loaded.recovery_point),
            files: Mutex::new(false),
            cleaner: clean::CleanerState::new(first_dirty),
            txn: RwLock::new(txn_index),
            first_unstable: AtomicI64::new(first_unstable),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_open(&self, w: &Writer) -> Result<(), LogError> {
        if w.closed {
            return Err(LogError::Closed {
                dir: self.dir.clone(),
            });
        }
        if let Some(reason) = &w.failed {
            return Err(LogError::Failed {
                dir: self.dir.clone(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    fn active(&self) -> Arc<Segment> {
        let segments = self.segments.read();
        // A log always has at least one segment (open creates one).
        Arc::clone(
            segments
                .values()
                .next_back()
                .expect("log has an active segment"),
        )
    }

    fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().values().cloned().collect()
    }

    fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    fn set_recovery_point(&self, _w: &mut Writer, offset: i64) {
        self.recovery_point.store(offset, Ordering::Release);
    }

    /// Persists the current recovery point and log start offset. Callers hold the
    /// writer lock, except retention (see [`Log::delete_unmapped`]), which holds `files`.
    fn write_checkpoint(&self, _w: &Writer) -> Result<(), LogError> {
        let files = self.files.lock();
        self.write_checkpoint_files(&files)
    }

    fn write_checkpoint_files(&self, _files: &bool) -> Result<(), LogError> {
        checkpoint::write_checkpoint(
            &self.dir,
            Checkpoint {
                recovery_point: self.recovery_point(),
                log_start_offset: self.log_start.load(Ordering::Acquire),
            },
        )
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Total bytes of all segments' logs.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.size()).sum()
    }

    /// The sealed segment with `base_offset`, its files open, for copying it
    /// elsewhere (the remote tier); `None` if there is no such segment or it
    /// is the active one.
    ///
    /// Taken under the writer lock, which a cleaning pass holds while it
    /// renames cleaned files over a segment's names and swaps the segment, and
    /// a roll while it seals one: the three descriptors (duplicates of the
    /// segment's own) and the figures all belong to one generation of the
    /// segment, and the descriptors stay readable after a later rename or
    /// unlink. Read them with positioned reads (`FileExt::read_at`): they share
    /// their file offset with the log's descriptors.
    pub fn open_segment(&self, base_offset: i64) -> Result<Option<OpenSegment>, LogError> {
        let _w = self.writer.lock();
        let s = {
            let segments = self.segments.read();
            let active = segments.keys().next_back().copied();
            match segments.get(&base_offset) {
                Some(s) if active != Some(base_offset) => Arc::clone(s),
                _ => return Ok(None),
            }
        };
        let [log, index, timeindex] = s.clone_files()?;
        let (index_bytes, timeindex_bytes) = s.index_bytes();
        Ok(Some(OpenSegment {
            info: SegmentInfo {
                base_offset,
                next_offset: s.next_offset(),
                size_bytes: s.size(),
                max_timestamp: s.max_timestamp().map(|m| m.timestamp),
            },
            log,
            index,
            timeindex,
            index_bytes,
            timeindex_bytes,
            txnindex: self.segment_txn_index(base_offset),
            producer_snapshot: producer_snapshot::read(&self.dir, s.next_offset())?,
            log_path: s.log_path().to_path_buf(),
        }))
    }

    /// Fsyncs every segment not yet known durable and advances and persists the
    /// recovery point to the log end offset. Holds the writer lock throughout.
    pub fn flush(&self) -> Result<(), LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        self.flush_locked(&mut w)
    }

    /// Persists as the recovery point what the background flusher has made durable.
    fn persist_background_syncs(&self, w: &mut Writer) -> Result<(), LogError> {
        let synced = w.synced_up_to.load(Ordering::Acquire);
        if synced > self.recovery_point() {
            self.set_recovery_point(w, synced);
            self.write_checkpoint(w)?;
        }
        Ok(())
    }

    fn flush_locked(&self, w: &mut Writer) -> Result<(), LogError> {
        self.persist_background_syncs(w)?;
        let log_end = self.log_end.load(Ordering::Acquire);
        if log_end <= self.recovery_point() {
            w.unflushed_messages = 0;
            return Ok(());
        }
        for segment in self.snapshot() {
            if segment.next_offset() > self.recovery_point() {
                segment.sync()?;
            }
        }
        self.sync_txn_index(w)?;
        self.set_recovery_point(w, log_end);
        w.unflushed_messages = 0;
        self.write_checkpoint(w)
    }

    /// Flushes if the last flush is more than `flush.ms` old.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        self.persist_background_syncs(&mut w)?;
        if now_ms.saturating_sub(w.last_flush_ms) >= w.config.flush_ms {
            self.flush_locked(&mut w)?;
            w.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Replaces the configuration; takes effect from the next operation.
    pub fn update_config(&self, config: LogConfig) {
        let mut w = self.writer.lock();
        self.active().set_limits(config.index_limits());
        w.config = config;
    }

    pub fn config(&self) -> LogConfig {
        self.writer.lock().config.clone()
    }

    /// Flushes everything and writes the clean-shutdown marker, so the next open
    /// reads no log data, and releases the directory lock. Further writes fail
    /// with `Closed`; reads still work.
    pub fn close(&self) -> Result<(), LogError> {
        // Before the writer lock: a pass commits under it.
        self.stop_cleaning();
        let mut w = self.writer.lock();
        if w.closed {
            return Ok(());
        }
        let active = self.active();
        active.seal()?;
        self.flush_locked(&mut w)?;
        producer_snapshot::write(&self.dir, self.log_end_offset(), &w.producers)?;
        checkpoint::write_clean_shutdown(
            &self.dir,
            CleanShutdown {
                log_end_offset: self.log_end_offset(),
                active_base_offset: active.base_offset(),
                active_size: active.size(),
            },
        )?;
        w.closed = true;
        // Waits for a retention pass still deleting files, and stops later ones.
        *self.files.lock() = true;
        w.dir_lock = None;
        Ok(())
    }

    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.snapshot()
            .iter()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                size_bytes: s.size(),
                max_timestamp: s.max_timestamp().map(|m| m.timestamp),
            })
            .collect()
    }

    /// Bytes of log data read by `open` (recovery scans and index rebuilds);
    /// 0 after a clean shutdown with intact indexes.
    pub fn recovery_bytes_scanned(&self) -> u64 {
        self.recovery_bytes_scanned.load(Ordering::Relaxed)
    }

    /// Bytes of batch headers read by `open` to rebuild producer state after the
    /// latest snapshot; 0 after a clean shutdown.
    pub fn producer_replay_bytes(&self) -> u64 {
        self.producer_replay_bytes
    }

    #[cfg(test)]
    pub(crate) fn segment_handles(&self) -> Vec<Arc<Segment>> {
        self.snapshot()
    }

    #[cfg(test)]
    pub(crate) fn synced_up_to(&self) -> i64 {
        self.writer.lock().synced_up_to.load(Ordering::Acquire)
    }
}
