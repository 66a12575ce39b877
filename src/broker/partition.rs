//! One partition replica on this broker: its log, the signal that wakes long-polling
//! fetches when the log grows, and, for tiered topics, the latest remote manifest.
//!
//! Offsets of a tiered partition: the *local* log start offset is the `Log`'s; the
//! partition's log start offset is the remote one when the remote tier holds data
//! (Kafka's log start vs. local log start).

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_log::{AppendInfo, Log, LogError};
use strata_tier::{PartitionKey, PartitionManifest};
use tokio::sync::Notify;
use uuid::Uuid;

/// A topic-partition name, as clients spell it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub log: Log,
    appended: Notify,
    /// The latest partition manifest seen (`None` until loaded or for topics that
    /// never tiered).
    remote: RwLock<Option<Arc<PartitionManifest>>>,
    /// The last upload or manifest-load error and when it happened (wall-clock
    /// ms), for `tier status`; kept after later successes.
    pub last_tier_error: Mutex<Option<(String, i64)>>,
}

impl Partition {
    pub fn new(tp: TopicPartition, topic_id: Uuid, log: Log) -> Self {
        Partition {
            tp,
            topic_id,
            log,
            appended: Notify::new(),
            remote: RwLock::new(None),
            last_tier_error: Mutex::new(None),
        }
    }

    /// The name of this partition in the remote tier.
    pub fn tier_key(&self) -> PartitionKey {
        PartitionKey {
            topic: self.tp.topic.to_string(),
            topic_id: self.topic_id,
            partition: self.tp.partition,
        }
    }

    pub fn remote_manifest(&self) -> Option<Arc<PartitionManifest>> {
        self.remote.read().clone()
    }

    /// Records a manifest read from or published to the store; an older version
    /// than the one held is ignored.
    pub fn set_remote_manifest(&self, m: PartitionManifest) {
        let mut r = self.remote.write();
        if r.as_ref().is_none_or(|cur| cur.version <= m.version) {
            *r = Some(Arc::new(m));
        }
    }

    /// Forgets the remote manifest (remote data deleted).
    pub fn clear_remote_manifest(&self) {
        *self.remote.write() = None;
    }

    /// The partition's log start offset: the remote start when the remote tier
    /// holds data below the local log, else the local log start offset.
    pub fn log_start_offset(&self) -> i64 {
        let local = self.log.log_start_offset();
        match self.remote_manifest().and_then(|m| m.start_offset()) {
            Some(remote) => remote.min(local),
            None => local,
        }
    }

    /// The remote manifest if `offset` is below the local log and in the remote tier.
    pub fn remote_for(&self, offset: i64) -> Option<Arc<PartitionManifest>> {
        if offset >= self.log.log_start_offset() {
            return None;
        }
        self.remote_manifest().filter(|m| {
            m.start_offset().is_some_and(|s| s <= offset)
                && m.end_offset().is_some_and(|e| offset < e)
        })
    }

    /// The offset a local read for `offset` starts at: the local log start when
    /// `offset` falls in a gap between the remote end and the local log start
    /// (offsets deleted locally before they were tiered, which neither tier holds:
    /// the reader goes on with the next offset that exists, as over a compacted
    /// log's gaps), else `offset` itself.
    pub fn local_read_offset(&self, offset: i64) -> i64 {
        let local = self.log.log_start_offset();
        let in_gap = offset < local
            && self
                .remote_manifest()
                .and_then(|m| m.end_offset())
                .is_some_and(|end| end <= offset);
        if in_gap {
            local
        } else {
            offset
        }
    }

    /// Appends client batches and wakes every fetch waiting on this partition.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = self.log.append(batches, now_ms)?;
        self.appended.notify_waiters();
        Ok(info)
    }

    /// Wakes waiting fetches so they notice the partition is gone.
    pub fn notify_deleted(&self) {
        self.appended.notify_waiters();
    }

    /// With a single replica the high watermark is the log end offset.
    pub fn high_watermark(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// A future that completes at the next append. Create it *before* checking the log,
    /// so that an append between the check and the wait is not missed.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.appended.notified()
    }
}
