//! Tests of the replication API of `Log`: follower appends that keep the
//! leader's bytes, truncation (`truncate_to`, `truncate_fully_and_start_at`),
//! the leader epoch cache, and crashes in the middle of a truncation.

use std::path::Path;

use proptest::prelude::*;

use crate::log_tests::{headers, small_config};
use crate::producer_tests::pbatch;
use crate::record::testing::batch;
use crate::record::{self, BatchHeader};
use crate::segment::{file_name, Segment};
use crate::{Log, LogConfig, LogError, TimestampType};

pub(crate) fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir.to_path_buf(), config, 1_000).unwrap()
}

/// A batch as a leader wrote it: base offset `base`, leader epoch `epoch`, `n`
/// records of `size` bytes with timestamps from `ts`.
pub(crate) fn leader_batch(base: i64, epoch: i32, ts: i64, n: usize, size: usize) -> Vec<u8> {
    let value = vec![b'x'; size];
    let values: Vec<&[u8]> = (0..n).map(|_| value.as_slice()).collect();
    let mut b = batch(0, ts, &values);
    record::set_base_offset(&mut b, base);
    record::set_partition_leader_epoch(&mut b, epoch);
    b
}

/// Every batch of the log, in order, as separate byte vectors (a compacted
/// log's too: its end may lie in a gap, after the last batch).
pub(crate) fn all_batches(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20, true).unwrap();
        if bytes.is_empty() {
            break;
        }
        for info in record::validate_stored_batches(&bytes).unwrap() {
            offset = info.last_offset() + 1;
            out.push(bytes[info.range()].to_vec());
        }
    }
    out
}

pub(crate) fn header(b: &[u8]) -> BatchHeader {
    BatchHeader::parse(b).unwrap()
}

/// Writes `batches` (built with `leader_batch`, contiguous from the log end)
/// with `append_as_follower`, a few per call.
fn replicate(log: &Log, batches: &[Vec<u8>]) {
    for chunk in batches.chunks(3) {
        let buf: Vec<u8> = chunk.concat();
        let info = log.append_as_follower(&buf, 2_000).unwrap();
        assert_eq!(info.base_offset, header(&chunk[0]).base_offset);
    }
}

/// `count` contiguous leader batches from offset `from`, with leader epochs
/// from `epochs` (cycled through in order, one per batch).
fn leader_batches(from: i64, count: usize, epochs: &[i32]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = from;
    for i in 0..count {
        let n = 1 + i % 3;
        let epoch = epochs[i * epochs.len() / count.max(1)];
        out.push(leader_batch(next, epoch, 10 * i as i64, n, 90));
        next += n as i64;
    }
    out
}

fn end_of(batches: &[Vec<u8>]) -> i64 {
    batches.last().map_or(0, |b| header(b).last_offset() + 1)
}

#[test]
fn follower_append_keeps_the_leaders_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // LogAppendTime must not restamp replicated batches.
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let log = open(dir.path(), config);
    let batches = leader_batches(0, 30, &[0, 0, 2, 5]);
    replicate(&log, &batches);
    assert!(log.segments().len() > 2, "{:?}", log.segments());
    assert_eq!(log.log_end_offset(), end_of(&batches));
    assert_eq!(all_batches(&log), batches);
    let expected_epochs = vec![
        (0, 0),
        (2, header(&batches[15]).base_offset),
        (5, header(&batches[23]).base_offset),
    ];
    assert_eq!(log.epoch_entries(), expected_epochs);
    assert_eq!(log.latest_epoch(), Some(5));
    // And the same after a clean reopen and after a crash.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(all_batches(&log), batches);
    assert_eq!(log.epoch_entries(), expected_epochs);
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(all_batches(&log), batches);
    assert_eq!(log.epoch_entries(), expected_epochs);
}

