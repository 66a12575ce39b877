//! The log cleaner: compacts the hosted logs of topics whose `cleanup.policy` includes
//! `compact`, as Kafka's `LogCleaner` does. The storage half (one pass over one log: key map,
//! rewrite, crash-safe swap) is `strata_log::Log::clean`; this module decides which log to
//! clean and when (`schedule.rs`, pure), runs the passes on `log.cleaner.threads` threads of the
//! blocking pool, off the request workers, with a key map sized from
//! `log.cleaner.dedupe.buffer.size` and an I/O rate limit shared by all threads
//! (`log.cleaner.io.max.bytes.per.second`), and reports each pass in the log and the metrics.
//!
//! Every replica cleans its own log (leaders and followers alike, as in Kafka); a pass never
//! goes past the high watermark, so nothing not yet committed is compacted. A failed pass
//! marks the partition uncleanable with its reason until `log.cleaner.backoff.ms` has passed;
//! the log keeps serving.
//!
//! Dependencies point down: the replica manager (the partitions) and the metadata cache (the
//! topic and cleaner settings); nothing below knows this module.

mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_config::TopicConfig;
use strata_log::{CleanOutcome, CleanParams, CleanStats, CleanableStats, OffsetMap};
use strata_tier::copier::Throttle;
use tokio::sync::{watch, Notify};

use crate::blocking::off_worker;
use crate::metadata::MetadataCache;
use crate::now_ms;
use crate::replica::{Partition, ReplicaManager, TopicPartition};

pub use schedule::{Candidate, Schedule, Uncleanable};

/// Bytes of key map per key slot as `strata_log::OffsetMap` lays it out (16-byte hash and
/// 8-byte offset), over its 0.9 load limit.
const MAP_BYTES_PER_KEY: u64 = 27;
/// The fewest bytes a record takes in a v2 batch (length, attributes, timestamp and offset
/// deltas, key and value lengths, header count): no dirty section holds more keys than
/// `dirty_bytes / MIN_RECORD_BYTES`.
const MIN_RECORD_BYTES: u64 = 7;

/// What the last pass of a partition did, for `strata topic describe` and the logs.
#[derive(Clone, Debug)]
pub struct LastPass {
    pub ended_ms: i64,
    pub duration: Duration,
    pub stats: CleanStats,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

pub struct LogCleaner {
    metadata: Arc<MetadataCache>,
    replicas: Arc<ReplicaManager>,
    schedule: Mutex<Schedule>,
    /// The shared I/O limit, rebuilt when `log.cleaner.io.max.bytes.per.second` changes.
    throttle: Mutex<(f64, Arc<Throttle>)>,
    last: Mutex<HashMap<TopicPartition, LastPass>>,
    /// Wakes idle cleaner threads (a topic became compacted, a config changed).
    wake: Notify,
}

impl LogCleaner {
    pub fn new(metadata: Arc<MetadataCache>, replicas: Arc<ReplicaManager>) -> Arc<LogCleaner> {
        Arc::new(LogCleaner {
            metadata,
            replicas,
            schedule: Mutex::new(Schedule::default()),
            throttle: Mutex::new((f64::MAX, Arc::new(Throttle::new(0)))),
            last: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        })
    }

