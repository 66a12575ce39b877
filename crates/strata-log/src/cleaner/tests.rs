//! Cleaning passes on real logs: what is kept, tombstones and their horizon,
//! compressed and idempotent batches, the map's limit, the cleanable range
//! (lag, upper and lower bounds), the checkpoint, and passes racing
//! truncation, retention, close and reads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use kafka_protocol::records::Compression;

use super::testing::{codec, keyed_batch, read_batches, read_records, Rec};
use super::{offset_map::BYTES_PER_ENTRY, CleanOutcome, CleanParams, CleanStats, OffsetMap};
use crate::record::{self, DELETE_HORIZON_BIT};
use crate::{Log, LogConfig, LogError};

pub(super) fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

pub(super) fn open(dir: &Path) -> Log {
    Log::open(dir.to_path_buf(), config(), 0).unwrap()
}

fn no_throttle(_: u64) {}

pub(super) fn clean(log: &Log, map: &mut OffsetMap, params: &CleanParams) -> CleanOutcome {
    log.clean(map, params, &no_throttle).unwrap()
}

fn cleaned(outcome: CleanOutcome) -> CleanStats {
    match outcome {
        CleanOutcome::Cleaned(stats) => stats,
        other => panic!("expected a committed pass, got {other:?}"),
    }
}

/// Appends one single-record batch per `(key, value)`, timestamps from 1000.
fn append_each(log: &Log, records: &[(&str, Option<&str>)]) {
    for (k, v) in records {
        let ts = 1000 + log.log_end_offset();
        let b = keyed_batch(
            &[(Some(k.as_bytes()), v.map(str::as_bytes), ts)],
            Compression::None,
            None,
        );
        log.append(&b, ts).unwrap();
    }
}

/// Kafka's rule on records below `end` (every one mapped): the latest of each
/// key stays; records at or above `end` all stay.
fn expected(all: &[Rec], end: i64) -> Vec<Rec> {
    let mut latest: HashMap<&Option<Vec<u8>>, i64> = HashMap::new();
    for r in all.iter().filter(|r| r.offset < end) {
        latest.insert(&r.key, r.offset);
    }
    all.iter()
        .filter(|r| r.offset >= end || latest.get(&r.key) == Some(&r.offset))
        .cloned()
        .collect()
}

#[test]
fn keeps_the_latest_value_of_each_key_at_its_offset_and_merges_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let keys = ["a", "b", "c", "d", "e"];
    let values: Vec<String> = (0..80).map(|i| format!("value-{i}")).collect();
    let input: Vec<(&str, Option<&str>)> = (0..80)
        .map(|i| (keys[i % 5], Some(values[i].as_str())))
        .collect();
    append_each(&log, &input);
    let before = read_records(&log);
    let segments_before = log.segments().len();
    assert!(segments_before > 5);
    let active = log.segments().last().unwrap().base_offset;
    let mut map = OffsetMap::with_memory(1 << 16);
    let stats = cleaned(clean(&log, &mut map, &CleanParams::at(5_000)));
    assert_eq!((stats.first_dirty_offset, stats.end_offset), (0, active));
    assert_eq!(stats.first_uncleanable_offset, active);
    assert_eq!(stats.map_keys, 5);
    // Full segments are grouped by their size before cleaning (as Kafka), but what cleaning
    // left small is written into the same output as the next group: fewer segments at once.
    assert!(stats.segments_after < stats.segments_before, "{stats:?}");
    assert_eq!(stats.segments_after, log.segments().len() - 1);
    assert_eq!(
        stats.records_read - stats.records_kept,
        stats.records_removed()
    );
    assert!(stats.bytes_written < stats.bytes_read);
    let after = read_records(&log);
    assert_eq!(after, expected(&before, active));
    assert_eq!(after.iter().filter(|r| r.offset < active).count(), 5);
    assert_eq!(log.first_dirty_offset(), active);
    // Reads from any offset, including the gaps, land on the next record.
    for o in 0..log.log_end_offset() {
        let bytes = log.read(o, 1 << 20, true).unwrap();
        let first = super::testing::decode(&bytes)
            .into_iter()
            .find(|r| r.offset >= o);
        assert_eq!(
            first.as_ref(),
            after.iter().find(|r| r.offset >= o),
            "read at {o}"
        );
    }
    // Timestamp lookups find the batch of the first kept record at or after.
    for r in &after {
        let batch = log.find_batch_by_timestamp(r.timestamp).unwrap().unwrap();
        let found = super::testing::decode(&batch);
        assert!(found.iter().any(|f| f.timestamp >= r.timestamp));
        assert!(found[0].offset <= r.offset);
    }
    // Nothing new: nothing to clean.
    assert_eq!(
        clean(&log, &mut map, &CleanParams::at(5_000)),
        CleanOutcome::NothingToClean
    );
    // The next pass merges the small cleaned segments.
    append_each(&log, &input);
    let before = read_records(&log);
    let active = log.segments().last().unwrap().base_offset;
    let segments_before = log.segments().len();
    let stats = cleaned(clean(&log, &mut map, &CleanParams::at(5_000)));
    assert!(stats.segments_after < stats.segments_before, "{stats:?}");
    assert!(log.segments().len() < segments_before);
    assert_eq!(read_records(&log), expected(&before, active));
    append_each(&log, &[("a", Some("new"))]);
    // Clean and unclean reopen give the same log.
    log.close().unwrap();
    let all = read_records(&log);
    drop(log);
    let log = open(dir.path());
    assert_eq!(read_records(&log), all);
    assert_eq!(log.first_dirty_offset(), active);
    drop(log);
    std::fs::remove_file(dir.path().join(crate::checkpoint::CHECKPOINT_FILE)).unwrap();
    let log = open(dir.path());
    assert!(log.recovery_bytes_scanned() > 0);
    assert_eq!(read_records(&log), all);
}

