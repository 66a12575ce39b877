//! Record values of KIP-848 consumer groups in `__consumer_offsets`, in Kafka 4's
//! schemas (the keys are in `codec.rs`, types 3 to 8), so Kafka's tools read them and a
//! Kafka coordinator could load them:
//!
//! | key type | key                                        | value (version 0, flexible)                 |
//! |----------|--------------------------------------------|---------------------------------------------|
//! | 3        | ConsumerGroupMetadataKey (group)           | group epoch                                 |
//! | 4        | ConsumerGroupPartitionMetadataKey (group)  | epoch, subscribed topics (id, name, count)  |
//! | 5        | ConsumerGroupMemberMetadataKey (g, member) | instance, rack, client, host, subscription, rebalance timeout, assignor |
//! | 6        | ConsumerGroupTargetAssignmentMetadataKey   | assignment epoch                            |
//! | 7        | ConsumerGroupTargetAssignmentMemberKey     | the member's target partitions (topic ids)  |
//! | 8        | ConsumerGroupCurrentMemberAssignmentKey    | member epoch, previous epoch, state, assigned, pending revocation |
//!
//! Values start with their version (0) and use the flexible encoding (compact strings
//! and arrays, tagged fields). The member value's tagged field 0, ClassicMemberMetadata
//! (a classic member inside a consumer group), is read and written; other tagged fields
//! are skipped on read (Kafka 4.1's MetadataHash, AssignmentEpochs) and not written.
//! [`ConsumerGroupRecords`] is what a replay of one group's records leaves: last write
//! wins, a null value deletes.
//!
//! Dependencies: `codec.rs`'s [`Key`] only; like it, this is the bottom layer.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::codec::Key;

/// Partitions by topic id, as the assignment records carry them.
pub type TopicPartitions = BTreeMap<Uuid, Vec<i32>>;

/// ConsumerGroupMemberMetadataValue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topic_names: Vec<String>,
    pub regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Tagged field 0, ClassicMemberMetadata: set for a member of the classic protocol
    /// inside a consumer group (session timeout, protocols with their metadata).
    pub classic: Option<ClassicMemberMetadata>,
}

/// ClassicMemberMetadata of ConsumerGroupMemberMetadataValue (tag 0).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    /// SupportedProtocols: name and metadata, in the member's order.
    pub protocols: Vec<(String, Bytes)>,
}

/// ConsumerGroupCurrentMemberAssignmentValue. `state` is Kafka's `MemberState` byte:
/// 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: TopicPartitions,
    pub revoking: TopicPartitions,
}

/// A subscribed topic of ConsumerGroupPartitionMetadataValue.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMetadata {
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
}

/// One value of a consumer group record.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerValue {
    GroupEpoch(i32),
    PartitionMetadata {
        epoch: i32,
        topics: Vec<TopicMetadata>,
    },
    Member(MemberMetadata),
    AssignmentEpoch(i32),
    Target(TopicPartitions),
    Current(CurrentAssignment),
}

/// Everything persisted of one consumer group: what replay leaves, and what the
/// coordinator last wrote (it diffs the group against it to know what to write).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerGroupRecords {
    pub epoch: Option<i32>,
    pub metadata: Option<(i32, Vec<TopicMetadata>)>,
    pub members: BTreeMap<String, MemberMetadata>,
    pub assignment_epoch: Option<i32>,
    pub targets: BTreeMap<String, TopicPartitions>,
    pub current: BTreeMap<String, CurrentAssignment>,
}

impl ConsumerGroupRecords {
    /// Applies one replayed record of this group (a `None` value is a tombstone).
    /// Returns false if `key` is not a consumer group key.
    pub fn apply(&mut self, key: &Key, value: Option<ConsumerValue>) -> bool {
        use ConsumerValue as V;
        match (key, value) {
            (Key::ConsumerGroup { .. }, v) => {
                self.epoch = v.and_then(|v| match v {
                    V::GroupEpoch(e) => Some(e),
                    _ => None,
                })
            }
            (Key::ConsumerPartitionMetadata { .. }, v) => {
                self.metadata = v.and_then(|v| match v {
                    V::PartitionMetadata { epoch, topics } => Some((epoch, topics)),
                    _ => None,
                })
            }
            (Key::ConsumerTargetMetadata { .. }, v) => {
                self.assignment_epoch = v.and_then(|v| match v {
                    V::AssignmentEpoch(e) => Some(e),
                    _ => None,
                })
            }
            (Key::ConsumerMember { member, .. }, Some(V::Member(m))) => {
                self.members.insert(member.clone(), m);
            }
            (Key::ConsumerMember { member, .. }, _) => {
                self.members.remove(member);
            }
            (Key::ConsumerTarget { member, .. }, Some(V::Target(t))) => {
                self.targets.insert(member.clone(), t);
            }
            (Key::ConsumerTarget { member, .. }, _) => {
                self.targets.remove(member);
            }
            (Key::ConsumerCurrent { member, .. }, Some(V::Current(c))) => {
                self.current.insert(member.clone(), c);
            }
            (Key::ConsumerCurrent { member, .. }, _) => {
                self.current.remove(member);
            }
            _ => return false,
        }
        true
    }

