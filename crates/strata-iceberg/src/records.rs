//! The records of a segment's bytes, decoded in full (key, value, headers) for the table.
//!
//! The log itself never decodes values or headers (`strata_log::record` is a zero-copy
//! view of batch headers); a table row needs them, so this module walks the record
//! section of each v2 batch, decompressed with the log's own codecs. Control batches
//! (transaction markers) hold no user records and are skipped. Nothing here panics on bad
//! bytes: a batch that does not decode is an error naming its offset.

use strata_log::record::{self, whole_batches, BatchHeader, HEADER_LEN};

/// One Kafka record, as a table row holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub offset: i64,
    /// Milliseconds since the epoch (for LogAppendTime: the batch's maxTimestamp).
    pub timestamp_ms: i64,
    pub log_append_time: bool,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Why a segment's records could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("batch at offset {offset}: records section does not decompress: {why}")]
    Codec { offset: i64, why: String },
    #[error("batch at offset {offset}: record {index} does not decode ({why})")]
    Record {
        offset: i64,
        index: usize,
        why: &'static str,
    },
}

/// An aborted transaction overlapping the bytes being decoded: its producer and first
/// offset (what a Fetch answer's `aborted_transactions` holds, and a `.txnindex` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbortedTxn {
    pub first_offset: i64,
    pub producer_id: i64,
}

/// The rows of every data record at or above `from` in `segment` (whole v2 batches back
/// to back, as a `.log` file or object holds them), as `read_uncommitted` sees them. A
/// torn tail (a batch that is not whole) ends the walk, as recovery would have truncated it.
pub fn decode_segment(segment: &[u8], from: i64) -> Result<Vec<Row>, DecodeError> {
    decode_committed(segment, from, &[])
}

/// The rows of `segment` from `from` on as `read_committed` sees them: the records of the
/// `aborted` transactions are left out. This is Kafka's consumer rule
/// (`CompletedFetch.nextFetchedRecord`): walking the batches in offset order, a producer
/// becomes aborted at the first batch reaching an aborted transaction's first offset and
/// stays so until its ABORT marker; its transactional batches in between are dropped.
/// `aborted` lists every aborted transaction overlapping the bytes (a marker may lie past
/// their end: then the producer stays aborted to the end).
pub fn decode_committed(
    segment: &[u8],
    from: i64,
    aborted: &[AbortedTxn],
) -> Result<Vec<Row>, DecodeError> {
    let mut pending: Vec<AbortedTxn> = aborted.to_vec();
    pending.sort_unstable();
    pending.dedup();
    let mut pending = pending.into_iter().peekable();
    let mut aborting = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for (_, h, bytes) in whole_batches(segment) {
        while let Some(t) = pending.next_if(|t| t.first_offset <= h.last_offset()) {
            aborting.insert(t.producer_id);
        }
        if h.attributes & record::CONTROL_BIT != 0 {
            // An ABORT marker (control record key: version, type 0) ends the producer's
            // aborted transaction; a COMMIT marker cannot follow an aborted one.
            let mut marker = Vec::new();
            decode_batch(&h, bytes, i64::MIN, &mut marker)?;
            let is_abort = marker
                .first()
                .and_then(|r| r.key.as_deref())
                .is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 0]);
            if is_abort {
                aborting.remove(&h.producer_id);
            }
            continue;
        }
        if h.last_offset() < from
            || (h.attributes & record::TRANSACTIONAL_BIT != 0 && aborting.contains(&h.producer_id))
        {
            continue;
        }
        decode_batch(&h, bytes, from, &mut rows)?;
    }
    Ok(rows)
}

