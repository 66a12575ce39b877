//! Tests of what only a leader's append checks: records without a key on a
//! compacted log (`LogConfig::compact`), plain and compressed, and the
//! delete-horizon attribute, which only the log cleaner may set.

use crate::cleaner::testing::{codec, keyed_batch, Input};
use crate::log_tests::small_config;
use crate::record::testing::batch;
use crate::record::{self, RecordError, CONTROL_BIT, DELETE_HORIZON_BIT};
use crate::{Log, LogConfig, LogError};

fn compacted() -> LogConfig {
    LogConfig {
        compact: true,
        ..small_config()
    }
}

fn open(dir: &std::path::Path, config: LogConfig) -> Log {
    Log::open(dir.to_path_buf(), config, 0).unwrap()
}

/// One batch of `records` compressed with codec `c`, from an idempotent
/// producer at sequence `seq` (the encoder keeps records in one batch only if
/// their sequences follow their offsets).
fn one_batch(records: &[Input<'_>], c: u8, seq: i32) -> Vec<u8> {
    let b = keyed_batch(records, codec(c), Some((9, 0, seq)));
    assert_eq!(record::validate_batches(&b, usize::MAX).unwrap().len(), 1);
    b
}

/// `b` with `bits` set in its attributes and the CRC recomputed.
fn with_attributes(mut b: Vec<u8>, bits: i16) -> Vec<u8> {
    let attributes = i16::from_be_bytes([b[21], b[22]]) | bits;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = record::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn record_error(e: LogError) -> RecordError {
    e.record_error().cloned().unwrap_or_else(|| panic!("{e}"))
}

#[test]
fn a_compacted_log_refuses_records_without_a_key_whatever_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compacted());
    let (k, v) = (Some(b"k".as_slice()), Some(b"v".as_slice()));
    let keyed: Input<'_> = (k, v, 1);
    let tombstone: Input<'_> = (k, None, 2);
    let keyless: Input<'_> = (None, v, 3);
    for c in 0..5u8 {
        let seq = 2 * i32::from(c);
        // The second record of the second batch has no key: nothing of the
        // request is written, and the error names that batch and record.
        let good = one_batch(&[keyed, tombstone], c, seq);
        let mut buf = good.clone();
        buf.extend(one_batch(&[keyed, keyless, keyed], c, seq + 2));
        let err = log.append(&buf, 0).unwrap_err();
        let text = err.to_string();
        let e = record_error(err);
        assert_eq!(
            e,
            RecordError::MissingKey {
                position: good.len(),
                record: 1
            },
            "codec {c}"
        );
        assert!(
            text.contains("compacted topic") && text.contains(&format!("byte {}", good.len())),
            "{text}"
        );
        assert_eq!(log.log_end_offset(), 2 * i64::from(c));
        // Keys everywhere (a tombstone has one) is fine.
        log.append_with_leader_epoch(&good, 1, 0).unwrap();
    }
    // A follower takes what its leader accepted; a log without compaction,
    // or this one once its topic stops compacting, takes it too.
    let keyless_batch = keyed_batch(&[keyless], codec(1), None);
    assert!(record_error(log.append(&keyless_batch, 0).unwrap_err()).is_missing_key());
    let end = log.log_end_offset();
    let mut replicated = keyless_batch.clone();
    record::set_base_offset(&mut replicated, end);
    log.append_as_follower(&replicated, 0).unwrap();
    log.update_config(small_config());
    log.append(&keyless_batch, 0).unwrap();
    log.update_config(compacted());
    assert!(log.append(&keyless_batch, 0).is_err());
    let plain = tempfile::tempdir().unwrap();
    open(plain.path(), small_config())
        .append(&keyless_batch, 0)
        .unwrap();
}

#[test]
fn only_a_compacted_log_decompresses_and_walks_compressed_records() {
    // A gzip batch whose compressed bytes are damaged (CRC recomputed, as a
    // broken producer would send it): the framing is intact, so a log that
    // does not need the keys takes it as it always did, and a compacted one
    // says the records are corrupt.
    let mut b = one_batch(&[(Some(b"k".as_slice()), Some(&[7u8; 300]), 0)], 1, 0);
    let len = b.len();
    b[len - 12..len - 4].fill(0xff);
    let crc = record::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), small_config()).append(&b, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = record_error(open(dir.path(), compacted()).append(&b, 0).unwrap_err());
    assert!(e.is_corrupt(), "{e}");
}

#[test]
fn control_batches_need_no_keys_and_malformed_records_are_invalid() {
    let none: record::Decompress<'_> = &|_, _| Err("not compressed".into());
    // `record::testing::batch` writes records with null keys.
    let keyless = batch(0, 0, &[b"a", b"b"]);
    let err = record::validate_produced(&keyless, usize::MAX, Some(none)).unwrap_err();
    assert_eq!(
        err,
        RecordError::MissingKey {
            position: 0,
            record: 0
        }
    );
    assert!(record::validate_produced(&keyless, usize::MAX, None).is_ok());
    let control = with_attributes(keyless.clone(), CONTROL_BIT);
    assert!(record::validate_produced(&control, usize::MAX, Some(none)).is_ok());
    // A record too short to hold its key length (one byte: attributes only),
    // lengths otherwise consistent.
    let mut short = batch(0, 0, &[b""]);
    short.truncate(61);
    short.extend_from_slice(&[2, 0]); // length 1 (zigzag), attributes
    short[8..12].copy_from_slice(&(49 + 2i32).to_be_bytes());
    let crc = record::compute_crc(&short);
    short[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(record::validate_batches(&short, usize::MAX).is_ok());
    let err = record::validate_produced(&short, usize::MAX, Some(none)).unwrap_err();
    assert!(err.is_invalid(), "{err}");
}

#[test]
fn a_client_set_delete_horizon_is_refused_on_every_topic() {
    let b = with_attributes(
        one_batch(&[(Some(b"k".as_slice()), None, 0)], 0, 0),
        DELETE_HORIZON_BIT,
    );
    for config in [small_config(), compacted()] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config);
        let e = record_error(log.append(&b, 0).unwrap_err());
        assert!(
            e.is_invalid() && e.to_string().contains("delete horizon"),
            "{e}"
        );
        assert_eq!(log.log_end_offset(), 0);
        // Replicated batches keep it: the leader's cleaner set it.
        log.append_as_follower(&b, 0).unwrap();
        assert_eq!(log.log_end_offset(), 1);
    }
}
