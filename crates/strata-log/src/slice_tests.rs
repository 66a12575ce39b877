//! `Log::read_slice_up_to` against `Log::read_up_to`: the same bytes for every
//! offset, byte limit and upper bound, across segment rolls, and still readable
//! after retention deleted the segment.

use std::path::Path;

use crate::log_tests::small_config;
use crate::record::testing::batch;
use crate::{Log, LogConfig};

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir.to_path_buf(), config, 1_000).unwrap()
}

fn filled(dir: &Path) -> Log {
    let log = open(dir, small_config());
    for i in 0..40u8 {
        // Batches of 1 to 3 records of different sizes, so cuts fall everywhere.
        let value = vec![i; 10 + (i as usize * 7) % 90];
        let records: Vec<&[u8]> = (0..1 + i % 3).map(|_| value.as_slice()).collect();
        log.append(&batch(0, 1_000 + i as i64, &records), 1_000)
            .unwrap();
    }
    assert!(log.segments().len() > 3, "the test needs several segments");
    log
}

#[test]
fn slices_hold_the_bytes_a_read_returns() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let end = log.log_end_offset();
    for offset in 0..end {
        for max_bytes in [0usize, 1, 61, 100, 200, 333, 1024, 5000] {
            for first in [false, true] {
                for upper in [offset + 1, offset + 4, end - 1, i64::MAX] {
                    let bytes = log.read_up_to(offset, max_bytes, first, upper).unwrap();
                    let slice = log
                        .read_slice_up_to(offset, max_bytes, first, upper)
                        .unwrap();
                    let got = slice.map(|s| s.read().unwrap()).unwrap_or_default();
                    assert_eq!(
                        got, bytes,
                        "offset {offset} max_bytes {max_bytes} first {first} upper {upper}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_slice_outlives_the_deletion_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let want = log.read(0, 1 << 20, true).unwrap();
    let slice = log
        .read_slice_up_to(0, 1 << 20, true, i64::MAX)
        .unwrap()
        .unwrap();
    let start = log.segments()[2].base_offset;
    log.delete_records_before(start).unwrap();
    let gone = dir.path().join(crate::segment::file_name(0, "log"));
    assert!(!gone.exists(), "the first segment's file is deleted");
    assert!(log.read(0, 100, true).is_err(), "offset 0 is gone");
    assert_eq!(slice.read().unwrap(), want);
    let (first, end) = slice.offset_range();
    assert_eq!(first, 0);
    assert!(end > 0);
}
