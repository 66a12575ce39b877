//! `Log` with idempotent producers: duplicates answered with their original
//! offsets, refused gaps and stale epochs, and producer state that survives a
//! clean close, a crash (drop without close), rolls and retention.

use std::path::Path;

use crate::log_tests::small_config;
use crate::producer_snapshot;
use crate::record::testing::batch;
use crate::record::{self, compute_crc};
use crate::{Log, LogConfig, LogError, ProducerError};

/// A batch of `n` records from producer `pid`, epoch `epoch`, base sequence `seq`.
pub(crate) fn pbatch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let value = [b'v'; 40];
    let values: Vec<&[u8]> = (0..n).map(|_| &value[..]).collect();
    let mut b = batch(0, 1_000, &values);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir.to_path_buf(), config, 1_000).unwrap()
}

fn producer_err(e: LogError) -> ProducerError {
    e.producer_error().cloned().expect("a producer error")
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_appended() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&batch(0, 1, &[b"x"]), 1_000).unwrap();
    let first = log.append(&pbatch(7, 0, 0, 3), 1_000).unwrap();
    let second = log.append(&pbatch(7, 0, 3, 2), 1_000).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (1, 3));
    let retry = log.append(&pbatch(7, 0, 0, 3), 1_000).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (1, 3));
    let retry2 = log.append(&pbatch(7, 0, 3, 2), 1_000).unwrap();
    assert_eq!(retry2.base_offset, second.base_offset);
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn gaps_and_stale_epochs_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&pbatch(7, 2, 0, 1), 1_000).unwrap();
    let gap = log.append(&pbatch(7, 2, 5, 1), 1_000).unwrap_err();
    assert!(matches!(
        producer_err(gap),
        ProducerError::OutOfOrderSequence { expected: 1, .. }
    ));
    let stale = log.append(&pbatch(7, 1, 1, 1), 1_000).unwrap_err();
    assert!(matches!(
        producer_err(stale),
        ProducerError::InvalidProducerEpoch {
            current_epoch: 2,
            ..
        }
    ));
    assert_eq!(log.log_end_offset(), 1);
    // A bumped epoch restarts at sequence 0.
    log.append(&pbatch(7, 3, 0, 1), 1_000).unwrap();
    assert_eq!(log.log_end_offset(), 2);
}

/// Appends `rounds` batches of 2 records for producer 7, then checks that retries
/// of the last five are duplicates and the next sequence is accepted.
fn check_state_after_reopen(dir: &Path, rounds: i32, expect_end: i64) {
    let log = open(dir, small_config());
    assert_eq!(log.log_end_offset(), expect_end);
    for back in 1..=5 {
        let seq = (rounds - back) * 2;
        let retry = log.append(&pbatch(7, 0, seq, 2), 1_000).unwrap();
        assert!(retry.duplicate, "retry of seq {seq}");
        assert_eq!(retry.base_offset, i64::from(seq), "retry of seq {seq}");
    }
    assert!(
        !log.append(&pbatch(7, 0, rounds * 2, 2), 1_000)
            .unwrap()
            .duplicate
    );
    log.close().unwrap();
}

fn fill(dir: &Path, rounds: i32) -> Log {
    let log = open(dir, small_config());
    for i in 0..rounds {
        log.append(&pbatch(7, 0, i * 2, 2), 1_000).unwrap();
    }
    assert!(log.segments().len() > 2, "small segments roll");
    log
}

#[test]
fn producer_state_survives_a_clean_close_without_reading_log_data() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40).close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.recovery_bytes_scanned(), 0);
    assert_eq!(log.producer_replay_bytes(), 0);
    drop(log);
    check_state_after_reopen(dir.path(), 40, 80);
}

#[test]
fn producer_state_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    drop(fill(dir.path(), 40)); // no close: like kill -9, page cache intact
    assert!(!producer_snapshot::list(dir.path()).unwrap().is_empty());
    check_state_after_reopen(dir.path(), 40, 80);
}

#[test]
fn producer_state_is_rebuilt_from_the_log_without_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    drop(fill(dir.path(), 40));
    for s in producer_snapshot::list(dir.path()).unwrap() {
        std::fs::remove_file(dir.path().join(producer_snapshot::file_name(s))).unwrap();
    }
    check_state_after_reopen(dir.path(), 40, 80);
}

#[test]
fn a_damaged_latest_snapshot_falls_back_to_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(fill(dir.path(), 40));
    let latest = *producer_snapshot::list(dir.path()).unwrap().last().unwrap();
    std::fs::write(
        dir.path().join(producer_snapshot::file_name(latest)),
        b"garbage",
    )
    .unwrap();
    check_state_after_reopen(dir.path(), 40, 80);
}

#[test]
fn snapshots_past_the_log_end_are_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(fill(dir.path(), 40));
    let bogus = dir.path().join(producer_snapshot::file_name(1_000));
    std::fs::write(&bogus, b"x").unwrap();
    let _log = open(dir.path(), small_config());
    assert!(!bogus.exists());
}

#[test]
fn snapshots_are_written_on_roll_and_deleted_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = fill(dir.path(), 40);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    let snaps = producer_snapshot::list(dir.path()).unwrap();
    assert_eq!(snaps, bases[1..].to_vec(), "one snapshot per roll");
    let keep_from = bases[2];
    log.delete_records_before(keep_from).unwrap();
    let snaps = producer_snapshot::list(dir.path()).unwrap();
    assert!(snaps.iter().all(|s| *s >= keep_from), "{snaps:?}");
    assert!(!snaps.is_empty());
}

#[test]
fn duplicate_of_a_log_append_time_batch_returns_its_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: crate::TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    let first = log.append(&pbatch(7, 0, 0, 1), 5_000).unwrap();
    let retry = log.append(&pbatch(7, 0, 0, 1), 9_000).unwrap();
    assert_eq!(first.log_append_time, 5_000);
    assert_eq!(retry.log_append_time, 5_000);
    let stored = log.read(0, 1 << 20, true).unwrap();
    assert_eq!(
        record::validate_batches(&stored, usize::MAX).unwrap().len(),
        1
    );
}
