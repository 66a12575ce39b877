//! Cleaning passes over transactions: aborted records go, committed ones are
//! compacted like any others, markers go once nothing needs them (after their
//! delete horizon), the `.txnindex` follows (also across a reopen), and
//! nothing at or above the first unstable offset is ever cleaned.

use kafka_protocol::records::Compression;

use super::testing::{keyed_batch, read_batches, read_records, Input};
use super::tests::{clean, open};
use super::{CleanOutcome, CleanParams, CleanStats, OffsetMap};
use crate::record::{self, compute_crc, DELETE_HORIZON_BIT};
use crate::{Log, TxnIndexEntry, TxnMarkerSpec};

/// A transactional batch of keyed records from producer `(pid, 0, seq)`.
fn txn_batch(pid: i64, seq: i32, records: &[Input<'_>]) -> Vec<u8> {
    let mut b = keyed_batch(records, Compression::None, Some((pid, 0, seq)));
    b[21..23].copy_from_slice(&record::TRANSACTIONAL_BIT.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn end_txn(log: &Log, pid: i64, commit: bool) -> i64 {
    let spec = TxnMarkerSpec {
        producer_id: pid,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit,
    };
    log.append_marker(spec, 0, 1_000).unwrap().base_offset
}

fn put(log: &Log, key: &str, value: &str) {
    let b = keyed_batch(
        &[(Some(key.as_bytes()), Some(value.as_bytes()), 1_000)],
        Compression::None,
        None,
    );
    log.append(&b, 1_000).unwrap();
}

/// `n` plain records of fresh keys: new dirty segments for the next pass.
fn filler(log: &Log, tag: &str, n: usize) {
    for i in 0..n {
        put(log, &format!("{tag}{i}"), "filler");
    }
}

fn params(now_ms: i64) -> CleanParams {
    CleanParams {
        delete_retention_ms: 1_000,
        ..CleanParams::at(now_ms)
    }
}

fn pass(log: &Log, now_ms: i64) -> CleanStats {
    let mut map = OffsetMap::with_memory(1 << 20);
    match clean(log, &mut map, &params(now_ms)) {
        CleanOutcome::Cleaned(stats) => stats,
        other => panic!("expected a committed pass, got {other:?}"),
    }
}

/// The offsets of the control batches left, with whether they hold a record
/// and carry a delete horizon.
fn markers(log: &Log) -> Vec<(i64, bool, bool)> {
    read_batches(log)
        .into_iter()
        .filter(|(h, _)| h.attributes & record::CONTROL_BIT != 0)
        .map(|(h, r)| {
            let horizon = h.attributes & DELETE_HORIZON_BIT != 0;
            (h.base_offset, !r.is_empty(), horizon)
        })
        .collect()
}

fn value_of(log: &Log, key: &str) -> Vec<(i64, Option<Vec<u8>>)> {
    read_records(log)
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
        .map(|r| (r.offset, r.value))
        .collect()
}

#[test]
fn aborted_records_go_committed_ones_compact_and_markers_go_after_their_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    put(&log, "a", "plain"); // 0
    log.append(
        &txn_batch(
            1,
            0,
            &[
                (Some(b"a"), Some(b"aborted"), 1_000),
                (Some(b"b"), Some(b"aborted"), 1_000),
            ],
        ),
        1_000,
    )
    .unwrap(); // 1..=2
    log.append(
        &txn_batch(2, 0, &[(Some(b"a"), Some(b"committed"), 1_000)]),
        1_000,
    )
    .unwrap(); // 3
    assert_eq!(end_txn(&log, 1, false), 4);
    assert_eq!(end_txn(&log, 2, true), 5);
    // Both producers write again, so their first batches are not their last.
    log.append(
        &txn_batch(1, 2, &[(Some(b"c"), Some(b"later"), 1_000)]),
        1_000,
    )
    .unwrap(); // 6
    assert_eq!(end_txn(&log, 1, true), 7);
    log.append(
        &txn_batch(2, 1, &[(Some(b"d"), Some(b"later"), 1_000)]),
        1_000,
    )
    .unwrap(); // 8
    assert_eq!(end_txn(&log, 2, true), 9);
    filler(&log, "f", 20);
    let abort = TxnIndexEntry {
        producer_id: 1,
        first_offset: 1,
        last_offset: 4,
        last_stable_offset: 3,
    };
    assert_eq!(log.aborted_txns(0, 100), vec![abort]);

    // Pass 1: the aborted records go, the committed value of `a` supersedes
    // the plain one; every marker still has data of its transaction.
    let s = pass(&log, 10_000);
    assert_eq!(s.aborted_removed, 2);
    assert_eq!(value_of(&log, "a"), vec![(3, Some(b"committed".to_vec()))]);
    assert!(value_of(&log, "b").is_empty());
    assert_eq!(
        markers(&log),
        vec![
            (4, true, false),
            (5, true, false),
            (7, true, false),
            (9, true, false)
        ]
    );
    assert_eq!(log.aborted_txns(0, 100), vec![abort], "its marker is kept");
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.aborted_txns(0, 100), vec![abort]);

    // Pass 2: the ABORT marker has no data left: it gets a horizon and its
    // index entry goes. A plain `a` supersedes the committed one (whose
    // batch is read once more, so its COMMIT marker waits a pass).
    put(&log, "a", "plain again");
    filler(&log, "g", 20);
    let s = pass(&log, 10_000);
    assert_eq!(s.aborted_removed, 0);
    assert!(value_of(&log, "a").iter().all(|(o, _)| *o > 9));
    assert_eq!(
        markers(&log),
        vec![
            (4, true, true),
            (5, true, false),
            (7, true, false),
            (9, true, false)
        ]
    );
    assert_eq!(log.aborted_txns(0, 1_000), vec![]);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.aborted_txns(0, 1_000), vec![], "also after a reopen");

    // Pass 3, before the horizon: the COMMIT marker gets one too.
    filler(&log, "h", 20);
    pass(&log, 10_500);
    assert_eq!(
        markers(&log),
        vec![
            (4, true, true),
            (5, true, true),
            (7, true, false),
            (9, true, false)
        ]
    );

    // Pass 4, after both horizons: both go; the markers of the later
    // transactions, whose data is still there, stay.
    filler(&log, "i", 20);
    let s = pass(&log, 20_000);
    assert_eq!(s.markers_removed, 2);
    assert_eq!(markers(&log), vec![(7, true, false), (9, true, false)]);
    assert_eq!(value_of(&log, "c"), vec![(6, Some(b"later".to_vec()))]);
    assert_eq!(value_of(&log, "d"), vec![(8, Some(b"later".to_vec()))]);
    drop(log);
    let log = open(dir.path());
    assert_eq!(markers(&log), vec![(7, true, false), (9, true, false)]);
}