fn decode_batch(
    h: &BatchHeader,
    bytes: &[u8],
    from: i64,
    rows: &mut Vec<Row>,
) -> Result<(), DecodeError> {
    let section = bytes.get(HEADER_LEN..).unwrap_or_default();
    let codec = h.attributes & record::COMPRESSION_MASK;
    let owned;
    let mut buf: &[u8] = if codec == 0 {
        section
    } else {
        owned =
            strata_log::decompress_records(codec, section).map_err(|why| DecodeError::Codec {
                offset: h.base_offset,
                why,
            })?;
        &owned
    };
    let log_append_time = h.attributes & record::TIMESTAMP_TYPE_BIT != 0;
    for index in 0..h.records_count.max(0) as usize {
        let bad = |why| DecodeError::Record {
            offset: h.base_offset,
            index,
            why,
        };
        let len = varint(&mut buf).ok_or_else(|| bad("length"))?;
        let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
        if buf.len() < len {
            return Err(bad("length past the batch end"));
        }
        let (mut body, rest) = buf.split_at(len);
        buf = rest;
        body = body.get(1..).ok_or_else(|| bad("attributes"))?;
        let ts_delta = varint(&mut body).ok_or_else(|| bad("timestamp delta"))?;
        let offset_delta = varint(&mut body).ok_or_else(|| bad("offset delta"))?;
        let key = bytes_field(&mut body).ok_or_else(|| bad("key"))?;
        let value = bytes_field(&mut body).ok_or_else(|| bad("value"))?;
        let n_headers = varint(&mut body).ok_or_else(|| bad("header count"))?;
        let mut headers = Vec::new();
        for _ in 0..n_headers.max(0) {
            let k = bytes_field(&mut body)
                .ok_or_else(|| bad("header key"))?
                .ok_or_else(|| bad("null header key"))?;
            let v = bytes_field(&mut body).ok_or_else(|| bad("header value"))?;
            headers.push((
                String::from_utf8_lossy(k).into_owned(),
                v.map(<[u8]>::to_vec),
            ));
        }
        let offset = h.base_offset + offset_delta;
        if offset < from {
            continue;
        }
        rows.push(Row {
            offset,
            timestamp_ms: if log_append_time {
                h.max_timestamp
            } else {
                h.base_timestamp.wrapping_add(ts_delta)
            },
            log_append_time,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers,
        });
    }
    Ok(())
}

/// A zigzag varint (at most 10 bytes), advancing `buf`.
fn varint(buf: &mut &[u8]) -> Option<i64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v >> 1) as i64 ^ -((v & 1) as i64));
        }
    }
    None
}

/// A varint-length byte field; length -1 is null. `None` if it does not fit.
fn bytes_field<'a>(buf: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let len = varint(buf)?;
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    if buf.len() < len {
        return None;
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Some(Some(field))
}

