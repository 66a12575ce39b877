//! Unit tests of `Log`: append, read, roll, retention, DeleteRecords, timestamp
//! lookups, LogAppendTime, flush and clean/unclean reopen.

use std::path::Path;
use std::sync::Arc;

use crate::record::testing::{batch, batch_n};
use crate::record::{self, BatchHeader};
use crate::segment::file_name;
use crate::{Log, LogConfig, LogError, TimestampType};

pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

pub(crate) fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    let infos = record::validate_stored_batches(bytes).unwrap();
    infos
        .iter()
        .map(|i| BatchHeader::parse(&bytes[i.range()]).unwrap())
        .collect()
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir.to_path_buf(), config, 1_000).unwrap()
}

#[test]
fn append_assigns_offsets_and_read_returns_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let a = log
        .append(&batch(77, 10, &[b"a", b"b", b"c"]), 1_000)
        .unwrap();
    assert_eq!(
        (a.base_offset, a.last_offset, a.log_append_time),
        (0, 2, -1)
    );
    let mut two = batch(0, 20, &[b"d"]);
    two.extend(batch(0, 30, &[b"e", b"f"]));
    let b = log.append_with_leader_epoch(&two, 5, 1_000).unwrap();
    assert_eq!((b.base_offset, b.last_offset), (3, 5));
    assert_eq!(log.log_end_offset(), 6);

    let all = log.read(0, 1 << 20, false).unwrap();
    let hs = headers(&all);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 3, 4]
    );
    assert_eq!(hs[2].partition_leader_epoch, 5);
    // A read in the middle of a batch starts at that batch.
    assert_eq!(
        headers(&log.read(1, 1 << 20, false).unwrap())[0].base_offset,
        0
    );
    assert_eq!(
        headers(&log.read(5, 1 << 20, false).unwrap())[0].base_offset,
        4
    );
    assert!(log.read(6, 1 << 20, false).unwrap().is_empty());
    // Up to a high watermark: only batches starting below it.
    let hw = headers(&log.read_up_to(0, 1 << 20, false, 4).unwrap());
    assert_eq!(
        hw.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert!(log.read_up_to(4, 1 << 20, true, 4).unwrap().is_empty());
    assert!(matches!(
        log.read(7, 100, true),
        Err(LogError::OffsetOutOfRange {
            offset: 7,
            log_end: 6,
            ..
        })
    ));

    // max_bytes limits to whole batches; min_one_batch returns one anyway.
    let first_len = hs[0].size().unwrap();
    assert_eq!(log.read(0, first_len + 10, false).unwrap().len(), first_len);
    assert!(log.read(0, 10, false).unwrap().is_empty());
    assert_eq!(log.read(0, 10, true).unwrap().len(), first_len);
}

#[test]
fn rejects_invalid_batches_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 200,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    let err = log.append(&batch_n(0, 1, 300), 0).unwrap_err();
    assert!(err.record_error().unwrap().is_too_large(), "{err}");
    let mut bad = batch(0, 0, &[b"x"]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(log
        .append(&bad, 0)
        .unwrap_err()
        .record_error()
        .unwrap()
        .is_corrupt());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn log_append_time_stamps_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    let info = log.append(&batch(0, 5, &[b"a", b"b"]), 123_456).unwrap();
    assert_eq!(info.log_append_time, 123_456);
    let bytes = log.read(0, 1 << 20, false).unwrap();
    let infos = record::validate_batches(&bytes, usize::MAX).unwrap();
    assert!(infos[0].is_log_append_time());
    assert_eq!(infos[0].max_timestamp, 123_456);
    assert_eq!(infos[0].base_timestamp, 5);
}