    /// The group has nothing left (its group epoch record was deleted or never written).
    pub fn is_deleted(&self) -> bool {
        self.epoch.is_none()
    }
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_compact_str(b: &mut BytesMut, s: &str) {
    put_uvarint(b, s.len() as u64 + 1);
    b.put_slice(s.as_bytes());
}

fn put_compact_nullable(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(b, s),
        None => put_uvarint(b, 0),
    }
}

fn put_partitions(b: &mut BytesMut, tps: &TopicPartitions) {
    put_uvarint(b, tps.len() as u64 + 1);
    for (id, ps) in tps {
        b.put_slice(id.as_bytes());
        put_uvarint(b, ps.len() as u64 + 1);
        for p in ps {
            b.put_i32(*p);
        }
        put_uvarint(b, 0); // tagged fields
    }
}

fn get_uvarint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn get_compact_nullable(b: &mut &[u8]) -> Option<Option<String>> {
    let len = get_uvarint(b)?;
    if len == 0 {
        return Some(None);
    }
    let len = (len - 1) as usize;
    if b.remaining() < len {
        return None;
    }
    let s = String::from_utf8(b[..len].to_vec()).ok()?;
    b.advance(len);
    Some(Some(s))
}

fn get_compact_str(b: &mut &[u8]) -> Option<String> {
    get_compact_nullable(b)?
}

fn get_i32(b: &mut &[u8]) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

/// A compact array's length; `None` for null or bad bytes.
fn get_count(b: &mut &[u8]) -> Option<usize> {
    let n = get_uvarint(b)?;
    let n = n.checked_sub(1)? as usize;
    // Every element takes at least one byte: a bound against absurd lengths.
    (n <= b.remaining()).then_some(n)
}

fn get_uuid(b: &mut &[u8]) -> Option<Uuid> {
    if b.remaining() < 16 {
        return None;
    }
    let id = Uuid::from_slice(&b[..16]).ok()?;
    b.advance(16);
    Some(id)
}

fn encode_classic(c: &ClassicMemberMetadata) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32(c.session_timeout_ms);
    put_uvarint(&mut b, c.protocols.len() as u64 + 1);
    for (name, metadata) in &c.protocols {
        put_compact_str(&mut b, name);
        put_uvarint(&mut b, metadata.len() as u64 + 1);
        b.put_slice(metadata);
        put_uvarint(&mut b, 0); // tagged fields
    }
    put_uvarint(&mut b, 0); // tagged fields
    b.freeze()
}

fn decode_classic(mut b: &[u8]) -> Option<ClassicMemberMetadata> {
    let b = &mut b;
    let session_timeout_ms = get_i32(b)?;
    let mut protocols = Vec::new();
    for _ in 0..get_count(b)? {
        let name = get_compact_str(b)?;
        let len = get_count(b)?;
        let metadata = Bytes::copy_from_slice(&b[..len]);
        b.advance(len);
        skip_tagged(b)?;
        protocols.push((name, metadata));
    }
    skip_tagged(b)?;
    Some(ClassicMemberMetadata {
        session_timeout_ms,
        protocols,
    })
}

/// The member value's tagged fields: ClassicMemberMetadata (tag 0) is read, others
/// skipped.
fn get_member_tags(b: &mut &[u8]) -> Option<Option<ClassicMemberMetadata>> {
    let mut classic = None;
    for _ in 0..get_uvarint(b)? {
        let tag = get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        if b.remaining() < size {
            return None;
        }
        if tag == 0 {
            classic = Some(decode_classic(&b[..size])?);
        }
        b.advance(size);
    }
    Some(classic)
}

/// Skips a tagged-fields section (none of them is read).
fn skip_tagged(b: &mut &[u8]) -> Option<()> {
    let n = get_uvarint(b)?;
    for _ in 0..n {
        get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        if b.remaining() < size {
            return None;
        }
        b.advance(size);
    }
    Some(())
}

