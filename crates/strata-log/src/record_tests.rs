//! Unit and property tests of the record-batch v2 view in `record.rs`: kept
//! apart so the parser itself stays short to read.

use super::testing::batch;
use super::*;
use proptest::prelude::*;

#[test]
fn valid_batches_round_trip() {
    let mut buf = batch(0, 1000, &[b"a", b"bb", b"ccc"]);
    buf.extend(batch(3, 2000, &[b"d"]));
    let infos = validate_batches(&buf, 1 << 20).unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].records_count, 3);
    assert_eq!(infos[0].last_offset(), 2);
    assert_eq!(infos[0].max_timestamp, 1002);
    assert_eq!(infos[1].position, infos[0].len);
    assert_eq!(infos[1].base_timestamp, 2000);
    assert_eq!(infos[1].range().end, buf.len());
}

#[test]
fn rejects_too_large_wrong_magic_and_trailing_bytes() {
    let buf = batch(0, 0, &[&[7u8; 100]]);
    let err = validate_batches(&buf, 50).unwrap_err();
    assert!(matches!(err, RecordError::TooLarge { size, max: 50 } if size == buf.len()));

    let mut bad_magic = buf.clone();
    bad_magic[MAGIC_AT] = 1;
    assert!(validate_batches(&bad_magic, 1 << 20)
        .unwrap_err()
        .is_invalid());

    let mut trailing = buf.clone();
    trailing.extend_from_slice(&[0; 5]);
    assert!(validate_batches(&trailing, 1 << 20)
        .unwrap_err()
        .is_corrupt());
    assert!(validate_batches(&[], 1 << 20).unwrap_err().is_invalid());
}

#[test]
fn count_mismatch_is_invalid_even_with_good_crc() {
    let mut buf = batch(0, 0, &[b"a", b"b"]);
    buf[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&3i32.to_be_bytes());
    buf[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&2i32.to_be_bytes());
    let crc = compute_crc(&buf);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    let err = validate_batches(&buf, 1 << 20).unwrap_err();
    assert!(err.is_invalid(), "{err}");
}

#[test]
fn rewrites_keep_batch_valid() {
    let mut buf = batch(0, 5, &[b"a", b"b"]);
    set_base_offset(&mut buf, 42);
    set_partition_leader_epoch(&mut buf, 7);
    set_log_append_time(&mut buf, 99_000);
    let info = validate_batches(&buf, 1 << 20).unwrap()[0];
    assert_eq!(info.base_offset, 42);
    assert!(info.is_log_append_time());
    assert_eq!(info.max_timestamp, 99_000);
    assert_eq!(info.base_timestamp, 5);
    assert_eq!(BatchHeader::parse(&buf).unwrap().partition_leader_epoch, 7);
}

fn arb_batches() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5),
        1..4,
    )
    .prop_map(|batches| {
        let mut out = Vec::new();
        for (i, values) in batches.iter().enumerate() {
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            out.extend(batch(i as i64 * 10, i as i64, &refs));
        }
        out
    })
}

proptest! {
    #[test]
    fn random_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = validate_batches(&buf, 1 << 20);
    }

    #[test]
    fn built_batches_validate(buf in arb_batches()) {
        let infos = validate_batches(&buf, 1 << 20).unwrap();
        let total: usize = infos.iter().map(|i| i.len).sum();
        prop_assert_eq!(total, buf.len());
    }

    #[test]
    fn truncation_is_rejected(buf in arb_batches(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(buf.len());
        let mut boundary = 0;
        while boundary < cut {
            boundary += batch_size_at(&buf[boundary..]).unwrap();
        }
        let result = validate_batches(&buf[..cut], 1 << 20);
        // A cut at a batch boundary leaves a valid, shorter buffer.
        prop_assert_eq!(result.is_ok(), cut > 0 && boundary == cut);
    }

    #[test]
    fn flipped_crc_covered_byte_is_corrupt(buf in arb_batches(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        // Flip a byte covered by the first batch's CRC (attributes..end).
        let first = batch_size_at(&buf).unwrap();
        let at = ATTRIBUTES_AT + at.index(first - ATTRIBUTES_AT);
        let mut bad = buf.clone();
        bad[at] ^= 1 << bit;
        let err = validate_batches(&bad, 1 << 20).unwrap_err();
        prop_assert!(err.is_corrupt(), "{}", err);
    }

    #[test]
    fn any_flip_is_rejected_or_harmless(buf in arb_batches(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let at = at.index(buf.len());
        let mut bad = buf.clone();
        bad[at] ^= 1 << bit;
        // Bytes outside the CRC (base offset, leader epoch) may change freely;
        // everything else must be caught, and nothing may panic.
        let _ = validate_batches(&bad, 1 << 20);
    }
}
