//! Tests of follower appends that copy a compacted leader: offset gaps,
//! batches with fewer records than their offset span or none, rolls across
//! gaps too wide for one segment, and reads, truncations and reopens of such
//! a follower log; plus the leader-to-follower copy through fetch-sized reads.

use kafka_protocol::records::Compression;
use proptest::prelude::*;

use crate::cleaner::testing::{codec, keyed_batch, read_records, Input};
use crate::cleaner::{CleanOutcome, CleanParams, OffsetMap};
use crate::log_tests::{headers, small_config};
use crate::record::testing::batch;
use crate::record::{self, DELETE_HORIZON_BIT};
use crate::replication_tests::{all_batches, check_indexes, epochs_of, header, leader_batch, open};
use crate::{Log, LogConfig, LogError};

/// Copies `leader` into `follower` as the replica fetcher does: reads of at
/// most `max_bytes` from the follower's log end, appended as they come.
fn copy(leader: &Log, follower: &Log, max_bytes: usize) {
    loop {
        let bytes = leader
            .read(follower.log_end_offset(), max_bytes, true)
            .unwrap();
        if bytes.is_empty() {
            return;
        }
        follower.append_as_follower(&bytes, 0).unwrap();
    }
}

/// A batch as the cleaner may leave it: `n` records (none: only the header of
/// a producer's last batch) in an offset span of `span`, from `base`.
fn sparse_batch(base: i64, epoch: i32, ts: i64, n: usize, span: i32) -> Vec<u8> {
    let mut b = leader_batch(base, epoch, ts, n.max(1), 20);
    if n == 0 {
        b.truncate(record::HEADER_LEN);
        b[8..12].copy_from_slice(&record::MIN_BATCH_LENGTH.to_be_bytes());
        b[57..61].copy_from_slice(&0i32.to_be_bytes());
    }
    b[23..27].copy_from_slice(&(span - 1).to_be_bytes());
    let crc = record::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A leader log with every kind of batch the cleaner leaves: keyed records,
/// tombstones of keys never written again (their batches get a delete
/// horizon), keyless records (removed), compressed batches, and two
/// idempotent producers writing a key that later plain writes supersede
/// (their last batches keep only their headers); then one cleaning pass. The
/// active segment keeps the latest appends.
fn cleaned_leader(dir: &std::path::Path) -> Log {
    let config = LogConfig {
        segment_bytes: 900,
        index_interval_bytes: 100,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = Log::open(dir.to_path_buf(), config, 0).unwrap();
    let mut seq = [0i32; 2];
    for i in 0..150i64 {
        let key = format!("k{}", i % 9);
        let unique = format!("t{i}");
        let value = format!("v{i}");
        let (k, v) = (Some(key.as_bytes()), Some(value.as_bytes()));
        let epoch = (i / 50) as i32;
        let b = match i % 6 {
            0 => keyed_batch(&[(k, v, i)], Compression::None, None),
            1 => keyed_batch(&[(None, v, i)], Compression::None, None),
            2 => keyed_batch(
                &[(Some(unique.as_bytes()), None, i)],
                Compression::None,
                None,
            ),
            3 => {
                let recs: Vec<Input<'_>> =
                    vec![(k, v, i), (Some(b"c".as_slice()), v, i), (k, v, i)];
                // With a producer, so that the encoder keeps them in one batch.
                let producer = Some((60, 0, (i / 6) as i32 * 3));
                keyed_batch(&recs, codec(1 + (i / 6) as u8 % 4), producer)
            }
            _ if i >= 100 => keyed_batch(&[(Some(b"p".as_slice()), v, i)], Compression::None, None),
            _ => {
                let p = (i % 2) as usize;
                seq[p] += 1;
                let producer = Some((40 + p as i64, 0, seq[p] - 1));
                keyed_batch(
                    &[(Some(b"p".as_slice()), v, i)],
                    Compression::None,
                    producer,
                )
            }
        };
        log.append_with_leader_epoch(&b, epoch, 0).unwrap();
    }
    let mut map = OffsetMap::with_memory(1 << 16);
    let params = CleanParams::at(10_000);
    let outcome = log.clean(&mut map, &params, &|_| {}).unwrap();
    assert!(matches!(outcome, CleanOutcome::Cleaned(_)), "{outcome:?}");
    log
}

/// What a cleaned leader must hold for the copy tests to mean anything.
fn assert_compacted(batches: &[Vec<u8>]) {
    let hs: Vec<_> = batches.iter().map(|b| header(b)).collect();
    assert!(
        hs.windows(2)
            .any(|p| p[1].base_offset > p[0].last_offset() + 1),
        "no gap"
    );
    assert!(hs.iter().any(|h| h.records_count == 0), "no emptied batch");
    assert!(
        hs.iter()
            .any(|h| h.records_count > 0
                && i64::from(h.records_count) <= i64::from(h.last_offset_delta)),
        "no partly emptied batch"
    );
    assert!(
        hs.iter().any(|h| h.attributes & DELETE_HORIZON_BIT != 0),
        "no delete horizon"
    );
    assert!(
        hs.iter()
            .any(|h| h.attributes & record::COMPRESSION_MASK != 0),
        "not compressed"
    );
}

fn follower_config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        ..small_config()
    }
}

