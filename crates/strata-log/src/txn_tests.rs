//! `Log` with transactions: transactional batches and markers, the first
//! unstable offset, the aborted-transaction index through rolls, reopen
//! (clean and crash), a lost `.txnindex`, truncation and retention; Kafka's
//! refusals; and a property test of the whole state machine against a model.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use crate::producer_tests::pbatch;
use crate::record::{self, compute_crc};
use crate::{Log, LogConfig, LogError, ProducerError, TxnIndexEntry, TxnMarkerSpec};

/// A transactional batch of `n` records.
pub(crate) fn tbatch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = pbatch(pid, epoch, seq, n);
    b[21..23].copy_from_slice(&record::TRANSACTIONAL_BIT.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn marker(pid: i64, epoch: i16, commit: bool) -> TxnMarkerSpec {
    TxnMarkerSpec {
        producer_id: pid,
        producer_epoch: epoch,
        coordinator_epoch: 0,
        commit,
    }
}

/// Small segments, so that a few batches roll.
fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir.to_path_buf(), config, 1_000).unwrap()
}

fn producer_err(e: LogError) -> ProducerError {
    e.producer_error().cloned().expect("a producer error")
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> TxnIndexEntry {
    TxnIndexEntry {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

#[test]
fn markers_end_transactions_and_aborts_are_indexed_across_rolls_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(400));
    log.append(&tbatch(1, 0, 0, 2), 1_000).unwrap(); // 0..=1
    log.append(&tbatch(2, 0, 0, 1), 1_000).unwrap(); // 2
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert_eq!(log.last_stable_offset(10), 0);
    let m = log.append_marker(marker(1, 0, false), 5, 1_000).unwrap(); // 3
    assert_eq!(m.base_offset, 3);
    assert_eq!(log.first_unstable_offset(), Some(2));
    log.append(&tbatch(2, 0, 1, 3), 1_000).unwrap(); // 4..=6
    log.append_marker(marker(2, 0, true), 5, 1_000).unwrap(); // 7
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(8), 8);
    log.append(&tbatch(1, 0, 2, 1), 1_000).unwrap(); // 8
    log.append_marker(marker(1, 0, false), 5, 1_000).unwrap(); // 9
    let want = vec![aborted(1, 0, 3, 2), aborted(1, 8, 9, 10)];
    assert_eq!(log.aborted_txns(0, 10), want);
    assert_eq!(log.aborted_txns(4, 8), []);
    assert!(log.segments().len() > 1, "the test needs rolls");
    // The marker batch is Kafka's: control + transactional, the leader epoch stamped.
    let read = log.read(3, 1 << 20, true).unwrap();
    let h = record::BatchHeader::parse(&read).unwrap();
    assert_eq!(
        h.attributes & (record::CONTROL_BIT | record::TRANSACTIONAL_BIT),
        0x30
    );
    assert_eq!(h.partition_leader_epoch, 5);
    // An open transaction survives a clean close, and a crash.
    log.append(&tbatch(3, 0, 0, 1), 1_000).unwrap(); // 10
    log.close().unwrap();
    let log = open(dir.path(), small_config(400));
    assert_eq!(log.producer_replay_bytes(), 0);
    assert_eq!(log.first_unstable_offset(), Some(10));
    assert_eq!(log.aborted_txns(0, 11), want);
    log.append_marker(marker(3, 0, false), 5, 1_000).unwrap(); // 11
    drop(log);
    let log = open(dir.path(), small_config(400));
    assert_eq!(log.first_unstable_offset(), None);
    let mut all = want.clone();
    all.push(aborted(3, 10, 11, 12));
    assert_eq!(log.aborted_txns(0, 12), all);
    log.close().unwrap();
    // Every segment has a `.txnindex`; one lost is rebuilt from the log.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let logs = files.iter().filter(|f| f.ends_with(".log")).count();
    let indexes: Vec<&String> = files.iter().filter(|f| f.ends_with(".txnindex")).collect();
    assert_eq!(indexes.len(), logs);
    std::fs::remove_file(dir.path().join(indexes[0])).unwrap();
    let log = open(dir.path(), small_config(400));
    assert_eq!(log.aborted_txns(0, 12), all);
}

