//! Kafka wire framing and the table of APIs Strata serves.
//!
//! This module owns the bytes between the socket and the generated message types of the
//! `kafka-protocol` crate: the 4-byte size prefix, the request header, and the response
//! header. It knows nothing of topics or logs; `server/` decides what a request means.
//! `client` is the other side: a minimal client that the admin CLI and the replica
//! fetchers use to talk to other nodes.

pub mod cleaner_state;
pub mod client;
pub mod client_security;
pub mod tagged;
pub mod tier_state;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// The APIs Strata serves and the version ranges it advertises. An API that is not in
/// this table is left out of ApiVersions rather than half-served.
///
/// Maxima are at least what Apache Kafka 3.9 advertises; minima are the oldest versions
/// the `kafka-protocol` crate can decode.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 1),
    // KIP-853 voter changes (`strata cluster add-voter` / `remove-voter`).
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    // Served as Strata's decommission (drain, then no placement): `strata cluster decommission`.
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::WriteTxnMarkers, 0, 1),
    (ApiKey::FindCoordinator, 0, 5),
    // Transactions. EndTxn v5 (transaction version 2) bumps the epoch at every end and
    // Produce v12 adds the partition implicitly; clients use them when the
    // `transaction.version` feature is finalized at 2 (ApiVersions v3+).
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // KIP-848 consumer groups (`group::consumer`).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // v1+ only: v0 (pre-KIP-152) sends raw SASL tokens outside Kafka framing.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // KIP-714 client telemetry (`telemetry`); ListConfigResources v0 is Kafka 3.7's
    // ListClientMetricsResources, v1 (KIP-1142) lists other resource types too.
    (ApiKey::GetTelemetrySubscriptions, 0, 0),
    (ApiKey::PushTelemetry, 0, 0),
    (ApiKey::ListConfigResources, 0, 1),
];

/// The advertised version range of `key`, if Strata serves it.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request frame of {size} bytes exceeds socket.request.max.bytes ({max}); raise socket.request.max.bytes or send smaller requests")]
    FrameTooLarge { size: i64, max: usize },
    #[error("request frame is too short ({size} bytes) to hold a request header")]
    FrameTooShort { size: usize },
    #[error("unknown api key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    #[error("{api:?} version {version} is not supported (supported: {min}..={max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
        correlation_id: i32,
    },
    #[error("malformed {api:?} v{version} request (correlation id {correlation_id}): {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
    #[error("could not encode the {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("malformed request header: {reason}")]
    MalformedHeader { reason: String },
}

/// Checks a frame's 4-byte size prefix against `socket.request.max.bytes`.
pub fn check_frame_size(size: i32, max: usize) -> Result<usize, ProtocolError> {
    if size < 0 || size as i64 > max as i64 {
        return Err(ProtocolError::FrameTooLarge {
            size: size as i64,
            max,
        });
    }
    if (size as usize) < 8 {
        return Err(ProtocolError::FrameTooShort {
            size: size as usize,
        });
    }
    Ok(size as usize)
}

/// The first fields of every request header, readable before we know the API version
/// is valid: enough to answer with an error.
#[derive(Debug, Clone, Copy)]
pub struct RawHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub fn peek_header(frame: &[u8]) -> Result<RawHeader, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::FrameTooShort { size: frame.len() });
    }
    let mut b = &frame[..8];
    Ok(RawHeader {
        api_key: b.get_i16(),
        api_version: b.get_i16(),
        correlation_id: b.get_i32(),
    })
}

/// A decoded request: its header and body.
#[derive(Debug)]
pub struct Request {
    pub api: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Decodes one frame (without its size prefix). Errors carry what is needed to answer.
pub fn decode_request(mut frame: Bytes) -> Result<Request, ProtocolError> {
    let raw = peek_header(&frame)?;
    let api = ApiKey::try_from(raw.api_key).map_err(|_| ProtocolError::UnknownApiKey {
        api_key: raw.api_key,
        api_version: raw.api_version,
        correlation_id: raw.correlation_id,
    })?;
    let Some((min, max)) = supported_range(api) else {
        return Err(ProtocolError::UnknownApiKey {
            api_key: raw.api_key,
            api_version: raw.api_version,
            correlation_id: raw.correlation_id,
        });
    };
    if raw.api_version < min || raw.api_version > max {
        return Err(ProtocolError::UnsupportedVersion {
            api,
            version: raw.api_version,
            min,
            max,
            correlation_id: raw.correlation_id,
        });
    }
    let header_version = api.request_header_version(raw.api_version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| {
        ProtocolError::MalformedHeader {
            reason: e.to_string(),
        }
    })?;
    let body = RequestKind::decode(api, &mut frame, raw.api_version).map_err(|e| {
        ProtocolError::Malformed {
            api,
            version: raw.api_version,
            correlation_id: raw.correlation_id,
            reason: e.to_string(),
        }
    })?;
    Ok(Request { api, header, body })
}

/// Encodes a response frame, size prefix included, into `out`.
pub fn encode_response(
    out: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<()> {
    let start = out.len();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    // ApiVersions always answers with header v0 so that clients can parse the error
    // of an unsupported version.
    let header_version = if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    };
    header.encode(out, header_version)?;
    body.encode(out, version)?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::StrBytes;

    fn frame(api: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_api_versions_v3() {
        let f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let req = decode_request(f).unwrap();
        assert_eq!(req.api, ApiKey::ApiVersions);
        assert_eq!(req.header.correlation_id, 7);
    }

    #[test]
    fn rejects_unsupported_version_with_correlation_id() {
        let f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut raw = f.to_vec();
        raw[2..4].copy_from_slice(&99i16.to_be_bytes());
        match decode_request(Bytes::from(raw)) {
            Err(ProtocolError::UnsupportedVersion {
                correlation_id: 7,
                version: 99,
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_unknown_api_key() {
        let raw = [0x7f, 0x00, 0, 0, 0, 0, 0, 9, 0, 0];
        assert!(matches!(
            decode_request(Bytes::copy_from_slice(&raw)),
            Err(ProtocolError::UnknownApiKey {
                correlation_id: 9,
                ..
            })
        ));
    }

    #[test]
    fn frame_size_bounds() {
        assert!(check_frame_size(-1, 100).is_err());
        assert!(check_frame_size(101, 100).is_err());
        assert!(check_frame_size(4, 100).is_err());
        assert_eq!(check_frame_size(50, 100).unwrap(), 50);
    }

    proptest::proptest! {
        #[test]
        fn decoding_garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_request(Bytes::from(data));
        }
    }
}
