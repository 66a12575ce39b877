//! Kafka's embedded consumer protocol (`ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment`), the bytes classic consumers put in JoinGroup metadata
//! and SyncGroup assignments. The broker reads them only for classic members of a
//! KIP-848 consumer group (`consumer/classic.rs`): it takes their subscription and owned
//! partitions from the first, and hands them the assignment it computed in the second.
//!
//! Classic (non-flexible) encoding: i16 version, i32 array lengths, i16 strings, i32
//! bytes. Versions: subscription v0 topics + user data, v1 owned partitions, v2
//! generation, v3 rack; assignment v0-v3 all partitions + user data.
//!
//! Dependencies: the primitive readers/writers of `codec.rs`; nothing else.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{get_bytes, get_i16, get_i32, get_nullable, get_str, put_str};
use super::consumer::Assignment;

/// The parts of a ConsumerProtocolSubscription the coordinator uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscription {
    pub topics: Vec<String>,
    /// What the member owns when it (re)joins (v1+; empty for v0 and eager members,
    /// which revoke everything before they rejoin).
    pub owned: Assignment,
    pub rack: Option<String>,
}

fn get_partitions(b: &mut &[u8], out: &mut Assignment) -> Option<()> {
    let n = get_i32(b)?;
    for _ in 0..n.max(0) {
        let topic = get_str(b)?;
        let count = get_i32(b)?;
        let set = out.entry(topic).or_default();
        for _ in 0..count.max(0) {
            set.insert(get_i32(b)?);
        }
    }
    out.retain(|_, ps| !ps.is_empty());
    Some(())
}

/// Reads a subscription; `None` if the bytes are not one.
pub fn decode_subscription(mut b: &[u8]) -> Option<Subscription> {
    let b = &mut b;
    let version = get_i16(b)?;
    let mut sub = Subscription::default();
    let n = get_i32(b)?;
    for _ in 0..n.max(0) {
        sub.topics.push(get_str(b)?);
    }
    get_bytes(b)?; // user data
    if version >= 1 {
        get_partitions(b, &mut sub.owned)?;
    }
    if version >= 2 {
        get_i32(b)?; // generation
    }
    if version >= 3 {
        sub.rack = get_nullable(b)?;
    }
    Some(sub)
}

/// Reads an assignment's partitions; an empty byte string is the empty assignment
/// (a member that joined and never synced). `None` if the bytes are not one.
pub fn decode_assignment(b: &[u8]) -> Option<Assignment> {
    decode_assignment_with_user_data(b).map(|(a, _)| a)
}

/// [`decode_assignment`], and whether the assignment carries user data (a custom
/// assignor's, which a consumer group could not keep).
pub fn decode_assignment_with_user_data(mut b: &[u8]) -> Option<(Assignment, bool)> {
    let mut out = Assignment::new();
    if b.is_empty() {
        return Some((out, false));
    }
    let b = &mut b;
    get_i16(b)?;
    get_partitions(b, &mut out)?;
    // User data is absent, null (-1) or empty in assignments of Kafka's own assignors.
    let user_data = get_i32(b).is_some_and(|n| n > 0);
    Some((out, user_data))
}

/// Writes an assignment as Kafka's coordinator does (version 3, no user data).
pub fn encode_assignment(a: &Assignment) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i32(a.len() as i32);
    for (topic, ps) in a {
        put_str(&mut b, topic);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1); // user data: null
    b.freeze()
}

/// Writes a subscription (version 1); tests use it to play classic members.
#[cfg(test)]
pub fn encode_subscription(topics: &[&str], owned: &Assignment) -> Bytes {
    use super::codec::put_bytes;
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_str(&mut b, t);
    }
    put_bytes(&mut b, &[]);
    b.put_i32(owned.len() as i32);
    for (topic, ps) in owned {
        put_str(&mut b, topic);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let owned: Assignment = [("t".to_string(), [0, 2].into())].into();
        let sub = decode_subscription(&encode_subscription(&["t", "u"], &owned)).unwrap();
        assert_eq!(sub.topics, vec!["t", "u"]);
        assert_eq!(sub.owned, owned);
        assert_eq!(
            decode_assignment(&encode_assignment(&owned)),
            Some(owned.clone())
        );
        assert_eq!(decode_assignment(&[]), Some(Assignment::new()));
        let mut with_data = encode_assignment(&owned).to_vec();
        with_data.truncate(with_data.len() - 4);
        with_data.extend_from_slice(&[0, 0, 0, 2, 7, 7]);
        assert_eq!(
            decode_assignment_with_user_data(&with_data),
            Some((owned, true))
        );
    }

    #[test]
    fn garbage_never_panics() {
        for n in 0..64u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(53)).collect();
            let _ = decode_subscription(&data);
            let _ = decode_assignment(&data);
        }
    }
}