#[test]
fn a_follower_copies_a_cleaned_leader_byte_for_byte_from_offset_zero() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = cleaned_leader(leader_dir.path());
    let expected = all_batches(&leader);
    assert_compacted(&expected);
    let dir = tempfile::tempdir().unwrap();
    let follower = open(dir.path(), follower_config());
    copy(&leader, &follower, 500);
    assert_eq!(all_batches(&follower), expected);
    assert_eq!(read_records(&follower), read_records(&leader));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.epoch_entries(), epochs_of(&expected));
    check_indexes(dir.path(), &follower);
    // The same after a crash (recovery re-validates the gaps and emptied
    // batches) and after a clean reopen.
    drop(follower);
    let follower = open(dir.path(), follower_config());
    assert_eq!(all_batches(&follower), expected);
    check_indexes(dir.path(), &follower);
    follower.close().unwrap();
    drop(follower);
    let follower = open(dir.path(), follower_config());
    assert_eq!(all_batches(&follower), expected);
    assert_eq!(follower.recovery_bytes_scanned(), 0);
    // Producer state came from the headers: a retry of producer 40's last
    // batch, emptied on the leader, is still a duplicate once the follower leads.
    let last = expected
        .iter()
        .map(|b| header(b))
        .rfind(|h| h.producer_id == 40)
        .unwrap();
    let retry = keyed_batch(
        &[(Some(b"p".as_slice()), Some(b"again".as_slice()), 0)],
        Compression::None,
        Some((40, 0, last.base_sequence)),
    );
    assert!(follower.append(&retry, 0).unwrap().duplicate);
}

#[test]
fn a_follower_continues_from_the_middle_of_a_cleaned_leader() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = cleaned_leader(leader_dir.path());
    let expected = all_batches(&leader);
    // Where a follower may stand: at each batch, and in each gap (its first
    // offset and one further in), never inside a batch's span.
    let mut starts = Vec::new();
    for pair in expected.windows(2) {
        let (a, b) = (header(&pair[0]), header(&pair[1]));
        starts.push(a.base_offset);
        if b.base_offset > a.last_offset() + 1 {
            starts.extend([a.last_offset() + 1, b.base_offset - 1]);
        }
    }
    for &start in starts.iter().step_by(3) {
        let dir = tempfile::tempdir().unwrap();
        let follower = open(dir.path(), follower_config());
        // As a follower restarted at the leader's log start (or local log
        // start of a tiered partition).
        follower.truncate_fully_and_start_at(start).unwrap();
        copy(&leader, &follower, 300);
        let tail: Vec<_> = expected
            .iter()
            .filter(|b| header(b).base_offset >= start)
            .cloned()
            .collect();
        assert_eq!(all_batches(&follower), tail, "from {start}");
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    }
}