#[test]
fn nothing_of_an_ongoing_transaction_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(
        &txn_batch(1, 0, &[(Some(b"a"), Some(b"open"), 1_000)]),
        1_000,
    )
    .unwrap(); // 0
    put(&log, "a", "plain"); // 1
    filler(&log, "f", 30);
    let mut map = OffsetMap::with_memory(1 << 20);
    // Even with the high watermark at the log end, the first unstable offset bounds the pass.
    assert_eq!(
        clean(&log, &mut map, &params(10_000)),
        CleanOutcome::NothingToClean
    );
    assert_eq!(value_of(&log, "a").len(), 2);
    end_txn(&log, 1, false); // the transaction is aborted
    filler(&log, "g", 10);
    let s = pass(&log, 10_000);
    assert_eq!(s.aborted_removed, 1);
    assert_eq!(value_of(&log, "a"), vec![(1, Some(b"plain".to_vec()))]);
}

#[test]
fn a_producers_last_aborted_batch_keeps_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(&txn_batch(1, 0, &[(Some(b"a"), Some(b"x"), 1_000)]), 1_000)
        .unwrap(); // 0
    end_txn(&log, 1, false); // 1
    filler(&log, "f", 30);
    let s = pass(&log, 10_000);
    assert_eq!(s.aborted_removed, 1);
    let first = &read_batches(&log)[0];
    assert_eq!((first.0.base_offset, first.0.producer_id), (0, 1));
    assert!(
        first.1.is_empty(),
        "emptied, kept for the producer's sequence"
    );
    // The header is its transaction's: the ABORT marker and entry stay.
    assert_eq!(markers(&log), vec![(1, true, false)]);
    assert_eq!(log.aborted_txns(0, 100).len(), 1);
}

/// A log whose next pass drops an ABORT marker's `.txnindex` entry (an earlier pass
/// removed the transaction's records): deterministic, so two builds are equal.
fn build_for_crash(dir: &std::path::Path) {
    let log = open(dir);
    put(&log, "a", "plain");
    log.append(
        &txn_batch(1, 0, &[(Some(b"a"), Some(b"aborted"), 1_000)]),
        1_000,
    )
    .unwrap();
    end_txn(&log, 1, false);
    log.append(
        &txn_batch(1, 1, &[(Some(b"b"), Some(b"committed"), 1_000)]),
        1_000,
    )
    .unwrap();
    end_txn(&log, 1, true);
    filler(&log, "f", 20);
    pass(&log, 10_000);
    filler(&log, "g", 20);
    log.close().unwrap();
}

type Content = (
    Vec<(i64, bool, bool)>,
    Vec<super::testing::Rec>,
    Vec<TxnIndexEntry>,
);

fn content(dir: &std::path::Path) -> Content {
    let log = open(dir);
    let c = (
        markers(&log),
        read_records(&log),
        log.aborted_txns(0, i64::MAX),
    );
    log.close().unwrap();
    c
}

#[test]
fn a_crash_at_any_step_leaves_the_txnindex_with_its_segments() {
    let reference = tempfile::tempdir().unwrap();
    build_for_crash(reference.path());
    let pre = content(reference.path());
    assert_eq!(pre.2.len(), 1, "the entry is there before");
    {
        let log = open(reference.path());
        pass(&log, 10_000);
        log.close().unwrap();
    }
    let post = content(reference.path());
    assert!(post.2.is_empty(), "and gone after");
    let mut committed = false;
    for step in 0.. {
        let dir = tempfile::tempdir().unwrap();
        build_for_crash(dir.path());
        let log = open(dir.path());
        log.crash_cleaning_at(step);
        let mut map = OffsetMap::with_memory(1 << 20);
        let crashed = match log.clean(&mut map, &params(10_000), &|_| {}) {
            Err(crate::LogError::Failed { reason, .. }) => {
                assert_eq!(reason, "simulated crash");
                true
            }
            Ok(CleanOutcome::Cleaned(_)) => false,
            other => panic!("step {step}: {other:?}"),
        };
        drop(log);
        committed |= crashed && dir.path().join(super::swap::SWAP_FILE).exists();
        let got = content(dir.path());
        let leftovers: Vec<String> = super::testing::files(dir.path())
            .into_iter()
            .filter(|f| f.ends_with(".cleaned") || f.starts_with("cleaner-swap"))
            .collect();
        assert!(leftovers.is_empty(), "step {step}: {leftovers:?}");
        let expected = if committed || !crashed { &post } else { &pre };
        assert!(got == *expected, "step {step}: {got:?}");
        if !crashed {
            assert!(step > 5, "only {step} crash points");
            break;
        }
    }
    assert!(committed);
}