#[test]
fn out_of_order_or_invalid_follower_batches_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    replicate(&log, &leader_batches(0, 2, &[1]));
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let err = log
        .append_as_follower(&leader_batch(end - 1, 1, 0, 1, 10), 0)
        .unwrap_err();
    assert!(
        matches!(err, LogError::OffsetsOutOfOrder { min, got, first: true, position: 0, .. } if min == end && got == end - 1),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("starts at offset {}", end - 1))
            && text.contains(&format!("at or above {end} (the log end offset)")),
        "{text}"
    );
    // Offsets must grow from batch to batch of one call: a second batch
    // starting at (or below) the first one's last offset is refused, and the
    // first is not written either.
    for second in [end + 1, end] {
        let mut overlap = leader_batch(end, 1, 0, 2, 10);
        let position = overlap.len();
        overlap.extend(leader_batch(second, 1, 0, 1, 10));
        let err = log.append_as_follower(&overlap, 0).unwrap_err();
        assert!(
            matches!(err, LogError::OffsetsOutOfOrder { min, got, first: false, position: p, .. } if min == end + 2 && got == second && p == position),
            "{err}"
        );
    }
    let mut corrupt = leader_batch(end, 1, 0, 1, 10);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(log
        .append_as_follower(&corrupt, 0)
        .unwrap_err()
        .record_error()
        .unwrap()
        .is_corrupt());
    // A higher epoch in a refused batch is not recorded.
    assert!(log
        .append_as_follower(&leader_batch(end - 1, 9, 0, 1, 10), 0)
        .is_err());
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    // The log still takes the right batch, even above max.message.bytes (as
    // Kafka: the leader accepted it), and a batch past a gap (a compacted
    // leader's): the end follows the last batch.
    log.update_config(LogConfig {
        max_message_bytes: 100,
        ..small_config()
    });
    log.append_as_follower(&leader_batch(end, 1, 0, 1, 300), 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
    let mut gaps = leader_batch(end + 5, 1, 0, 2, 10);
    gaps.extend(leader_batch(end + 9, 1, 0, 1, 10));
    let info = log.append_as_follower(&gaps, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (end + 5, end + 9));
    assert_eq!(log.log_end_offset(), end + 10);
}

/// Checks every segment's indexes against its log file: each offset-index
/// entry is the position of a batch ending at its offset, each time-index entry
/// names a batch ending at its offset with its timestamp, the segment's max
/// timestamp equals a rebuild's, and its next offset is a rebuild's (one past
/// its last batch) or, across a gap, up to the next segment's base. (Entries
/// need not equal a rebuild's: after a clean reopen the index interval
/// restarts.)
pub(crate) fn check_indexes(dir: &Path, log: &Log) {
    let copy = tempfile::tempdir().unwrap();
    let limits = small_config().index_limits();
    let handles = log.segment_handles();
    for (i, seg) in handles.iter().enumerate() {
        let data = std::fs::read(seg.log_path()).unwrap();
        assert_eq!(data.len() as u64, seg.size());
        for ext in ["log", "index", "timeindex"] {
            let name = file_name(seg.base_offset(), ext);
            std::fs::copy(dir.join(&name), copy.path().join(&name)).unwrap();
        }
        let (rebuilt, outcome) =
            Segment::recover(copy.path(), seg.base_offset(), limits, 0).unwrap();
        assert!(outcome.stopped.is_none(), "{:?}", outcome.stopped);
        let next_base = handles
            .get(i + 1)
            .map_or(log.log_end_offset(), |n| n.base_offset());
        let next = seg.next_offset();
        assert!(
            rebuilt.next_offset() <= next && next <= next_base,
            "next offset {next} of {}: batches end at {}, next segment at {next_base}",
            seg.base_offset(),
            rebuilt.next_offset()
        );
        assert_eq!(seg.max_timestamp(), rebuilt.max_timestamp());
        let (oi, ti) = seg.index_entries();
        for e in &oi {
            let h = header(&data[e.position as usize..]);
            assert_eq!(
                h.last_offset(),
                e.offset,
                "offset index of {}: {oi:?}",
                seg.base_offset()
            );
        }
        let all = if data.is_empty() {
            Vec::new()
        } else {
            headers(&data)
        };
        let ends: std::collections::HashMap<i64, i64> = all
            .iter()
            .map(|h| (h.last_offset(), h.max_timestamp))
            .collect();
        for pair in ti.windows(2) {
            assert!(pair[0].timestamp < pair[1].timestamp && pair[0].offset <= pair[1].offset);
        }
        for e in &ti {
            assert_eq!(
                ends.get(&e.offset),
                Some(&e.timestamp),
                "time index of {}: {ti:?}",
                seg.base_offset()
            );
        }
        // The files hold exactly the entries in memory.
        let index_len = std::fs::metadata(dir.join(file_name(seg.base_offset(), "index")))
            .unwrap()
            .len();
        let time_len = std::fs::metadata(dir.join(file_name(seg.base_offset(), "timeindex")))
            .unwrap()
            .len();
        assert_eq!(index_len, 8 * oi.len() as u64);
        assert_eq!(time_len, 12 * ti.len() as u64);
    }
}

