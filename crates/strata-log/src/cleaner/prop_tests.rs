//! Property test: random appends of keyed records, tombstones and a few
//! keyless records (random codecs, random segment sizes), interleaved with
//! passes using random small maps (so a log takes several passes) and an
//! advancing clock, and with clean and unclean reopens. After every step the
//! log, read back batch by batch (every batch validated, offsets strictly
//! increasing), equals a model that applies Kafka's rules to the records:
//! below the end of each pass, a record stays only if it is its key's latest,
//! and a tombstone only until the pass after its batch's horizon (set by the
//! first pass that kept it). Some passes get a lower bound, which only grows
//! (the remote tier's end does): the model then leaves everything below the
//! pass's first rewritten segment alone. Timestamp lookups agree with a scan.

use std::collections::HashMap;
use std::path::Path;

use proptest::prelude::*;

use super::testing::{codec, keyed_batch, read_batches};
use super::{offset_map::BYTES_PER_ENTRY, CleanOutcome, CleanParams, OffsetMap};
use crate::{Log, LogConfig};

const RETENTION: i64 = 100;

#[derive(Clone, Debug)]
enum Op {
    /// Records of one batch: key (None = keyless), value (None = tombstone).
    Append(Vec<(Option<u8>, Option<Vec<u8>>)>, u8),
    Clean {
        map_slots: usize,
        advance: i64,
        /// Raise the lower bound to a segment's base (true) or any offset.
        lower: Option<(bool, prop::sample::Index)>,
    },
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        prop_oneof![19 => (0u8..6).prop_map(Some), 1 => Just(None)],
        prop_oneof![3 => prop::collection::vec(any::<u8>(), 0..30).prop_map(Some), 1 => Just(None)],
    );
    prop_oneof![
        6 => (prop::collection::vec(record, 1..5), 0u8..5).prop_map(|(r, c)| Op::Append(r, c)),
        3 => (2usize..16, 0i64..150, prop_oneof![3 => Just(None), 1 => any::<(bool, prop::sample::Index)>().prop_map(Some)])
            .prop_map(|(map_slots, advance, lower)| Op::Clean { map_slots, advance, lower }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

struct MRec {
    offset: i64,
    batch: usize,
    key: Option<u8>,
    value: Option<Vec<u8>>,
    ts: i64,
    present: bool,
}

/// Applies a committed pass that cleaned everything in `[from, end)` at `now`
/// (`from`: its first rewritten segment's base).
fn model_pass(records: &mut [MRec], horizons: &mut [Option<i64>], from: i64, end: i64, now: i64) {
    let mut latest: HashMap<u8, i64> = HashMap::new();
    for r in records.iter().filter(|r| r.offset < end) {
        if let Some(k) = r.key {
            latest.insert(k, r.offset);
        }
    }
    let prior = horizons.to_vec();
    for r in records
        .iter_mut()
        .filter(|r| r.present && r.offset >= from && r.offset < end)
    {
        let superseded = r.key.is_none_or(|k| latest[&k] > r.offset);
        let expired = r.value.is_none() && prior[r.batch].is_some_and(|h| now >= h);
        if superseded || expired {
            r.present = false;
        } else if r.value.is_none() && horizons[r.batch].is_none() {
            horizons[r.batch] = Some(now + RETENTION);
        }
    }
}

fn check(log: &Log, records: &[MRec]) -> Result<(), TestCaseError> {
    let batches = read_batches(log);
    type Seen = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);
    let got: Vec<Seen> = batches
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .map(|r| {
            assert_eq!(r.headers, vec![("h".to_string(), r.key.clone())]);
            (r.offset, r.key.clone(), r.value.clone(), r.timestamp)
        })
        .collect();
    let want: Vec<_> = records
        .iter()
        .filter(|r| r.present)
        .map(|r| (r.offset, r.key.map(|k| vec![k]), r.value.clone(), r.ts))
        .collect();
    prop_assert_eq!(got, want);
    for pair in batches.windows(2) {
        prop_assert!(pair[0].0.last_offset() < pair[1].0.base_offset);
    }
    for ts in [0, 5, 50, 200, 400, 1000] {
        let expected = batches
            .iter()
            .find(|(h, _)| h.max_timestamp >= ts)
            .map(|(h, _)| h.base_offset);
        let found = log.find_batch_by_timestamp(ts).unwrap();
        let found = found.map(|b| crate::record::BatchHeader::parse(&b).unwrap().base_offset);
        prop_assert_eq!(found, expected, "timestamp {}", ts);
    }
    Ok(())
}

fn run(dir: &Path, segment_bytes: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = LogConfig {
        segment_bytes,
        index_interval_bytes: 64,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let open = || Log::open(dir.to_path_buf(), config.clone(), 0).unwrap();
    let mut log = open();
    let mut records: Vec<MRec> = Vec::new();
    let mut horizons: Vec<Option<i64>> = Vec::new();
    let mut now = 0i64;
    let mut passes = 0;
    let mut lower = i64::MIN;
    for op in ops {
        match op {
            Op::Append(input, c) => {
                now += 1;
                let keys: Vec<Option<[u8; 1]>> =
                    input.iter().map(|(k, _)| k.map(|k| [k])).collect();
                let recs: Vec<_> = input
                    .iter()
                    .zip(&keys)
                    .map(|((_, v), k)| (k.as_ref().map(|k| k.as_slice()), v.as_deref(), now))
                    .collect();
                let bytes = keyed_batch(&recs, codec(c), None);
                // The encoder may split the records into several batches (the
                // model's horizons are per batch).
                let mut batch_of = Vec::new();
                for info in crate::record::validate_batches(&bytes, usize::MAX).unwrap() {
                    batch_of.extend(std::iter::repeat_n(
                        horizons.len(),
                        info.records_count as usize,
                    ));
                    horizons.push(None);
                }
                let info = log.append(&bytes, now).unwrap();
                for (i, (k, v)) in input.into_iter().enumerate() {
                    records.push(MRec {
                        offset: info.base_offset + i as i64,
                        batch: batch_of[i],
                        key: k,
                        value: v,
                        ts: now,
                        present: true,
                    });
                }
            }
            Op::Clean {
                map_slots,
                advance,
                lower: raise,
            } => {
                now += advance;
                if let Some((aligned, at)) = raise {
                    let segments = log.segments();
                    let (start, end) = (log.log_start_offset(), log.log_end_offset());
                    lower = lower.max(if aligned {
                        segments[at.index(segments.len())].base_offset
                    } else {
                        start + at.index((end - start + 1) as usize) as i64
                    });
                }
                let mut map = OffsetMap::with_memory(map_slots * BYTES_PER_ENTRY);
                let params = CleanParams {
                    delete_retention_ms: RETENTION,
                    lower_bound: lower,
                    ..CleanParams::at(now)
                };
                match log.clean(&mut map, &params, &|_| {}).unwrap() {
                    CleanOutcome::Cleaned(stats) => {
                        prop_assert!(stats.start_offset >= lower);
                        prop_assert!(stats.first_dirty_offset >= lower);
                        let (from, end) = (stats.start_offset, stats.end_offset);
                        model_pass(&mut records, &mut horizons, from, end, now);
                        passes += 1;
                    }
                    CleanOutcome::NothingToClean => {}
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            Op::Reopen { clean } => {
                if clean {
                    log.close().unwrap();
                }
                drop(log);
                log = open();
            }
        }
        check(&log, &records)?;
    }
    // Clean until nothing is dirty: everything below the active segment is
    // then compacted, and stays so across a reopen.
    for _ in 0..200 {
        let mut map = OffsetMap::with_memory(16 * BYTES_PER_ENTRY);
        let params = CleanParams {
            delete_retention_ms: RETENTION,
            lower_bound: lower,
            ..CleanParams::at(now)
        };
        match log.clean(&mut map, &params, &|_| {}).unwrap() {
            CleanOutcome::Cleaned(stats) => {
                let (from, end) = (stats.start_offset, stats.end_offset);
                model_pass(&mut records, &mut horizons, from, end, now)
            }
            _ => break,
        }
    }
    check(&log, &records)?;
    drop(log);
    check(&open(), &records)?;
    let _ = passes;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_matches_the_model(segment_bytes in 150u64..1200, ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), segment_bytes, ops)?;
    }
}
