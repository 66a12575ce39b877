//! Transaction markers: the control batches a transaction coordinator has the
//! partition leader write to end a transaction (Kafka's `EndTransactionMarker`).
//!
//! A marker is a v2 batch with the control and transactional attribute bits,
//! the producer's id and epoch, base sequence -1, and one record whose key is
//! `version i16 (0), type i16 (0 = ABORT, 1 = COMMIT)` and whose value is
//! `version i16 (0), coordinatorEpoch i32`. This module builds such batches
//! ([`marker_batch`]) and reads them back ([`read_marker`]), from bytes that
//! passed the CRC check; it never panics, whatever the input.

use crate::record::{self, BatchHeader, HEADER_LEN};

/// What a marker says about its transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    /// The type field of the control record key.
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// The content of a marker's control record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRecord {
    pub kind: ControlType,
    pub coordinator_epoch: i32,
}

/// What reading a control batch found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A COMMIT or ABORT record.
    End(ControlRecord),
    /// No record (the cleaner emptied it: its transaction's data is gone and
    /// its delete horizon passed, and it is kept only for its producer epoch).
    Empty,
    /// A control record of another type (Kafka reserves other codes, e.g.
    /// for KRaft's own control records), or one that does not parse: not a
    /// transaction marker.
    Other,
}

/// Builds the marker batch (offset 0: the log assigns it) that ends the
/// ongoing transaction of `producer_id` with `record`, timestamped `now_ms`.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    record: ControlRecord,
    now_ms: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&record.kind.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&record.coordinator_epoch.to_be_bytes());
    let mut body = vec![0u8]; // record attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, key.len() as i64);
    body.extend_from_slice(&key);
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(&value);
    put_varint(&mut body, 0); // no headers
    let mut records = Vec::with_capacity(body.len() + 1);
    put_varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);

    let attributes = record::CONTROL_BIT | record::TRANSACTIONAL_BIT;
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(
        &((HEADER_LEN - record::LOG_OVERHEAD + records.len()) as i32).to_be_bytes(),
    );
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&[0; 4]); // CRC, below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = record::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Reads the control record of `batch`, a whole control batch (header `h`)
/// whose CRC was checked. Compressed control batches (Kafka never writes
/// them, but a batch is only as good as its writer) are decompressed.
pub fn read_marker(h: &BatchHeader, batch: &[u8]) -> Marker {
    if h.records_count == 0 {
        return Marker::Empty;
    }
    let Some(section) = batch.get(HEADER_LEN..) else {
        return Marker::Other;
    };
    let codec = h.attributes & record::COMPRESSION_MASK;
    let owned;
    let records = if codec == 0 {
        section
    } else {
        match crate::cleaner::compression::decompress(codec, section) {
            Ok(d) => {
                owned = d;
                &owned[..]
            }
            Err(_) => return Marker::Other,
        }
    };
    parse_first_record(records).unwrap_or(Marker::Other)
}

/// The marker of a control batch, if it holds one.
pub fn control_record(h: &BatchHeader, batch: &[u8]) -> Option<ControlRecord> {
    match read_marker(h, batch) {
        Marker::End(r) => Some(r),
        Marker::Empty | Marker::Other => None,
    }
}

/// The key and value of the first record of a records section, as a marker.
fn parse_first_record(records: &[u8]) -> Option<Marker> {
    let mut pos = 0;
    let len = usize::try_from(read_varlong(records, &mut pos)?).ok()?;
    let body = records.get(pos..pos.checked_add(len)?)?;
    let mut pos = 1; // attributes
    read_varlong(body, &mut pos)?; // timestamp delta
    read_varlong(body, &mut pos)?; // offset delta
    let key = field(body, &mut pos)?;
    let value = field(body, &mut pos)?;
    let (Some(key), Some(value)) = (key, value) else {
        return Some(Marker::Other);
    };
    let kind = match key {
        [0, 0, t0, t1] => match i16::from_be_bytes([*t0, *t1]) {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            _ => return Some(Marker::Other),
        },
        _ => return Some(Marker::Other),
    };
    // Version 0 holds the coordinator epoch; later versions may add fields.
    let coordinator_epoch = match value {
        [0, _, e0, e1, e2, e3, ..] => i32::from_be_bytes([*e0, *e1, *e2, *e3]),
        _ => return Some(Marker::Other),
    };
    Some(Marker::End(ControlRecord {
        kind,
        coordinator_epoch,
    }))
}

/// A length-prefixed byte field (length -1 = null).
fn field<'a>(body: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varlong(body, pos)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let bytes = body.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(Some(bytes))
}

/// A zigzag varint of at most 10 bytes.
fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_decode_with_an_independent_codec() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let rec = ControlRecord {
                kind,
                coordinator_epoch: 77,
            };
            let b = marker_batch(5, 3, rec, 1_234);
            let info = record::validate_batches(&b, usize::MAX).unwrap()[0];
            assert_eq!(info.records_count, 1);
            let h = BatchHeader::parse(&b).unwrap();
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (5, 3, -1)
            );
            assert_eq!(read_marker(&h, &b), Marker::End(rec));
            let mut bytes = bytes::Bytes::copy_from_slice(&b);
            let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
            let r = &sets[0].records[0];
            assert!(r.control && r.transactional);
            assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, kind.code() as u8][..]));
            assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 77][..]));
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let mut b = marker_batch(1, 1, ControlRecord { kind: ControlType::Commit, coordinator_epoch: 0 }, 0);
            b.truncate(HEADER_LEN);
            b.extend_from_slice(&data);
            if let Some(h) = BatchHeader::parse(&b) {
                let _ = read_marker(&h, &b);
            }
        }
    }
}