#[test]
fn truncate_inside_a_segment_at_a_boundary_and_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    let batches = leader_batches(0, 41, &[0, 1, 3, 4]);
    replicate(&log, &batches);
    let segs = log.segments();
    assert!(segs.len() >= 5, "{segs:?}");
    let kept_up_to = |end: i64| -> Vec<Vec<u8>> {
        batches
            .iter()
            .filter(|b| header(b).last_offset() < end)
            .cloned()
            .collect()
    };

    // No-op at or past the end.
    let end = log.log_end_offset();
    assert_eq!(log.truncate_to(end).unwrap(), end);
    assert_eq!(log.truncate_to(end + 10).unwrap(), end);

    // Inside a batch of the active segment: the whole batch goes.
    let last = header(batches.last().unwrap());
    assert!(last.records_count > 1);
    assert_eq!(
        log.truncate_to(last.base_offset + 1).unwrap(),
        last.base_offset
    );
    assert_eq!(all_batches(&log), kept_up_to(last.base_offset));
    check_indexes(dir.path(), &log);

    // At a segment boundary: the segment starting there is emptied.
    let boundary = segs[segs.len() - 2].base_offset;
    assert_eq!(log.truncate_to(boundary).unwrap(), boundary);
    assert_eq!(log.log_end_offset(), boundary);
    assert_eq!(all_batches(&log), kept_up_to(boundary));
    let now = log.segments();
    assert_eq!(now.last().unwrap().base_offset, boundary);
    assert_eq!(now.last().unwrap().size_bytes, 0);
    check_indexes(dir.path(), &log);

    // Across several segments, into the middle of the second one.
    let inside = segs[1].base_offset + 2;
    let new_end = log.truncate_to(inside).unwrap();
    let expect = kept_up_to(inside);
    assert_eq!(new_end, end_of(&expect));
    assert_eq!(all_batches(&log), expect);
    assert_eq!(log.segments().len(), 2);
    for base in segs[2..].iter().map(|s| s.base_offset) {
        assert!(!dir.path().join(file_name(base, "log")).exists());
        assert!(!dir.path().join(file_name(base, "index")).exists());
    }
    check_indexes(dir.path(), &log);
    // The epochs starting at or past the end are gone.
    let entries = log.epoch_entries();
    assert!(entries.iter().all(|e| e.1 < new_end), "{entries:?}");
    assert_eq!(entries.first(), Some(&(0, 0)));
    // Reads past the end are out of range; appends continue at the cut.
    assert!(matches!(
        log.read(new_end + 1, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let more = leader_batches(new_end, 12, &[7]);
    replicate(&log, &more);
    let mut expect = expect;
    expect.extend(more.iter().cloned());
    assert_eq!(all_batches(&log), expect);
    assert_eq!(log.latest_epoch(), Some(7));
    assert_eq!(log.end_offset_for_epoch(7), Some((7, log.log_end_offset())));
    let info = log
        .append_with_leader_epoch(&batch(0, 0, &[b"leader"]), 8, 3_000)
        .unwrap();
    assert_eq!(info.base_offset, end_of(&expect));
    assert_eq!(log.epoch_entries().last(), Some(&(8, info.base_offset)));
    check_indexes(dir.path(), &log);
}

#[test]
fn truncation_survives_clean_and_unclean_reopen() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config());
        let batches = leader_batches(0, 30, &[0, 2, 4]);
        replicate(&log, &batches);
        log.flush().unwrap(); // the recovery point is at the old end
        let target = header(&batches[13]).base_offset + 1;
        let new_end = log.truncate_to(target).unwrap();
        assert_eq!(new_end, header(&batches[13]).base_offset);
        let before = all_batches(&log);
        let (segs, epochs) = (log.segments(), log.epoch_entries());
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let log = open(dir.path(), small_config());
        if clean {
            assert_eq!(log.recovery_bytes_scanned(), 0);
        }
        assert_eq!(log.log_end_offset(), new_end, "clean: {clean}");
        assert_eq!(all_batches(&log), before);
        assert_eq!(log.segments(), segs);
        assert_eq!(log.epoch_entries(), epochs);
        check_indexes(dir.path(), &log);
        let cp = crate::checkpoint::read_checkpoint(dir.path())
            .unwrap()
            .unwrap();
        assert!(cp.recovery_point <= new_end);
        let next = log.append(&batch(0, 0, &[b"z"]), 0).unwrap();
        assert_eq!(next.base_offset, new_end);
    }
}

