//! `Log::open_segment` against cleaning passes: the files it opens are of one
//! generation of the segment (index entries point at the batches of that
//! `.log`), stay readable after a pass renames a cleaned segment over their
//! names or retention unlinks them, and never belong to the active segment.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kafka_protocol::records::Compression;

use super::testing::keyed_batch;
use super::tests::{clean, open};
use super::{CleanParams, OffsetMap};
use crate::record::{self, BatchHeader};
use crate::segment::file_name;
use crate::{Log, OpenSegment};

fn append(log: &Log, key: &str, n: usize) {
    for _ in 0..n {
        let value = format!("{key}@{}", log.log_end_offset());
        let b = keyed_batch(
            &[(Some(key.as_bytes()), Some(value.as_bytes()), 0)],
            Compression::None,
            None,
        );
        log.append(&b, 0).unwrap();
    }
}

fn read_all(file: &std::fs::File, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).unwrap();
    buf
}

/// The three files' bytes, checked against each other and the figures: the
/// `.log` holds `size_bytes` of whole batches within the segment's offsets,
/// every offset-index entry is the position of a batch ending at its offset,
/// every time-index entry names a batch ending at its offset with its max
/// timestamp.
fn check_one_generation(s: &OpenSegment) -> Vec<u8> {
    let log = read_all(&s.log, s.info.size_bytes);
    assert_eq!(s.log.metadata().unwrap().len(), s.info.size_bytes);
    let batches: Vec<BatchHeader> = if log.is_empty() {
        Vec::new()
    } else {
        record::validate_stored_batches(&log)
            .unwrap()
            .iter()
            .map(|i| BatchHeader::parse(&log[i.range()]).unwrap())
            .collect()
    };
    for h in &batches {
        assert!(h.base_offset >= s.info.base_offset && h.last_offset() < s.info.next_offset);
    }
    let at = |pos: u32| BatchHeader::parse(&log[pos as usize..]).unwrap();
    let index = read_all(&s.index, s.index_bytes);
    for e in index.chunks(8) {
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        assert_eq!(at(pos).last_offset(), s.info.base_offset + i64::from(rel));
    }
    let times = read_all(&s.timeindex, s.timeindex_bytes);
    for e in times.chunks(12) {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        let offset = s.info.base_offset + i64::from(rel);
        assert!(
            batches
                .iter()
                .any(|h| h.last_offset() == offset && h.max_timestamp == i64::from_be_bytes(ts)),
            "time index entry {offset} names no batch"
        );
    }
    log
}

#[test]
fn an_opened_segment_is_one_generation_and_outlives_renames_and_unlinks() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append(&log, "a", 40);
    append(&log, "b", 20);
    let segments = log.segments();
    let (first, active) = (segments[0], *segments.last().unwrap());
    assert!(log.open_segment(active.base_offset).unwrap().is_none());
    assert!(log.open_segment(first.base_offset + 1).unwrap().is_none());
    let before = log.open_segment(first.base_offset).unwrap().unwrap();
    assert_eq!(before.info, first);
    let old = check_one_generation(&before);
    let path = dir.path().join(file_name(first.base_offset, "log"));
    assert_eq!(before.log_path, path);
    assert_eq!(std::fs::read(&path).unwrap(), old);
    // A pass renames a cleaned segment over the first one's names:
    // the descriptors opened before still read the old generation, whole.
    let mut map = OffsetMap::with_memory(1 << 16);
    let _ = clean(&log, &mut map, &CleanParams::at(0));
    assert_ne!(std::fs::read(&path).unwrap(), old);
    assert_eq!(check_one_generation(&before), old);
    let after = log.open_segment(first.base_offset).unwrap().unwrap();
    assert_eq!(check_one_generation(&after), std::fs::read(&path).unwrap());
    assert!(after.info.size_bytes < first.size_bytes, "cleaned");
    // Retention unlinks it: still readable.
    let next = log.segments()[1].base_offset;
    log.delete_records_before(next).unwrap();
    assert!(!path.exists());
    assert!(log.open_segment(first.base_offset).unwrap().is_none());
    check_one_generation(&after);
}

#[test]
fn segments_opened_while_passes_commit_are_never_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    append(&log, "k", 30);
    let stop = Arc::new(AtomicBool::new(false));
    let opener = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut opened = 0;
            while !stop.load(Ordering::Acquire) {
                for s in log.segments() {
                    if let Some(open) = log.open_segment(s.base_offset).unwrap() {
                        check_one_generation(&open);
                        opened += 1;
                    }
                }
            }
            opened
        })
    };
    let mut map = OffsetMap::with_memory(1 << 16);
    for round in 0..25 {
        append(&log, ["k", "j", "i"][round % 3], 12);
        let _ = clean(&log, &mut map, &CleanParams::at(0));
    }
    stop.store(true, Ordering::Release);
    assert!(opener.join().unwrap() > 0);
}
