//! Per-log configuration, with Kafka's defaults and names.

/// Where record timestamps come from (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// Stamp each batch with the broker's clock on append.
    LogAppendTime,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `segment.bytes`: roll when an append would make the active segment larger.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much before `segment_ms`
    /// (see `Log::roll_after_ms`); 0 = no jitter.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: roll when the offset (8-byte entries) or time
    /// (12-byte entries) index of the active segment is full.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 = unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `flush.messages`: fsync after this many records; u64::MAX = never.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last flush is older; i64::MAX = never.
    pub flush_ms: i64,
    /// `cleanup.policy` includes `compact`: leader appends refuse a batch
    /// holding a record without a key ([`crate::RecordError::MissingKey`]), as
    /// Kafka does, since compaction keeps records by key. Follower appends do
    /// not check (the leader did). Cleaning itself is the broker's to run.
    pub compact: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            compact: false,
        }
    }
}

impl LogConfig {
    pub(crate) fn index_limits(&self) -> crate::segment::IndexLimits {
        let bytes = usize::try_from(self.segment_index_bytes).unwrap_or(usize::MAX);
        crate::segment::IndexLimits {
            offset_entries: (bytes / crate::index::ENTRY_LEN).max(1),
            time_entries: (bytes / crate::timeindex::ENTRY_LEN).max(1),
            interval_bytes: self.index_interval_bytes,
        }
    }
}