#[test]
fn end_offset_for_epoch_follows_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(0), None);
    // Epochs [(0, 0), (1, 10), (3, 20)], log end 25.
    replicate(&log, &[leader_batch(0, 0, 0, 10, 5)]);
    replicate(&log, &[leader_batch(10, 1, 0, 10, 5)]);
    replicate(&log, &[leader_batch(20, 3, 0, 5, 5)]);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 10), (3, 20)]);
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 20)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 25)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 10)));
    assert_eq!(log.end_offset_for_epoch(-1), None);
    assert_eq!(log.end_offset_for_epoch(4), None);
    // DeleteRecords clips the cache (Kafka's truncateFromStart); an epoch
    // older than the cache then answers with the first start offset.
    log.delete_records_before(12).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 12), (3, 20)]);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 12)));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 20)));
}

#[test]
fn epoch_cache_survives_reopen_and_is_rebuilt_when_missing_or_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    // Batches appended without an epoch carry the client's -1: no entry.
    let mut no_epoch = batch(0, 0, &[b"a"]);
    record::set_partition_leader_epoch(&mut no_epoch, -1);
    log.append(&no_epoch, 0).unwrap();
    log.append_with_leader_epoch(&batch(0, 0, &[b"b", b"c"]), 2, 0)
        .unwrap();
    log.append_with_leader_epoch(&batch(0, 0, &[b"d"]), 2, 0)
        .unwrap();
    for _ in 0..20 {
        log.append_with_leader_epoch(&batch(0, 0, &[&[1u8; 100][..]]), 6, 0)
            .unwrap();
    }
    let expected = vec![(2, 1), (6, 4)];
    assert_eq!(log.epoch_entries(), expected);
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\n2 1\n6 4\n");
    log.close().unwrap();
    drop(log);
    assert_eq!(open(dir.path(), small_config()).epoch_entries(), expected);
    // Missing (a log from before this file existed): rebuilt from the batches
    // and written back.
    for damage in [None, Some("0\n7\n1 1\n")] {
        let path = dir.path().join("leader-epoch-checkpoint");
        match damage {
            None => std::fs::remove_file(&path).unwrap(),
            Some(text) => std::fs::write(&path, text).unwrap(),
        }
        let log = open(dir.path(), small_config());
        assert_eq!(log.epoch_entries(), expected);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        drop(log);
    }
    // Entries past the recovered end (the file is written before the batches)
    // are dropped on open.
    std::fs::write(
        dir.path().join("leader-epoch-checkpoint"),
        "0\n3\n2 1\n6 4\n9 1000\n",
    )
    .unwrap();
    assert_eq!(open(dir.path(), small_config()).epoch_entries(), expected);
}

