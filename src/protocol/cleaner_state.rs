//! A partition's log-cleaner state as Strata carries it in DescribeLogDirs.
//!
//! Like the tier state (see `protocol::tier_state`), it rides in a *tagged field* of
//! `DescribeLogDirsPartition` (flexible versions, v2 and later), tag
//! [`CLEANER_STATE_TAG`], holding this struct as JSON. Kafka clients skip the unknown
//! tag; `strata topic describe` reads it. The broker attaches it only to partitions of
//! compacted topics (`cleanup.policy` with `compact`).

use serde::{Deserialize, Serialize};

pub use super::tagged::TaggedState;

/// The tagged-field number of [`PartitionCleanerState`] in `DescribeLogDirsPartition`,
/// next to `TIER_STATE_TAG` and as far above Kafka's own tags.
pub const CLEANER_STATE_TAG: i32 = 0x5354_0002;

/// One partition's cleaner state, from the broker that leads it.
// `serde(default)`: a field a later broker adds, or an earlier one lacks, must not make
// the whole state unreadable for the CLI of another version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionCleanerState {
    /// Where the next pass starts mapping keys: everything below it has been cleaned.
    pub first_dirty_offset: i64,
    /// Bytes of whole segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the segments the next pass may clean.
    pub dirty_bytes: u64,
    /// Bytes the next pass may not touch yet: the active segment, and the segments from
    /// the first that reaches past the high watermark or holds records younger than
    /// `min.compaction.lag.ms`.
    pub uncleanable_bytes: u64,
    /// `dirty / (clean + dirty)`, compared with `min.cleanable.dirty.ratio`.
    pub dirty_ratio: f64,
    /// The last pass that cleaned something since the broker started.
    pub last_pass: Option<CleanerPass>,
    /// Set while a failed pass keeps the partition out of the cleaner.
    pub uncleanable: Option<CleanerFailure>,
}

/// What one cleaning pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanerPass {
    /// When it ended, in milliseconds since the Unix epoch (the broker's clock).
    pub ended_ms: i64,
    pub duration_ms: u64,
    /// The offsets it rewrote: from the log's first segment to the new first dirty
    /// offset (exclusive).
    pub start_offset: i64,
    pub end_offset: i64,
    /// The partition's log size before and after the pass.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records dropped, of which tombstones past `delete.retention.ms`.
    pub records_removed: u64,
    pub tombstones_removed: u64,
}

/// Why the cleaner leaves a partition alone for now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanerFailure {
    pub reason: String,
    /// When the pass failed, and when the cleaner tries again (ms since the epoch).
    pub since_ms: i64,
    pub retry_at_ms: i64,
}

impl TaggedState for PartitionCleanerState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let s = PartitionCleanerState {
            first_dirty_offset: 1234,
            clean_bytes: 3 << 20,
            dirty_bytes: 1 << 20,
            uncleanable_bytes: 64 << 10,
            dirty_ratio: 0.25,
            last_pass: Some(CleanerPass {
                ended_ms: 1_700_000_000_000,
                duration_ms: 12,
                start_offset: 0,
                end_offset: 1234,
                bytes_before: 5 << 20,
                bytes_after: 1 << 20,
                records_removed: 9000,
                tombstones_removed: 10,
            }),
            uncleanable: Some(CleanerFailure {
                reason: "corrupt batch at offset 77".into(),
                since_ms: 1_700_000_000_100,
                retry_at_ms: 1_700_000_015_100,
            }),
        };
        assert_eq!(PartitionCleanerState::decode(&s.encode()), Some(s));
        assert_eq!(PartitionCleanerState::decode(b"\x00\x01"), None);
    }

    #[test]
    fn missing_and_unknown_fields_still_decode() {
        let s = PartitionCleanerState::decode(br#"{"dirty_bytes": 7, "from_the_future": 1}"#);
        assert_eq!(
            s,
            Some(PartitionCleanerState {
                dirty_bytes: 7,
                ..Default::default()
            })
        );
    }
}