#[test]
fn rolls_on_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    for i in 0..30 {
        log.append(&batch_n(i, 2, 100), 1_000).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() > 3, "{segs:?}");
    for pair in segs.windows(2) {
        assert_eq!(pair[0].next_offset, pair[1].base_offset);
        assert!(pair[0].size_bytes <= 1024);
    }
    assert_eq!(
        log.size_bytes(),
        segs.iter().map(|s| s.size_bytes).sum::<u64>()
    );
    let mut offset = 0;
    let mut seen = 0;
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 300, true).unwrap();
        let hs = headers(&bytes);
        assert_eq!(hs[0].base_offset, offset);
        seen += hs.len();
        offset = hs.last().unwrap().last_offset() + 1;
    }
    assert_eq!(seen, 30);
    // Rolled segments are flushed in the background; once that is done the next
    // flush check persists the recovery point at the active segment's base.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while log.synced_up_to() < segs.last().unwrap().base_offset {
        assert!(
            std::time::Instant::now() < deadline,
            "background flush did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    log.flush_if_due(0).unwrap();
    let cp = crate::checkpoint::read_checkpoint(dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(cp.recovery_point, segs.last().unwrap().base_offset);
}

#[test]
fn rolls_on_time_and_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    log.roll_if_due(10_000).unwrap(); // empty: no roll
    log.append(&batch(0, 1_000, &[b"a"]), 1_000).unwrap();
    log.roll_if_due(1_050).unwrap();
    assert_eq!(log.segments().len(), 1);
    log.roll_if_due(1_101).unwrap();
    assert_eq!(log.segments().len(), 2);
    log.append(&batch(0, 2_000, &[b"a"]), 2_000).unwrap();
    log.append(&batch(0, 2_500, &[b"b"]), 2_500).unwrap(); // rolls first
    assert_eq!(
        log.segments()
            .iter()
            .map(|s| s.base_offset)
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );

    // A producer whose clock is far behind does not make every append roll.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path().to_path_buf(), config, 1_000_000).unwrap();
    for i in 0..10 {
        log.append(&batch(0, i, &[b"a"]), 1_000_000 + i).unwrap();
    }
    assert_eq!(log.segments().len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_index_bytes: 16, // two offset entries, one time entry
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    for i in 0..10 {
        log.append(&batch(0, i, &[b"a"]), 0).unwrap();
    }
    assert!(log.segments().len() >= 3, "{:?}", log.segments());
}

#[test]
fn segment_jitter_rolls_each_segment_up_to_that_much_early() {
    let config = LogConfig {
        segment_ms: 1_000,
        segment_jitter_ms: 400,
        ..LogConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    // Per segment, within (segment.ms - jitter, segment.ms], stable, and not all equal.
    let limits: Vec<i64> = (0..50)
        .map(|base| crate::log::append::roll_after_ms(&config, dir.path(), base))
        .collect();
    assert!(limits.iter().all(|&l| l > 600 && l <= 1_000), "{limits:?}");
    assert!(limits.iter().any(|&l| l != limits[0]), "{limits:?}");
    assert_eq!(
        crate::log::append::roll_after_ms(&config, dir.path(), 7),
        limits[7]
    );
    // The log rolls its segment at that limit: not before, and before segment.ms.
    let log = open(dir.path(), config.clone());
    log.append(&batch(0, 1_000, &[b"a"]), 1_000).unwrap();
    let limit = limits[0];
    log.roll_if_due(1_000 + limit).unwrap();
    assert_eq!(log.segments().len(), 1);
    log.roll_if_due(1_000 + limit + 1).unwrap();
    assert_eq!(log.segments().len(), 2);
    // No jitter: exactly segment.ms.
    let plain = LogConfig {
        segment_jitter_ms: 0,
        ..config
    };
    assert_eq!(
        crate::log::append::roll_after_ms(&plain, dir.path(), 3),
        1_000
    );
}

#[test]
fn timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    // Batch i has timestamps 100*i, 100*i+1; batch 7 holds the maximum.
    for i in 0..20i64 {
        let ts = if i == 7 { 50_000 } else { 100 * i };
        log.append(&batch(0, ts, &[b"0123456789", b"0123456789"]), 0)
            .unwrap();
    }
    assert!(log.segments().len() > 1);
    let find = |ts| {
        log.find_batch_by_timestamp(ts)
            .unwrap()
            .map(|b| headers(&b)[0].base_offset)
    };
    assert_eq!(find(-5), Some(0));
    assert_eq!(find(101), Some(2));
    assert_eq!(find(102), Some(4));
    assert_eq!(find(1_000), Some(14)); // batch 7 (offset 14) has max 50_001
    assert_eq!(find(1_902), Some(14));
    assert_eq!(find(50_002), None);
    let max = log.max_timestamp_batch().unwrap().unwrap();
    assert_eq!(headers(&max)[0].base_offset, 14);
    // Same answers after a clean reopen (from the time indexes).
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.recovery_bytes_scanned(), 0);
    let max = log.max_timestamp_batch().unwrap().unwrap();
    assert_eq!(headers(&max)[0].base_offset, 14);
    let b = log.find_batch_by_timestamp(1_000).unwrap().unwrap();
    assert_eq!(headers(&b)[0].base_offset, 14);
    // Batches below the log start offset are not candidates.
    log.delete_records_before(16).unwrap();
    let b = log.find_batch_by_timestamp(0).unwrap().unwrap();
    assert_eq!(headers(&b)[0].base_offset, 16);
}

