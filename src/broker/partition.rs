//! One partition replica on this broker: its log and the signal that wakes long-polling
//! fetches when the log grows.

use std::sync::Arc;

use strata_log::{AppendInfo, Log, LogError};
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
}

impl Partition {
    pub fn new(tp: TopicPartition, topic_id: Uuid, log: Log) -> Self {
        Partition {
            tp,
            topic_id,
            log,
            appended: Notify::new(),
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