    /// Starts the supervisor that keeps `log.cleaner.threads` cleaner threads running (the
    /// setting is dynamic), while `log.cleaner.enable`. They end when `shutdown` turns true.
    pub fn spawn(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        let cleaner = self.clone();
        tokio::spawn(async move {
            let mut running: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            let mut stop = shutdown.clone();
            loop {
                let cfg = cleaner.metadata.config().cleaner.clone();
                let wanted = if cfg.enable {
                    cfg.threads.max(1) as usize
                } else {
                    0
                };
                running.retain(|h| !h.is_finished());
                while running.len() < wanted {
                    let index = running.len();
                    let worker = cleaner.clone().worker(index, shutdown.clone());
                    running.push(tokio::spawn(worker));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }

    /// Wakes idle cleaner threads to look for work now.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// One cleaner thread: cleans the log most in need until none is due, then waits
    /// `log.cleaner.backoff.ms` (or a wake-up). Ends when it is no longer wanted.
    async fn worker(self: Arc<Self>, index: usize, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let cfg = self.metadata.config().cleaner.clone();
            if !cfg.enable || index >= cfg.threads.max(1) as usize {
                return;
            }
            let cleaned = match self.next_job() {
                Some(job) => self.run(job, &cfg).await,
                None => false,
            };
            if cleaned {
                continue;
            }
            let backoff = Duration::from_millis(cfg.backoff_ms.max(10) as u64);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The compacted logs hosted here with what their next pass would see.
    fn candidates(
        &self,
        now: i64,
    ) -> Vec<(Arc<Partition>, CleanParams, CleanableStats, Candidate)> {
        let mut out = Vec::new();
        for name in self.metadata.topic_names() {
            let Some(topic) = self.metadata.topic(&name) else {
                continue;
            };
            if !topic.config.compacts() {
                continue;
            }
            for part in self.replicas.topic_partitions(&name) {
                let params = clean_params(&part, &topic.config, now);
                let stats = match part.log.cleanable(&params) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(tp = %part.tp, error = %e, "cannot size the dirty section");
                        continue;
                    }
                };
                let candidate = Candidate {
                    tp: part.tp.clone(),
                    dirty_ratio: stats.dirty_ratio(),
                    dirty_bytes: stats.dirty_bytes,
                    min_ratio: topic.config.min_cleanable_dirty_ratio,
                    first_dirty_timestamp: stats.first_dirty_timestamp,
                    max_lag_ms: topic.config.max_compaction_lag_ms,
                };
                out.push((part, params, stats, candidate));
            }
        }
        out
    }

    /// Picks the next log to clean and marks it in progress.
    fn next_job(&self) -> Option<(Arc<Partition>, CleanParams, CleanableStats)> {
        let now = now_ms();
        let all = self.candidates(now);
        let views: Vec<Candidate> = all.iter().map(|c| c.3.clone()).collect();
        let mut schedule = self.schedule.lock();
        schedule.retain(|tp| views.iter().any(|c| &c.tp == tp));
        let tp = schedule.pick(now, &views)?;
        all.into_iter()
            .find(|c| c.0.tp == tp)
            .map(|(part, params, stats, _)| (part, params, stats))
    }

    /// Runs one pass of `part` on the blocking pool. True when it cleaned something.
    async fn run(
        &self,
        (part, params, stats): (Arc<Partition>, CleanParams, CleanableStats),
        cfg: &strata_config::CleanerConfig,
    ) -> bool {
        // A tiered partition's pass and its uploads take turns (see `Partition::upload_lock`;
        // the lock is fair, so a pass waits for at most the upload in flight, and the next
        // upload waits for the pass); its lower bound, the remote end, is read once it is held.
        let (upload_guard, params) = if params.keep_tombstones {
            let guard = part.upload_lock.clone().lock_owned().await;
            let Some(topic) = self.metadata.topic(&part.tp.topic) else {
                self.schedule.lock().done(&part.tp);
                return false;
            };
            (
                Some(guard),
                clean_params(&part, &topic.config, params.now_ms),
            )
        } else {
            (None, params)
        };
        let budget = (cfg.dedupe_buffer_size.max(1) / cfg.threads.max(1) as i64) as u64;
        let memory = map_memory(budget, stats.dirty_bytes);
        let throttle = self.throttle(cfg.io_max_bytes_per_second);
        let started = Instant::now();
        let bytes_before = part.log.size_bytes();
        let rt = tokio::runtime::Handle::current();
        let log_part = part.clone();
        let outcome = off_worker(move || {
            let _upload_guard = upload_guard;
            let mut map = OffsetMap::with_memory(memory as usize);
            let take = |n: u64| rt.block_on(throttle.take(n as usize));
            log_part.log.clean(&mut map, &params, &take)
        })
        .await;
        let now = now_ms();
        match outcome {
            Some(Ok(CleanOutcome::Cleaned(stats))) => {
                let pass = LastPass {
                    ended_ms: now,
                    duration: started.elapsed(),
                    stats,
                    bytes_before,
                    bytes_after: part.log.size_bytes(),
                };
                log_pass(&part.tp, &pass);
                crate::metrics::cleaner::pass(stats.bytes_read, stats.bytes_written, pass.duration);
                self.last.lock().insert(part.tp.clone(), pass);
                self.schedule.lock().done(&part.tp);
                true
            }
            Some(Ok(CleanOutcome::NothingToClean)) => {
                self.schedule.lock().done(&part.tp);
                false
            }
            Some(Ok(CleanOutcome::Aborted { reason })) => {
                tracing::info!(tp = %part.tp, reason, "cleaning pass aborted; the log is as before it");
                self.schedule.lock().done(&part.tp);
                false
            }
            Some(Err(e)) => {
                self.failed(&part.tp, e.to_string(), now, cfg.backoff_ms);
                false
            }
            None => {
                self.failed(
                    &part.tp,
                    "the cleaning task panicked".into(),
                    now,
                    cfg.backoff_ms,
                );
                false
            }
        }
    }

    fn failed(&self, tp: &TopicPartition, reason: String, now: i64, backoff_ms: i64) {
        tracing::warn!(%tp, error = %reason, retry_in_ms = backoff_ms, "cleaning failed; the partition is uncleanable until the backoff has passed (reads and writes go on)");
        crate::metrics::cleaner::error();
        self.schedule.lock().failed(tp, reason, now, backoff_ms);
    }

    /// The shared token bucket for `rate` bytes per second (`f64::MAX`: none).
    fn throttle(&self, rate: f64) -> Arc<Throttle> {
        let mut t = self.throttle.lock();
        if t.0 != rate {
            let per_sec = if rate >= u64::MAX as f64 {
                0
            } else {
                rate as u64
            };
            *t = (rate, Arc::new(Throttle::new(per_sec)));
        }
        t.1.clone()
    }

    /// The cleaner's view of one partition, for DescribeLogDirs and the metrics; `None` when
    /// its topic is not compacted.
    pub fn partition_state(&self, part: &Partition) -> Option<CleanerView> {
        let topic = self.metadata.topic(&part.tp.topic)?;
        if !topic.config.compacts() {
            return None;
        }
        let params = clean_params(part, &topic.config, now_ms());
        let stats = part.log.cleanable(&params).ok()?;
        Some(CleanerView {
            stats,
            last: self.last.lock().get(&part.tp).cloned(),
            uncleanable: self.schedule.lock().uncleanable(&part.tp).cloned(),
        })
    }

    /// Partitions marked uncleanable by a failed pass.
    pub fn uncleanable_count(&self) -> usize {
        self.schedule.lock().uncleanable_count()
    }
}

impl crate::metrics::cleaner::CleanerSource for LogCleaner {
    fn partitions(&self) -> Vec<crate::metrics::cleaner::PartitionCleaning> {
        let now = now_ms();
        self.candidates(now)
            .into_iter()
            .map(
                |(part, _, stats, c)| crate::metrics::cleaner::PartitionCleaning {
                    topic: part.tp.topic.clone(),
                    partition: part.tp.partition,
                    dirty_ratio: c.dirty_ratio,
                    uncleanable_bytes: stats.uncleanable_bytes,
                },
            )
            .collect()
    }

    fn uncleanable_partitions(&self) -> usize {
        self.uncleanable_count()
    }
}

/// One partition as the cleaner sees it.
pub struct CleanerView {
    pub stats: CleanableStats,
    pub last: Option<LastPass>,
    pub uncleanable: Option<Uncleanable>,
}

/// A pass's parameters for `part` now: the topic's settings, bounded above by the last
/// stable offset (nothing uncommitted, and nothing of an ongoing transaction, is compacted) and below by the remote tier's end on a
/// tiered topic: segments already uploaded are never rewritten locally (their remote copies
/// are compacted in the bucket by the RemoteLogManager's remote pass). A tiered partition
/// (tiering on, or remote data left from when it was) also keeps its tombstones: older
/// values of their keys may be remote, where only the remote pass can remove them, so the
/// tombstones are uploaded and the remote pass sets and honours their delete horizon.
fn clean_params(part: &Partition, config: &TopicConfig, now: i64) -> CleanParams {
    let manifest = part.remote_manifest();
    let tiered_end = manifest.as_ref().and_then(|m| m.end_offset());
    CleanParams {
        now_ms: now,
        delete_retention_ms: config.delete_retention_ms,
        min_compaction_lag_ms: config.min_compaction_lag_ms,
        upper_bound: part.last_stable_offset(),
        lower_bound: tiered_end.unwrap_or(i64::MIN),
        keep_tombstones: config.remote_storage_enable || tiered_end.is_some(),
    }
}

/// The key map's memory for a dirty section of `dirty_bytes`: what it can need, at most the
/// thread's share of `log.cleaner.dedupe.buffer.size`. Sized per pass, so a broker with
/// small compacted topics does not hold the whole budget (128 MiB by default) for nothing.
pub(crate) fn map_memory(budget: u64, dirty_bytes: u64) -> u64 {
    let needed = (dirty_bytes / MIN_RECORD_BYTES + 1).saturating_mul(MAP_BYTES_PER_KEY);
    needed.clamp(64 * 1024, budget.max(64 * 1024))
}

fn log_pass(tp: &TopicPartition, p: &LastPass) {
    let s = &p.stats;
    tracing::info!(
        %tp,
        start_offset = s.start_offset,
        first_dirty_offset = s.first_dirty_offset,
        end_offset = s.end_offset,
        bytes_before = p.bytes_before,
        bytes_after = p.bytes_after,
        segments_before = s.segments_before,
        segments_after = s.segments_after,
        records_removed = s.records_removed(),
        tombstones_removed = s.tombstones_removed,
        map_keys = s.map_keys,
        ms = p.duration.as_millis() as u64,
        "cleaned log"
    );
}

#[cfg(test)]
mod tests {
    use super::map_memory;

    #[test]
    fn the_key_map_is_sized_by_the_dirty_section_within_the_budget() {
        let budget = 128 << 20;
        assert_eq!(map_memory(budget, 0), 64 * 1024);
        assert_eq!(map_memory(budget, 70_000), (10_000 + 1) * 27);
        assert_eq!(map_memory(budget, 1 << 40), budget);
        // A budget below the floor is still a usable map.
        assert_eq!(map_memory(1, 1 << 20), 64 * 1024);
    }
}