#[test]
fn tombstones_stay_until_their_horizon_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut input = Vec::new();
    for i in 0..30 {
        input.push((["a", "b", "c"][i % 3], Some("v")));
    }
    input.push(("a", None)); // the latest of a: a tombstone
    input.push(("b", None)); // superseded below
    input.push(("b", Some("back")));
    for _ in 0..20 {
        input.push(("x", Some("filler")));
    }
    append_each(&log, &input);
    let tomb_a = 30;
    let mut map = OffsetMap::with_memory(1 << 16);
    let params = |now| CleanParams {
        delete_retention_ms: 1_000,
        ..CleanParams::at(now)
    };
    let stats = cleaned(clean(&log, &mut map, &params(10_000)));
    assert_eq!(stats.horizons_set, 1);
    assert_eq!(stats.tombstones_removed, 0);
    let batches = read_batches(&log);
    let (h, records) = batches
        .iter()
        .find(|(_, r)| r.iter().any(|r| r.offset == tomb_a))
        .unwrap();
    // The horizon is in baseTimestamp with bit 6; the record's timestamp is kept.
    assert_ne!(h.attributes & DELETE_HORIZON_BIT, 0);
    assert_eq!(h.base_timestamp, 11_000);
    assert_eq!(records[0].timestamp, 1000 + tomb_a);
    assert_eq!(records[0].value, None);
    let keys_of = |log: &Log| {
        read_records(log)
            .into_iter()
            .map(|r| (r.offset, r.value.is_some()))
            .collect::<Vec<_>>()
    };
    assert!(keys_of(&log).contains(&(tomb_a, false)));
    assert!(
        !keys_of(&log).contains(&(31, false)),
        "a superseded tombstone goes at once"
    );
    // More data so that the next passes have something dirty.
    append_each(&log, &[("y", Some("1")); 12]);
    // Before the horizon: kept.
    cleaned(clean(&log, &mut map, &params(10_999)));
    assert!(keys_of(&log).contains(&(tomb_a, false)));
    append_each(&log, &[("y", Some("2")); 12]);
    let stats = cleaned(clean(&log, &mut map, &params(11_000)));
    assert_eq!(stats.tombstones_removed, 1);
    assert!(!keys_of(&log).iter().any(|(o, _)| *o == tomb_a));
    assert!(
        keys_of(&log).contains(&(32, true)),
        "b's latest value stays"
    );
}