fn get_partitions(b: &mut &[u8]) -> Option<TopicPartitions> {
    let mut out = TopicPartitions::new();
    for _ in 0..get_count(b)? {
        let id = get_uuid(b)?;
        let mut ps = Vec::new();
        for _ in 0..get_count(b)? {
            ps.push(get_i32(b)?);
        }
        skip_tagged(b)?;
        out.insert(id, ps);
    }
    Some(out)
}

/// Encodes keys and values (`None`: a tombstone) for an append.
pub fn codec_records(records: &[(Key, Option<ConsumerValue>)]) -> Vec<(Bytes, Option<Bytes>)> {
    records
        .iter()
        .map(|(k, v)| (super::codec::encode_key(k), v.as_ref().map(encode_value)))
        .collect()
}

pub fn encode_value(v: &ConsumerValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    match v {
        ConsumerValue::GroupEpoch(e) | ConsumerValue::AssignmentEpoch(e) => b.put_i32(*e),
        ConsumerValue::PartitionMetadata { epoch, topics } => {
            b.put_i32(*epoch);
            put_uvarint(&mut b, topics.len() as u64 + 1);
            for t in topics {
                b.put_slice(t.id.as_bytes());
                put_compact_str(&mut b, &t.name);
                b.put_i32(t.partitions);
                put_uvarint(&mut b, 1); // no partition racks
                put_uvarint(&mut b, 0);
            }
        }
        ConsumerValue::Member(m) => {
            put_compact_nullable(&mut b, m.instance_id.as_deref());
            put_compact_nullable(&mut b, m.rack_id.as_deref());
            put_compact_str(&mut b, &m.client_id);
            put_compact_str(&mut b, &m.client_host);
            put_uvarint(&mut b, m.topic_names.len() as u64 + 1);
            for t in &m.topic_names {
                put_compact_str(&mut b, t);
            }
            put_compact_nullable(&mut b, m.regex.as_deref());
            b.put_i32(m.rebalance_timeout_ms);
            put_compact_nullable(&mut b, m.server_assignor.as_deref());
            if let Some(c) = &m.classic {
                let field = encode_classic(c);
                put_uvarint(&mut b, 1); // one tagged field
                put_uvarint(&mut b, 0); // tag 0: ClassicMemberMetadata
                put_uvarint(&mut b, field.len() as u64);
                b.put_slice(&field);
                return b.freeze();
            }
        }
        ConsumerValue::Target(t) => put_partitions(&mut b, t),
        ConsumerValue::Current(c) => {
            b.put_i32(c.member_epoch);
            b.put_i32(c.previous_member_epoch);
            b.put_i8(c.state);
            put_partitions(&mut b, &c.assigned);
            put_partitions(&mut b, &c.revoking);
        }
    }
    put_uvarint(&mut b, 0); // tagged fields
    b.freeze()
}