#[test]
fn kafkas_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&tbatch(1, 2, 0, 1), 1_000).unwrap();
    // A plain batch inside the transaction.
    let e = producer_err(log.append(&pbatch(1, 2, 1, 1), 1_000).unwrap_err());
    assert!(matches!(
        e,
        ProducerError::InvalidTxnState {
            txn_first_offset: 0,
            ..
        }
    ));
    // A control batch from a client.
    let mut control = tbatch(9, 0, 0, 1);
    control[21..23]
        .copy_from_slice(&(record::CONTROL_BIT | record::TRANSACTIONAL_BIT).to_be_bytes());
    let crc = compute_crc(&control);
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    let e = producer_err(log.append(&control, 1_000).unwrap_err());
    assert!(matches!(e, ProducerError::ControlBatchFromClient { .. }));
    // A marker of an older producer epoch, then of an older coordinator epoch.
    let e = producer_err(log.append_marker(marker(1, 1, true), 0, 1_000).unwrap_err());
    assert!(matches!(
        e,
        ProducerError::InvalidProducerEpoch {
            current_epoch: 2,
            ..
        }
    ));
    let newer = TxnMarkerSpec {
        coordinator_epoch: 4,
        ..marker(1, 2, true)
    };
    log.append_marker(newer, 0, 1_000).unwrap();
    let stale = TxnMarkerSpec {
        coordinator_epoch: 3,
        ..marker(1, 2, false)
    };
    let e = producer_err(log.append_marker(stale, 0, 1_000).unwrap_err());
    assert!(matches!(
        e,
        ProducerError::CoordinatorFenced { current: 4, .. }
    ));
    assert_eq!(log.log_end_offset(), 2);
    // A stale transactional batch is fenced; the next epoch is accepted.
    let e = producer_err(log.append(&tbatch(1, 1, 0, 1), 1_000).unwrap_err());
    assert!(matches!(e, ProducerError::InvalidProducerEpoch { .. }));
    log.append(&tbatch(1, 3, 0, 1), 1_000).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(2));
}

#[test]
fn followers_replay_markers_and_truncation_forgets_what_it_cut() {
    let dir = tempfile::tempdir().unwrap();
    let leader = open(&dir.path().join("l"), small_config(300));
    let follower = open(&dir.path().join("f"), small_config(300));
    leader.append(&tbatch(1, 0, 0, 2), 1_000).unwrap(); // 0..=1
    leader.append_marker(marker(1, 0, false), 0, 1_000).unwrap(); // 2
    leader.append(&tbatch(1, 0, 2, 1), 1_000).unwrap(); // 3
    leader.append_marker(marker(1, 0, false), 0, 1_000).unwrap(); // 4
    leader.append(&tbatch(2, 0, 0, 1), 1_000).unwrap(); // 5
    while follower.log_end_offset() < leader.log_end_offset() {
        let bytes = leader
            .read(follower.log_end_offset(), 1 << 20, true)
            .unwrap();
        follower.append_as_follower(&bytes, 1_000).unwrap();
    }
    assert_eq!(follower.aborted_txns(0, 6), leader.aborted_txns(0, 6));
    assert_eq!(follower.first_unstable_offset(), Some(5));
    // Cutting the second abort and the open transaction.
    follower.truncate_to(4).unwrap();
    assert_eq!(follower.aborted_txns(0, 6), [aborted(1, 0, 2, 3)]);
    assert_eq!(follower.first_unstable_offset(), Some(3));
    follower.truncate_to(3).unwrap();
    assert_eq!(follower.first_unstable_offset(), None);
    follower.truncate_fully_and_start_at(10).unwrap();
    assert_eq!(follower.aborted_txns(0, 100), []);
}

#[test]
fn retention_drops_the_aborted_transactions_of_deleted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(300));
    for seq in 0..6 {
        log.append(&tbatch(1, 0, seq, 1), 1_000).unwrap();
        log.append_marker(marker(1, 0, false), 0, 1_000).unwrap();
    }
    let before = log.aborted_txns(0, 100).len();
    assert_eq!(before, 6);
    let second = log.segments()[1].base_offset;
    log.delete_records_before(second).unwrap();
    let after = log.aborted_txns(0, 100);
    assert!(after.len() < before && after.iter().all(|e| e.last_offset >= second));
    let name = format!("{:020}.txnindex", 0);
    assert!(!dir.path().join(name).exists());
}

