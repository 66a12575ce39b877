//! A topic's `compression.type`: the codec its batches are stored with, whatever the
//! producer sent (`producer`, the default, keeps the producer's choice).
//!
//! As Kafka's `LogValidator` does, a leader rewrites each batch whose codec differs
//! from the topic's: the records section is decompressed and compressed again with the
//! topic's codec. The records themselves (offset and timestamp deltas, keys, values,
//! headers) are copied byte for byte, so the batch keeps its offsets, timestamps,
//! producer id, epoch and sequence; only its codec bits, length and CRC change.
//! Control batches (transaction markers) are never compressed and stay as they are.
//!
//! A batch's CRC is checked before it is rewritten: a rewrite computes a fresh CRC, so
//! without the check a batch damaged on the wire would be stored as if it were sound.

use crate::cleaner::{batch, compression};
use crate::record::{self, BatchHeader, RecordError, HEADER_LEN};

/// The codec id (the batch attributes' low bits) of a `compression.type` value;
/// `None` for `producer` (keep what the producer sent) or an unknown name.
pub fn codec_of(compression_type: &str) -> Option<i16> {
    match compression_type {
        "uncompressed" => Some(0),
        "gzip" => Some(1),
        "snappy" => Some(2),
        "lz4" => Some(3),
        "zstd" => Some(4),
        _ => None,
    }
}

/// `records` (the batches of one partition in a produce request) with every data batch
/// stored under `codec`; `None` when no batch needs rewriting (the common case, no copy).
/// Malformed framing is left for the append's validation to report; a batch whose CRC
/// does not match or whose records do not decompress is `Corrupt`.
pub fn recompress(records: &[u8], codec: i16) -> Result<Option<Vec<u8>>, RecordError> {
    if !record::whole_batches(records).any(|(_, h, _)| rewrites(&h, codec)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut end = 0;
    for (pos, h, bytes) in record::whole_batches(records) {
        if rewrites(&h, codec) {
            out.extend_from_slice(&rewrite(&h, bytes, codec, pos)?);
        } else {
            out.extend_from_slice(bytes);
        }
        end = pos + bytes.len();
    }
    // Past the whole batches: copied as sent, for validation to name the problem.
    out.extend_from_slice(&records[end..]);
    Ok(Some(out))
}

fn rewrites(h: &BatchHeader, codec: i16) -> bool {
    h.magic == 2
        && h.attributes & record::CONTROL_BIT == 0
        && h.attributes & record::COMPRESSION_MASK != codec
}

fn rewrite(
    h: &BatchHeader,
    bytes: &[u8],
    codec: i16,
    position: usize,
) -> Result<Vec<u8>, RecordError> {
    let corrupt = |reason: String| RecordError::Corrupt { position, reason };
    if record::compute_crc(bytes) != h.crc {
        return Err(corrupt("CRC mismatch".into()));
    }
    let section = &bytes[HEADER_LEN..];
    let from = h.attributes & record::COMPRESSION_MASK;
    let plain = if from == 0 {
        section.to_vec()
    } else {
        compression::decompress(from, section).map_err(&corrupt)?
    };
    let stored = if codec == 0 {
        plain
    } else {
        compression::compress(codec, &plain).map_err(&corrupt)?
    };
    let attributes = (h.attributes & !record::COMPRESSION_MASK) | codec;
    Ok(batch::encode(
        h,
        attributes,
        h.base_timestamp,
        h.max_timestamp,
        h.records_count,
        &stored,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn batch(n: usize, c: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: 10 + i as i32,
                timestamp: 1_000 + i as i64,
                key: Some(format!("k{i}").into_bytes().into()),
                value: Some(vec![b'v'; 100 + i].into()),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut out = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: c,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out.to_vec()
    }

    fn decoded(b: &[u8]) -> Vec<Record> {
        let mut buf = bytes::Bytes::copy_from_slice(b);
        RecordBatchDecoder::decode(&mut buf).unwrap().records
    }

    #[test]
    fn every_codec_pair_keeps_the_records_and_sets_the_codec() {
        let codecs = [
            (Compression::None, 0),
            (Compression::Gzip, 1),
            (Compression::Snappy, 2),
            (Compression::Lz4, 3),
            (Compression::Zstd, 4),
        ];
        for (from, from_id) in codecs {
            let input = batch(20, from);
            for (_, to) in codecs {
                let out = recompress(&input, to).unwrap();
                if from_id == to {
                    assert!(out.is_none(), "{from_id} -> {to} rewrote an equal codec");
                    continue;
                }
                let out = out.unwrap();
                let h = BatchHeader::parse(&out).unwrap();
                assert_eq!(h.attributes & record::COMPRESSION_MASK, to);
                assert_eq!(record::compute_crc(&out), h.crc);
                let (before, after) = (decoded(&input), decoded(&out));
                assert_eq!(before, after, "{from_id} -> {to}");
                assert_eq!((h.producer_id, h.base_sequence), (7, 10));
                record::validate_batches(&out, usize::MAX).unwrap();
            }
        }
    }

    #[test]
    fn a_damaged_batch_is_refused_not_given_a_fresh_crc() {
        let mut input = batch(5, Compression::None);
        let last = input.len() - 1;
        input[last] ^= 0xff;
        let err = recompress(&input, 4).unwrap_err();
        assert!(err.is_corrupt(), "{err}");
    }

    #[test]
    fn control_batches_and_producer_codec_are_left_alone() {
        assert_eq!(codec_of("producer"), None);
        let mut input = batch(1, Compression::None);
        // Mark it a control batch (attribute bit 5) with its CRC recomputed.
        input[22] |= record::CONTROL_BIT as u8;
        let crc = record::compute_crc(&input);
        input[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(recompress(&input, 4).unwrap().is_none());
    }

    #[test]
    fn several_batches_are_each_rewritten() {
        let mut input = batch(3, Compression::Gzip);
        input.extend_from_slice(&batch(4, Compression::None));
        let out = recompress(&input, 3).unwrap().unwrap();
        let infos = record::validate_batches(&out, usize::MAX).unwrap();
        assert_eq!(infos.len(), 2);
        assert!(infos.iter().all(|i| i.compression() == 3));
    }
}