#[test]
fn compressed_and_idempotent_batches_keep_their_fields_and_producer_state() {
    for c in 1..=4u8 {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let mut seq = 0;
        for round in 0..12i64 {
            let v1 = format!("r{round}-1");
            let v2 = format!("r{round}-2");
            let recs: Vec<super::testing::Input<'_>> = vec![
                (Some(b"k1".as_slice()), Some(v1.as_bytes()), 100 + round),
                (Some(b"k2".as_slice()), Some(v2.as_bytes()), 200 + round),
                (Some(b"k1".as_slice()), Some(v2.as_bytes()), 50 + round),
            ];
            let b = keyed_batch(&recs, codec(c), Some((7, 2, seq)));
            log.append_with_leader_epoch(&b, 3, 0).unwrap();
            seq += 3;
        }
        let before = read_batches(&log);
        let all: Vec<Rec> = before.iter().flat_map(|(_, r)| r.clone()).collect();
        let active = log.segments().last().unwrap().base_offset;
        let mut map = OffsetMap::with_memory(1 << 16);
        cleaned(clean(&log, &mut map, &CleanParams::at(0)));
        let after = read_batches(&log);
        let records: Vec<Rec> = after.iter().flat_map(|(_, r)| r.clone()).collect();
        assert_eq!(records, expected(&all, active), "codec {c}");
        for (h, _) in &after {
            let original = before
                .iter()
                .find(|(o, _)| o.base_offset == h.base_offset)
                .unwrap()
                .0;
            assert_eq!(h.last_offset_delta, original.last_offset_delta);
            assert_eq!((h.producer_id, h.producer_epoch), (7, 2));
            assert_eq!(h.base_sequence, original.base_sequence);
            assert_eq!(h.partition_leader_epoch, 3);
            let codec_now = h.attributes & record::COMPRESSION_MASK;
            assert!(
                codec_now == i16::from(c) || h.records_count == 0,
                "codec {c}"
            );
        }
        // The producer's last batch and sequence survive a restart that
        // rebuilds its state from the log alone.
        drop(log);
        for f in super::testing::files(dir.path()) {
            if f.ends_with(".snapshot") {
                std::fs::remove_file(dir.path().join(f)).unwrap();
            }
        }
        let log = open(dir.path());
        let next = |seq| {
            keyed_batch(
                &[(Some(b"k9".as_slice()), Some(b"x".as_slice()), 0)],
                codec(c),
                Some((7, 2, seq)),
            )
        };
        let err = log.append(&next(seq + 1), 0).unwrap_err();
        assert!(err.producer_error().is_some(), "{err}");
        let retry = keyed_batch(
            &[
                (Some(b"k1".as_slice()), Some(b"r11-1".as_slice()), 111),
                (Some(b"k2".as_slice()), Some(b"r11-2".as_slice()), 211),
                (Some(b"k1".as_slice()), Some(b"r11-2".as_slice()), 61),
            ],
            codec(c),
            Some((7, 2, seq - 3)),
        );
        assert!(
            log.append(&retry, 0).unwrap().duplicate,
            "the last batch is still known"
        );
        log.append(&next(seq), 0).unwrap();
    }
}

#[test]
fn a_producers_last_batch_keeps_its_header_and_keyless_records_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let one = |v: &[u8], producer| {
        keyed_batch(
            &[(Some(b"a".as_slice()), Some(v), 0)],
            Compression::None,
            producer,
        )
    };
    log.append(&one(b"1", Some((5, 0, 0))), 0).unwrap();
    log.append(&one(b"2", Some((5, 0, 1))), 0).unwrap();
    log.append(
        &keyed_batch(
            &[(None, Some(b"keyless".as_slice()), 0)],
            Compression::None,
            None,
        ),
        0,
    )
    .unwrap();
    log.append(&one(b"3", None), 0).unwrap();
    for _ in 0..10 {
        log.append(
            &keyed_batch(
                &[(Some(b"z".as_slice()), Some(&[0u8; 100][..]), 0)],
                Compression::None,
                None,
            ),
            0,
        )
        .unwrap();
    }
    let mut map = OffsetMap::with_memory(1 << 16);
    let stats = cleaned(clean(&log, &mut map, &CleanParams::at(0)));
    assert_eq!((stats.emptied_batches, stats.keyless_removed), (1, 1));
    let batches = read_batches(&log);
    let (h, records) = &batches[0];
    assert_eq!(
        (
            h.base_offset,
            h.records_count,
            h.producer_id,
            h.base_sequence
        ),
        (1, 0, 5, 1)
    );
    assert!(records.is_empty());
    assert_eq!(batches[1].1[0].offset, 3);
    assert_eq!(batches[1].1[0].value.as_deref(), Some(b"3".as_slice()));
    // A new producer batch continues the sequence after a rebuild from the log.
    drop(log);
    for f in super::testing::files(dir.path())
        .iter()
        .filter(|f| f.ends_with(".snapshot"))
    {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let log = open(dir.path());
    assert!(log.append(&one(b"4", Some((5, 0, 3))), 0).is_err());
    log.append(&one(b"4", Some((5, 0, 2))), 0).unwrap();
}

