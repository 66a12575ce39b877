//! Remote compaction of compacted tiered topics, the RemoteLogManager's side: the scheduler
//! (`strata_tier::rlm`) says when a partition's remote segments are due, this module runs the
//! pass (`compact_pass.rs`) on the blocking pool and publishes it with one compare-and-swap of
//! the partition manifest (`strata_tier::compaction::swap`), then records what it did for the
//! log, the metrics and `strata tier status`.
//!
//! Only the leader compacts (it starts passes from its own ticks; a pass that finds the
//! partition led elsewhere does nothing), each pass on its own task, so uploads and remote
//! reads go on meanwhile. One pass runs at a time on a broker: its key map takes one cleaner
//! thread's share of `log.cleaner.dedupe.buffer.size` (sized by the remote dirty bytes), as a
//! local pass does. Reads and uploads of passes share `remote.log.compaction.max.bytes.per.second`.
//! A pass works in a scratch directory of its own under `<first log dir>/remote-compaction`,
//! deleted when it ends and, for passes a crash interrupted, when the broker starts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_log::{CleanParams, OffsetMap};
use strata_tier::compaction::{self, SwapOutcome};
use strata_tier::copier::Throttle;
use strata_tier::rlm::Event;
use strata_tier::{manifest, PartitionKey};

use super::compact_pass::{CompactError, Pass, PassReport};
use super::RemoteLogManager;
use crate::blocking::off_worker;
use crate::metadata::TopicState;
use crate::now_ms;
use crate::replica::{Partition, TopicPartition};

/// How a pass ended, as `tier status` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassOutcome {
    /// Published: the manifest holds the cleaned segments.
    Swapped,
    /// Not published: the manifest changed under the pass (retention, DeleteRecords,
    /// another leader's pass); its objects are orphans, swept later.
    ManifestChanged,
}

/// One partition's remote compaction as this broker saw it.
#[derive(Clone, Debug, Default)]
pub struct RemoteCompactionInfo {
    /// Passes that published a swap or gave up (one that changed nothing publishes nothing
    /// and is not counted) since the broker started.
    pub passes: u64,
    /// The last pass that ended: when, how long it took, what it did.
    pub last: Option<(i64, Duration, PassReport, PassOutcome)>,
    /// The last failure and when; kept after later successes, as upload errors are.
    pub last_error: Option<(String, i64)>,
}

/// The RemoteLogManager's remote compaction state.
pub(super) struct Compactor {
    scratch: PathBuf,
    throttle: Arc<Throttle>,
    running: Arc<tokio::sync::Semaphore>,
    info: Mutex<HashMap<PartitionKey, RemoteCompactionInfo>>,
}

impl Compactor {
    /// `scratch` is removed first: what is in it is left from passes a crash interrupted.
    pub(super) fn new(scratch: PathBuf, max_bytes_per_second: i64) -> Compactor {
        match std::fs::remove_dir_all(&scratch) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %scratch.display(), error = %e, "cannot clear the remote compaction scratch directory")
            }
            _ => {}
        }
        Compactor {
            scratch,
            throttle: Arc::new(Throttle::from_setting(max_bytes_per_second)),
            running: Arc::new(tokio::sync::Semaphore::new(1)),
            info: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn info(&self, key: &PartitionKey) -> Option<RemoteCompactionInfo> {
        self.info.lock().get(key).cloned()
    }
}

impl RemoteLogManager {
    /// Runs one remote pass of `p` on its own task and reports its end to the scheduler.
    pub(super) fn spawn_compaction(self: &Arc<Self>, p: Arc<Partition>, topic: Arc<TopicState>) {
        let rlm = self.clone();
        tokio::spawn(async move {
            let key = p.tier_key();
            let event = match rlm.compact(&p, &topic).await {
                Ok(()) => Event::CompactionDone { key },
                Err(e) => {
                    let error = e.to_string();
                    tracing::warn!(tp = %p.tp, %error, "remote compaction pass failed; the remote tier is as before it, retrying after log.cleaner.backoff.ms");
                    crate::metrics::tier::compaction_errors(&p.tp.topic, p.tp.partition);
                    let mut info = rlm.compactor.info.lock();
                    info.entry(key.clone()).or_default().last_error =
                        Some((error.clone(), now_ms()));
                    drop(info);
                    Event::CompactionFailed { key, error }
                }
            };
            rlm.scheduler.lock().on_event(Instant::now(), event);
        });
    }