#[test]
fn a_follower_that_copied_a_prefix_before_the_cleaning_continues_in_a_gap() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = Log::open(leader_dir.path().to_path_buf(), small_config(), 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let follower = open(dir.path(), follower_config());
    let append = |k: &[u8], v: &[u8]| {
        leader
            .append_with_leader_epoch(
                &keyed_batch(&[(Some(k), Some(v), 0)], Compression::None, None),
                1,
                0,
            )
            .unwrap()
    };
    for i in 0..30u8 {
        append(b"same", &[i; 50]);
    }
    // The follower has offsets 0..20; the leader then overwrites the key and
    // cleans, so offsets 20..30 are a gap when the follower asks for 20.
    while follower.log_end_offset() < 20 {
        // One batch per read.
        let bytes = leader.read(follower.log_end_offset(), 1, true).unwrap();
        follower.append_as_follower(&bytes, 0).unwrap();
    }
    assert_eq!(follower.log_end_offset(), 20);
    for i in 0..30u8 {
        append(b"other", &[i; 50]);
    }
    let mut map = OffsetMap::with_memory(1 << 16);
    leader
        .clean(&mut map, &CleanParams::at(0), &|_| {})
        .unwrap();
    let leader_batches = all_batches(&leader);
    assert!(
        header(&leader_batches[0]).base_offset > 20,
        "offsets 20.. were cleaned away"
    );
    copy(&leader, &follower, 400);
    let got = all_batches(&follower);
    assert_eq!(got.len(), 20 + leader_batches.len());
    assert_eq!(&got[20..], &leader_batches[..]);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
}

#[test]
fn a_gap_too_wide_for_one_segment_starts_a_segment_at_the_batch() {
    const FAR: i64 = 5_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let near = leader_batch(0, 0, 0, 3, 10);
    let far = leader_batch(FAR, 0, 1, 2, 10);
    log.append_as_follower(&near, 0).unwrap();
    log.append_as_follower(&far, 0).unwrap();
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, vec![0, FAR]);
    assert_eq!(log.log_end_offset(), FAR + 2);
    assert_eq!(log.read(3, 1 << 20, true).unwrap().as_ref(), far.as_slice());
    // An empty active segment (after a full truncation) cannot take it
    // either: it stays behind, empty, and the batch starts a new segment.
    log.truncate_fully_and_start_at(10).unwrap();
    let farther = leader_batch(10 + FAR, 0, 2, 1, 10);
    log.append_as_follower(&farther, 0).unwrap();
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, vec![10, 10 + FAR]);
    // After a crash (recovery scans both) and after a clean close.
    for clean in [false, true] {
        if clean {
            log.close().unwrap();
        }
        drop(log);
        log = open(dir.path(), small_config());
        assert_eq!(all_batches(&log), vec![farther.clone()]);
        assert_eq!(log.log_end_offset(), 11 + FAR);
        check_indexes(dir.path(), &log);
    }
}

#[test]
fn follower_reads_equal_leader_reads_through_fetch_sized_chunks() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), small_config());
    let follower = open(follower_dir.path(), follower_config());
    for i in 0..40 {
        leader
            .append_with_leader_epoch(
                &batch(0, i, &[&[i as u8; 70][..], b"y"]),
                (i / 10) as i32,
                0,
            )
            .unwrap();
    }
    copy(&leader, &follower, 500);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(all_batches(&follower), all_batches(&leader));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        headers(&follower.read(0, 1 << 20, false).unwrap())[0].partition_leader_epoch,
        0
    );
}

/// One batch of a random follower append: the gap before it (sometimes wider
/// than a segment can index), its records (0 = emptied) and extra offsets
/// its records no longer fill.
type Spec = (i64, usize, i32);

#[derive(Clone, Debug)]
enum Op {
    Follow { batches: Vec<Spec>, bump: i32 },
    Truncate(prop::sample::Index),
    TruncateFully(i64),
    Reopen { clean: bool },
    Read(prop::sample::Index, prop::sample::Index),
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    let gap = prop_oneof![6 => 0i64..4, 1 => Just(5_000_000_000i64)];
    (gap, 0usize..4, 0i32..3)
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::collection::vec(arb_spec(), 1..5), 0i32..2)
            .prop_map(|(batches, bump)| Op::Follow { batches, bump }),
        2 => any::<prop::sample::Index>().prop_map(Op::Truncate),
        1 => (0i64..20).prop_map(Op::TruncateFully),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        3 => (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(at, hw)| Op::Read(at, hw)),
    ]
}