#[test]
fn a_small_map_cleans_in_several_passes_stopping_at_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i:02}")).collect();
    let input: Vec<(&str, Option<&str>)> = (0..120)
        .map(|i| (keys[i % 40].as_str(), Some("v")))
        .collect();
    append_each(&log, &input);
    let before = read_records(&log);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    let active = *bases.last().unwrap();
    let mut map = OffsetMap::with_memory(32 * BYTES_PER_ENTRY);
    assert_eq!(map.capacity(), 28);
    let mut passes = 0;
    let mut end = 0;
    while end < active {
        let stats = cleaned(clean(&log, &mut map, &CleanParams::at(0)));
        assert_eq!(stats.first_dirty_offset, end);
        assert!(stats.end_offset > end);
        assert!(
            bases.contains(&stats.end_offset),
            "stops at a segment boundary"
        );
        assert!(stats.map_keys <= 28);
        end = stats.end_offset;
        passes += 1;
    }
    assert!(passes >= 3, "{passes} passes");
    assert_eq!(read_records(&log), expected(&before, active));
}

#[test]
fn lag_and_upper_bound_limit_the_dirty_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let input: Vec<(&str, Option<&str>)> =
        (0..60).map(|i| (["a", "b"][i % 2], Some("v"))).collect();
    append_each(&log, &input);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    // Timestamps are 1000 + offset: with a lag of 30 ms at now = 1040, the
    // first segment holding an offset above 10 is too young.
    let lag = CleanParams {
        min_compaction_lag_ms: 30,
        ..CleanParams::at(1040)
    };
    let young = log
        .segments()
        .into_iter()
        .find(|s| s.max_timestamp.unwrap() > 1010)
        .unwrap();
    let stats = log.cleanable(&lag).unwrap();
    assert_eq!(stats.first_uncleanable_offset, young.base_offset);
    assert!(stats.dirty_bytes > 0 && stats.uncleanable_bytes > 0 && stats.clean_bytes == 0);
    assert_eq!(stats.dirty_ratio(), 1.0);
    assert_eq!(stats.first_dirty_timestamp, Some(1000));
    let mut map = OffsetMap::with_memory(1 << 16);
    assert_eq!(
        cleaned(clean(&log, &mut map, &lag)).end_offset,
        young.base_offset
    );
    // The upper bound (high watermark) in the middle of a segment: only the
    // segments ending at or below it.
    let hw = bases[3] + 1;
    let bounded = CleanParams {
        upper_bound: hw,
        ..CleanParams::at(1040)
    };
    let stats = log.cleanable(&bounded).unwrap();
    assert_eq!(stats.first_uncleanable_offset, bases[3]);
    assert!(stats.clean_bytes > 0);
    assert_eq!(
        cleaned(clean(&log, &mut map, &bounded)).end_offset,
        bases[3]
    );
    assert!(stats.dirty_ratio() > 0.0 && stats.dirty_ratio() < 1.0);
}

/// The bytes of every file of the segments starting below `bound`.
fn files_below(dir: &Path, log: &Log, bound: i64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in log.segments().iter().filter(|s| s.base_offset < bound) {
        for ext in ["log", "index", "timeindex"] {
            let name = crate::segment::file_name(s.base_offset, ext);
            out.push(std::fs::read(dir.join(name)).unwrap());
        }
    }
    out
}