#[doc(hidden)]
pub mod testing {
    //! Builds uncompressed v2 batches with keys, values and headers, for this crate's
    //! tests and benchmark (no CRC: the table writer does not check it, the log did).

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            None => put_varint(out, -1),
            Some(b) => {
                put_varint(out, b.len() as i64);
                out.extend_from_slice(b);
            }
        }
    }

    /// A record: key, value, headers.
    pub type Rec<'a> = (
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        &'a [(&'a str, &'a [u8])],
    );

    /// An uncompressed CreateTime batch at `base_offset`, record i at `base_ts + i`.
    pub fn batch(base_offset: i64, base_ts: i64, recs: &[Rec<'_>], attributes: i16) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, (k, v, hs)) in recs.iter().enumerate() {
            let mut body = vec![0u8];
            put_varint(&mut body, i as i64);
            put_varint(&mut body, i as i64);
            put_bytes(&mut body, *k);
            put_bytes(&mut body, *v);
            put_varint(&mut body, hs.len() as i64);
            for (hk, hv) in hs.iter() {
                put_bytes(&mut body, Some(hk.as_bytes()));
                put_bytes(&mut body, Some(hv));
            }
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let n = recs.len() as i32;
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
        b.extend_from_slice(&(base_ts + i64::from(n) - 1).to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::testing::batch;
    use super::*;

    #[test]
    fn decodes_keys_values_headers_and_skips_below_from() {
        let mut seg = batch(
            10,
            1_000,
            &[
                (Some(b"k0"), Some(b"v0"), &[("h", b"x")]),
                (None, Some(b"v1"), &[]),
                (Some(b"k2"), None, &[("a", b""), ("b", b"2")]),
            ],
            0,
        );
        seg.extend(batch(13, 2_000, &[(Some(b"k3"), Some(b"v3"), &[])], 0));
        let rows = decode_segment(&seg, 11).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![11, 12, 13]
        );
        assert_eq!(rows[0].key, None);
        assert_eq!(rows[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(rows[0].timestamp_ms, 1_001);
        assert_eq!(rows[1].value, None);
        assert_eq!(
            rows[1].headers,
            vec![
                ("a".into(), Some(vec![])),
                ("b".into(), Some(b"2".to_vec()))
            ]
        );
        assert_eq!(rows[2].timestamp_ms, 2_000);
    }

    #[test]
    fn control_batches_are_skipped_and_log_append_time_uses_max_timestamp() {
        let mut seg = batch(0, 5, &[(None, Some(b"m"), &[])], record::CONTROL_BIT);
        seg.extend(batch(
            1,
            7,
            &[(None, Some(b"a"), &[]), (None, Some(b"b"), &[])],
            record::TIMESTAMP_TYPE_BIT,
        ));
        let rows = decode_segment(&seg, 0).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows
            .iter()
            .all(|r| r.log_append_time && r.timestamp_ms == 8));
    }

    fn with_producer(mut b: Vec<u8>, producer_id: i64) -> Vec<u8> {
        b[43..51].copy_from_slice(&producer_id.to_be_bytes());
        b
    }

    #[test]
    fn aborted_transactions_are_left_out_until_their_marker() {
        let txn = record::TRANSACTIONAL_BIT;
        let marker = record::TRANSACTIONAL_BIT | record::CONTROL_BIT;
        let abort: &[u8] = &[0, 0, 0, 0];
        let commit: &[u8] = &[0, 0, 0, 1];
        // Producer 7 aborts 0-1 (marker at 2), producer 8 commits 3 (marker at 4), then
        // producer 7 writes 5 in a new transaction whose marker is not in these bytes.
        let mut seg = with_producer(
            batch(
                0,
                1,
                &[(None, Some(b"a0"), &[]), (None, Some(b"a1"), &[])],
                txn,
            ),
            7,
        );
        seg.extend(with_producer(
            batch(2, 1, &[(Some(abort), None, &[])], marker),
            7,
        ));
        seg.extend(with_producer(
            batch(3, 1, &[(None, Some(b"c3"), &[])], txn),
            8,
        ));
        seg.extend(with_producer(
            batch(4, 1, &[(Some(commit), None, &[])], marker),
            8,
        ));
        seg.extend(with_producer(
            batch(5, 1, &[(None, Some(b"n5"), &[])], txn),
            7,
        ));
        seg.extend(batch(6, 1, &[(None, Some(b"p6"), &[])], 0));
        let offsets = |aborted: &[AbortedTxn]| {
            decode_committed(&seg, 0, aborted)
                .unwrap()
                .iter()
                .map(|r| r.offset)
                .collect::<Vec<_>>()
        };
        assert_eq!(offsets(&[]), vec![0, 1, 3, 5, 6]);
        let t = |first_offset, producer_id| AbortedTxn {
            first_offset,
            producer_id,
        };
        assert_eq!(offsets(&[t(0, 7)]), vec![3, 5, 6]);
        // The second transaction of producer 7 aborts too (its marker comes later).
        assert_eq!(offsets(&[t(5, 7), t(0, 7)]), vec![3, 6]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut seg = batch(0, 5, &[(None, Some(b"abc"), &[])], 0);
        let n = seg.len();
        seg[n - 5] = 0x7e; // value length 63: past the end
        assert!(matches!(
            decode_segment(&seg, 0),
            Err(DecodeError::Record { offset: 0, .. })
        ));
        // A torn tail is not a batch: nothing to decode.
        assert_eq!(decode_segment(&seg[..30], 0), Ok(vec![]));
        let bad_codec = batch(0, 5, &[(None, Some(b"x"), &[])], 4);
        assert!(matches!(
            decode_segment(&bad_codec, 0),
            Err(DecodeError::Codec { .. })
        ));
    }
}