fn last_end(model: &[Vec<u8>], start: i64) -> i64 {
    model.last().map_or(start, |b| header(b).last_offset() + 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random follower appends of gapped, emptied and partly emptied batches,
    /// truncations (into gaps too), full truncations, reopens and reads
    /// against a model: the log holds exactly the model's batches, its end is
    /// past the last one and never above where it was cut, a read returns the
    /// batches from the first one reaching its offset (up to a segment's end),
    /// below the bound it was given, and the indexes and epoch cache match the
    /// batches.
    #[test]
    fn gapped_follower_logs_match_a_model(ops in prop::collection::vec(arb_op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        let mut model: Vec<Vec<u8>> = Vec::new();
        let (mut start, mut epoch, mut ts) = (0i64, 0i32, 0i64);
        for op in ops {
            let end = log.log_end_offset();
            match op {
                Op::Follow { batches, bump } => {
                    epoch += bump;
                    let mut next = end;
                    let mut buf = Vec::new();
                    for (gap, n, extra) in batches {
                        ts += 3;
                        let b = sparse_batch(next + gap, epoch, ts % 40, n, n.max(1) as i32 + extra);
                        next = header(&b).last_offset() + 1;
                        buf.extend_from_slice(&b);
                        model.push(b);
                    }
                    let info = log.append_as_follower(&buf, 0).unwrap();
                    prop_assert_eq!(info.last_offset + 1, next);
                    prop_assert_eq!(log.log_end_offset(), next);
                }
                Op::Truncate(at) => {
                    let offset = start + at.index((end - start + 3) as usize) as i64;
                    model.retain(|b| header(b).last_offset() < offset);
                    let new_end = log.truncate_to(offset).unwrap();
                    prop_assert_eq!(new_end, log.log_end_offset());
                    // Past the batches kept, never above the cut (in a gap
                    // it may stop below it: at the end of a segment).
                    prop_assert!(last_end(&model, start) <= new_end);
                    let cap = if offset >= end { end } else { offset };
                    prop_assert!(new_end <= cap, "{} above {}", new_end, cap);
                }
                Op::TruncateFully(by) => {
                    log.truncate_fully_and_start_at(end + by).unwrap();
                    model.clear();
                    start = end + by;
                }
                Op::Reopen { clean } => {
                    if clean { log.close().unwrap(); }
                    drop(log);
                    log = open(dir.path(), small_config());
                    let now = log.log_end_offset();
                    prop_assert!(last_end(&model, start) <= now && now <= end, "{} after {}", now, end);
                    prop_assert_eq!(log.log_start_offset(), start);
                }
                Op::Read(at, hw) => {
                    let from = log.log_start_offset();
                    let offset = from + at.index((end - from + 1) as usize) as i64;
                    let bound = offset + hw.index(12) as i64;
                    let bytes = log.read_up_to(offset, 1 << 20, true, bound).unwrap();
                    let got: Vec<Vec<u8>> = if bytes.is_empty() {
                        Vec::new()
                    } else {
                        record::validate_stored_batches(&bytes).unwrap().iter().map(|i| bytes[i.range()].to_vec()).collect()
                    };
                    let want: Vec<Vec<u8>> = model
                        .iter()
                        .filter(|_| offset < bound.min(end))
                        .filter(|b| header(b).last_offset() >= offset && header(b).base_offset < bound.min(end))
                        .cloned()
                        .collect();
                    // A read stops at the end of a segment.
                    prop_assert_eq!(got.is_empty(), want.is_empty(), "read at {} below {}", offset, bound);
                    prop_assert!(want.starts_with(&got), "read at {} below {}", offset, bound);
                }
            }
            prop_assert!(log.log_end_offset() >= last_end(&model, start));
            prop_assert_eq!(&all_batches(&log), &model);
            prop_assert_eq!(log.epoch_entries(), epochs_of(&model));
            let max = model.iter().map(|b| header(b).max_timestamp).max();
            let got_max = log.max_timestamp_batch().unwrap().map(|b| header(&b).max_timestamp);
            prop_assert_eq!(got_max, max);
            check_indexes(dir.path(), &log);
        }
    }
}

#[test]
fn batches_below_the_log_end_are_refused_after_a_gap_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    log.append_as_follower(&sparse_batch(5, 0, 0, 1, 4), 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), 9);
    // Inside the last batch's span (its records no longer fill it).
    let err = log
        .append_as_follower(&sparse_batch(7, 0, 0, 1, 1), 0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OffsetsOutOfOrder {
                min: 9,
                got: 7,
                first: true,
                ..
            }
        ),
        "{err}"
    );
}
