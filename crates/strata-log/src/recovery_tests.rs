//! Property tests of crash recovery: write random valid batches, crash (drop
//! without close), damage a segment (truncate, flip a byte, append garbage),
//! reopen, and check that exactly the valid prefix remains (a raised base
//! offset, outside the CRC, is a gap recovery accepts, as a cleaned log has
//! them), and the indexes equal a rebuild from the log.

use std::path::Path;

use proptest::prelude::*;

use crate::log_tests::{headers, small_config};
use crate::record::testing::batch;
use crate::segment::{file_name, Segment};
use crate::Log;

#[derive(Clone, Debug)]
enum Damage {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Garbage(Vec<u8>),
    None,
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, b)),
        prop::collection::vec(any::<u8>(), 1..200).prop_map(Damage::Garbage),
        Just(Damage::None),
    ]
}

/// One written batch: its segment, position in the segment file and bytes.
struct Written {
    segment: i64,
    position: u64,
    bytes: Vec<u8>,
}

fn write_log(dir: &Path, sizes: &[(usize, usize)]) -> Vec<Written> {
    let log = Log::open(dir.to_path_buf(), small_config(), 0).unwrap();
    for (i, &(n, size)) in sizes.iter().enumerate() {
        let value = vec![i as u8; size];
        let values: Vec<&[u8]> = (0..n).map(|_| value.as_slice()).collect();
        log.append(&batch(0, i as i64 * 10, &values), 0).unwrap();
    }
    let mut written = Vec::new();
    for seg in log.segments() {
        let bytes = log.read(seg.base_offset, usize::MAX, true).unwrap();
        let mut position = 0u64;
        for info in crate::record::validate_batches(&bytes, usize::MAX).unwrap_or_default() {
            written.push(Written {
                segment: seg.base_offset,
                position,
                bytes: bytes[info.range()].to_vec(),
            });
            position += info.len as u64;
        }
    }
    written // dropped without close: a crash
}

/// What damage to one segment must do to the recovered log.
struct Effect {
    /// How many of the segment's batches (in order) survive.
    kept: usize,
    /// A surviving batch whose unprotected leader-epoch bytes were changed.
    replaced: Option<(usize, Vec<u8>)>,
    /// Whether recovery finds invalid bytes (and so drops later segments).
    detected: bool,
}

fn effect(kept: usize, detected: bool) -> Effect {
    Effect {
        kept,
        replaced: None,
        detected,
    }
}

/// Applies `damage` to segment `target` and says what must survive.
fn apply(
    dir: &Path,
    target: i64,
    batches: &[&Written],
    damage: &Damage,
    last_segment: bool,
) -> Effect {
    let path = dir.join(file_name(target, "log"));
    let mut data = std::fs::read(&path).unwrap();
    let survivors = |cut: u64| {
        batches
            .iter()
            .take_while(|b| b.position + b.bytes.len() as u64 <= cut)
            .count()
    };
    match damage {
        Damage::None => effect(batches.len(), false),
        Damage::Garbage(g) => {
            data.extend_from_slice(g);
            std::fs::write(&path, &data).unwrap();
            effect(batches.len(), true)
        }
        Damage::Truncate(_) | Damage::Flip(..) if data.is_empty() => effect(0, false),
        Damage::Truncate(at) => {
            let cut = at.index(data.len());
            data.truncate(cut);
            std::fs::write(&path, &data).unwrap();
            let kept = survivors(cut as u64);
            let boundary = batches[..kept].iter().map(|b| b.bytes.len()).sum::<usize>() == cut;
            effect(kept, !boundary)
        }
        Damage::Flip(at, bit) => {
            let at = at.index(data.len());
            data[at] ^= 1 << bit;
            std::fs::write(&path, &data).unwrap();
            let k = survivors(at as u64);
            let within = at as u64 - batches[k].position;
            if within < 8 {
                // baseOffset is outside the CRC too. Lowered, it goes back
                // below the previous batch: detected. Raised, it is a gap, which
                // a cleaned log has (as in Kafka, recovery accepts it): the batch
                // stays at its new offsets, and whatever follows it (the next
                // batch, or the next segment) now goes back below it.
                let h = crate::record::BatchHeader::parse(&data[batches[k].position as usize..])
                    .unwrap();
                let original = headers(&batches[k].bytes)[0].base_offset;
                if h.base_offset < original || h.last_offset() - target > i64::from(u32::MAX) {
                    return effect(k, true);
                }
                let mut replaced = batches[k].bytes.clone();
                replaced[within as usize] ^= 1 << bit;
                Effect {
                    kept: k + 1,
                    replaced: Some((k, replaced)),
                    detected: k + 1 < batches.len() || !last_segment,
                }
            } else if (12..16).contains(&within) {
                // partitionLeaderEpoch is outside the CRC: undetectable, harmless.
                let mut replaced = batches[k].bytes.clone();
                replaced[within as usize] ^= 1 << bit;
                Effect {
                    kept: batches.len(),
                    replaced: Some((k, replaced)),
                    detected: false,
                }
            } else {
                effect(k, true)
            }
        }
    }
}