#[test]
fn truncate_fully_then_append_starts_at_the_new_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    replicate(&log, &leader_batches(0, 20, &[1, 2]));
    log.append(&pbatch(9, 0, 0, 2), 0).unwrap();
    log.close().unwrap(); // leaves a producer snapshot at the end
    drop(log);
    let log = open(dir.path(), small_config());
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.epoch_entries(), vec![]);
    assert_eq!(log.segments().len(), 1);
    assert!(log.read(500, 100, true).unwrap().is_empty());
    assert!(crate::producer_snapshot::list(dir.path())
        .unwrap()
        .is_empty());
    // A retry of producer 9's batch is new data now.
    assert!(!log.append(&pbatch(9, 0, 0, 2), 0).unwrap().duplicate);
    let info = log
        .append_as_follower(&leader_batch(502, 4, 0, 3, 10), 0)
        .unwrap();
    assert_eq!(info.base_offset, 502);
    assert_eq!(log.epoch_entries(), vec![(4, 502)]);
    drop(log); // crash
    let log = open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 505));
    assert_eq!(log.epoch_entries(), vec![(4, 502)]);
    // truncate_to below the first segment is a full truncation.
    assert_eq!(log.truncate_to(100).unwrap(), 100);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert_eq!(
        log.append(&batch(0, 0, &[b"a"]), 0).unwrap().base_offset,
        100
    );
}

#[test]
fn producer_state_from_follower_appends_dedupes_after_failover() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), small_config());
    let follower = open(dir.path(), small_config());
    // The leader takes producer 7's batches 0..4 (2 records each), the
    // follower replicates them.
    for seq in 0..4 {
        leader
            .append_with_leader_epoch(&pbatch(7, 0, seq * 2, 2), 3, 0)
            .unwrap();
    }
    let bytes = leader.read(0, 1 << 20, true).unwrap();
    follower.append_as_follower(&bytes, 0).unwrap();
    // The follower does not judge: even a batch the leader would refuse as a
    // gap is mirrored.
    let gap = leader_batch_from(&pbatch(7, 0, 100, 1), 8, 3);
    follower.append_as_follower(&gap, 0).unwrap();
    follower.truncate_to(8).unwrap();
    // Failover: the follower is leader now; the producer retries its last
    // batch, which must get its original offsets, and continues in order.
    let plain = follower.append(&pbatch(7, 0, 4, 2), 0).unwrap();
    assert!(plain.duplicate);
    assert_eq!((plain.base_offset, plain.last_offset), (4, 5));
    let retry = follower
        .append_with_leader_epoch(&pbatch(7, 0, 6, 2), 4, 0)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (6, 7));
    let next = follower
        .append_with_leader_epoch(&pbatch(7, 0, 8, 1), 4, 0)
        .unwrap();
    assert!(!next.duplicate);
    assert_eq!(next.base_offset, 8);
    assert_eq!(follower.epoch_entries(), vec![(3, 0), (4, 8)]);
    // Truncating away the last batch forgets it: its retry is appended again.
    follower.truncate_to(8).unwrap();
    let again = follower.append(&pbatch(7, 0, 8, 1), 0).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 8);
    // Truncating into producer 7's history leaves it expecting the next
    // sequence after what remains.
    follower.truncate_to(4).unwrap();
    let err = follower.append(&pbatch(7, 0, 6, 2), 0).unwrap_err();
    assert!(err.producer_error().is_some(), "{err}");
    assert!(follower.append(&pbatch(7, 0, 2, 2), 0).unwrap().duplicate);
    assert!(!follower.append(&pbatch(7, 0, 4, 2), 0).unwrap().duplicate);
}

/// `b` with base offset `base` and leader epoch `epoch`.
fn leader_batch_from(b: &[u8], base: i64, epoch: i32) -> Vec<u8> {
    let mut b = b.to_vec();
    record::set_base_offset(&mut b, base);
    record::set_partition_leader_epoch(&mut b, epoch);
    b
}

#[test]
fn retention_clips_the_epoch_cache_but_local_retention_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config();
    let log = open(dir.path(), config.clone());
    replicate(&log, &leader_batches(0, 30, &[1, 2, 3]));
    let segs = log.segments();
    let before = log.epoch_entries();
    // Tiered data keeps its epochs: OffsetForLeaderEpoch may ask about it.
    let tiered = segs[2].base_offset;
    assert_eq!(log.enforce_local_retention(0, tiered, -1, 0).unwrap(), 2);
    assert_eq!(log.epoch_entries(), before);
    config.retention_bytes = 0;
    log.update_config(config);
    log.enforce_retention(0).unwrap();
    let start = log.log_start_offset();
    let after = log.epoch_entries();
    assert_eq!(after[0].1, start, "{after:?}");
    assert!(after.iter().all(|e| e.1 >= start));
    assert_eq!(after.last().unwrap().0, before.last().unwrap().0);
}