    async fn compact(&self, p: &Arc<Partition>, topic: &TopicState) -> Result<(), CompactError> {
        let tp = p.tp.clone();
        let Ok(_permit) = self.compactor.running.clone().acquire_owned().await else {
            return Ok(());
        };
        let Some(remote) = self.replicas.remote() else {
            return Ok(());
        };
        if !p.is_leader() {
            return Ok(());
        }
        // The pass plans on the head version; the swap checks it is still there.
        let key = p.tier_key();
        let tier = |source| CompactError::Tier {
            tp: tp.clone(),
            source: Box::new(source),
        };
        let Some(m) = manifest::load(&*self.store, &key).await.map_err(tier)? else {
            return Ok(());
        };
        p.set_remote_manifest(m.clone());
        let cfg = self.metadata.config().cleaner.clone();
        let budget = (cfg.dedupe_buffer_size.max(1) / i64::from(cfg.threads.max(1))) as u64;
        let memory = crate::cleaner::map_memory(budget, m.dirty_bytes()) as usize;
        let scratch = self.compactor.scratch.join(format!(
            "{}-{}-{}",
            tp.topic,
            tp.partition,
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&scratch).map_err(|source| CompactError::Scratch {
            tp: tp.clone(),
            dir: scratch.clone(),
            source,
        })?;
        let now = now_ms();
        let params = CleanParams {
            delete_retention_ms: topic.config.delete_retention_ms,
            keep_tombstones: false,
            ..CleanParams::at(now)
        };
        tracing::info!(%tp, version = m.version, remote_start = ?m.start_offset(), dirty_from = m.dirty_start(), remote_end = ?m.end_offset(), dirty_bytes = m.dirty_bytes(), remote_bytes = m.size_bytes(), "remote compaction pass started");
        let started = Instant::now();
        let (part, store, reader) = (p.clone(), self.store.clone(), remote.reader.clone());
        let (throttle, rt, dir, ptp) = (
            self.compactor.throttle.clone(),
            tokio::runtime::Handle::current(),
            scratch.clone(),
            tp.clone(),
        );
        let m_pass = m.clone();
        let ran = off_worker(move || {
            let pass = Pass {
                tp: &ptp,
                m: &m_pass,
                reader: &reader,
                store: &*store,
                throttle: &throttle,
                rt: &rt,
                log_config: part.log.config(),
                params,
                producers: part.log.last_batches_of_producers(),
                log_end: part.log.log_end_offset(),
                local_aborted: part
                    .log
                    .aborted_txns(i64::MIN, m_pass.end_offset().unwrap_or(i64::MIN)),
                scratch: &dir,
            };
            let mut map = OffsetMap::with_memory(memory);
            pass.run(&mut map)
        })
        .await;
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            tracing::debug!(dir = %scratch.display(), error = %e, "scratch directory not removed; the next start removes it");
        }
        let Some((swap, report)) = ran.ok_or(CompactError::Died { tp: tp.clone() })?? else {
            return Ok(());
        };
        let unchanged = swap.replaced == swap.segments.iter().map(|s| s.id).collect::<Vec<_>>()
            && swap.first_dirty_offset <= m.first_dirty_offset
            && swap.tombstone_horizon_ms == m.tombstone_horizon_ms;
        if unchanged {
            tracing::info!(%tp, version = m.version, "remote compaction pass changed nothing; nothing published");
            return Ok(());
        }
        let outcome = match compaction::swap(&*self.store, &key, &swap)
            .await
            .map_err(tier)?
        {
            SwapOutcome::Swapped(after) => {
                p.set_remote_manifest(after);
                PassOutcome::Swapped
            }
            SwapOutcome::Changed(after) => {
                p.set_remote_manifest(after);
                PassOutcome::ManifestChanged
            }
        };
        let took = started.elapsed();
        log_pass(&tp, &report, outcome, m.version, took);
        if outcome == PassOutcome::Swapped {
            crate::metrics::tier::compaction_pass(
                &tp.topic,
                tp.partition,
                report.bytes_read,
                report.bytes_uploaded,
                report.bytes_before.saturating_sub(report.bytes_after),
            );
        }
        let mut info = self.compactor.info.lock();
        let entry = info.entry(key).or_default();
        entry.passes += 1;
        entry.last = Some((now_ms(), took, report, outcome));
        Ok(())
    }

