//! Record keys and values of `__consumer_offsets`, in Kafka's own schemas, so that
//! Kafka tools can read the topic:
//!
//! - OffsetCommitKey v1: group, topic, partition. OffsetCommitValue v3: offset,
//!   leader epoch, metadata, commit timestamp.
//! - GroupMetadataKey v2: group. GroupMetadataValue v3: protocol type, generation,
//!   protocol, leader, state timestamp, members.
//!
//! - KIP-848 consumer groups: key types 3 to 8 (ConsumerGroupMetadataKey to
//!   ConsumerGroupCurrentMemberAssignmentKey), values in `codec_consumer.rs`.
//!
//! A null value is a tombstone. Decoding never panics on bad bytes; it returns
//! `None`, and the loader skips the record with a warning.
//!
//! Dependencies: none inside `group/`. This is the bottom layer: the value types of the
//! records ([`OffsetValue`], [`GroupSnapshot`]) are defined here, and `state` (which
//! snapshots a group and reads consumer subscriptions), `offsets.rs` and the code that
//! reads and writes the topic use them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// KIP-848 consumer group records (Kafka 4's key types 3 to 8; values in
    /// `codec_consumer.rs`).
    ConsumerGroup {
        group: String,
    },
    ConsumerPartitionMetadata {
        group: String,
    },
    ConsumerMember {
        group: String,
        member: String,
    },
    ConsumerTargetMetadata {
        group: String,
    },
    ConsumerTarget {
        group: String,
        member: String,
    },
    ConsumerCurrent {
        group: String,
        member: String,
    },
}

impl Key {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            Key::Offset { group, .. }
            | Key::Group { group }
            | Key::ConsumerGroup { group }
            | Key::ConsumerPartitionMetadata { group }
            | Key::ConsumerMember { group, .. }
            | Key::ConsumerTargetMetadata { group }
            | Key::ConsumerTarget { group, .. }
            | Key::ConsumerCurrent { group, .. } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

impl OffsetValue {
    /// What OffsetFetch answers for a partition with no committed offset.
    pub fn none() -> Self {
        OffsetValue {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: -1,
        }
    }
}

/// What is persisted of a group (Kafka's GroupMetadataValue).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberSnapshot {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

pub(super) fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

pub(super) fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

pub(super) fn get_i16(b: &mut &[u8]) -> Option<i16> {
    (b.remaining() >= 2).then(|| b.get_i16())
}
pub(super) fn get_i32(b: &mut &[u8]) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}
fn get_i64(b: &mut &[u8]) -> Option<i64> {
    (b.remaining() >= 8).then(|| b.get_i64())
}

pub(super) fn get_nullable(b: &mut &[u8]) -> Option<Option<String>> {
    let len = get_i16(b)?;
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let s = String::from_utf8(b[..len].to_vec()).ok()?;
    b.advance(len);
    Some(Some(s))
}

pub(super) fn get_str(b: &mut &[u8]) -> Option<String> {
    get_nullable(b)?
}

