//! Strata's durable, Kafka-format segmented log for one partition.
//!
//! # Layout (dependencies point down)
//!
//! ```text
//! log        Log: state, open / close / flush / checkpoint           (log/mod.rs)
//!            + append & roll, read, retention, truncate, epochs      (log/<concern>.rs)
//!  |-- recovery    open a partition dir, repair after a crash        (recovery.rs)
//!  |-- cleaner   log compaction: offset map, record-level batch     (cleaner/, and
//!  |              filter, codecs, pass, swap files; Log::clean       log/clean.rs)
//!  |-- checkpoint  recovery point, log start, clean-shutdown marker  (checkpoint.rs)
//!  |-- leader_epoch  leader epoch cache and its checkpoint file      (leader_epoch.rs)
//!  |-- producer_snapshot  producer state on disk, rebuilt on open    (producer_snapshot.rs)
//!  |    |-- producer_state  idempotent-producer dedup/sequence rules  (producer_state.rs)
//!  |-- segment     one .log + .index + .timeindex; the cleaner's      (segment.rs,
//!  |              reading and `.cleaned` output                      segment/cleaned.rs)
//!  |    |-- index, timeindex   sparse indexes                        (index.rs, timeindex.rs)
//!  |         |-- index_file   the file type both share               (index_file.rs)
//!  |-- record      zero-copy record-batch v2 view                    (record.rs)
//! config, error    LogConfig (Kafka names/defaults), LogError
//! ```
//!
//! No tokio and no Kafka request types: the server maps `LogError` /
//! `RecordError` variants to Kafka error codes and owns the mapping from
//! topic-partitions to `Log`s (see [`partition_dir_name`]).
//!
//! # Files of a partition directory
//!
//! `{base_offset:020}.log` (batches exactly as produced, base offset and leader
//! epoch rewritten; on a follower exactly as the leader wrote them), `.index`
//! (4-byte relative offset, 4-byte position), `.timeindex` (8-byte timestamp,
//! 4-byte relative offset), `log.checkpoint` (recovery point and log start
//! offset), `leader-epoch-checkpoint` (the leader epoch cache in Kafka's text
//! format: `0`, the entry count, then `epoch startOffset` lines), `.lock` (an
//! exclusive `flock` held while a `Log` is open), `{offset:020}.snapshot`
//! (producer state as of `offset`, written on roll and clean close),
//! `cleaner-offset-checkpoint` (the first dirty offset of log compaction),
//! `cleaner-swap` and `*.cleaned` (only while a cleaning pass commits or after
//! it crashed; see [`cleaner`]) and, only while closed cleanly,
//! `clean-shutdown`. Every metadata file is replaced atomically (temporary
//! file, fsync, rename, directory fsync).
//!
//! # Contracts
//!
//! - **append** returns `Ok` only after the batches were validated (on a
//!   compacted log, [`LogConfig::compact`], every record of a non-control batch
//!   must have a key, compressed batches included; no client may set the
//!   delete-horizon attribute), given offsets and written with `pwrite` into
//!   the active segment, and published to readers. They are then in the page cache: they survive `kill -9` of the
//!   process, and survive power loss once a flush covers them (`flush.messages`,
//!   `flush.ms`, `Log::flush`, a roll, which fsyncs the old segment, or close).
//! - **read** serves whole batches as stored, never at or past the log end
//!   offset it loaded (or a caller's high watermark, `read_up_to`), and takes no
//!   lock an append holds across I/O. A segment deleted under a reader
//!   stays readable through its open descriptor.
//! - **What a crash may leave**: a torn or partially written batch at the end of
//!   the active segment, index files with missing, extra or torn entries, a
//!   half-deleted segment, a stray `*.tmp` checkpoint. Acknowledged batches are
//!   never lost by a process crash.
//! - **open** after a crash (no clean-shutdown marker) trusts segments wholly
//!   below the recovery point, re-validates every batch (length, magic, CRC32C,
//!   offsets) from the segment holding the recovery point on, truncates at the
//!   first bad batch (with a `tracing::warn!` naming file and position), deletes
//!   later segments and rebuilds indexes of what it scanned. After a clean
//!   shutdown it reads only index files and metadata, never log data
//!   ([`Log::recovery_bytes_scanned`] is 0). Index files failing their checks are
//!   rebuilt from the log in both cases.
//! - **Idempotent producers**: append checks each batch with a producer id
//!   against the partition's producer state (see [`producer_state`]): a retry of
//!   one of a producer's last five batches returns the original offsets with
//!   [`AppendInfo::duplicate`] set and writes nothing; a gap or a stale epoch is
//!   refused (`LogError::Producer`). The state survives restarts and crashes:
//!   open loads the latest snapshot at or below the log end and replays the
//!   batch headers after it.
//! - **Replication** (follower side, Kafka's `appendAsFollower` /
//!   `truncateTo` / `truncateFullyAndStartAt`): [`Log::append_as_follower`]
//!   writes the leader's batches byte for byte (offsets, timestamps, leader
//!   epoch), a compacted leader's gaps and emptied batches included, as long
//!   as offsets only grow: the first batch at or above the log end, each next
//!   one above the previous one's last offset (`LogError::OffsetsOutOfOrder`
//!   otherwise, nothing written); the log end becomes the last batch's last
//!   offset + 1. It mirrors producer state without checking it. [`Log::truncate_to`] removes whole batches at and above an
//!   offset; it persists a lowered recovery point first, deletes higher
//!   segments highest first and cuts the holding segment last, so `kill -9` at
//!   any point leaves a log that open recovers to a prefix of the original (a
//!   crash-injection test covers every step); the new end is fsynced before it
//!   returns. [`Log::truncate_fully_and_start_at`] leaves either a prefix of
//!   the old log or the empty log at the new offset. A read answers for the
//!   log before or after a truncation, never with a short read: the cut of a
//!   segment's files waits for reads in flight.
//! - **Leader epochs**: the cache (see [`Log::end_offset_for_epoch`]) gains
//!   an entry when `append_with_leader_epoch` or `append_as_follower` writes
//!   a higher epoch; the file is written before the batches, and open drops
//!   entries at or past the recovered end, so the cache never lacks an epoch
//!   the log holds. Truncation drops the entries past the new end; retention
//!   and DeleteRecords move the first entry up to the new log start (local
//!   retention of a tiered log does not: the remote data keeps its epochs).
//!   A missing or unreadable file (a log written before it existed) is
//!   rebuilt at open from every batch header's `partitionLeaderEpoch`
//!   (epochs < 0 are "none"; plain `append` records no epoch), once: a header
//!   read per batch.
//! - **Compaction** ([`Log::clean`], see [`cleaner`]): a pass rewrites sealed
//!   segments below the first uncleanable offset (active segment, caller's
//!   upper bound, `min.compaction.lag.ms`) and starting at or above the
//!   caller's lower bound (the remote tier's end: uploaded segments are never
//!   rewritten locally), keeping each key's latest record,
//!   tombstones until their delete horizon, offsets unchanged (a cleaned log
//!   has offset gaps and batches with fewer records than their offset span,
//!   which open, reads and recovery accept). It runs beside appends and
//!   reads; a crash at any point leaves the log exactly as before or after the
//!   pass (commit point: `cleaner-swap`; open finishes or undoes a pass).
//!   Truncation and close abort a running pass; retention or DeleteRecords
//!   that remove a segment it rewrites make its commit abort. A read that
//!   meets a swap goes on in the new segments, never skipping records.
//! - **Errors**: an I/O error in the middle of an append leaves the log
//!   refusing writes (`LogError::Failed`) until it is reopened, because the
//!   file may then hold unpublished bytes; recovery sorts them out (so does an
//!   I/O error in the middle of a truncation). Reads keep working. One `Log`
//!   per directory at a time (`LogError::Locked`).
//! - **Not here**: the replication protocol itself (fetching, ISR, high
//!   watermark: the broker's), scheduling compaction (which log, when, how
//!   fast: the broker's), transactions (transaction markers,
//!   aborted-transaction index, LSO).

