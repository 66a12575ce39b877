//! The RemoteLogManager's topic-level work: deleting a topic's remote data, recording each
//! tiered topic's metadata in the bucket (`topic.json`, what recovery rebuilds a topic from),
//! and the per-partition tier state that DescribeLogDirs and `strata tier status` show.

use std::sync::Arc;

use strata_tier::{copier, topics};

use super::RemoteLogManager;
use crate::now_ms;
use crate::protocol::tier_state::PartitionTierState;
use crate::replica::Partition;

impl RemoteLogManager {
    /// Deletes the remote data of `partitions` in the background (topic deletion,
    /// `remote.log.delete.on.disable`), then the topic's `topic.json`.
    pub fn delete_remote(self: &Arc<Self>, partitions: &[Arc<Partition>]) {
        let rlm = self.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(first) = partitions.first() else {
            return;
        };
        let (topic, topic_id) = (first.tp.topic.to_string(), first.topic_id);
        let partitions = partitions.to_vec();
        rt.spawn(async move {
            let mut complete = true;
            for p in partitions {
                let key = p.tier_key();
                match copier::delete_partition(&*rlm.store, &key).await {
                    Ok(_) => p.clear_remote_manifest(),
                    Err(e) => {
                        complete = false;
                        tracing::warn!(partition = %key, error = %e, "could not delete remote data; delete it by hand")
                    }
                }
            }
            // Kept while data is left, so that recovery can still describe it.
            if complete {
                let mut written = rlm.topic_meta_written.lock().await;
                written.insert(topic_id, u64::MAX);
                if let Err(e) = topics::delete_metadata(&*rlm.store, &topic, topic_id).await {
                    tracing::warn!(%topic, error = %e, "could not delete topic.json; delete it by hand");
                }
            }
        });
    }

    /// Called when a topic was applied with a changed state: if its data is (still)
    /// in the remote tier, records the topic's id, partition count and configs in
    /// `topic.json`, in the background, so that the bucket alone can rebuild the
    /// topic. `was_tiered`: the state before this change was tiered.
    pub fn topic_applied(self: &Arc<Self>, name: &str, was_tiered: bool) {
        let Some(topic) = self.metadata.topic(name) else {
            return;
        };
        let rlm = self.clone();
        let keeps_remote = was_tiered && !topic.config.remote_log_delete_on_disable;
        if !(topic.config.remote_storage_enable || keeps_remote) || topic.meta.internal {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let seq = rlm
            .topic_meta_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let meta = topics::TopicMetadata {
            topic: name.to_string(),
            topic_id: topic.meta.id,
            partition_count: topic.meta.partitions,
            replication_factor: topic.meta.replication_factor,
            configs: topic.meta.configs.clone(),
            updated_ms: now_ms(),
        };
        rt.spawn(async move {
            let mut written = rlm.topic_meta_written.lock().await;
            if written.get(&meta.topic_id).is_some_and(|w| *w >= seq) {
                return;
            }
            let name = &meta.topic;
            match topics::put_metadata(&*rlm.store, &meta).await {
                Ok(()) => {
                    written.insert(meta.topic_id, seq);
                    tracing::info!(topic = %name, partitions = meta.partition_count, "recorded topic metadata in the remote tier")
                }
                Err(e) => tracing::warn!(topic = %name, error = %e, "could not record topic metadata in the remote tier; the next change or restart retries"),
            }
        });
    }

    /// The tier state of `p` (for DescribeLogDirs and `tier status`), or `None` when
    /// the topic is not tiered and the remote tier holds nothing of it.
    pub fn tier_state(&self, p: &Partition) -> Option<PartitionTierState> {
        let enabled = self
            .metadata
            .topic(&p.tp.topic)
            .is_some_and(|t| t.config.remote_storage_enable);
        let m = p.remote_manifest();
        if !enabled && m.as_ref().is_none_or(|m| m.segments.is_empty()) {
            return None;
        }
        let remote_end = m.as_ref().and_then(|m| m.end_offset());
        let segments = p.log.segments();
        let closed = &segments[..segments.len().saturating_sub(1)];
        let pending: Vec<_> = closed
            .iter()
            .filter(|s| remote_end.is_none_or(|e| s.next_offset > e) && s.size_bytes > 0)
            .collect();
        let upload = self.upload_state(&p.tier_key()).unwrap_or_default();
        let last = p.last_tier_error.lock().clone();
        Some(PartitionTierState {
            enabled,
            local_start: p.log.log_start_offset(),
            local_bytes: p.log.size_bytes(),
            remote_start: m.as_ref().and_then(|m| m.start_offset()),
            remote_end,
            remote_bytes: m.as_ref().map_or(0, |m| m.size_bytes()),
            remote_segments: m.as_ref().map_or(0, |m| m.segments.len()),
            manifest_version: m.as_ref().map_or(0, |m| m.version),
            pending_uploads: pending.len(),
            pending_bytes: pending.iter().map(|s| s.size_bytes).sum(),
            failed_attempts: upload.attempts,
            last_error_ms: last.as_ref().map(|l| l.1),
            last_error: last.map(|l| l.0),
            remote_compaction: self.compaction_state(p),
            table: self.table_state(p, m.as_deref()),
        })
    }
}
