//! Strata's own per-partition states carried in Kafka *tagged fields* of
//! `DescribeLogDirsPartition` (v2 and later): `tier_state` and `cleaner_state`. Kafka's
//! extension mechanism: every client skips tags it does not know, so Kafka clients see an
//! ordinary response while `strata` reads the states. Each state is JSON, so a CLI and a
//! broker of different versions read each other (unknown fields are ignored, missing ones
//! default); the tag numbers are far above Kafka's, which count up from 0.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A state that travels as JSON in a tagged field.
pub trait TaggedState: Serialize + DeserializeOwned {
    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// `None` for bytes that are not a state this version understands.
    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Strata's tagged field of RemoveRaftVoterRequest (`strata cluster remove-voter --forget`):
/// present = drop the node from the metadata quorum entirely instead of keeping it a learner.
pub const FORGET_VOTER_TAG: i32 = 0x5354_0010;

/// Strata's tagged field of UnregisterBrokerRequest (`strata cluster decommission --cancel`):
/// present = cancel the broker's decommission instead of starting one. (A Kafka broker would
/// ignore the tag and unregister the broker: like the rest of `strata cluster`, the option is
/// for Strata clusters.)
pub const CANCEL_DECOMMISSION_TAG: i32 = 0x5354_0011;