/// What the model does and the log must agree with.
#[derive(Clone, Debug)]
enum Op {
    /// A transactional batch of `n` records from producer `pid`.
    Txn { pid: i64, n: usize },
    /// A plain idempotent batch from producer `pid` (refused while its transaction is open).
    Plain { pid: i64 },
    /// A marker for producer `pid`.
    End { pid: i64, commit: bool },
    /// Close and reopen, cleanly or as after a crash.
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..3, 1usize..4).prop_map(|(pid, n)| Op::Txn { pid, n }),
        1 => (0i64..3).prop_map(|pid| Op::Plain { pid }),
        3 => (0i64..3, any::<bool>()).prop_map(|(pid, commit)| Op::End { pid, commit }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// Kafka's rules, written plainly: open transactions by producer, the aborted ones.
#[derive(Default)]
struct Model {
    end: i64,
    open: BTreeMap<i64, i64>,
    seq: BTreeMap<i64, i32>,
    aborted: Vec<TxnIndexEntry>,
}

impl Model {
    fn first_unstable(&self) -> Option<i64> {
        self.open.values().min().copied()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// The first unstable offset and the aborted transactions the log reports, after any
    /// sequence of transactional batches, plain batches, markers, rolls and reopens, are
    /// the model's, on the leader and on a follower replaying its bytes; so is the set of
    /// appends refused.
    #[test]
    fn producer_state_and_lso_match_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(&dir.path().join("leader"), small_config(350));
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Txn { pid, n } => {
                    let seq = *m.seq.get(&pid).unwrap_or(&0);
                    log.append(&tbatch(pid, 0, seq, n), 1_000).unwrap();
                    m.open.entry(pid).or_insert(m.end);
                    m.seq.insert(pid, seq + n as i32);
                    m.end += n as i64;
                }
                Op::Plain { pid } => {
                    let seq = *m.seq.get(&pid).unwrap_or(&0);
                    let result = log.append(&pbatch(pid, 0, seq, 1), 1_000);
                    prop_assert_eq!(result.is_ok(), !m.open.contains_key(&pid));
                    if result.is_ok() {
                        m.seq.insert(pid, seq + 1);
                        m.end += 1;
                    }
                }
                Op::End { pid, commit } => {
                    log.append_marker(marker(pid, 0, commit), 0, 1_000).unwrap();
                    let first = m.open.remove(&pid).unwrap_or(m.end);
                    if !commit {
                        let lso = m.first_unstable().unwrap_or(m.end + 1);
                        m.aborted.push(aborted(pid, first, m.end, lso));
                    }
                    m.end += 1;
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = open(&dir.path().join("leader"), small_config(350));
                }
            }
            prop_assert_eq!(log.log_end_offset(), m.end);
            prop_assert_eq!(log.first_unstable_offset(), m.first_unstable());
            prop_assert_eq!(log.aborted_txns(0, i64::MAX), m.aborted.clone());
        }
        // A follower copying the leader's bytes ends with the same state.
        let follower = open(&dir.path().join("follower"), small_config(350));
        while follower.log_end_offset() < log.log_end_offset() {
            let bytes = log.read(follower.log_end_offset(), 1 << 20, true).unwrap();
            follower.append_as_follower(&bytes, 1_000).unwrap();
        }
        prop_assert_eq!(follower.first_unstable_offset(), m.first_unstable());
        prop_assert_eq!(follower.aborted_txns(0, i64::MAX), m.aborted.clone());
        // Any window asks the index what Kafka's reader would: the overlapping ones.
        for from in 0..m.end {
            let upper = m.end.min(from + 3);
            let want: Vec<TxnIndexEntry> = m.aborted.iter()
                .filter(|e| e.last_offset >= from && e.first_offset < upper).copied().collect();
            prop_assert_eq!(log.aborted_txns(from, upper), want);
        }
    }
}

#[test]
fn a_log_restarted_empty_takes_the_producer_state_of_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let leader = open(&dir.path().join("l"), small_config(300));
    leader.append(&pbatch(1, 0, 0, 2), 1_000).unwrap(); // 0..=1
    leader.append(&tbatch(2, 0, 0, 1), 1_000).unwrap(); // 2, stays open
    leader.append(&pbatch(3, 0, 0, 1), 1_000).unwrap(); // 3
    let segments = leader.segments();
    let sealed = segments.iter().rev().nth(1).expect("a rolled segment");
    let open_seg = leader.open_segment(sealed.base_offset).unwrap().unwrap();
    let snapshot = open_seg.producer_snapshot.expect("a snapshot at the roll");
    let at = sealed.next_offset;

    // A follower restarted at `at` (its leader's local log start).
    let follower = open(&dir.path().join("f"), small_config(300));
    follower.truncate_fully_and_start_at(at).unwrap();
    assert!(follower.restore_producer_snapshot(at, &snapshot).unwrap());
    assert_eq!(
        follower.first_unstable_offset(),
        leader.first_unstable_offset().filter(|f| *f < at)
    );
    assert!(!follower
        .restore_producer_snapshot(at + 1, &snapshot)
        .unwrap());
    assert!(follower.restore_producer_snapshot(at, b"garbage").is_err());

    // A directory prepared for a topic recovered from the bucket.
    let fresh = dir.path().join("r");
    Log::init_empty_at(&fresh, at).unwrap();
    Log::install_producer_snapshot(&fresh, at, &snapshot).unwrap();
    let recovered = open(&fresh, small_config(300));
    assert_eq!(recovered.log_end_offset(), at);
    assert_eq!(
        recovered.first_unstable_offset(),
        follower.first_unstable_offset()
    );
    // Producer 1's retry of its first batch is still known, if it was below `at`.
    if at >= 2 {
        let retry = recovered.append(&pbatch(1, 0, 0, 2), 1_000).unwrap();
        assert!(retry.duplicate);
    }
}
