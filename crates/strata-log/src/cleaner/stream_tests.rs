//! The stream API (`stream.rs`) against a local pass: the same segments fed
//! through `KeyMapper`, `BatchFilter` and `SegmentWriter` give the same records,
//! tombstone horizons included, and the written segment is a valid log
//! segment; `keep_tombstones` keeps every latest tombstone without a horizon.

use std::collections::HashMap;
use std::path::Path;

use kafka_protocol::records::Compression;

use super::stream::{batches, BatchFilter, Filtered, KeyMapper, SegmentWriter, StreamError};
use super::testing::{decode, keyed_batch, read_batches, read_records, Rec};
use super::tests::{clean, config, open};
use super::{CleanOutcome, CleanParams, OffsetMap};
use crate::record::DELETE_HORIZON_BIT;
use crate::Log;

/// Versions of five keys, a tombstone that stays the latest of `a` and one
/// superseded at once, some compressed batches.
fn fill(log: &Log) {
    let mut i = 0i64;
    let mut put = |records: &[(&str, Option<&str>)], codec: Compression| {
        let ts = 1000 + i;
        let recs: Vec<_> = records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes), ts))
            .collect();
        log.append(&keyed_batch(&recs, codec, None), ts).unwrap();
        i += 1;
    };
    for round in 0..12 {
        let v = format!("v{round}");
        let codec = if round % 3 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        };
        put(&[("a", Some(&v)), ("b", Some(&v))], codec);
        put(
            &[("c", Some(&v)), ("d", Some(&v)), ("e", Some(&v))],
            Compression::None,
        );
    }
    put(&[("a", None), ("b", None)], Compression::None);
    put(&[("b", Some("back"))], Compression::None);
    for _ in 0..10 {
        put(&[("x", Some("filler"))], Compression::None);
    }
}

/// The `.log` bytes of each sealed segment of `log`, with its end offset.
fn sealed(log: &Log) -> Vec<(i64, i64, Vec<u8>)> {
    let segs = log.segments();
    segs[..segs.len() - 1]
        .iter()
        .map(|s| {
            let path = log
                .dir()
                .join(crate::segment::file_name(s.base_offset, "log"));
            (s.base_offset, s.next_offset, std::fs::read(path).unwrap())
        })
        .collect()
}

/// Runs a whole pass over `segments` through the stream API into one segment
/// in `out`, and returns the records written and the mapped end.
fn stream_pass(
    segments: &[(i64, i64, Vec<u8>)],
    map: &mut OffsetMap,
    params: &CleanParams,
    out: &Path,
) -> (Vec<(crate::record::BatchHeader, Vec<Rec>)>, i64) {
    let mut mapper = KeyMapper::new(map, 0);
    for (base, end, bytes) in segments {
        if !mapper.begin_segment(*base, *end) {
            break;
        }
        mapper.add(bytes).unwrap();
        mapper.end_segment();
    }
    let end = mapper.mapped_end();
    let producers = HashMap::new();
    let mut filter = BatchFilter::new(map, end, params, &producers);
    let mut writer = SegmentWriter::create(out, 0, &config(), 0).unwrap();
    for (base, _, bytes) in segments.iter().filter(|s| s.0 < end) {
        assert!(*base < end);
        for item in batches(bytes) {
            let (_, b) = item.unwrap();
            match filter.filter(b).unwrap() {
                Filtered::Keep => writer.push(b).unwrap(),
                Filtered::Rewrite(new) => writer.push(&new).unwrap(),
                Filtered::Drop => {}
            }
        }
    }
    let written = writer.finish(end).unwrap();
    assert_eq!(written.info.next_offset, end);
    let bytes = std::fs::read(&written.log_path).unwrap();
    assert_eq!(bytes.len() as u64, written.info.size_bytes);
    let out = batches(&bytes)
        .map(|b| {
            let (h, b) = b.unwrap();
            (h, decode(b))
        })
        .collect();
    (out, end)
}

#[test]
fn streaming_the_segments_gives_what_a_local_pass_gives() {
    let (a, b, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (local, streamed) = (open(a.path()), open(b.path()));
    fill(&local);
    fill(&streamed);
    let params = CleanParams {
        delete_retention_ms: 500,
        ..CleanParams::at(20_000)
    };
    let mut map = OffsetMap::with_memory(1 << 16);
    let CleanOutcome::Cleaned(stats) = clean(&local, &mut map, &params) else {
        panic!("the local pass cleaned nothing");
    };
    let (got, end) = stream_pass(&sealed(&streamed), &mut map, &params, out.path());
    assert_eq!(end, stats.end_offset);
    let want: Vec<_> = read_batches(&local)
        .into_iter()
        .filter(|(h, _)| h.base_offset < end)
        .collect();
    let records = |b: &[(crate::record::BatchHeader, Vec<Rec>)]| -> Vec<Rec> {
        b.iter().flat_map(|(_, r)| r.clone()).collect()
    };
    assert_eq!(records(&got), records(&want));
    let horizons = |b: &[(crate::record::BatchHeader, Vec<Rec>)]| -> Vec<(i64, i64)> {
        b.iter()
            .filter(|(h, _)| h.attributes & DELETE_HORIZON_BIT != 0)
            .map(|(h, _)| (h.base_offset, h.base_timestamp))
            .collect()
    };
    assert_eq!(horizons(&got), horizons(&want));
    assert_eq!(horizons(&got).len(), 1, "a's tombstone got its horizon");
    // The written directory opens as a log (recovery checks every batch and
    // rebuilds the indexes) holding the same records.
    let reopened = Log::open(out.path().to_path_buf(), config(), 0).unwrap();
    let mut want_all = records(&want);
    want_all.retain(|r| r.offset < reopened.log_end_offset());
    assert_eq!(read_records(&reopened), want_all);
}

#[test]
fn keep_tombstones_keeps_latest_tombstones_without_a_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    fill(&log);
    let mut map = OffsetMap::with_memory(1 << 16);
    let params = |now| CleanParams {
        delete_retention_ms: 0,
        keep_tombstones: true,
        ..CleanParams::at(now)
    };
    let CleanOutcome::Cleaned(stats) = clean(&log, &mut map, &params(20_000)) else {
        panic!("nothing cleaned");
    };
    assert_eq!((stats.horizons_set, stats.tombstones_removed), (0, 0));
    let tombstones = |log: &Log| -> Vec<i64> {
        read_batches(log)
            .into_iter()
            .inspect(|(h, _)| assert_eq!(h.attributes & DELETE_HORIZON_BIT, 0, "{h:?}"))
            .flat_map(|(_, r)| r)
            .filter(|r| r.value.is_none())
            .map(|r| r.offset)
            .collect()
    };
    let kept = tombstones(&log);
    assert_eq!(
        kept.len(),
        1,
        "a's tombstone stays, b's superseded one goes"
    );
    // Much later, with new data to clean: still there.
    for _ in 0..12 {
        let b = keyed_batch(&[(Some(b"y"), Some(b"1"), 5000)], Compression::None, None);
        log.append(&b, 5000).unwrap();
    }
    assert!(matches!(
        clean(&log, &mut map, &params(i64::MAX / 2)),
        CleanOutcome::Cleaned(_)
    ));
    assert_eq!(tombstones(&log), kept);
}