    /// What `tier status` shows of `p`'s remote compaction: `None` unless its topic is
    /// compacted.
    pub(super) fn compaction_state(
        &self,
        p: &Partition,
    ) -> Option<crate::protocol::tier_state::RemoteCompactionState> {
        let topic = self.metadata.topic(&p.tp.topic)?;
        if !topic.config.compacts() {
            return None;
        }
        let key = p.tier_key();
        let m = p.remote_manifest();
        let info = self.compactor.info(&key).unwrap_or_default();
        let in_flight = self
            .scheduler
            .lock()
            .compaction_state(&key)
            .is_some_and(|c| c.in_flight);
        let last = info.last.as_ref();
        Some(crate::protocol::tier_state::RemoteCompactionState {
            first_dirty_offset: m.as_ref().map(|m| m.dirty_start()),
            dirty_bytes: m.as_ref().map_or(0, |m| m.dirty_bytes()),
            retired_segments: m.as_ref().map_or(0, |m| m.retired.len()),
            in_flight,
            passes: info.passes,
            last_pass_ms: last.map(|l| l.0),
            last_start_offset: last.map(|l| l.2.start_offset),
            last_end_offset: last.map(|l| l.2.end_offset),
            last_bytes_before: last.map(|l| l.2.bytes_before),
            last_bytes_after: last.map(|l| l.2.bytes_after),
            last_segments_replaced: last.map_or(0, |l| l.2.segments_replaced),
            last_outcome: last.map(|l| {
                match l.3 {
                    PassOutcome::Swapped => "swapped",
                    PassOutcome::ManifestChanged => "manifest changed, nothing published",
                }
                .to_string()
            }),
            last_error_ms: info.last_error.as_ref().map(|e| e.1),
            last_error: info.last_error.map(|e| e.0),
        })
    }
}

fn log_pass(
    tp: &TopicPartition,
    r: &PassReport,
    outcome: PassOutcome,
    version: u64,
    took: Duration,
) {
    match outcome {
        PassOutcome::Swapped => tracing::info!(
            %tp,
            start_offset = r.start_offset,
            dirty_from = r.dirty_from,
            end_offset = r.end_offset,
            bytes_before = r.bytes_before,
            bytes_after = r.bytes_after,
            objects_replaced = r.segments_replaced - r.segments_kept,
            segments_written = r.segments_written,
            segments_kept = r.segments_kept,
            records_removed = r.records_read - r.records_kept,
            tombstones_removed = r.tombstones_removed,
            horizons_set = r.horizons_set,
            map_keys = r.map_keys,
            bytes_read = r.bytes_read,
            bytes_uploaded = r.bytes_uploaded,
            ms = took.as_millis() as u64,
            "remote compaction pass swapped"
        ),
        PassOutcome::ManifestChanged => tracing::info!(
            %tp,
            planned_on_version = version,
            start_offset = r.start_offset,
            end_offset = r.end_offset,
            "remote compaction pass gave up: the manifest changed under it; its objects are orphans for the sweep"
        ),
    }
}
