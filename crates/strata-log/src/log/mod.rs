//! `Log`: one partition's segmented log. See the crate docs for the contracts.
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{self, Checkpoint, CleanShutdown};
use crate::config::{LogConfig, TimestampType};
use crate::error::LogError;
use crate::flusher;
use crate::leader_epoch::{self, LeaderEpochCache};
use crate::producer_snapshot;
use crate::producer_state::{Prepared, ProducerBatch, ProducerStateManager};
use crate::record;
use crate::recovery;
use crate::segment::Segment;

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
    dir_lock: Option<std::fs::File>,
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
}

/// A point in a truncation where tests may simulate a crash (a no-op otherwise).
#[cfg(test)]
fn crash_point(w: &mut Writer, dir: &Path) -> Result<(), LogError> {
    match w.crash_at.as_mut() {
        Some(0) => {
            w.crash_at = None;
            Err(LogError::Failed {
                dir: dir.to_path_buf(),
                reason: "simulated crash".into(),
            })
        }
        Some(n) => {
            *n -= 1;
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(not(test))]
fn crash_point(_: &mut Writer, _: &Path) -> Result<(), LogError> {
    Ok(())
}

impl Log {
    /// Opens the log in `dir` (created if missing), repairing it if the last
    /// shutdown was not clean (see the crate docs). Removes the clean-shutdown
    /// marker, so a crash from now on is detected. Takes an exclusive lock on the
    /// directory: a second open of the same directory fails with `Locked` until
    /// this `Log` is closed or dropped.
    pub fn open(dir: PathBuf, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        std::fs::create_dir_all(&dir).map_err(LogError::io("creating", &dir))?;
        let dir_lock = lock_dir(&dir)?;
        let scanned = AtomicU64::new(0);
        let loaded = recovery::load(&dir, &config, now_ms, &scanned)?;
        let (producers, producer_replay_bytes) =
            producer_snapshot::load(&dir, &loaded.segments, loaded.log_end_offset)?;
        let epochs = load_epochs(&dir, &loaded.segments, loaded.log_end_offset)?;
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
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Validates `batches` (see [`record::validate_batches`], with
    /// `max.message.bytes`), assigns offsets from the log end offset, stamps
    /// LogAppendTime if configured, and writes them to the active segment (rolling
    /// first if due).
    ///
    /// Before `Ok` is returned the bytes are in the OS page cache (`pwrite`) and
    /// visible to readers; they survive a process crash (kill -9) but only survive
    /// a power loss once flushed (`flush.messages`, `flush.ms`, [`Log::flush`], a
    /// roll, or [`Log::close`]).
    ///
    /// On `Err(Record)` nothing was written. On an I/O error while writing,
    /// nothing is visible to readers, but bytes may have reached the file past
    /// the published end: the log then refuses writes (`Failed`) until a reopen,
    /// whose recovery keeps or truncates them (they are not acknowledged, so
    /// either is correct). If only the `flush.messages` fsync fails, the batches
    /// are appended and visible but not known durable; the error is returned and
    /// the log also refuses further writes.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        self.append_inner(batches, None, now_ms)
    }

    /// Like [`Log::append`], also stamping `partitionLeaderEpoch` on every batch,
    /// and recording `(leader_epoch, base offset)` in the leader epoch cache when
    /// `leader_epoch` is above its latest epoch (the cache file is written before
    /// the batches, so a crash never leaves batches of an unrecorded epoch).
    pub fn append_with_leader_epoch(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_inner(batches, Some(leader_epoch), now_ms)
    }

    fn append_inner(
        &self,
        batches: &[u8],
        leader_epoch: Option<i32>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        w.clock_ms = w.clock_ms.max(now_ms);
        let mut infos =
            record::validate_batches(batches, w.config.max_message_bytes).map_err(|source| {
                LogError::Record {
                    dir: self.dir.clone(),
                    source,
                }
            })?;
        let mut data = batches.to_vec();
        let base_offset = self.log_end.load(Ordering::Acquire);
        let log_append = w.config.timestamp_type == TimestampType::LogAppendTime;
        let mut next = base_offset;
        let mut messages = 0u64;
        let mut incoming_ts = i64::MIN;
        for info in &mut infos {
            let bytes = &mut data[info.range()];
            record::set_base_offset(bytes, next);
            info.base_offset = next;
            if let Some(epoch) = leader_epoch {
                record::set_partition_leader_epoch(bytes, epoch);
            }
            if log_append {
                record::set_log_append_time(bytes, now_ms);
                info.max_timestamp = now_ms;
                info.attributes |= record::TIMESTAMP_TYPE_BIT;
            }
            next = info.last_offset() + 1;
            incoming_ts = incoming_ts.max(info.max_timestamp);
            messages += info.records_count as u64;
        }
        let prepared = w
            .producers
            .prepare(infos.iter().map(ProducerBatch::from_info))
            .map_err(|source| LogError::Producer {
                dir: self.dir.clone(),
                source,
            })?;
        let updates = match prepared {
            Prepared::Append(updates) => updates,
            Prepared::Duplicate(original) => {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time: if log_append { original.timestamp } else { -1 },
                    log_start_offset: self.log_start_offset(),
                    duplicate: true,
                })
            }
        };
        let latest = self.latest_epoch();
        if let Some(epoch) = leader_epoch.filter(|e| latest.is_none_or(|l| *e > l)) {
            self.update_epochs(|c| c.assign(epoch, base_offset))?;
        }
        self.write_batches(&mut w, &data, &infos, next, incoming_ts, now_ms)?;
        w.producers.commit(updates);
        self.count_unflushed(&mut w, messages, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        })
    }

    /// Appends batches replicated from the leader, exactly as the leader wrote
    /// them: base offsets, timestamps (no LogAppendTime stamping) and
    /// `partitionLeaderEpoch` are kept, so a read returns the input bytes.
    ///
    /// Validates them like [`Log::append`] (length, magic, CRC32C, record count)
    /// except for `max.message.bytes`, which Kafka does not apply to
    /// replication (the leader accepted the batch; a lowered limit must not
    /// stall the follower). The first batch must start at the log end offset
    /// and each next batch right after the previous one, otherwise
    /// `LogError::NonContiguous` and nothing is written. `batches` must hold
    /// whole batches (Strata's `read` returns only whole batches); an empty
    /// buffer is refused as by `append`.
    ///
    /// The idempotent-producer state is updated from the batch headers without
    /// any check (as recovery replays them): a follower mirrors the leader, and
    /// once it becomes leader it deduplicates retries of batches it replicated.
    /// Epochs above the cache's latest are recorded at the batch's base offset
    /// (cache file first, as in `append_with_leader_epoch`). Rolls, flushes and
    /// failure handling are those of `append`; `duplicate` is always false and
    /// `log_append_time` -1.
    pub fn append_as_follower(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        w.clock_ms = w.clock_ms.max(now_ms);
        let infos =
            record::validate_batches(batches, usize::MAX).map_err(|source| LogError::Record {
                dir: self.dir.clone(),
                source,
            })?;
        let base_offset = self.log_end.load(Ordering::Acquire);
        let mut next = base_offset;
        let mut messages = 0u64;
        let mut incoming_ts = i64::MIN;
        let mut epochs = Vec::new();
        for info in &infos {
            if info.base_offset != next {
                return Err(LogError::NonContiguous {
                    dir: self.dir.clone(),
                    expected: next,
                    got: info.base_offset,
                });
            }
            let header = record::BatchHeader::parse(&batches[info.range()]);
            if let Some(h) = header.filter(|h| h.partition_leader_epoch >= 0) {
                epochs.push((h.partition_leader_epoch, h.base_offset));
            }
            next = info.last_offset() + 1;
            incoming_ts = incoming_ts.max(info.max_timestamp);
            messages += info.records_count as u64;
        }
        self.update_epochs(|c| {
            epochs.iter().fold(false, |changed, &(epoch, start)| {
                c.assign(epoch, start) | changed
            })
        })?;
        self.write_batches(&mut w, batches, &infos, next, incoming_ts, now_ms)?;
        for info in &infos {
            w.producers.replay(&ProducerBatch::from_info(info));
        }
        self.count_unflushed(&mut w, messages, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: -1,
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        })
    }

    /// Writes validated batches with offsets `..next` to the active segment
    /// (rolling first if due) and publishes the new log end offset. An I/O
    /// error leaves the log refusing writes.
    fn write_batches(
        &self,
        w: &mut Writer,
        data: &[u8],
        infos: &[record::BatchInfo],
        next: i64,
        incoming_ts: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let written = self
            .maybe_roll(w, data.len() as u64, next - 1, incoming_ts, now_ms)
            .and_then(|active| active.append(data, infos, w.config.index_interval_bytes));
        if let Err(e) = written {
            tracing::error!(dir = %self.dir.display(), error = %e, "append failed; refusing writes until the log is reopened");
            w.failed = Some(e.to_string());
            return Err(e);
        }
        self.log_end.store(next, Ordering::Release);
        Ok(())
    }

    /// `flush.messages`: counts appended records and flushes when due.
    fn count_unflushed(&self, w: &mut Writer, messages: u64, now_ms: i64) -> Result<(), LogError> {
        w.unflushed_messages = w.unflushed_messages.saturating_add(messages);
        if w.unflushed_messages >= w.config.flush_messages {
            if let Err(e) = self.flush_locked(w) {
                tracing::error!(dir = %self.dir.display(), error = %e, "flush failed; refusing writes until the log is reopened");
                w.failed = Some(e.to_string());
                return Err(e);
            }
            w.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Applies `change` to a copy of the leader epoch cache and, if it says it
    /// changed anything, writes the file and then publishes the copy. Called
    /// with the writer lock held.
    fn update_epochs(
        &self,
        change: impl FnOnce(&mut LeaderEpochCache) -> bool,
    ) -> Result<(), LogError> {
        let mut cache = self.epochs.read().clone();
        if change(&mut cache) {
            self.store_epochs(cache)?;
        }
        Ok(())
    }

    /// Persists `cache` as the leader epoch file, then serves it. Under the writer lock.
    fn store_epochs(&self, cache: LeaderEpochCache) -> Result<(), LogError> {
        leader_epoch::write(&self.dir, &cache)?;
        *self.epochs.write() = cache;
        Ok(())
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

    /// Rolls before an append of `len` bytes ending at `last_offset`, with max
    /// timestamp `incoming_ts`, if the active segment is non-empty and full
    /// (bytes, index, relative offset) or older than `segment.ms`. Returns the
    /// segment to write to.
    fn maybe_roll(
        &self,
        w: &mut Writer,
        len: u64,
        last_offset: i64,
        incoming_ts: i64,
        now_ms: i64,
    ) -> Result<Arc<Segment>, LogError> {
        let active = self.active();
        let size = active.size();
        if size == 0 {
            return Ok(active);
        }
        let full = size.saturating_add(len) > w.config.segment_bytes
            || size.saturating_add(len) > u64::from(u32::MAX)
            || active.needs_roll_for_index(last_offset);
        if full || self.roll_due_on_append(&active, w, incoming_ts, now_ms)? {
            return self.roll_locked(w, now_ms);
        }
        Ok(active)
    }

    /// `segment.ms` on append, as Kafka: the incoming batches' max timestamp
    /// minus the first batch's, or the segment's age if it has no timestamp.
    /// Comparing two record timestamps means a producer with a skewed clock does
    /// not make every append roll.
    fn roll_due_on_append(
        &self,
        active: &Segment,
        w: &Writer,
        incoming_ts: i64,
        now_ms: i64,
    ) -> Result<bool, LogError> {
        let (first, created) = active.roll_times()?;
        let waited = match first {
            Some(first) => incoming_ts.saturating_sub(first),
            None => now_ms.saturating_sub(created),
        };
        Ok(waited > w.config.segment_ms)
    }

    /// `segment.ms` between appends: the segment is non-empty and both its first
    /// batch's timestamp and its creation (or opening) are older than that.
    fn roll_due_idle(&self, active: &Segment, w: &Writer, now_ms: i64) -> Result<bool, LogError> {
        if active.size() == 0 {
            return Ok(false);
        }
        let (first, created) = active.roll_times()?;
        let since = first.map_or(created, |f| f.max(created));
        Ok(now_ms.saturating_sub(since) > w.config.segment_ms)
    }

    /// Starts a new segment at the log end offset. The old active segment is
    /// sealed and fsynced, and the recovery point advanced to the new base.
    fn roll_locked(&self, w: &mut Writer, now_ms: i64) -> Result<Arc<Segment>, LogError> {
        let old = self.active();
        let base = self.log_end.load(Ordering::Acquire);
        if old.size() == 0 || old.base_offset() == base {
            return Ok(old);
        }
        old.seal_indexes()?;
        let new = Arc::new(Segment::create(
            &self.dir,
            base,
            w.config.index_limits(),
            now_ms,
        )?);
        // Covers every batch below `base`, as Kafka's snapshot on roll.
        producer_snapshot::write(&self.dir, base, &w.producers)?;
        self.segments.write().insert(base, Arc::clone(&new));
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        // The fsync of the old segment (and of the directory, for the new file's
        // entry) runs on the flusher thread; produce does not wait for it.
        flusher::sync_later(old, self.dir.clone(), base, Arc::clone(&w.synced_up_to));
        Ok(new)
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

    /// Whole batches starting with the one containing `offset` (which may begin
    /// before it, as in Kafka), up to `max_bytes`, but at least one whole batch if
    /// `min_one_batch`. Empty at the log end. Reads from one segment; the caller
    /// continues from the offset after the last batch returned.
    ///
    /// Errors with `OffsetOutOfRange` outside `[log_start, log_end]`. Never
    /// returns a batch at or past the log end offset loaded at the start, and
    /// holds no lock an append takes while reading the file (only `cut`
    /// shared, which a truncation takes briefly to cut a segment).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, LogError> {
        self.read_up_to(offset, max_bytes, min_one_batch, i64::MAX)
    }

    /// [`Log::read`], also leaving out batches whose base offset is at or above
    /// `max_offset` (for consumers: the high watermark). Empty if `offset >=
    /// max_offset`.
    pub fn read_up_to(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<Bytes, LogError> {
        let _cut = self.cut.read();
        self.read_once(offset, max_bytes, min_one_batch, max_offset)
    }

    fn read_once(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        max_offset: i64,
    ) -> Result<Bytes, LogError> {
        let log_end = self.log_end.load(Ordering::Acquire);
        self.check_range(offset, log_end)?;
        let upper = max_offset.min(log_end);
        if offset >= upper {
            return Ok(Bytes::new());
        }
        let floor = {
            let segments = self.segments.read();
            let floor = segments.range(..=offset).next_back().map(|(b, _)| *b);
            floor.unwrap_or(i64::MIN)
        };
        // Retention may have moved the start while we were not looking.
        self.check_range(offset, log_end)?;
        // Usually the floor segment holds the offset; a segment that ends early
        // (a gap left by recovery) sends us on to the next one.
        let mut from = floor;
        while let Some(segment) = self.segment_at_or_after(from) {
            if let Some(bytes) = segment.read(offset, max_bytes, min_one_batch, upper)? {
                return Ok(bytes);
            }
            from = segment.base_offset().saturating_add(1);
        }
        Ok(Bytes::new())
    }

    fn segment_at_or_after(&self, base: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        segments.range(base..).next().map(|(_, s)| Arc::clone(s))
    }

    fn check_range(&self, offset: i64, log_end: i64) -> Result<(), LogError> {
        let log_start = self.log_start.load(Ordering::Acquire);
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start,
                log_end,
            });
        }
        Ok(())
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

    /// The first batch whose maxTimestamp is >= `ts`, ignoring batches wholly
    /// below the log start offset (the server decodes it to find the exact
    /// record, and clamps that offset to the log start offset, as Kafka does).
    pub fn find_batch_by_timestamp(&self, ts: i64) -> Result<Option<Bytes>, LogError> {
        let _cut = self.cut.read();
        self.find_batch_by_timestamp_once(ts)
    }

    fn find_batch_by_timestamp_once(&self, ts: i64) -> Result<Option<Bytes>, LogError> {
        let log_start = self.log_start_offset();
        for segment in self.snapshot() {
            if segment.max_timestamp().is_some_and(|m| m.timestamp >= ts) {
                if let Some(batch) = segment.batch_at_timestamp(ts, log_start)? {
                    return Ok(Some(batch));
                }
            }
        }
        Ok(None)
    }

    /// The (first) batch holding the largest timestamp, for ListOffsets -3.
    pub fn max_timestamp_batch(&self) -> Result<Option<Bytes>, LogError> {
        let _cut = self.cut.read();
        self.max_timestamp_batch_once()
    }

    fn max_timestamp_batch_once(&self) -> Result<Option<Bytes>, LogError> {
        let mut best: Option<(Arc<Segment>, i64, i64)> = None;
        for segment in self.snapshot() {
            if let Some(m) = segment.max_timestamp() {
                if best.as_ref().is_none_or(|b| m.timestamp > b.1) {
                    best = Some((segment, m.timestamp, m.offset));
                }
            }
        }
        match best {
            Some((segment, _, offset)) => segment.batch_containing(offset),
            None => Ok(None),
        }
    }

    /// DeleteRecords: raises the log start offset to `offset` (-1 = the log end)
    /// and persists it, then deletes the segments wholly below it (rolling first if
    /// that includes the active one). Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let log_end = self.log_end.load(Ordering::Acquire);
        let target = if offset == -1 { log_end } else { offset };
        if target < 0 || target > log_end {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start: self.log_start_offset(),
                log_end,
            });
        }
        if target <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        self.log_start.store(target, Ordering::Release);
        w.producers.remove_below(target);
        self.write_checkpoint(&w)?;
        self.update_epochs(|c| c.truncate_from_start(target))?;
        let active = self.active();
        if active.size() > 0 && active.next_offset() <= target {
            let now_ms = w.clock_ms;
            self.roll_locked(&mut w, now_ms)?;
        }
        let segments = self.snapshot();
        let doomed = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= target)
            .count();
        self.delete_prefix(&segments, doomed)?;
        Ok(target)
    }

    /// Deletes old segments by `retention.ms` (a segment's largest timestamp is
    /// older than now - retention.ms) and `retention.bytes` (the log is larger
    /// than that without the segment), and segments below the log start offset.
    /// Never deletes the active segment. Returns the number of segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let segments = self.snapshot();
        let inactive = &segments[..segments.len().saturating_sub(1)];
        let log_start = self.log_start_offset();
        let below_start = segments
            .windows(2)
            .take_while(|p| p[1].base_offset() <= log_start)
            .count();
        let by_time = if w.config.retention_ms < 0 {
            0
        } else {
            let mut n = 0;
            for s in inactive {
                if now_ms.saturating_sub(largest_timestamp(s)) <= w.config.retention_ms {
                    break;
                }
                n += 1;
            }
            n
        };
        let by_size = breached_by_size(
            self.size_bytes(),
            inactive.iter().map(|s| s.size()),
            w.config.retention_bytes,
        );
        let doomed = below_start.max(by_time).max(by_size);
        if doomed == 0 {
            return Ok(0);
        }
        let new_start = segments[doomed].base_offset().max(log_start);
        let raised = new_start > log_start;
        if raised {
            self.log_start.store(new_start, Ordering::Release);
            w.producers.remove_below(new_start);
            let mut epochs = self.epochs.read().clone();
            if epochs.truncate_from_start(new_start) {
                // Rare (the start passed an epoch boundary): the start is persisted
                // before the epochs that no longer cover it, under the writer lock
                // like every change of the epoch cache.
                self.write_checkpoint(&w)?;
                self.store_epochs(epochs)?;
            }
        }
        let doomed = self.unmap_prefix(&segments, doomed);
        drop(w);
        self.delete_unmapped(&segments, doomed, raised)?;
        Ok(doomed)
    }

    /// Local retention of a tiered log (`local.retention.ms/bytes`): deletes the
    /// oldest inactive segments that are *both* wholly below `tiered_up_to` (the
    /// remote tier's end offset, which the caller read from a published manifest)
    /// *and* beyond local retention (largest timestamp older than `now - local_ms`,
    /// or the log larger than `local_bytes` without them; -1 disables either), plus
    /// segments below the log start offset. Raises and persists the log start
    /// offset, which for a tiered log is the *local* log start offset. Never deletes
    /// the active segment or any segment ending above `tiered_up_to`, so no local
    /// data leaves the disk before a durable remote copy exists. A crash in the
    /// middle leaves a raised start offset and possibly files that the next open
    /// deletes, as with [`Log::enforce_retention`]. Returns the segments deleted.
    pub fn enforce_local_retention(
        &self,
        now_ms: i64,
        tiered_up_to: i64,
        local_ms: i64,
        local_bytes: i64,
    ) -> Result<usize, LogError> {
        let w = self.writer.lock();
        self.check_open(&w)?;
        let segments = self.snapshot();
        let log_start = self.log_start_offset();
        let eligible: Vec<&Arc<Segment>> = segments[..segments.len().saturating_sub(1)]
            .iter()
            .take_while(|s| s.next_offset() <= tiered_up_to)
            .collect();
        let below_start = segments
            .windows(2)
            .take_while(|p| p[1].base_offset() <= log_start)
            .count();
        let by_time = if local_ms < 0 {
            0
        } else {
            eligible
                .iter()
                .take_while(|s| now_ms.saturating_sub(largest_timestamp(s)) > local_ms)
                .count()
        };
        let by_size = breached_by_size(
            self.size_bytes(),
            eligible.iter().map(|s| s.size()),
            local_bytes,
        );
        let doomed = below_start.max(by_time).max(by_size);
        if doomed == 0 {
            return Ok(0);
        }
        let new_start = segments[doomed].base_offset().max(log_start);
        let raised = new_start > log_start;
        if raised {
            self.log_start.store(new_start, Ordering::Release);
        }
        let doomed = self.unmap_prefix(&segments, doomed);
        drop(w);
        self.delete_unmapped(&segments, doomed, raised)?;
        Ok(doomed)
    }

    /// The paths of the `.log`, `.index` and `.timeindex` files of the segment
    /// with `base_offset` (for copying a closed segment elsewhere), if it exists.
    pub fn segment_files(&self, base_offset: i64) -> Option<[PathBuf; 3]> {
        let segments = self.segments.read();
        let s = segments.get(&base_offset)?;
        let log = s.log_path().to_path_buf();
        Some([
            log.clone(),
            log.with_extension("index"),
            log.with_extension("timeindex"),
        ])
    }

    /// Removes the first `n` segments (never the last) from the map, then their
    /// files. Readers holding them keep working on the open descriptors.
    fn delete_prefix(&self, segments: &[Arc<Segment>], n: usize) -> Result<(), LogError> {
        let n = self.unmap_prefix(segments, n);
        let files = self.files.lock();
        self.delete_files_of(&files, segments, n)
    }

    /// Removes the first `n` segments (never the last) from the map: no new read
    /// finds them. Returns how many were removed. Called under the writer lock.
    fn unmap_prefix(&self, segments: &[Arc<Segment>], n: usize) -> usize {
        let n = n.min(segments.len().saturating_sub(1));
        let mut map = self.segments.write();
        for s in &segments[..n] {
            map.remove(&s.base_offset());
        }
        n
    }

    /// Retention's second half, after the writer lock is released: persists a raised
    /// log start offset, then deletes the files of the `n` segments unmapped. A crash
    /// in between leaves files below the persisted start, which the next open deletes.
    /// Nothing is done once the log is closed (its directory may be gone or reused).
    fn delete_unmapped(
        &self,
        segments: &[Arc<Segment>],
        n: usize,
        raised: bool,
    ) -> Result<(), LogError> {
        let files = self.files.lock();
        if *files {
            return Ok(());
        }
        if raised {
            self.write_checkpoint_files(&files)?;
        }
        self.delete_files_of(&files, segments, n)
    }

    fn delete_files_of(
        &self,
        _files: &bool,
        segments: &[Arc<Segment>],
        n: usize,
    ) -> Result<(), LogError> {
        for s in &segments[..n] {
            tracing::info!(file = %s.log_path().display(), "deleting segment");
            s.delete_files()?;
        }
        if let Some(first_kept) = segments.get(n) {
            producer_snapshot::delete_below(&self.dir, first_kept.base_offset())?;
        }
        Ok(())
    }

    /// Rolls the active segment if it is non-empty and both its first batch's
    /// timestamp and its creation (or last open) are older than `segment.ms`.
    pub fn roll_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let active = self.active();
        if self.roll_due_idle(&active, &w, now_ms)? {
            self.roll_locked(&mut w, now_ms)?;
        }
        Ok(())
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

    /// Tests: makes the next truncation stop (with an error, leaving the log
    /// `Failed`) at its `step`-th step, as if the process were killed there.
    #[cfg(test)]
    pub(crate) fn crash_truncation_at(&self, step: u32) {
        self.writer.lock().crash_at = Some(step);
    }

    #[cfg(test)]
    pub(crate) fn synced_up_to(&self) -> i64 {
        self.writer.lock().synced_up_to.load(Ordering::Acquire)
    }

    /// Kafka's `truncateTo`: removes every batch at and above `offset` (a batch
    /// holding `offset` goes whole, so the new end may be below `offset`) and
    /// returns the new log end offset. A no-op if `offset` >= the log end. If
    /// `offset` is below the first segment, this is
    /// [`Log::truncate_fully_and_start_at`]`(offset)`.
    ///
    /// Order, chosen so that a crash (kill -9) at any point leaves files that
    /// `open` recovers to a prefix of the original log: (1) the recovery point
    /// (and the log start, if above) is lowered to at most the new end and
    /// persisted, so open re-validates everything from the cut on, and queued
    /// background fsyncs stop counting; (2) the new end is published to readers;
    /// (3) the segments above the cut leave the map and their files are
    /// deleted, highest first; (4) the segment holding the cut drops its index
    /// entries past it and is cut at the batch boundary, then fsynced, and the
    /// directory fsynced; (5) producer snapshots past the end are deleted and
    /// the producer state rebuilt from the latest snapshot at or below the end
    /// plus the headers after it; (6) the leader epoch cache drops the epochs
    /// starting at or after the end (open does the same if a crash came first).
    /// On an I/O error the log refuses writes until reopened.
    pub fn truncate_to(&self, offset: i64) -> Result<i64, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let log_end = self.log_end.load(Ordering::Acquire);
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start: self.log_start_offset(),
                log_end,
            });
        }
        if offset >= log_end {
            return Ok(log_end);
        }
        let first_base = self.snapshot().first().map_or(0, |s| s.base_offset());
        let result = if offset < first_base {
            self.truncate_fully_locked(&mut w, offset).map(|()| offset)
        } else {
            self.truncate_locked(&mut w, offset)
        };
        if let Err(e) = &result {
            tracing::error!(dir = %self.dir.display(), offset, error = %e, "truncation failed; refusing writes until the log is reopened");
            w.failed = Some(e.to_string());
        }
        result
    }

    fn truncate_locked(&self, w: &mut Writer, offset: i64) -> Result<i64, LogError> {
        let segments = self.snapshot();
        let holding_at = segments
            .iter()
            .rposition(|s| s.base_offset() <= offset)
            .unwrap_or(0);
        let holding = Arc::clone(&segments[holding_at]);
        let cut = holding.cut_point(offset)?;
        let new_end = cut.map_or(holding.next_offset(), |(_, base)| base);
        tracing::info!(dir = %self.dir.display(), offset, old_end = self.log_end_offset(), new_end, "truncating log");
        // (1) Nothing at or above the cut may count as recovered, and the log
        // start may not stay past the end (open would discard the whole log).
        if self.log_start_offset() > new_end {
            self.log_start.store(new_end, Ordering::Release);
        }
        let recovery_point = self.recovery_point().min(new_end);
        self.set_recovery_point(w, recovery_point);
        w.synced_up_to = Arc::new(AtomicI64::new(recovery_point));
        self.write_checkpoint(w)?;
        crash_point(w, &self.dir)?;
        // (2) Readers stop at the new end from now on.
        self.log_end.store(new_end, Ordering::Release);
        // (3) Whole segments above the cut, highest first: every intermediate
        // state on disk is a prefix of the log.
        let above = &segments[holding_at + 1..];
        {
            let mut map = self.segments.write();
            for s in above {
                map.remove(&s.base_offset());
            }
        }
        for s in above.iter().rev() {
            tracing::info!(file = %s.log_path().display(), "deleting segment above the truncation point");
            s.delete_files()?;
            crash_point(w, &self.dir)?;
        }
        // (4) The segment holding the cut becomes the active one.
        if let Some((position, base)) = cut {
            // Reads in flight (which may have loaded the old end and size)
            // finish before the files are cut.
            holding.truncate_at(position, base, w.clock_ms, &self.cut)?;
        }
        holding.set_limits(w.config.index_limits());
        checkpoint::sync_dir(&self.dir)?;
        crash_point(w, &self.dir)?;
        // (5) Producer state for the shorter log.
        let (producers, _) = {
            let map = self.segments.read();
            producer_snapshot::load(&self.dir, &map, new_end)?
        };
        w.producers = producers;
        crash_point(w, &self.dir)?;
        // (6) Epochs that started past the end are gone with their batches.
        self.update_epochs(|c| c.truncate_from_end(new_end))?;
        Ok(new_end)
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every segment and restarts
    /// the log empty at `offset` (log start = log end = recovery point =
    /// `offset`), as a follower does when the leader's log start is past its
    /// end. Clears the producer state (and its snapshots) and the leader epoch
    /// cache. Durable on return.
    ///
    /// Order, for crashes: the epoch cache file and producer snapshots are
    /// removed first (open rebuilds both from whatever log remains), then the
    /// checkpoint (log start and recovery point = `offset`) is written, then
    /// the segments are deleted highest first and the new empty segment is
    /// created. Open after a crash in between finds either a prefix of the old
    /// log (if `offset` was below it) or, because segments below the persisted
    /// log start are discarded, the empty log at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start: self.log_start_offset(),
                log_end: self.log_end_offset(),
            });
        }
        let result = self.truncate_fully_locked(&mut w, offset);
        if let Err(e) = &result {
            tracing::error!(dir = %self.dir.display(), offset, error = %e, "truncation failed; refusing writes until the log is reopened");
            w.failed = Some(e.to_string());
        }
        result
    }

    fn truncate_fully_locked(&self, w: &mut Writer, offset: i64) -> Result<(), LogError> {
        tracing::info!(dir = %self.dir.display(), offset, old_end = self.log_end_offset(), "truncating log fully");
        leader_epoch::remove(&self.dir)?;
        *self.epochs.write() = LeaderEpochCache::default();
        crash_point(w, &self.dir)?;
        producer_snapshot::delete_below(&self.dir, i64::MAX)?;
        w.producers = ProducerStateManager::default();
        w.synced_up_to = Arc::new(AtomicI64::new(offset));
        self.set_recovery_point(w, offset);
        w.unflushed_messages = 0;
        // Readers see the empty log at `offset` from now on; those in flight
        // keep reading the old segments through their open descriptors.
        self.log_end.store(offset, Ordering::Release);
        self.log_start.store(offset, Ordering::Release);
        self.write_checkpoint(w)?;
        crash_point(w, &self.dir)?;
        let segments = self.snapshot();
        for s in segments.iter().rev() {
            tracing::info!(file = %s.log_path().display(), "deleting segment");
            s.delete_files()?;
            crash_point(w, &self.dir)?;
        }
        let new = Arc::new(Segment::create(
            &self.dir,
            offset,
            w.config.index_limits(),
            w.clock_ms,
        )?);
        new.sync()?;
        {
            let mut map = self.segments.write();
            map.clear();
            map.insert(offset, new);
        }
        checkpoint::sync_dir(&self.dir)?;
        crash_point(w, &self.dir)?;
        leader_epoch::write(&self.dir, &LeaderEpochCache::default())
    }

    /// The latest leader epoch in the leader epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.read().latest_epoch()
    }

    /// Kafka's `endOffsetFor(requestedEpoch)` for OffsetForLeaderEpoch: the
    /// latest epoch ends at the log end offset; an older epoch answers the
    /// largest cached epoch <= `requested` with the start offset of the first
    /// epoch above it; an epoch older than the whole cache answers `requested`
    /// with the first cached start offset (as Kafka); `None` (the caller
    /// answers UNDEFINED_EPOCH_OFFSET) for `requested` < 0, an empty cache or an
    /// epoch above the latest.
    pub fn end_offset_for_epoch(&self, requested: i32) -> Option<(i32, i64)> {
        let cache = self.epochs.read();
        cache.end_offset_for(requested, self.log_end_offset())
    }

    /// The leader epoch cache's `(epoch, start offset)` entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs.read().entries().to_vec()
    }
}