/// Decodes the value of a consumer group `key`; `None` for other keys or bad bytes.
pub fn decode_value(key: &Key, mut b: &[u8]) -> Option<ConsumerValue> {
    let b = &mut b;
    if b.remaining() < 2 || b.get_i16() != 0 {
        return None;
    }
    let v = match key {
        Key::ConsumerGroup { .. } => ConsumerValue::GroupEpoch(get_i32(b)?),
        Key::ConsumerTargetMetadata { .. } => ConsumerValue::AssignmentEpoch(get_i32(b)?),
        Key::ConsumerPartitionMetadata { .. } => {
            let epoch = get_i32(b)?;
            let mut topics = Vec::new();
            for _ in 0..get_count(b)? {
                let id = get_uuid(b)?;
                let name = get_compact_str(b)?;
                let partitions = get_i32(b)?;
                for _ in 0..get_count(b)? {
                    get_i32(b)?;
                    for _ in 0..get_count(b)? {
                        get_compact_str(b)?;
                    }
                    skip_tagged(b)?;
                }
                skip_tagged(b)?;
                topics.push(TopicMetadata {
                    id,
                    name,
                    partitions,
                });
            }
            ConsumerValue::PartitionMetadata { epoch, topics }
        }
        Key::ConsumerMember { .. } => {
            let instance_id = get_compact_nullable(b)?;
            let rack_id = get_compact_nullable(b)?;
            let client_id = get_compact_str(b)?;
            let client_host = get_compact_str(b)?;
            let mut topic_names = Vec::new();
            for _ in 0..get_count(b)? {
                topic_names.push(get_compact_str(b)?);
            }
            let mut m = MemberMetadata {
                instance_id,
                rack_id,
                client_id,
                client_host,
                topic_names,
                regex: get_compact_nullable(b)?,
                rebalance_timeout_ms: get_i32(b)?,
                server_assignor: get_compact_nullable(b)?,
                classic: None,
            };
            m.classic = get_member_tags(b)?;
            return Some(ConsumerValue::Member(m));
        }
        Key::ConsumerTarget { .. } => ConsumerValue::Target(get_partitions(b)?),
        Key::ConsumerCurrent { .. } => {
            let member_epoch = get_i32(b)?;
            let previous_member_epoch = get_i32(b)?;
            if !b.has_remaining() {
                return None;
            }
            let state = b.get_i8();
            ConsumerValue::Current(CurrentAssignment {
                member_epoch,
                previous_member_epoch,
                state,
                assigned: get_partitions(b)?,
                revoking: get_partitions(b)?,
            })
        }
        _ => return None,
    };
    skip_tagged(b)?;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::codec::{decode_key, encode_key};

    fn tps(id: Uuid, ps: &[i32]) -> TopicPartitions {
        TopicPartitions::from([(id, ps.to_vec())])
    }

    #[test]
    fn values_round_trip_and_replay_applies_them() {
        let id = Uuid::new_v4();
        let g = "g".to_string();
        let m = "m1".to_string();
        let records = vec![
            (
                Key::ConsumerGroup { group: g.clone() },
                ConsumerValue::GroupEpoch(7),
            ),
            (
                Key::ConsumerPartitionMetadata { group: g.clone() },
                ConsumerValue::PartitionMetadata {
                    epoch: 7,
                    topics: vec![TopicMetadata {
                        id,
                        name: "t".into(),
                        partitions: 6,
                    }],
                },
            ),
            (
                Key::ConsumerMember {
                    group: g.clone(),
                    member: m.clone(),
                },
                ConsumerValue::Member(MemberMetadata {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    topic_names: vec!["t".into()],
                    regex: Some("t.*".into()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("uniform".into()),
                    classic: None,
                }),
            ),
            (
                Key::ConsumerMember {
                    group: g.clone(),
                    member: "classic".into(),
                },
                ConsumerValue::Member(MemberMetadata {
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    topic_names: vec!["t".into()],
                    rebalance_timeout_ms: 300_000,
                    classic: Some(ClassicMemberMetadata {
                        session_timeout_ms: 45_000,
                        protocols: vec![
                            ("range".into(), Bytes::from_static(b"sub")),
                            ("roundrobin".into(), Bytes::new()),
                        ],
                    }),
                    ..Default::default()
                }),
            ),
            (
                Key::ConsumerTargetMetadata { group: g.clone() },
                ConsumerValue::AssignmentEpoch(7),
            ),
            (
                Key::ConsumerTarget {
                    group: g.clone(),
                    member: m.clone(),
                },
                ConsumerValue::Target(tps(id, &[0, 1, 2])),
            ),
            (
                Key::ConsumerCurrent {
                    group: g.clone(),
                    member: m.clone(),
                },
                ConsumerValue::Current(CurrentAssignment {
                    member_epoch: 6,
                    previous_member_epoch: 5,
                    state: 1,
                    assigned: tps(id, &[0, 1]),
                    revoking: tps(id, &[5]),
                }),
            ),
        ];
        let mut replay = ConsumerGroupRecords::default();
        for (k, v) in &records {
            let key = decode_key(&encode_key(k)).expect("key");
            assert_eq!(&key, k);
            let value = decode_value(&key, &encode_value(v)).expect("value");
            assert_eq!(&value, v);
            assert!(replay.apply(&key, Some(value)));
        }
        assert_eq!(replay.epoch, Some(7));
        assert_eq!(replay.current[&m].revoking, tps(id, &[5]));
        // Tombstones delete.
        replay.apply(
            &Key::ConsumerCurrent {
                group: g.clone(),
                member: m.clone(),
            },
            None,
        );
        replay.apply(&Key::ConsumerGroup { group: g }, None);
        assert!(replay.current.is_empty());
        assert!(replay.is_deleted());
    }

    #[test]
    fn unknown_tagged_fields_are_skipped_and_garbage_never_panics() {
        // ConsumerGroupMetadataValue with Kafka 4.1's MetadataHash (tag 0, 8 bytes).
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(3);
        put_uvarint(&mut b, 1);
        put_uvarint(&mut b, 0);
        put_uvarint(&mut b, 8);
        b.put_i64(42);
        let key = Key::ConsumerGroup { group: "g".into() };
        assert_eq!(decode_value(&key, &b), Some(ConsumerValue::GroupEpoch(3)));
        let member = Key::ConsumerCurrent {
            group: "g".into(),
            member: "m".into(),
        };
        for n in 0..64u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(53)).collect();
            let _ = decode_value(&member, &data);
            let _ = decode_value(
                &Key::ConsumerMember {
                    group: "g".into(),
                    member: "m".into(),
                },
                &data,
            );
        }
    }
}