pub(super) fn get_bytes(b: &mut &[u8]) -> Option<Bytes> {
    let len = get_i32(b)?;
    if len < 0 {
        return Some(Bytes::new());
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let v = Bytes::copy_from_slice(&b[..len]);
    b.advance(len);
    Some(v)
}

pub fn encode_key(key: &Key) -> Bytes {
    let mut b = BytesMut::new();
    match key {
        Key::Offset {
            group,
            topic,
            partition,
        } => {
            b.put_i16(1);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        Key::Group { group } => {
            b.put_i16(2);
            put_str(&mut b, group);
        }
        Key::ConsumerGroup { group }
        | Key::ConsumerPartitionMetadata { group }
        | Key::ConsumerTargetMetadata { group } => {
            b.put_i16(match key {
                Key::ConsumerGroup { .. } => 3,
                Key::ConsumerPartitionMetadata { .. } => 4,
                _ => 6,
            });
            put_str(&mut b, group);
        }
        Key::ConsumerMember { group, member }
        | Key::ConsumerTarget { group, member }
        | Key::ConsumerCurrent { group, member } => {
            b.put_i16(match key {
                Key::ConsumerMember { .. } => 5,
                Key::ConsumerTarget { .. } => 7,
                _ => 8,
            });
            put_str(&mut b, group);
            put_str(&mut b, member);
        }
    }
    b.freeze()
}

pub fn decode_key(mut b: &[u8]) -> Option<Key> {
    match get_i16(&mut b)? {
        0 | 1 => Some(Key::Offset {
            group: get_str(&mut b)?,
            topic: get_str(&mut b)?,
            partition: get_i32(&mut b)?,
        }),
        2 => Some(Key::Group {
            group: get_str(&mut b)?,
        }),
        3 => Some(Key::ConsumerGroup {
            group: get_str(&mut b)?,
        }),
        4 => Some(Key::ConsumerPartitionMetadata {
            group: get_str(&mut b)?,
        }),
        6 => Some(Key::ConsumerTargetMetadata {
            group: get_str(&mut b)?,
        }),
        t @ (5 | 7 | 8) => {
            let group = get_str(&mut b)?;
            let member = get_str(&mut b)?;
            Some(match t {
                5 => Key::ConsumerMember { group, member },
                7 => Key::ConsumerTarget { group, member },
                _ => Key::ConsumerCurrent { group, member },
            })
        }
        _ => None,
    }
}

pub fn encode_offset(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

/// Reads OffsetCommitValue v0..=v3.
pub fn decode_offset(mut b: &[u8]) -> Option<OffsetValue> {
    let version = get_i16(&mut b)?;
    let offset = get_i64(&mut b)?;
    let leader_epoch = if version >= 3 { get_i32(&mut b)? } else { -1 };
    let metadata = get_str(&mut b)?;
    let commit_timestamp = get_i64(&mut b)?;
    Some(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

pub fn encode_group(g: &GroupSnapshot) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, g.protocol_type.as_deref().unwrap_or(""));
    b.put_i32(g.generation);
    put_nullable(&mut b, g.protocol.as_deref());
    put_nullable(&mut b, g.leader.as_deref());
    b.put_i64(g.state_timestamp);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_str(&mut b, &m.id);
        put_nullable(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// Reads GroupMetadataValue v0..=v3.
pub fn decode_group(mut b: &[u8]) -> Option<GroupSnapshot> {
    let version = get_i16(&mut b)?;
    let protocol_type = get_str(&mut b)?;
    let generation = get_i32(&mut b)?;
    let protocol = get_nullable(&mut b)?;
    let leader = get_nullable(&mut b)?;
    let state_timestamp = if version >= 2 { get_i64(&mut b)? } else { -1 };
    let count = get_i32(&mut b)?.max(0);
    let mut members = Vec::new();
    for _ in 0..count {
        let id = get_str(&mut b)?;
        let instance_id = if version >= 3 {
            get_nullable(&mut b)?
        } else {
            None
        };
        let client_id = get_str(&mut b)?;
        let client_host = get_str(&mut b)?;
        let session_first = get_i32(&mut b)?;
        let (rebalance_timeout_ms, session_timeout_ms) = if version >= 1 {
            (session_first, get_i32(&mut b)?)
        } else {
            (session_first, session_first)
        };
        members.push(MemberSnapshot {
            id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: get_bytes(&mut b)?,
            assignment: get_bytes(&mut b)?,
        });
    }
    Some(GroupSnapshot {
        protocol_type: (!protocol_type.is_empty()).then_some(protocol_type),
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

/// One uncompressed v2 batch holding `records` (key, value or tombstone).
pub fn batch(records: &[(Bytes, Option<Bytes>)], now_ms: i64) -> Result<Bytes, String> {
    producer_batch(records, now_ms, None)
}

/// The producer of a transactional batch: id, epoch, base sequence.
pub type TxnProducer = (i64, i16, i32);

/// A batch of `records`, transactional for `producer` when given (TxnOffsetCommit).
pub fn producer_batch(
    records: &[(Bytes, Option<Bytes>)],
    now_ms: i64,
    producer: Option<TxnProducer>,
) -> Result<Bytes, String> {
    let (producer_id, producer_epoch, base_seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer.is_some() {
                base_seq.wrapping_add(i as i32)
            } else {
                -1
            },
            timestamp: now_ms,
            key: Some(k.clone()),
            value: v.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Topics of a ConsumerProtocolSubscription (any version); empty if unreadable.
pub fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut b = metadata;
    let mut topics = Vec::new();
    let Some(_version) = get_i16(&mut b) else {
        return topics;
    };
    let Some(n) = get_i32(&mut b) else {
        return topics;
    };
    for _ in 0..n.max(0) {
        match get_str(&mut b) {
            Some(t) => topics.push(t),
            None => break,
        }
    }
    topics
}

pub use crate::internal_topic::partition_for;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(decode_key(&encode_key(&k)), Some(k));
        let k = Key::Group { group: "g".into() };
        assert_eq!(decode_key(&encode_key(&k)), Some(k));
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 1,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        assert_eq!(decode_offset(&encode_offset(&v)), Some(v));
        let g = GroupSnapshot {
            protocol_type: Some("consumer".into()),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            state_timestamp: 9,
            members: vec![MemberSnapshot {
                id: "a".into(),
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300000,
                session_timeout_ms: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group(&encode_group(&g)), Some(g));
    }

    #[test]
    fn garbage_never_panics() {
        for n in 0..64u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let _ = decode_key(&data);
            let _ = decode_offset(&data);
            let _ = decode_group(&data);
            let _ = subscription_topics(&data);
        }
    }
}
