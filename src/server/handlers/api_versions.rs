//! ApiVersions: the table in `protocol::SUPPORTED_APIS`, and (v3+) the features.
//!
//! `transaction.version` is finalized at level 2 (KIP-890 part 2): a client that reads
//! it may send Produce v12+ without AddPartitionsToTxn and EndTxn v5, and gets a new
//! epoch at every transaction end. Clients that ignore it keep transaction version 1.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;

use crate::protocol::SUPPORTED_APIS;

/// The features this broker supports: (name, min, max); finalized at max.
pub const FEATURES: &[(&str, i16, i16)] = &[("transaction.version", 0, 2)];

/// The epoch of the finalized features: they never change at run time.
const FEATURES_EPOCH: i64 = 1;

pub fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let supported = FEATURES
        .iter()
        .map(|&(name, min, max)| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let finalized = FEATURES
        .iter()
        .map(|&(name, _, max)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version_level(max)
                .with_max_version_level(max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_supported_features(supported)
        .with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(finalized)
}