#[test]
fn a_crash_at_any_step_of_a_truncation_leaves_a_prefix() {
    for step in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config());
        let batches = leader_batches(0, 30, &[0, 1, 2]);
        replicate(&log, &batches);
        log.flush().unwrap();
        let target = header(&batches[7]).base_offset + 1;
        log.crash_truncation_at(step);
        let result = log.truncate_to(target);
        drop(log);
        let log = open(dir.path(), small_config());
        let got = all_batches(&log);
        assert!(
            got.len() >= 7 && batches.starts_with(&got),
            "step {step}: {} batches",
            got.len()
        );
        if result.is_ok() {
            assert_eq!(got.len(), 7, "step {step}");
        }
        let end = end_of(&got);
        assert_eq!(log.log_end_offset(), end);
        assert!(log.epoch_entries().iter().all(|e| e.1 < end));
        check_indexes(dir.path(), &log);
        // The follower can finish the job.
        assert_eq!(
            log.truncate_to(target).unwrap(),
            header(&batches[7]).base_offset
        );
        assert_eq!(all_batches(&log), batches[..7].to_vec());
    }
    for step in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config());
        let batches = leader_batches(0, 30, &[0, 1, 2]);
        replicate(&log, &batches);
        log.crash_truncation_at(step);
        let _ = log.truncate_fully_and_start_at(1_000);
        drop(log);
        let log = open(dir.path(), small_config());
        let got = all_batches(&log);
        if got.is_empty() {
            assert_eq!(
                (log.log_start_offset(), log.log_end_offset()),
                (1_000, 1_000)
            );
            assert_eq!(log.epoch_entries(), vec![]);
        } else {
            // Not yet past the checkpoint: the old log, whole.
            assert_eq!(got, batches, "step {step}");
            assert_eq!(
                log.epoch_entries(),
                vec![
                    (0, 0),
                    (1, header(&batches[10]).base_offset),
                    (2, header(&batches[20]).base_offset)
                ]
            );
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Replicate `count` batches, the leader epoch going up by `bump`.
    Follow {
        count: usize,
        bump: i32,
    },
    /// Append as leader (`append_with_leader_epoch`) at the current epoch.
    Lead,
    Truncate(prop::sample::Index),
    TruncateFully(i64),
    Reopen {
        clean: bool,
    },
    /// Truncate, crashing at this step.
    CrashTruncate(prop::sample::Index, u32),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..6, 0i32..2).prop_map(|(count, bump)| Op::Follow { count, bump }),
        1 => Just(Op::Lead),
        3 => any::<prop::sample::Index>().prop_map(Op::Truncate),
        1 => (0i64..30).prop_map(Op::TruncateFully),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (any::<prop::sample::Index>(), 0u32..6).prop_map(|(i, s)| Op::CrashTruncate(i, s)),
    ]
}

