//! The one error type of the log layer. Kafka error codes are chosen by the
//! server from these variants: `OffsetOutOfRange` -> OFFSET_OUT_OF_RANGE,
//! `Record(TooLarge)` -> MESSAGE_TOO_LARGE, `Record(Corrupt)` -> CORRUPT_MESSAGE,
//! `Record(Invalid)` and `Record(MissingKey)` -> INVALID_RECORD, `Producer(OutOfOrderSequence)` ->
//! OUT_OF_ORDER_SEQUENCE_NUMBER, `Producer(InvalidProducerEpoch)` ->
//! INVALID_PRODUCER_EPOCH, other `Producer` errors -> INVALID_RECORD, everything
//! else -> KAFKA_STORAGE_ERROR. `OffsetsOutOfOrder` comes only from
//! `Log::append_as_follower` and is for the replica fetcher, not clients (Kafka's
//! `UnexpectedAppendOffsetException` and `OffsetsOutOfOrderException`).

use std::io;
use std::path::PathBuf;

use crate::producer_state::ProducerError;
use crate::record::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} is out of range for log {dir}: it holds offsets [{log_start}, {log_end}); fetch from the log start or end instead")]
    OffsetOutOfRange {
        dir: PathBuf,
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("rejected record batch for log {dir}: {source}")]
    Record {
        dir: PathBuf,
        #[source]
        source: RecordError,
    },
    #[error("rejected idempotent batch for log {dir}: {source}")]
    Producer {
        dir: PathBuf,
        #[source]
        source: ProducerError,
    },
    #[error("I/O error while {op} {path}: {source}; check disk space, permissions and the disk's health")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt data in {path} at byte {position}: {reason}; restarting the broker without a clean shutdown marker truncates the log there")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("log {dir} refuses writes after an earlier I/O failure ({reason}); fix the disk and restart the broker, recovery repairs the log")]
    Failed { dir: PathBuf, reason: String },
    #[error("log {dir} is already open (locked by this or another process); close it first")]
    Locked { dir: PathBuf },
    #[error("log {dir} is closed; reopen it with Log::open")]
    Closed { dir: PathBuf },
    /// A replicated batch starts below the log end offset (`first`) or not
    /// above the previous batch of the same call; gaps are fine (a compacted
    /// leader has them).
    #[error("replicated batches for log {dir} go back: the batch at byte {position} of the fetched data starts at offset {got}, but it must start at or above {min} ({}); truncate the follower's log (OffsetForLeaderEpoch) or refetch from its end", min_reason(*.first))]
    OffsetsOutOfOrder {
        dir: PathBuf,
        position: usize,
        min: i64,
        got: i64,
        first: bool,
    },
    #[error("log {dir} already holds segment {file}; refusing to start it empty at offset {offset} (move the directory away first)")]
    NotEmpty {
        dir: PathBuf,
        file: String,
        offset: i64,
    },
}

fn min_reason(first: bool) -> &'static str {
    if first {
        "the log end offset"
    } else {
        "one past the previous batch's last offset"
    }
}

impl LogError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { op, path, source }
    }

    /// The record-validation error, if this is one.
    pub fn record_error(&self) -> Option<&RecordError> {
        match self {
            LogError::Record { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The idempotent-producer error, if this is one.
    pub fn producer_error(&self) -> Option<&ProducerError> {
        match self {
            LogError::Producer { source, .. } => Some(source),
            _ => None,
        }
    }
}
