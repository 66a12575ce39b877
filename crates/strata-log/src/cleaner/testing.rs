//! Test helpers: keyed batches built, and logs read back, with an independent
//! Kafka codec (the `kafka-protocol` crate), so the cleaner's own decoding and
//! encoding are checked against another implementation.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};

use crate::record::{self, BatchHeader};
use crate::Log;

/// A record as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What a record to append holds: key, value (None = tombstone), timestamp.
pub type Input<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

pub fn codec(n: u8) -> Compression {
    match n % 5 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        _ => Compression::Zstd,
    }
}

/// One v2 batch of `records` (offsets from 0; the log assigns them), each
/// with a header `h` = its key, compressed with `compression`, from producer
/// `(id, epoch, base sequence)` if given.
pub fn keyed_batch(
    records: &[Input<'_>],
    compression: Compression,
    producer: Option<(i64, i16, i32)>,
) -> Vec<u8> {
    let (producer_id, producer_epoch, base_seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<KRecord> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, ts))| {
            let mut headers = IndexMap::new();
            headers.insert(
                StrBytes::from_static_str("h"),
                key.map(Bytes::copy_from_slice),
            );
            KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if base_seq < 0 {
                    -1
                } else {
                    base_seq + i as i32
                },
                timestamp: *ts,
                key: key.map(Bytes::copy_from_slice),
                value: value.map(Bytes::copy_from_slice),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

/// Every batch of `log` (validated as recovery would), read batch by batch
/// from the log start, with the records each holds, decoded by kafka-protocol.
pub fn read_batches(log: &Log) -> Vec<(BatchHeader, Vec<Rec>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let bytes = log.read(offset, 1 << 20, true).unwrap();
        if bytes.is_empty() {
            break;
        }
        let infos = record::validate_stored_batches(&bytes).unwrap();
        for info in infos {
            let batch = &bytes[info.range()];
            let header = BatchHeader::parse(batch).unwrap();
            if header.last_offset() < offset {
                continue;
            }
            assert!(
                header.base_offset >= offset || out.is_empty(),
                "offsets go back at {offset}"
            );
            out.push((header, decode(batch)));
            offset = header.last_offset() + 1;
        }
    }
    out
}

/// The records of one batch, decoded by kafka-protocol.
pub fn decode(batch: &[u8]) -> Vec<Rec> {
    let mut bytes = Bytes::copy_from_slice(batch);
    let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| Rec {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.map(|k| k.to_vec()),
            value: r.value.map(|v| v.to_vec()),
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.map(|v| v.to_vec())))
                .collect(),
        })
        .collect()
}

/// Every record of `log`, in offset order (strictly increasing: checked).
pub fn read_records(log: &Log) -> Vec<Rec> {
    let records: Vec<Rec> = read_batches(log).into_iter().flat_map(|(_, r)| r).collect();
    for pair in records.windows(2) {
        assert!(
            pair[0].offset < pair[1].offset,
            "offsets not increasing: {pair:?}"
        );
    }
    records
}

/// Names of the files of `dir`, sorted.
pub fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
