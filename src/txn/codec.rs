//! Record keys and values of `__transaction_state`, in Kafka's own schemas, so Kafka
//! tools can read the topic:
//!
//! - TransactionLogKey v0: transactional id.
//! - TransactionLogValue v0: producer id, producer epoch, timeout, status, partitions
//!   (topic, partition ids), last update and start timestamps.
//!
//! A null value is a tombstone (an expired id). Decoding never panics on bad bytes; it
//! returns `None` and the loader skips the record with a warning. The previous producer
//! id and last epoch (tagged fields of value v1 in Kafka) are not stored: after a
//! failover a retried InitProducerId or EndTxn of the old epoch gets PRODUCER_FENCED
//! or INVALID_TXN_STATE, which the client handles.
//!
//! Dependencies: `state.rs` (the value type); placement reuses the group codec's hash,
//! which is Kafka's for both topics.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMeta, TxnState};

pub use crate::internal_topic::partition_for;

pub fn encode_key(id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_str(&mut b, id);
    b.freeze()
}

pub fn decode_key(mut b: &[u8]) -> Option<String> {
    let version = get_i16(&mut b)?;
    (version == 0).then_some(())?;
    get_str(&mut b)
}

pub fn encode_value(m: &TxnMeta) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.id());
    // Partitions grouped by topic, in order.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t, vec![*p])),
        }
    }
    b.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.put_i64(m.update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

/// Decodes value v0 (and the non-tagged part of v1) for transactional id `id`.
pub fn decode_value(id: &str, mut b: &[u8]) -> Option<TxnMeta> {
    let version = get_i16(&mut b)?;
    if version > 1 {
        return None;
    }
    let flexible = version >= 1;
    let producer_id = get_i64(&mut b)?;
    let producer_epoch = get_i16(&mut b)?;
    let timeout_ms = get_i32(&mut b)?;
    let state = TxnState::from_id(get_i8(&mut b)?)?;
    let mut partitions = BTreeSet::new();
    let n = if flexible {
        get_uvarint(&mut b)? as i64 - 1
    } else {
        get_i32(&mut b)? as i64
    };
    for _ in 0..n.max(0) {
        let topic = if flexible {
            get_compact_str(&mut b)?
        } else {
            get_str(&mut b)?
        };
        let np = if flexible {
            get_uvarint(&mut b)? as i64 - 1
        } else {
            get_i32(&mut b)? as i64
        };
        for _ in 0..np.max(0) {
            partitions.insert((topic.clone(), get_i32(&mut b)?));
        }
        if flexible {
            skip_tags(&mut b)?;
        }
    }
    let update_ms = get_i64(&mut b)?;
    let start_ms = get_i64(&mut b)?;
    Some(TxnMeta {
        id: id.to_string(),
        producer_id,
        prev_producer_id: -1,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        update_ms,
    })
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn get_i8(b: &mut &[u8]) -> Option<i8> {
    (b.remaining() >= 1).then(|| b.get_i8())
}
fn get_i16(b: &mut &[u8]) -> Option<i16> {
    (b.remaining() >= 2).then(|| b.get_i16())
}
fn get_i32(b: &mut &[u8]) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}
fn get_i64(b: &mut &[u8]) -> Option<i64> {
    (b.remaining() >= 8).then(|| b.get_i64())
}

fn take_str(b: &mut &[u8], len: usize) -> Option<String> {
    if b.remaining() < len {
        return None;
    }
    let s = String::from_utf8(b[..len].to_vec()).ok()?;
    b.advance(len);
    Some(s)
}

fn get_str(b: &mut &[u8]) -> Option<String> {
    let len = get_i16(b)?;
    (len >= 0).then_some(())?;
    take_str(b, len as usize)
}

fn get_uvarint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.first()?;
        b.advance(1);
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn get_compact_str(b: &mut &[u8]) -> Option<String> {
    let len = get_uvarint(b)?.checked_sub(1)?;
    take_str(b, len as usize)
}

fn skip_tags(b: &mut &[u8]) -> Option<()> {
    for _ in 0..get_uvarint(b)? {
        let _tag = get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        (b.remaining() >= size).then_some(())?;
        b.advance(size);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> TxnMeta {
        TxnMeta {
            id: "tx".into(),
            producer_id: 4000,
            prev_producer_id: -1,
            producer_epoch: 7,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 1_000,
            update_ms: 2_000,
        }
    }

    #[test]
    fn key_and_value_round_trip() {
        assert_eq!(decode_key(&encode_key("tx")).as_deref(), Some("tx"));
        assert_eq!(decode_value("tx", &encode_value(&meta())), Some(meta()));
    }

    #[test]
    fn value_v0_bytes_are_kafkas() {
        let mut m = meta();
        m.partitions = [("a".to_string(), 0)].into_iter().collect();
        let b = encode_value(&m);
        let expect: Vec<u8> = [
            &[0, 0][..],              // version 0
            &4000i64.to_be_bytes(),   // producer id
            &7i16.to_be_bytes(),      // epoch
            &60_000i32.to_be_bytes(), // timeout
            &[1],                     // Ongoing
            &1i32.to_be_bytes(),      // one topic
            &[0, 1, b'a'],            // "a"
            &1i32.to_be_bytes(),      // one partition
            &0i32.to_be_bytes(),      // partition 0
            &2_000i64.to_be_bytes(),  // last update
            &1_000i64.to_be_bytes(),  // start
        ]
        .concat();
        assert_eq!(&b[..], &expect[..]);
    }

    #[test]
    fn bad_bytes_decode_to_none() {
        let b = encode_value(&meta());
        for cut in 0..b.len() {
            assert!(decode_value("tx", &b[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode_key(&[0, 9]).is_none());
        assert!(decode_key(&[0, 1, 0, 1, b'x']).is_none());
    }
}