mod checkpoint;
pub mod cleaner;
mod config;
pub mod control;
#[cfg(test)]
mod crash_tests;
mod error;
mod flusher;
#[cfg(test)]
mod follower_tests;
pub mod index;
mod index_file;
mod leader_epoch;
mod log;
#[cfg(test)]
mod log_tests;
mod patched;
#[cfg(test)]
mod produce_tests;
mod producer_snapshot;
pub mod producer_state;
#[cfg(test)]
mod producer_tests;
pub mod recompress;
pub mod record;
mod recovery;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod replication_tests;
mod segment;
#[cfg(test)]
mod slice_tests;
pub mod timeindex;
pub mod timestamps;
pub mod txn_index;
#[cfg(test)]
mod txn_tests;

/// A v2 batch's records section decompressed with its codec (attributes & 7), bounded
/// against compression bombs; for readers outside the log (the Iceberg table writer).
pub use cleaner::compression::decompress as decompress_records;
pub use cleaner::{CleanOutcome, CleanParams, CleanStats, CleanableStats, OffsetMap};
pub use config::{LogConfig, TimestampType};
pub use error::LogError;
pub use log::{lock_log_dir, AppendInfo, Log, LogDirLock, OpenSegment, SegmentInfo, TxnMarkerSpec};
pub use producer_snapshot::oldest_open_txn;
pub use producer_state::ProducerError;
pub use record::{BatchInfo, RecordError};
pub use segment::FileSlice;

/// For benchmarks only: with `STRATA_BENCH_COPY_PATH=1` in the environment, produce
/// copies each request before writing it and fetch reads records into memory (the
/// paths before issue 14), so one binary measures both in one run
/// (docs/benchmarks.md). Read once.
pub fn bench_copy_path() -> bool {
    static COPY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *COPY.get_or_init(|| std::env::var("STRATA_BENCH_COPY_PATH").is_ok_and(|v| v == "1"))
}
pub use txn_index::TxnIndexEntry;

/// The directory name of a partition: `<topic>-<partition>`.
pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Parses a partition directory name back into (topic, partition), splitting at
/// the last '-' (topic names may contain '-' and '.').
pub fn parse_partition_dir_name(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, partition.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names_round_trip() {
        assert_eq!(partition_dir_name("a-b.c", 12), "a-b.c-12");
        assert_eq!(parse_partition_dir_name("a-b.c-12"), Some(("a-b.c", 12)));
        assert_eq!(parse_partition_dir_name("topic"), None);
        assert_eq!(parse_partition_dir_name("-3"), None);
        assert_eq!(parse_partition_dir_name("t--3"), Some(("t-", 3)));
        assert_eq!(parse_partition_dir_name("t-99999999999"), None);
    }
}