#[test]
fn a_lower_bound_keeps_the_segments_below_it_and_starts_the_dirty_range_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let input: Vec<(&str, Option<&str>)> = (0..80)
        .map(|i| (["a", "b", "c"][i % 3], Some("v")))
        .collect();
    append_each(&log, &input);
    let all = read_records(&log);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    let active = *bases.last().unwrap();
    assert!(bases.len() > 6);
    // The bound (the remote tier's end) above the first dirty offset (0).
    let bound = bases[3];
    let params = CleanParams {
        lower_bound: bound,
        ..CleanParams::at(0)
    };
    let stats = log.cleanable(&params).unwrap();
    assert_eq!(stats.first_dirty_offset, bound);
    let below: u64 = log.segments()[..3].iter().map(|s| s.size_bytes).sum();
    assert_eq!(stats.clean_bytes, 0);
    assert!(stats.uncleanable_bytes > below && stats.dirty_bytes > 0);
    let kept = files_below(dir.path(), &log, bound);
    let segments_below = log.segments()[..3].to_vec();
    let mut map = OffsetMap::with_memory(1 << 16);
    let done = cleaned(clean(&log, &mut map, &params));
    assert_eq!(
        (done.start_offset, done.first_dirty_offset, done.end_offset),
        (bound, bound, active)
    );
    assert_eq!(log.first_dirty_offset(), active);
    // Below the bound: the same files, byte for byte; from it: Kafka's rule
    // over the offsets from the bound only.
    assert_eq!(files_below(dir.path(), &log, bound), kept);
    assert_eq!(log.segments()[..3], segments_below);
    let (low, high): (Vec<Rec>, Vec<Rec>) = all.iter().cloned().partition(|r| r.offset < bound);
    let mut want = low;
    want.extend(expected(&high, active));
    assert_eq!(read_records(&log), want);
    // Later passes under the same (or a higher) bound leave those alone too,
    // and one holding a bound inside a segment keeps that segment whole.
    append_each(&log, &input);
    let inside = CleanParams {
        lower_bound: bases[4] + 1,
        ..CleanParams::at(0)
    };
    let next_base = log
        .segments()
        .iter()
        .map(|s| s.base_offset)
        .find(|b| *b > bases[4])
        .unwrap();
    let kept = files_below(dir.path(), &log, next_base);
    let done = cleaned(clean(&log, &mut map, &inside));
    assert_eq!(
        (done.start_offset, done.first_dirty_offset),
        (next_base, active)
    );
    assert_eq!(files_below(dir.path(), &log, next_base), kept);
    // A bound above every sealed segment: nothing to clean, nothing moves.
    append_each(&log, &input);
    let first_dirty = log.first_dirty_offset();
    let above = CleanParams {
        lower_bound: log.log_end_offset(),
        ..CleanParams::at(0)
    };
    assert_eq!(clean(&log, &mut map, &above), CleanOutcome::NothingToClean);
    assert_eq!(log.first_dirty_offset(), first_dirty);
    assert_eq!(log.cleanable(&above).unwrap().dirty_bytes, 0);
}

#[test]
fn truncation_retention_and_close_abort_a_pass_and_leave_the_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    let input: Vec<(&str, Option<&str>)> = (0..60)
        .map(|i| (["a", "b", "c"][i % 3], Some("v")))
        .collect();
    append_each(&log, &input);
    let mut map = OffsetMap::with_memory(1 << 16);
    // A truncation while the pass reads.
    let before = read_records(&log);
    let cut = log.segments()[4].base_offset + 1;
    let truncate = |_: u64| {
        if log.log_end_offset() > cut {
            log.truncate_to(cut).unwrap();
        }
    };
    let outcome = log.clean(&mut map, &CleanParams::at(0), &truncate).unwrap();
    assert_eq!(
        outcome,
        CleanOutcome::Aborted {
            reason: "the log was truncated"
        }
    );
    assert_eq!(
        read_records(&log),
        before
            .iter()
            .filter(|r| r.offset < cut)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(!super::testing::files(dir.path())
        .iter()
        .any(|f| f.ends_with(".cleaned")));
    // DeleteRecords removing a segment being cleaned.
    append_each(&log, &input);
    let start = log.segments()[1].base_offset;
    let delete = |_: u64| {
        if log.log_start_offset() < start {
            log.delete_records_before(start).unwrap();
        }
    };
    let outcome = log.clean(&mut map, &CleanParams::at(0), &delete).unwrap();
    assert!(
        matches!(outcome, CleanOutcome::Aborted { reason } if reason.contains("DeleteRecords"))
    );
    let after_delete = read_records(&log);
    assert_eq!(after_delete.first().unwrap().offset, start);
    // A clean pass now works, then close during the next one.
    cleaned(clean(&log, &mut map, &CleanParams::at(0)));
    append_each(&log, &input);
    let (tx, rx) = std::sync::mpsc::channel();
    let closer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            rx.recv().unwrap();
            log.close().unwrap();
        })
    };
    let sent = std::sync::atomic::AtomicBool::new(false);
    let signal = |_: u64| {
        if !sent.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let outcome = log.clean(&mut map, &CleanParams::at(0), &signal).unwrap();
    assert_eq!(
        outcome,
        CleanOutcome::Aborted {
            reason: "the log is closing"
        }
    );
    closer.join().unwrap();
    assert!(matches!(
        log.clean(&mut map, &CleanParams::at(0), &no_throttle),
        Err(LogError::Closed { .. })
    ));
}

