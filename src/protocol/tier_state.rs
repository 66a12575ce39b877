//! A partition's remote-tier state as Strata carries it in DescribeLogDirs.
//!
//! Kafka's DescribeLogDirs has a field for the local log size (`partition_size`) but
//! none for the remote tier. Strata adds one as a *tagged field* of
//! `DescribeLogDirsPartition` (flexible versions, v2 and later), tag
//! [`TIER_STATE_TAG`], holding this struct as JSON. Tagged fields are Kafka's own
//! extension mechanism: every client skips tags it does not know, so Kafka clients
//! see an ordinary response, while `strata tier status` reads the tier state. The
//! tag number is far above Kafka's (which count up from 0) to stay clear of them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

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
}

impl PartitionTierState {
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// `None` for bytes that are not a state this version understands.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

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
}