#[test]
fn the_mapper_stops_at_a_segment_boundary_and_the_filter_keeps_what_was_not_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    fill(&log);
    let segments = sealed(&log);
    assert!(segments.len() > 3);
    // Room for the first segment's offsets but not the second's as well.
    let first_span = (segments[0].1 - segments[0].0) as usize;
    let mut map =
        OffsetMap::with_memory((first_span + 2) * super::offset_map::BYTES_PER_ENTRY * 10 / 9 + 64);
    assert!(map.capacity() >= first_span);
    let mut mapper = KeyMapper::new(&mut map, 0);
    let mut taken = 0;
    for (base, end, bytes) in &segments {
        if !mapper.begin_segment(*base, *end) {
            break;
        }
        mapper.add(bytes).unwrap();
        mapper.end_segment();
        taken += 1;
    }
    let end = mapper.mapped_end();
    assert!(taken < segments.len(), "the map filled up");
    assert_eq!(
        end,
        segments[taken - 1].1,
        "mapping ends at a segment boundary"
    );
    assert!(!mapper.begin_segment(end, end + 1), "and stays over");
    // A record past the mapped end stays even though its key is mapped.
    let producers = HashMap::new();
    let mut filter = BatchFilter::new(&map, end, &CleanParams::at(0), &producers);
    for item in batches(&segments[taken].2) {
        let (_, b) = item.unwrap();
        assert_eq!(filter.filter(b).unwrap(), Filtered::Keep);
    }
}

#[test]
fn bad_bytes_are_errors_naming_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    fill(&log);
    let mut bytes = sealed(&log).remove(0).2;
    let n = bytes.len();
    bytes[n - 3] ^= 0xff; // inside the last batch: its CRC fails
    let mut map = OffsetMap::with_memory(1 << 16);
    let mut mapper = KeyMapper::new(&mut map, 0);
    assert!(mapper.begin_segment(0, 1000));
    let err = mapper.add(&bytes).unwrap_err();
    assert!(
        matches!(err, StreamError::Corrupt { base_offset, .. } if base_offset > 0),
        "{err}"
    );
    // A torn tail is refused, not skipped.
    let whole = sealed(&log).remove(0).2;
    assert!(batches(&whole[..whole.len() - 1]).any(|b| b.is_err()));
    // The writer refuses batches that go back, and an end below its last batch.
    let out = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(out.path(), 0, &config(), 0).unwrap();
    let first: Vec<_> = batches(&whole).map(|b| b.unwrap().1.to_vec()).collect();
    w.push(&first[1]).unwrap();
    assert!(w.push(&first[0]).is_err());
    assert!(w.finish(1).is_err());
}

#[test]
fn the_logs_last_batch_keeps_its_header_when_everything_in_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let b = keyed_batch(&[(Some(b"k"), None, 1000)], Compression::None, None);
    log.append(&b, 1000).unwrap();
    let stored = log.read(0, 1 << 20, true).unwrap();
    let map = OffsetMap::with_memory(1 << 16);
    let producers = HashMap::new();
    // A tombstone whose horizon has passed (it is not in the map: the clean section).
    let params = CleanParams {
        delete_retention_ms: 0,
        ..CleanParams::at(5_000)
    };
    let mut plain = BatchFilter::new(&map, 1, &params, &producers);
    let first = plain.filter(&stored).unwrap();
    let Filtered::Rewrite(with_horizon) = first else {
        panic!("the first pass sets the horizon: {first:?}");
    };
    assert_eq!(plain.filter(&with_horizon).unwrap(), Filtered::Drop);
    let mut last = BatchFilter::new(&map, 1, &params, &producers).keeping_last_batch(0);
    let Filtered::Rewrite(header) = last.filter(&with_horizon).unwrap() else {
        panic!("the log's last batch is kept");
    };
    let (h, _) = batches(&header).next().unwrap().unwrap();
    assert_eq!((h.base_offset, h.last_offset(), h.records_count), (0, 0, 0));
    assert_eq!(last.stats().tombstones_removed, 1);
}