#[test]
fn delete_records_raises_log_start_and_deletes_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    for i in 0..20 {
        log.append(&batch_n(i, 2, 100), 0).unwrap();
    }
    let before = log.segments().len();
    assert!(matches!(
        log.delete_records_before(41),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(13).unwrap(), 13);
    assert_eq!(log.log_start_offset(), 13);
    let segs = log.segments();
    assert!(segs.len() < before);
    assert!(segs[0].base_offset <= 13 && segs[0].next_offset > 13);
    assert!(matches!(
        log.read(12, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        headers(&log.read(13, 100, true).unwrap())[0].base_offset,
        12
    );
    // Lower requests are no-ops.
    assert_eq!(log.delete_records_before(5).unwrap(), 13);
    // -1 = high watermark: everything goes, a new empty segment remains.
    assert_eq!(log.delete_records_before(-1).unwrap(), 40);
    let segs = log.segments();
    assert_eq!(segs.len(), 1);
    assert_eq!((segs[0].base_offset, segs[0].size_bytes), (40, 0));
    assert!(log.read(40, 100, true).unwrap().is_empty());
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    assert_eq!(
        log.append(&batch(0, 0, &[b"a"]), 0).unwrap().base_offset,
        40
    );
}

#[test]
fn retention_by_time_and_size_keeps_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    for i in 0..20i64 {
        log.append(&batch_n(i * 1_000, 2, 100), 0).unwrap();
    }
    let segs = log.segments();
    let n = segs.len();
    assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 0); // retention_ms = -1

    let mut config = small_config();
    config.retention_ms = 10_000;
    log.update_config(config.clone());
    // Now 12_500: segments whose max timestamp < 2_500 are expired.
    let expired = segs
        .iter()
        .take_while(|s| s.max_timestamp.unwrap() < 2_500)
        .count();
    assert_eq!(log.enforce_retention(12_500).unwrap(), expired);
    assert_eq!(log.log_start_offset(), segs[expired].base_offset);
    // Everything expired: all but the active segment go.
    let deleted = log.enforce_retention(1_000_000).unwrap();
    assert_eq!(deleted, n - expired - 1);
    assert_eq!(log.segments().len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    for i in 0..20 {
        log.append(&batch_n(i, 2, 100), 0).unwrap();
    }
    let mut config = small_config();
    config.retention_bytes = 2_000;
    log.update_config(config);
    log.enforce_retention(0).unwrap();
    assert!(log.size_bytes() <= 2_000 + 1024, "{}", log.size_bytes());
    assert!(log.size_bytes() > 2_000 - 1024);
    assert_eq!(log.log_start_offset(), log.segments()[0].base_offset);
    // Only the checkpointed log start survives a reopen.
    let start = log.log_start_offset();
    drop(log);
    assert_eq!(open(dir.path(), small_config()).log_start_offset(), start);
}

#[test]
fn flush_messages_and_flush_ms_advance_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 3,
        flush_ms: 500,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path().to_path_buf(), config, 0).unwrap();
    let rp = || {
        crate::checkpoint::read_checkpoint(dir.path())
            .unwrap()
            .unwrap()
            .recovery_point
    };
    log.append(&batch(0, 0, &[b"a", b"b"]), 0).unwrap();
    assert_eq!(rp(), 0);
    log.append(&batch(0, 0, &[b"c"]), 0).unwrap();
    assert_eq!(rp(), 3);
    log.append(&batch(0, 0, &[b"d"]), 100).unwrap();
    log.flush_if_due(200).unwrap();
    assert_eq!(rp(), 3);
    log.flush_if_due(600).unwrap();
    assert_eq!(rp(), 4);
    log.append(&batch(0, 0, &[b"e"]), 700).unwrap();
    log.flush().unwrap();
    assert_eq!(rp(), 5);
}

