//! Writing: leader appends (`append`, `append_with_leader_epoch`), follower
//! appends (`append_as_follower`), and rolling to a new segment (by size,
//! index capacity or `segment.ms`, on append or idle). All under the writer
//! lock; see `log/mod.rs` for the publication order readers rely on.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::TimestampType;
use crate::error::LogError;
use crate::flusher;
use crate::patched;
use crate::producer_snapshot;
use crate::producer_state::{Prepared, ProducerBatch};
use crate::record::{self, HEADER_LEN};
use crate::segment::Segment;

use super::{AppendInfo, Log, Writer};

impl Log {
    /// Validates `batches` (see [`record::validate_produced`], with
    /// `max.message.bytes`: no delete-horizon attribute, and on a compacted
    /// log, [`crate::LogConfig::compact`], a key on every record of a
    /// non-control batch, compressed batches decompressed to see them), assigns
    /// offsets from the log end offset, stamps LogAppendTime if configured, and
    /// writes them to the active segment (rolling first if due).
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
        // The cleaner's codecs and bound (a batch that expands past it could
        // not be compacted anyway); only compacted topics decompress here.
        let decompress: record::Decompress<'_> = &crate::cleaner::compression::decompress;
        let require_keys = w.config.compact.then_some(decompress);
        let mut infos =
            record::validate_produced(batches, w.config.max_message_bytes, require_keys).map_err(
                |source| LogError::Record {
                    dir: self.dir.clone(),
                    source,
                },
            )?;
        // The request is not copied: patched headers are written with the rest of
        // each batch (`patched`).
        let mut headers = patched::headers(batches, &infos);
        let base_offset = self.log_end.load(Ordering::Acquire);
        let log_append = w.config.timestamp_type == TimestampType::LogAppendTime;
        let mut next = base_offset;
        let mut messages = 0u64;
        for (info, header) in infos.iter_mut().zip(&mut headers) {
            record::set_base_offset(header, next);
            info.base_offset = next;
            if let Some(epoch) = leader_epoch {
                record::set_partition_leader_epoch(header, epoch);
            }
            if log_append {
                let rest = &batches[info.position + HEADER_LEN..info.range().end];
                patched::set_log_append_time(header, rest, now_ms);
                info.max_timestamp = now_ms;
                info.attributes |= record::TIMESTAMP_TYPE_BIT;
            }
            next = info.last_offset() + 1;
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
        if crate::bench_copy_path() {
            let mut copy = batches.to_vec();
            for (info, header) in infos.iter().zip(&headers) {
                copy[info.position..info.position + HEADER_LEN].copy_from_slice(header);
            }
            self.write_batches(&mut w, &copy, &[], &infos, next, now_ms)?;
        } else {
            self.write_batches(&mut w, batches, &headers, &infos, next, now_ms)?;
        }
        w.producers.commit(updates);
        self.publish_unstable(&w);
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
    /// Validates them as recovery does ([`record::validate_stored_batches`]:
    /// length, magic, CRC32C, `recordsCount <= lastOffsetDelta + 1`), so a
    /// compacted leader's batches, with fewer records than their offset span or
    /// none, pass; no `max.message.bytes`, which Kafka does not apply to
    /// replication (the leader accepted the batch; a lowered limit must not
    /// stall the follower). Offsets follow Kafka's rule for replica appends: the
    /// first batch starts at or above the log end offset and each next batch
    /// above the previous one's last offset, so the gaps a cleaned leader has
    /// are copied as they are; otherwise `LogError::OffsetsOutOfOrder` and
    /// nothing is written. The log end becomes the last batch's last offset + 1.
    /// `batches` must hold whole batches (Strata's `read` returns only whole
    /// batches); an empty buffer is refused as by `append`.
    ///
    /// The idempotent-producer state is updated from the batch headers without
    /// any check (as recovery replays them): a follower mirrors the leader, and
    /// once it becomes leader it deduplicates retries of batches it replicated.
    /// Epochs above the cache's latest are recorded at the batch's base offset
    /// (cache file first, as in `append_with_leader_epoch`). Rolls, flushes and
    /// failure handling are those of `append`, except that a roll starts the new
    /// segment at the first batch's base offset (above the log end across a
    /// gap, as Kafka rolls), so a gap of more than 2^32 offsets still fits the
    /// new segment's 32-bit relative offsets; `duplicate` is always false and
    /// `log_append_time` -1.
    pub fn append_as_follower(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        w.clock_ms = w.clock_ms.max(now_ms);
        let infos =
            record::validate_stored_batches(batches).map_err(|source| LogError::Record {
                dir: self.dir.clone(),
                source,
            })?;
        let base_offset = infos[0].base_offset;
        // The lowest offset the next batch may start at: the log end, then
        // past each batch (its last offset is >= its base: validated).
        let mut next = self.log_end.load(Ordering::Acquire);
        let mut messages = 0u64;
        let mut epochs = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            if info.base_offset < next {
                return Err(LogError::OffsetsOutOfOrder {
                    dir: self.dir.clone(),
                    position: info.position,
                    min: next,
                    got: info.base_offset,
                    first: i == 0,
                });
            }
            let header = record::BatchHeader::parse(&batches[info.range()]);
            if let Some(h) = header.filter(|h| h.partition_leader_epoch >= 0) {
                epochs.push((h.partition_leader_epoch, h.base_offset));
            }
            next = info.last_offset().saturating_add(1);
            messages += info.records_count as u64;
        }
        self.update_epochs(|c| {
            epochs.iter().fold(false, |changed, &(epoch, start)| {
                c.assign(epoch, start) | changed
            })
        })?;
        self.write_batches(&mut w, batches, &[], &infos, next, now_ms)?;
        self.replay_replicated(&mut w, batches, &infos)?;
        self.count_unflushed(&mut w, messages, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: -1,
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        })
    }

    /// Writes validated batches (at least one) with offsets `..next` to the
    /// active segment (rolling first if due) and publishes the new log end
    /// offset. An I/O error leaves the log refusing writes.
    ///
    /// Batches go to a segment in runs spanning at most 2^32 offsets, what its
    /// relative offsets hold. A leader's append is always one run; a
    /// follower's copy of a compacted leader may jump further between two
    /// batches of one fetch, and then the next run rolls to a new segment.
    pub(super) fn write_batches(
        &self,
        w: &mut Writer,
        data: &[u8],
        headers: &[[u8; HEADER_LEN]],
        infos: &[record::BatchInfo],
        next: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let mut from = 0;
        while from < infos.len() {
            let first = infos[from].base_offset;
            // A batch spans less than 2^31 offsets, so a run holds at least one.
            let len = infos[from + 1..]
                .iter()
                .position(|i| i.last_offset() - first > i64::from(u32::MAX))
                .map_or(infos.len() - from, |n| n + 1);
            let run = &infos[from..from + len];
            let written = if len == infos.len() {
                self.write_run(w, data, headers, run, now_ms)
            } else {
                let start = run[0].position;
                let end = run[len - 1].range().end;
                let shifted: Vec<record::BatchInfo> = run
                    .iter()
                    .map(|i| record::BatchInfo {
                        position: i.position - start,
                        ..*i
                    })
                    .collect();
                let headers = headers.get(from..from + len).unwrap_or(&[]);
                self.write_run(w, &data[start..end], headers, &shifted, now_ms)
            };
            if let Err(e) = written {
                tracing::error!(dir = %self.dir.display(), error = %e, "append failed; refusing writes until the log is reopened");
                w.failed = Some(e.to_string());
                return Err(e);
            }
            from += len;
        }
        self.log_end.store(next, Ordering::Release);
        Ok(())
    }

    /// Writes one run of batches (`infos` describe `data`) to the active
    /// segment, rolling first if due.
    fn write_run(
        &self,
        w: &mut Writer,
        data: &[u8],
        headers: &[[u8; HEADER_LEN]],
        infos: &[record::BatchInfo],
        now_ms: i64,
    ) -> Result<(), LogError> {
        let (Some(first), Some(last)) = (infos.first(), infos.last()) else {
            return Ok(());
        };
        let incoming_ts = infos
            .iter()
            .map(|i| i.max_timestamp)
            .max()
            .unwrap_or(i64::MIN);
        let offsets = first.base_offset..=last.last_offset();
        let active = self.maybe_roll(w, data.len() as u64, offsets, incoming_ts, now_ms)?;
        active.append(data, headers, infos, w.config.index_interval_bytes)
    }

    /// `flush.messages`: counts appended records and flushes when due.
    pub(super) fn count_unflushed(
        &self,
        w: &mut Writer,
        messages: u64,
        now_ms: i64,
    ) -> Result<(), LogError> {
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

    /// Rolls before an append of `len` bytes holding `offsets` (first batch's
    /// base to last batch's last offset), with max timestamp `incoming_ts`, if
    /// the active segment is non-empty and full (bytes, index, relative offset)
    /// or older than `segment.ms`. Returns the segment to write to.
    fn maybe_roll(
        &self,
        w: &mut Writer,
        len: u64,
        offsets: std::ops::RangeInclusive<i64>,
        incoming_ts: i64,
        now_ms: i64,
    ) -> Result<Arc<Segment>, LogError> {
        let (first, last) = (*offsets.start(), *offsets.end());
        let active = self.active();
        let size = active.size();
        if size == 0 {
            // An empty segment takes any batch, except a follower's that starts
            // more than 2^32 offsets above its base (a compacted leader's gap):
            // its relative offsets would not fit. The empty segment then stays
            // behind, and the batch starts a new one.
            if active.needs_roll_for_index(last) && first > active.base_offset() {
                return self.roll_locked(w, first, now_ms);
            }
            return Ok(active);
        }
        let full = size.saturating_add(len) > w.config.segment_bytes
            || size.saturating_add(len) > u64::from(u32::MAX)
            || active.needs_roll_for_index(last);
        if full || self.roll_due_on_append(&active, w, incoming_ts, now_ms)? {
            return self.roll_locked(w, first, now_ms);
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
        Ok(waited > roll_after_ms(&w.config, self.dir(), active.base_offset()))
    }

    /// `segment.ms` between appends: the segment is non-empty and both its first
    /// batch's timestamp and its creation (or opening) are older than that.
    fn roll_due_idle(&self, active: &Segment, w: &Writer, now_ms: i64) -> Result<bool, LogError> {
        if active.size() == 0 {
            return Ok(false);
        }
        let (first, created) = active.roll_times()?;
        let since = first.map_or(created, |f| f.max(created));
        Ok(now_ms.saturating_sub(since)
            > roll_after_ms(&w.config, self.dir(), active.base_offset()))
    }

    /// Starts a new segment at `base`: the log end offset, or for a follower's
    /// append the first incoming batch's base offset, which is above the log
    /// end when the leader's log has a gap there (Kafka rolls at the batch's
    /// offset too). The old active segment is sealed and fsynced, and the
    /// recovery point advanced to the new base. A no-op if the active segment
    /// already starts at or above `base`.
    pub(super) fn roll_locked(
        &self,
        w: &mut Writer,
        base: i64,
        now_ms: i64,
    ) -> Result<Arc<Segment>, LogError> {
        let old = self.active();
        if old.base_offset() >= base {
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
        self.sync_txn_index(w)?;
        self.segments_changed(w)?;
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        // The fsync of the old segment (and of the directory, for the new file's
        // entry) runs on the flusher thread; produce does not wait for it.
        flusher::sync_later(old, self.dir.clone(), base, Arc::clone(&w.synced_up_to));
        Ok(new)
    }

    /// Rolls the active segment if it is non-empty and both its first batch's
    /// timestamp and its creation (or last open) are older than `segment.ms`.
    pub fn roll_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let active = self.active();
        if self.roll_due_idle(&active, &w, now_ms)? {
            let base = self.log_end.load(Ordering::Acquire);
            self.roll_locked(&mut w, base, now_ms)?;
        }
        Ok(())
    }
}

/// How old the segment at `base` of the log in `dir` may grow before `segment.ms` rolls
/// it: `segment.ms` less a jitter in `[0, min(segment.jitter.ms, segment.ms))`, as Kafka
/// draws it per segment so that partitions created together do not all roll (and
/// upload, and index) at the same moment. The jitter is a hash of the log and the
/// segment, not a random draw: it stays the same across restarts and needs no state.
pub(crate) fn roll_after_ms(config: &crate::LogConfig, dir: &std::path::Path, base: i64) -> i64 {
    use std::hash::{Hash, Hasher};
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return config.segment_ms;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    base.hash(&mut h);
    config.segment_ms - (h.finish() % bound as u64) as i64
}