#[test]
fn reads_during_passes_always_see_every_latest_value() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut scans = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                // Every value ever written is "k<i>=<offset>": the last one of
                // each key below the end loaded must be seen by a full scan.
                let end = log.log_end_offset();
                let seen = read_records(&log);
                let latest: HashMap<Vec<u8>, i64> = seen
                    .iter()
                    .map(|r| (r.key.clone().unwrap(), r.offset))
                    .collect();
                for r in seen.iter().filter(|r| r.offset < end) {
                    assert!(latest[r.key.as_ref().unwrap()] >= r.offset);
                }
                scans += 1;
            }
            scans
        })
    };
    let mut map = OffsetMap::with_memory(64 * BYTES_PER_ENTRY);
    let mut model: HashMap<String, i64> = HashMap::new();
    for round in 0..30 {
        for i in 0..20 {
            let k = &keys[(round * 7 + i) % keys.len()];
            let offset = log.log_end_offset();
            let v = format!("{k}={offset}");
            append_each(&log, &[(k.as_str(), Some(v.as_str()))]);
            model.insert(k.clone(), offset);
        }
        let _ = clean(&log, &mut map, &CleanParams::at(0));
        let records = read_records(&log);
        for (k, offset) in &model {
            assert!(records
                .iter()
                .any(|r| r.offset == *offset && r.key.as_deref() == Some(k.as_bytes())));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn the_first_dirty_offset_survives_restarts_and_follows_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let input: Vec<(&str, Option<&str>)> =
        (0..60).map(|i| (["a", "b"][i % 2], Some("v"))).collect();
    append_each(&log, &input);
    let mut map = OffsetMap::with_memory(1 << 16);
    let end = cleaned(clean(&log, &mut map, &CleanParams::at(0))).end_offset;
    drop(log); // a crash: the checkpoint was written by the pass
    let log = open(dir.path());
    assert_eq!(log.first_dirty_offset(), end);
    assert_eq!(
        clean(&log, &mut map, &CleanParams::at(0)),
        CleanOutcome::NothingToClean
    );
    // end - 3 is in a gap of the cleaned log: the log ends exactly there.
    let kept: Vec<i64> = read_records(&log).iter().map(|r| r.offset).collect();
    assert!(!kept.contains(&(end - 3)), "{kept:?}");
    assert_eq!(log.truncate_to(end - 3).unwrap(), end - 3);
    assert_eq!(log.log_end_offset(), end - 3);
    assert_eq!(log.first_dirty_offset(), end - 3);
    let tombstone = keyed_batch(&[(Some(b"a".as_slice()), None, 0)], Compression::None, None);
    assert_eq!(log.append(&tombstone, 0).unwrap().base_offset, end - 3);
    log.truncate_to(end - 3).unwrap();
    drop(log);
    // After a crash the end is where the last batch (here: the last segment)
    // ends: nothing on disk records a gap after it, as in Kafka. The first
    // dirty offset follows.
    let log = open(dir.path());
    assert!(log.log_end_offset() <= end - 3);
    assert_eq!(log.first_dirty_offset(), log.log_end_offset());
    log.truncate_fully_and_start_at(1000).unwrap();
    assert_eq!(log.first_dirty_offset(), 1000);
}