/// The leader epoch cache of an opened log: the checkpoint file if readable,
/// otherwise rebuilt from the `partitionLeaderEpoch` of every batch header
/// (epochs < 0 mean "none") and written. Entries at or past the log end (a
/// crash after the file was written but before the batches were) are dropped.
fn load_epochs(
    dir: &Path,
    segments: &BTreeMap<i64, Arc<Segment>>,
    log_end: i64,
) -> Result<LeaderEpochCache, LogError> {
    let (mut cache, mut dirty) = match leader_epoch::read(dir)? {
        Some(cache) => (cache, false),
        None => {
            let mut cache = LeaderEpochCache::default();
            for segment in segments.values() {
                segment.for_each_header(segment.base_offset(), |h| {
                    cache.assign(h.partition_leader_epoch, h.base_offset);
                })?;
            }
            tracing::info!(dir = %dir.display(), epochs = cache.entries().len(), "rebuilt the leader epoch cache from the log");
            (cache, true)
        }
    };
    dirty |= cache.truncate_from_end(log_end);
    if dirty {
        leader_epoch::write(dir, &cache)?;
    }
    Ok(cache)
}

const LOCK_FILE: &str = ".lock";

fn lock_dir(dir: &Path) -> Result<std::fs::File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(LogError::io("opening", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(LogError::io("locking", path)(e)),
    }
}

/// Kafka's size rule (`deleteRetentionSizeBreachedSegments`, for `retention.bytes` and
/// `local.retention.bytes` alike): how many of the oldest segments, of `sizes`, go while the
/// log of `total` bytes stays at least `limit` bytes without them. A negative limit keeps all.
pub(crate) fn breached_by_size(total: u64, sizes: impl Iterator<Item = u64>, limit: i64) -> usize {
    if limit < 0 {
        return 0;
    }
    let mut excess = total as i64 - limit;
    sizes
        .take_while(|&size| {
            excess -= size as i64;
            excess >= 0
        })
        .count()
}

/// Kafka's largest timestamp of a segment: its max record timestamp, or the
/// file's modification time if no record had one.
fn largest_timestamp(segment: &Segment) -> i64 {
    if let Some(m) = segment.max_timestamp().filter(|m| m.timestamp >= 0) {
        return m.timestamp;
    }
    std::fs::metadata(segment.log_path())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| d.as_millis() as i64)
}
