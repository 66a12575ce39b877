//! `message.timestamp.difference.max.ms`: a leader refuses a produced batch holding a
//! CreateTime record whose timestamp is further than that from its clock, as Kafka's
//! LogValidator does (INVALID_TIMESTAMP). The check decodes records (decompressing when
//! needed), so it runs only when the setting is below its default, `i64::MAX`.
//! LogAppendTime topics are not checked: the broker's clock replaces the timestamps.

use crate::cleaner::batch;
use crate::record::{self, RecordError};

/// Checks every record of every data batch in `records` against `now` ± `max_diff`.
/// Framing problems are left to the append's validation.
pub fn check(records: &[u8], now: i64, max_diff: i64) -> Result<(), RecordError> {
    if max_diff == i64::MAX {
        return Ok(());
    }
    for (pos, h, bytes) in record::whole_batches(records) {
        if h.attributes & (record::CONTROL_BIT | record::TIMESTAMP_TYPE_BIT) == 0 {
            check_batch(bytes, pos, now, max_diff)?;
        }
    }
    Ok(())
}

fn check_batch(bytes: &[u8], position: usize, now: i64, max_diff: i64) -> Result<(), RecordError> {
    let corrupt = |reason: String| RecordError::Corrupt { position, reason };
    let decoded = batch::decode(bytes).map_err(corrupt)?;
    let records = decoded
        .records()
        .ok_or_else(|| corrupt("records do not decode".into()))?;
    for (i, r) in records.iter().enumerate() {
        // -1 is Kafka's NO_TIMESTAMP, which is never checked.
        if r.timestamp != -1 && r.timestamp.abs_diff(now) > max_diff as u64 {
            return Err(RecordError::InvalidTimestamp {
                position,
                record: i as i32,
                timestamp: r.timestamp,
                now,
                max_diff,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(timestamps: &[i64], c: Compression) -> Vec<u8> {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, &ts)| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: ts,
                key: None,
                value: Some(vec![1u8; 10].into()),
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

    #[test]
    fn a_record_outside_the_window_is_refused_in_any_codec() {
        let now = 1_000_000;
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert!(check(&batch(&[now - 500, now + 500], c), now, 500).is_ok());
            let err = check(&batch(&[now, now - 501, now], c), now, 500).unwrap_err();
            assert!(
                matches!(err, RecordError::InvalidTimestamp { timestamp, .. } if timestamp == now - 501),
                "{err}"
            );
            // The second of two batches is checked too.
            let mut two = batch(&[now], c);
            two.extend_from_slice(&batch(&[now + 10_000], c));
            assert!(check(&two, now, 500).is_err());
        }
    }

    #[test]
    fn the_default_checks_nothing() {
        assert!(check(&batch(&[0], Compression::None), i64::MAX / 2, i64::MAX).is_ok());
    }
}