/// The cache a log of `batches` must have: each epoch's first batch.
pub(crate) fn epochs_of(batches: &[Vec<u8>]) -> Vec<(i32, i64)> {
    let mut out: Vec<(i32, i64)> = Vec::new();
    for b in batches {
        let h = header(b);
        if h.partition_leader_epoch >= 0
            && out.last().is_none_or(|l| h.partition_leader_epoch > l.0)
        {
            out.push((h.partition_leader_epoch, h.base_offset));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random follower appends, leader appends, truncations (some crashing
    /// midway), full truncations and reopens against a model: the log always
    /// holds exactly the model's batches, its epoch cache is the one the
    /// batches imply, and its indexes are those of a rebuild.
    #[test]
    fn replication_ops_match_a_model(ops in prop::collection::vec(arb_op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut start = 0i64;
        let mut epoch = 0i32;
        let mut ts = 0i64;
        for op in ops {
            let end = model.last().map_or(start, |b| header(b).last_offset() + 1);
            match op {
                Op::Follow { count, bump } => {
                    epoch += bump;
                    let mut next = end;
                    let mut buf = Vec::new();
                    for i in 0..count {
                        let n = 1 + (ts as usize + i) % 3;
                        ts += 7;
                        let b = leader_batch(next, epoch, ts % 50, n, 60 + (ts as usize % 90));
                        next += n as i64;
                        buf.extend_from_slice(&b);
                        model.push(b);
                    }
                    log.append_as_follower(&buf, 0).unwrap();
                }
                Op::Lead => {
                    epoch += 1;
                    ts += 7;
                    let info = log.append_with_leader_epoch(&batch(0, ts % 50, &[b"lead", b"er"]), epoch, 0).unwrap();
                    prop_assert_eq!(info.base_offset, end);
                    let bytes = log.read(end, 1 << 20, true).unwrap();
                    model.push(bytes.to_vec());
                }
                Op::Truncate(at) => {
                    let offset = start + at.index((end - start + 3) as usize) as i64;
                    model.retain(|b| header(b).last_offset() < offset);
                    let new_end = model.last().map_or(start.min(offset), |b| header(b).last_offset() + 1);
                    prop_assert_eq!(log.truncate_to(offset).unwrap(), new_end.min(end));
                    if model.is_empty() { start = new_end.min(end); }
                }
                Op::TruncateFully(to) => {
                    log.truncate_fully_and_start_at(to).unwrap();
                    model.clear();
                    start = to;
                }
                Op::Reopen { clean } => {
                    if clean { log.close().unwrap(); }
                    drop(log);
                    log = open(dir.path(), small_config());
                }
                Op::CrashTruncate(at, step) => {
                    let offset = start + at.index((end - start + 1) as usize) as i64;
                    log.crash_truncation_at(step);
                    let done = log.truncate_to(offset).is_ok();
                    drop(log);
                    log = open(dir.path(), small_config());
                    let got = all_batches(&log);
                    prop_assert!(model.starts_with(&got), "not a prefix");
                    let kept = model.iter().filter(|b| header(b).last_offset() < offset).count();
                    prop_assert!(got.len() >= kept);
                    if done { prop_assert_eq!(got.len(), kept); }
                    model.truncate(got.len());
                    if model.is_empty() { start = log.log_start_offset(); }
                }
            }
            let end = model.last().map_or(start, |b| header(b).last_offset() + 1);
            prop_assert_eq!(log.log_end_offset(), end);
            prop_assert_eq!(&all_batches(&log), &model);
            prop_assert_eq!(log.epoch_entries(), epochs_of(&model));
            if let Some(latest) = log.latest_epoch() {
                prop_assert_eq!(log.end_offset_for_epoch(latest), Some((latest, end)));
            }
            let max = model.iter().map(|b| header(b).max_timestamp).max();
            let got_max = log.max_timestamp_batch().unwrap().map(|b| header(&b).max_timestamp);
            prop_assert_eq!(got_max, max);
            check_indexes(dir.path(), &log);
        }
    }
}

#[test]
fn readers_never_see_torn_or_removed_batches_during_truncations() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(open(dir.path(), small_config()));
    let writer = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for round in 0..60i64 {
                let end = log.log_end_offset();
                let batches = leader_batches(end, 12, &[round as i32]);
                replicate(&log, &batches);
                let back = log.log_end_offset() - 1 - round % 17;
                log.truncate_to(back.max(0)).unwrap();
                if round % 20 == 19 {
                    log.truncate_fully_and_start_at(log.log_end_offset() + 3)
                        .unwrap();
                }
            }
        })
    };
    let mut checked = 0;
    while !writer.is_finished() || checked == 0 {
        let start = log.log_start_offset();
        let end = log.log_end_offset();
        // Near the end, where truncations cut.
        let at = (end - 1 - (checked as i64 % 5)).max(start);
        match log.read(at, 3_000, true) {
            Ok(bytes) if bytes.is_empty() => {}
            Ok(bytes) => {
                // Whole, CRC-valid, contiguous batches.
                let infos = record::validate_batches(&bytes, usize::MAX).unwrap();
                for pair in infos.windows(2) {
                    assert_eq!(pair[0].last_offset() + 1, pair[1].base_offset);
                }
                checked += 1;
            }
            Err(LogError::OffsetOutOfRange { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    writer.join().unwrap();
    assert!(checked > 0);
}