fn check_indexes_match_rebuild(dir: &Path, log: &Log) {
    let copy = tempfile::tempdir().unwrap();
    let handles = log.segment_handles();
    for (i, seg) in handles.iter().enumerate() {
        for ext in ["log", "index", "timeindex"] {
            let name = file_name(seg.base_offset(), ext);
            std::fs::copy(dir.join(&name), copy.path().join(&name)).unwrap();
        }
        let limits = small_config().index_limits();
        let (rebuilt, outcome) =
            Segment::recover(copy.path(), seg.base_offset(), limits, 0).unwrap();
        assert!(outcome.stopped.is_none(), "{:?}", outcome.stopped);
        if i + 1 < handles.len() {
            rebuilt.seal().unwrap();
        }
        assert_eq!(
            seg.index_entries(),
            rebuilt.index_entries(),
            "segment {}",
            seg.base_offset()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn recovery_keeps_exactly_the_valid_prefix(
        sizes in prop::collection::vec((1usize..4, 0usize..300), 1..25),
        damage in arb_damage(),
        which in any::<prop::sample::Index>(),
        full_recovery in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &sizes);
        let mut bases: Vec<i64> = written.iter().map(|w| w.segment).collect();
        bases.dedup();
        // Rolled segments are below the recovery point and trusted; damage there
        // is only found when the checkpoint is gone (full recovery).
        if full_recovery {
            std::fs::remove_file(dir.path().join(crate::checkpoint::CHECKPOINT_FILE)).unwrap();
        }
        let target = if full_recovery { bases[which.index(bases.len())] } else { *bases.last().unwrap() };
        let in_target: Vec<&Written> = written.iter().filter(|w| w.segment == target).collect();
        let last_segment = target == *bases.last().unwrap();
        let Effect { kept, replaced, detected } = apply(dir.path(), target, &in_target, &damage, last_segment);

        let mut expected: Vec<Vec<u8>> = written.iter().filter(|w| w.segment < target).map(|w| w.bytes.clone()).collect();
        let first_in_target = expected.len();
        expected.extend(in_target[..kept].iter().map(|w| w.bytes.clone()));
        if let Some((k, bytes)) = replaced {
            expected[first_in_target + k] = bytes;
        }
        if !detected {
            expected.extend(written.iter().filter(|w| w.segment > target).map(|w| w.bytes.clone()));
        }

        let log = Log::open(dir.path().to_path_buf(), small_config(), 0).unwrap();
        let expected_end = expected.last().map_or(0, |b| headers(b)[0].last_offset() + 1);
        prop_assert_eq!(log.log_end_offset(), expected_end);
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 700, true).unwrap();
            for info in crate::record::validate_batches(&bytes, usize::MAX).unwrap() {
                offset = info.last_offset() + 1;
                got.push(bytes[info.range()].to_vec());
            }
        }
        prop_assert_eq!(&got, &expected);
        check_indexes_match_rebuild(dir.path(), &log);
        let next = log.append(&batch(0, 0, &[b"next"]), 0).unwrap();
        prop_assert_eq!(next.base_offset, expected_end);
        drop(log);
        let log = Log::open(dir.path().to_path_buf(), small_config(), 0).unwrap();
        prop_assert_eq!(log.log_end_offset(), expected_end + 1);
    }
}

#[test]
fn missing_and_inconsistent_indexes_are_rebuilt_on_clean_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().to_path_buf(), small_config(), 0).unwrap();
    for i in 0..40 {
        log.append(&batch(0, i, &[&[7u8; 90][..], &[8u8; 90][..]]), 0)
            .unwrap();
    }
    log.close().unwrap();
    let before: Vec<_> = log
        .segment_handles()
        .iter()
        .map(|s| s.index_entries())
        .collect();
    drop(log);
    std::fs::remove_file(dir.path().join(file_name(0, "index"))).unwrap();
    let second = log_base(dir.path(), 1);
    std::fs::write(dir.path().join(file_name(second, "timeindex")), [1u8; 13]).unwrap();
    let log = Log::open(dir.path().to_path_buf(), small_config(), 0).unwrap();
    assert!(log.recovery_bytes_scanned() > 0);
    let after: Vec<_> = log
        .segment_handles()
        .iter()
        .map(|s| s.index_entries())
        .collect();
    assert_eq!(before, after);
}

fn log_base(dir: &Path, nth: usize) -> i64 {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| crate::segment::parse_log_name(&e.unwrap().file_name().to_string_lossy()))
        .collect();
    bases.sort_unstable();
    bases[nth]
}