#[test]
fn clean_reopen_reads_no_log_data_and_unclean_reopen_does() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    for i in 0..25 {
        log.append(&batch_n(i, 3, 50), 0).unwrap();
    }
    // One writer per directory.
    assert!(matches!(
        Log::open(dir.path().to_path_buf(), small_config(), 0),
        Err(LogError::Locked { .. })
    ));
    let before = log.read(0, 1 << 20, false).unwrap();
    let segs = log.segments();
    log.close().unwrap();
    assert!(matches!(
        log.append(&batch(0, 0, &[b"a"]), 0),
        Err(LogError::Closed { .. })
    ));
    drop(log);

    let log = open(dir.path(), small_config());
    assert_eq!(log.recovery_bytes_scanned(), 0);
    assert_eq!(log.segments(), segs);
    assert_eq!(log.read(0, 1 << 20, false).unwrap(), before);
    assert_eq!(
        log.append(&batch(0, 0, &[b"z"]), 0).unwrap().base_offset,
        75
    );
    drop(log); // a crash: no marker

    let log = open(dir.path(), small_config());
    assert!(log.recovery_bytes_scanned() > 0);
    assert_eq!(log.log_end_offset(), 76);
    // Only the active segment (above the recovery point) was scanned.
    assert!(log.segments().len() > 2);
    assert_eq!(
        log.recovery_bytes_scanned(),
        log.segments().last().unwrap().size_bytes
    );
    // The marker is consumed by open: a crash after a clean open is detected.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(log.recovery_bytes_scanned(), 0);
    drop(log);
    let log = open(dir.path(), small_config());
    assert!(log.recovery_bytes_scanned() > 0);
}

#[test]
fn a_truncated_active_segment_after_clean_close_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    for _ in 0..5 {
        log.append(&batch_n(0, 2, 10), 0).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let path = dir.path().join(crate::segment::file_name(0, "log"));
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert!(log.recovery_bytes_scanned() > 0);
    assert_eq!(log.log_end_offset(), 8);
}

#[test]
fn readers_run_concurrently_with_appends_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), small_config()));
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 0..300 {
                log.append(&batch_n(i, 2, 60), 0).unwrap();
                if i % 50 == 49 {
                    log.delete_records_before(log.log_end_offset() - 20)
                        .unwrap();
                }
            }
        })
    };
    let mut checked = 0;
    while !writer.is_finished() || checked == 0 {
        let start = log.log_start_offset();
        match log.read(start, 2_000, true) {
            Ok(bytes) if bytes.is_empty() => {} // start == end at that moment
            Ok(bytes) => {
                for h in headers(&bytes) {
                    assert_eq!(h.records_count, 2);
                }
                checked += 1;
            }
            Err(LogError::OffsetOutOfRange { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(log.log_end_offset(), 600);
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn timestamp_lookups_match_brute_force(
            batches in prop::collection::vec((0i64..1_000, 1usize..4, 0usize..150), 1..40),
            targets in prop::collection::vec(-10i64..1_010, 1..10),
            reopen in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path(), small_config());
            let mut model = Vec::new(); // (base offset, max timestamp)
            for &(ts, n, size) in &batches {
                let info = log.append(&batch_n(ts, n, size), 0).unwrap();
                model.push((info.base_offset, ts + n as i64 - 1));
            }
            if reopen {
                log.close().unwrap();
                log = open(dir.path(), small_config());
            }
            for t in targets {
                let expected = model.iter().find(|(_, max)| *max >= t).map(|(o, _)| *o);
                let got = log.find_batch_by_timestamp(t).unwrap().map(|b| headers(&b)[0].base_offset);
                prop_assert_eq!(got, expected, "target {}", t);
            }
            let max = model.iter().map(|(_, m)| *m).max().unwrap();
            let expected = model.iter().find(|(_, m)| *m == max).map(|(o, _)| *o);
            let got = log.max_timestamp_batch().unwrap().map(|b| headers(&b)[0].base_offset);
            prop_assert_eq!(got, expected);
        }
    }
}

#[test]
fn a_deleted_segment_stays_readable_by_a_reader_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    for i in 0..20 {
        log.append(&batch_n(i, 2, 100), 0).unwrap();
    }
    let first = log.segment_handles().remove(0);
    let before = first.read(0, 1 << 20, false, i64::MAX).unwrap().unwrap();
    log.delete_records_before(-1).unwrap();
    assert!(!first.log_path().exists());
    let after = first.read(0, 1 << 20, false, i64::MAX).unwrap().unwrap();
    assert_eq!(before, after);
    assert!(!after.is_empty());
}

