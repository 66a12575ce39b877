//! A partition's remote-tier state as Strata carries it in DescribeLogDirs.
//!
//! Kafka's DescribeLogDirs has a field for the local log size (`partition_size`) but
//! none for the remote tier. Strata adds one as a *tagged field* of
//! `DescribeLogDirsPartition` (flexible versions, v2 and later), tag
//! [`TIER_STATE_TAG`], holding this struct as JSON. Tagged fields are Kafka's own
//! extension mechanism: every client skips tags it does not know, so Kafka clients
//! see an ordinary response, while `strata tier status` reads the tier state. The
//! tag number is far above Kafka's (which count up from 0) to stay clear of them.

use serde::{Deserialize, Serialize};

pub use super::tagged::TaggedState;

/// The tagged-field number of [`PartitionTierState`] in `DescribeLogDirsPartition`.
pub const TIER_STATE_TAG: i32 = 0x5354_0001;

/// One partition's tier state, from the broker that leads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTierState {
    /// `remote.storage.enable` of the topic.
    pub enabled: bool,
    pub local_start: i64,
    pub local_bytes: u64,
    /// `None` when the remote tier holds nothing for the partition.
    pub remote_start: Option<i64>,
    /// One past the last tiered offset.
    pub remote_end: Option<i64>,
    pub remote_bytes: u64,
    pub remote_segments: usize,
    pub manifest_version: u64,
    /// Closed local segments not yet in the remote tier, and their bytes.
    pub pending_uploads: usize,
    pub pending_bytes: u64,
    /// Consecutive failed attempts of the pending upload (0 once one succeeded).
    pub failed_attempts: u32,
    /// The last upload (or manifest load) error, kept after later successes so a
    /// transient failure stays visible; `last_error_ms` says when it happened.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// Remote compaction, for a compacted topic (absent from brokers that predate it).
    #[serde(default)]
    pub remote_compaction: Option<RemoteCompactionState>,
    /// The Iceberg table of an `iceberg.enable` topic (absent from brokers that predate it).
    #[serde(default)]
    pub table: Option<TableState>,
}

/// How far the partition's records are in the topic's Iceberg table (a backfill's progress).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// One past the last offset the table holds (`None`: nothing yet, or no pass ran).
    #[serde(default)]
    pub committed: Option<i64>,
    /// Remote segments (and their bytes) not in the table yet.
    #[serde(default)]
    pub pending_segments: usize,
    #[serde(default)]
    pub pending_bytes: u64,
}

/// A compacted tiered partition's remote compaction, from its leader.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCompactionState {
    /// Where the remote dirty range starts: every remote offset below it was mapped by a
    /// committed remote pass. `None` before the manifest is loaded.
    #[serde(default)]
    pub first_dirty_offset: Option<i64>,
    /// Bytes of the remote segments above it.
    #[serde(default)]
    pub dirty_bytes: u64,
    /// Replaced segments whose objects wait out their grace period.
    #[serde(default)]
    pub retired_segments: usize,
    #[serde(default)]
    pub in_flight: bool,
    /// Passes that published a swap or gave up since the leader started (one that changed
    /// nothing is not counted).
    #[serde(default)]
    pub passes: u64,
    /// The last pass that ended: when, the offsets it covered (rewritten from the start,
    /// mapped up to the end), bytes of the segments it replaced and of what replaced them.
    #[serde(default)]
    pub last_pass_ms: Option<i64>,
    #[serde(default)]
    pub last_start_offset: Option<i64>,
    #[serde(default)]
    pub last_end_offset: Option<i64>,
    #[serde(default)]
    pub last_bytes_before: Option<u64>,
    #[serde(default)]
    pub last_bytes_after: Option<u64>,
    #[serde(default)]
    pub last_segments_replaced: usize,
    #[serde(default)]
    pub last_outcome: Option<String>,
    /// The last failed pass, kept after later successes.
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_error_ms: Option<i64>,
}

impl TaggedState for PartitionTierState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let s = PartitionTierState {
            enabled: true,
            remote_end: Some(42),
            last_error: Some("upload of segment 0 failed".into()),
            ..Default::default()
        };
        assert_eq!(PartitionTierState::decode(&s.encode()), Some(s));
        assert_eq!(PartitionTierState::decode(b"\x00\x01"), None);
    }

    #[test]
    fn remote_compaction_round_trips_and_older_states_still_decode() {
        let s = PartitionTierState {
            enabled: true,
            remote_compaction: Some(RemoteCompactionState {
                first_dirty_offset: Some(500),
                passes: 3,
                last_bytes_before: Some(10),
                last_bytes_after: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(PartitionTierState::decode(&s.encode()), Some(s));
        // What a broker without remote compaction sends.
        let mut old = serde_json::to_value(PartitionTierState::default()).expect("json");
        old.as_object_mut()
            .expect("object")
            .remove("remote_compaction");
        let old = serde_json::to_vec(&old).expect("json");
        assert_eq!(
            PartitionTierState::decode(&old).map(|s| s.remote_compaction),
            Some(None)
        );
    }
}
