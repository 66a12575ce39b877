//! The RemoteLogManager's actions: segment uploads, remote expiry, local retention of tiered
//! partitions (on the leader by the scheduler's decision, on followers up to what the leader
//! has tiered).

use std::sync::Arc;
use std::time::Instant;

use strata_tier::copier::{self, LocalSegmentFiles, TopicInfo};
use strata_tier::rlm::{Action, Event, LocalSegment};

use super::{policy, Leaders, RemoteLogManager};
use crate::blocking::off_worker;
use crate::metadata::TopicState;
use crate::now_ms;
use crate::replica::Partition;

/// Local retention of a tiered partition ([`strata_log::Log::enforce_local_retention`]) on
/// the blocking pool, logged with the `role` (leader or follower) that ran it.
async fn trim_local(
    p: &Arc<Partition>,
    now: i64,
    tiered_end: i64,
    local_ms: i64,
    local_bytes: i64,
    role: &'static str,
) {
    let part = p.clone();
    let done = off_worker(move || {
        part.log
            .enforce_local_retention(now, tiered_end, local_ms, local_bytes)
    });
    match done.await {
        None | Some(Ok(0)) => {}
        Some(Ok(n)) => {
            tracing::info!(tp = %p.tp, role, segments = n, local_log_start_offset = p.log.log_start_offset(), "local retention deleted tiered segments")
        }
        Some(Err(e)) => {
            tracing::warn!(tp = %p.tp, role, error = %e, "local retention failed; will retry")
        }
    }
}

impl RemoteLogManager {
    /// Followers apply local retention to segments the leader has tiered: they read the
    /// partition manifest (at most once per `remote.log.manager.task.interval.ms`) and delete
    /// local segments below its end offset that local retention no longer keeps.
    pub(super) async fn follow_tier(
        &self,
        followers: Vec<(Arc<Partition>, Arc<TopicState>)>,
        now: i64,
    ) {
        let every = self.interval;
        {
            let mut last = self.follower_sync.lock();
            if last.is_some_and(|t| t.elapsed() < every) {
                return;
            }
            *last = Some(Instant::now());
        }
        for (p, topic) in followers {
            if !self.read_manifest(&p).await {
                continue;
            }
            let Some(tiered_end) = p.remote_manifest().and_then(|m| m.end_offset()) else {
                continue;
            };
            let pol = policy(&topic.config);
            let (ms, bytes) = (pol.local_retention_ms, pol.local_retention_bytes);
            trim_local(&p, now, tiered_end, ms, bytes, "follower").await;
        }
    }

    pub(super) async fn perform(self: &Arc<Self>, parts: &Leaders, action: Action, now: i64) {
        match action {
            Action::Upload { key, segment } => {
                if let Some((p, topic)) = parts.get(&key) {
                    self.spawn_upload(p.clone(), topic.clone(), segment);
                }
            }
            Action::ExpireRemote { key, before } => {
                let Some((p, _)) = parts.get(&key) else {
                    return;
                };
                match copier::expire(&*self.store, &key, before).await {
                    Ok(m) => p.set_remote_manifest(m),
                    Err(e) => {
                        tracing::warn!(tp = %p.tp, error = %e, "remote retention failed; will retry")
                    }
                }
            }
            Action::EnforceLocalRetention {
                key,
                tiered_end,
                local_ms,
                local_bytes,
            } => {
                let Some((p, _)) = parts.get(&key) else {
                    return;
                };
                trim_local(p, now, tiered_end, local_ms, local_bytes, "leader").await;
            }
            Action::CompactRemote { key } => {
                if let Some((p, topic)) = parts.get(&key) {
                    self.spawn_compaction(p.clone(), topic.clone());
                }
            }
        }
    }

    fn spawn_upload(
        self: &Arc<Self>,
        p: Arc<Partition>,
        topic: Arc<TopicState>,
        seg: LocalSegment,
    ) {
        let rlm = self.clone();
        tokio::spawn(async move {
            let key = p.tier_key();
            // Local cleaning of this partition waits until the upload is published (see
            // `Partition::upload_lock`).
            let _cleaning_waits = p.upload_lock.clone().lock_owned().await;
            // Opened under the log's writer lock (on the blocking pool: an append may hold
            // it across an fsync), so the three files are of one generation of the segment
            // even if a compaction renames a cleaned segment over their names meanwhile;
            // the offsets, size and max timestamp recorded are those of the files opened.
            let part = p.clone();
            let opened = off_worker(move || part.log.open_segment(seg.base_offset)).await;
            let mut size_bytes = seg.size_bytes;
            let result = match opened {
                None => Err(format!(
                    "the task opening local segment {} of {} died",
                    seg.base_offset, p.tp
                )),
                Some(Err(e)) => Err(e.to_string()),
                Some(Ok(None)) => Err(format!(
                    "local segment {} of {} is gone",
                    seg.base_offset, p.tp
                )),
                Some(Ok(Some(open))) => {
                    size_bytes = open.info.size_bytes;
                    let files = segment_files(open);
                    let info = TopicInfo {
                        partition_count: topic.meta.partitions,
                        configs: topic.meta.configs.clone(),
                        log_start_offset: p.log.log_start_offset(),
                    };
                    copier::copy_segment(&*rlm.store, &key, &files, &info, &rlm.throttle)
                        .await
                        .map_err(|e| e.to_string())
                }
            };
            let event = match result {
                Ok(m) => {
                    crate::metrics::tier::uploaded(&p.tp.topic, p.tp.partition, size_bytes);
                    p.set_remote_manifest(m);
                    Event::UploadDone {
                        key,
                        base_offset: seg.base_offset,
                    }
                }
                Err(error) => {
                    tracing::warn!(tp = %p.tp, base_offset = seg.base_offset, %error, "segment upload failed; will retry with backoff");
                    *p.last_tier_error.lock() = Some((error.clone(), now_ms()));
                    crate::metrics::tier::upload_errors(&p.tp.topic, p.tp.partition, 1);
                    Event::UploadFailed {
                        key,
                        base_offset: seg.base_offset,
                        error,
                    }
                }
            };
            rlm.scheduler.lock().on_event(Instant::now(), event);
            rlm.wake.notify_one();
        });
    }
}

/// The files the copier uploads, from a segment opened by `Log::open_segment` (its three
/// descriptors belong to one generation of the segment, whatever a cleaning pass renames).
pub(super) fn segment_files(open: strata_log::OpenSegment) -> LocalSegmentFiles {
    let local = |file, len, ext| copier::LocalFile {
        file: Arc::new(file),
        len,
        path: open.log_path.with_extension(ext),
    };
    LocalSegmentFiles {
        log: local(open.log, open.info.size_bytes, "log"),
        index: local(open.index, open.index_bytes, "index"),
        timeindex: local(open.timeindex, open.timeindex_bytes, "timeindex"),
        txnindex: open.txnindex,
        producer_snapshot: open.producer_snapshot.unwrap_or_default(),
        base_offset: open.info.base_offset,
        next_offset: open.info.next_offset,
        max_timestamp: open.info.max_timestamp.unwrap_or(-1),
    }
}