#[test]
fn local_retention_deletes_only_segments_below_the_tiered_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    for i in 0..20i64 {
        log.append(&batch_n(i * 1_000, 2, 100), 0).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    // Nothing tiered: nothing may go, however strict local retention is.
    assert_eq!(
        log.enforce_local_retention(i64::MAX / 2, 0, 0, 0).unwrap(),
        0
    );
    // Two segments tiered, keep 0 local bytes: exactly those two go.
    let tiered = segs[2].base_offset;
    assert_eq!(log.enforce_local_retention(0, tiered, -1, 0).unwrap(), 2);
    assert_eq!(log.log_start_offset(), tiered);
    assert!(matches!(
        log.read(0, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Everything tiered but the active one: with no local limit nothing goes...
    let all = log.log_end_offset();
    assert_eq!(log.enforce_local_retention(0, all, -1, -1).unwrap(), 0);
    // ...and by time only old segments go; the active one always stays.
    assert!(
        log.enforce_local_retention(i64::MAX / 2, all, 10, -1)
            .unwrap()
            > 0
    );
    assert_eq!(log.segments().len(), 1);
    let active = log.segments()[0].base_offset;
    for ext in ["log", "index", "timeindex"] {
        assert!(dir.path().join(file_name(active, ext)).exists());
    }
}

#[test]
fn init_empty_at_opens_an_empty_log_that_continues_at_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    Log::init_empty_at(&path, 1234).unwrap();
    let log = open(&path, small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1234, 1234));
    let a = log.append(&batch(77, 10, &[b"a", b"b"]), 1_000).unwrap();
    assert_eq!(a.base_offset, 1234);
    assert!(matches!(
        log.read(1233, 1 << 20, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        headers(&log.read(1234, 1 << 20, true).unwrap())[0].base_offset,
        1234
    );
    log.close().unwrap();
    // Reopened, it keeps the offsets; a directory with a segment is refused.
    let log = open(&path, small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1234, 1236));
    log.close().unwrap();
    assert!(matches!(
        Log::init_empty_at(&path, 5),
        Err(LogError::NotEmpty { offset: 5, .. })
    ));
}

/// Retention's checkpoint and unlinks run outside the writer lock: while a pass waits for
/// its file work (here: `files` held by the test, as a slow fsync would), appends and reads
/// go on, and the pass finishes once the files are free.
#[test]
fn appends_do_not_wait_for_retention_file_work() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), small_config()));
    for i in 0..20i64 {
        log.append(&batch_n(i * 1_000, 2, 100), 0).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    let tiered = segs[2].base_offset;
    let first_log = dir.path().join(file_name(segs[0].base_offset, "log"));
    let held = log.files.lock();
    let pass = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.enforce_local_retention(0, tiered, -1, 0))
    };
    // The pass has raised the start and unmapped the segments, then waits for `files`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.log_start_offset() != tiered {
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let end = log.log_end_offset();
            let _ = tx.send(log.append(&batch_n(end, 2, 100), 0).map(|a| a.base_offset));
        });
    }
    let appended = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("append waited for retention's file work");
    assert!(appended.unwrap() >= segs.last().unwrap().base_offset);
    assert!(log.read(tiered, 100, true).is_ok());
    assert!(
        first_log.exists(),
        "deleted before its checkpoint was written"
    );
    drop(held);
    assert_eq!(pass.join().unwrap().unwrap(), 2);
    assert!(!first_log.exists());
    log.close().unwrap();
    let reopened = open(dir.path(), small_config());
    assert_eq!(reopened.log_start_offset(), tiered);
}

/// One size rule for `retention.bytes` and `local.retention.bytes`, Kafka's: the oldest
/// segments go only while the log stays at least the limit without them.
#[test]
fn size_retention_keeps_at_least_the_limit() {
    use crate::log::breached_by_size;
    let sizes = || [100u64, 100, 100].into_iter();
    assert_eq!(breached_by_size(400, sizes(), 150), 2); // 400 -> 200 ≥ 150, a third would leave 100
    assert_eq!(breached_by_size(300, sizes(), 150), 1);
    assert_eq!(breached_by_size(300, sizes(), 0), 3);
    assert_eq!(breached_by_size(300, sizes(), 300), 0);
    assert_eq!(breached_by_size(300, sizes(), -1), 0);
}
