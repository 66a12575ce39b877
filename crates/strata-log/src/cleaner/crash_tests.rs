//! A crash injected at every step of a pass (the crate's crash points: the
//! step fails as if the process died, files stay as they are, the `Log` is
//! dropped without closing): reopening gives exactly the log before the pass
//! (crash before the commit) or exactly the log after it (crash after), with
//! no `.cleaned` or `cleaner-swap` file left, and a further pass works.

use std::path::Path;

use super::testing::{codec, files, keyed_batch, read_batches, read_records, Rec};
use super::tests::{clean, open};
use super::{CleanOutcome, CleanParams, OffsetMap};
use crate::record::BatchHeader;
use crate::LogError;

/// A log of several segments: compressed batches, tombstones, an idempotent
/// producer, repeated keys. Deterministic, so two builds are equal.
fn build(dir: &Path) {
    let log = open(dir);
    for i in 0..40i64 {
        let k = format!("k{}", i % 6);
        let v = format!("value-{i}");
        let value = (i % 9 != 4).then_some(v.as_bytes());
        let records = [
            (Some(k.as_bytes()), value, 1000 + i),
            (Some(b"fixed".as_slice()), Some(v.as_bytes()), 1000 + i),
        ];
        let producer = (i % 3 == 0).then_some((9, 0, (i / 3 * 2) as i32));
        log.append(&keyed_batch(&records, codec(i as u8), producer), 0)
            .unwrap();
    }
    log.close().unwrap();
}

/// Tombstones get a horizon and stay, so a pass over an already cleaned log
/// (a crash before the first dirty offset was persisted) changes no record.
fn params() -> CleanParams {
    CleanParams::at(50_000)
}

type Content = (Vec<BatchHeader>, Vec<Rec>);

fn content(dir: &Path) -> Content {
    let log = open(dir);
    let headers = read_batches(&log).into_iter().map(|(h, _)| h).collect();
    let records = read_records(&log);
    log.close().unwrap();
    (headers, records)
}

fn no_leftovers(dir: &Path) {
    let left: Vec<String> = files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".cleaned") || f.starts_with("cleaner-swap"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_crash_at_any_step_reopens_to_before_or_after_the_pass() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    let pre = content(reference.path());
    {
        let log = open(reference.path());
        let mut map = OffsetMap::with_memory(1 << 16);
        assert!(matches!(
            clean(&log, &mut map, &params()),
            CleanOutcome::Cleaned(_)
        ));
        log.close().unwrap();
    }
    let post = content(reference.path());
    assert_ne!(pre.1, post.1);
    let mut committed_at = None;
    for step in 0.. {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let log = open(dir.path());
        log.crash_cleaning_at(step);
        let mut map = OffsetMap::with_memory(1 << 16);
        let result = log.clean(&mut map, &params(), &|_| {});
        let crashed = match result {
            Err(LogError::Failed { reason, .. }) => {
                assert_eq!(reason, "simulated crash");
                true
            }
            Ok(CleanOutcome::Cleaned(_)) => false,
            other => panic!("step {step}: {other:?}"),
        };
        drop(log);
        if crashed && committed_at.is_none() {
            let has_swap = dir.path().join(super::swap::SWAP_FILE).exists();
            if has_swap {
                committed_at = Some(step);
            } else {
                assert!(
                    files(dir.path()).iter().any(|f| f.ends_with(".cleaned")),
                    "step {step}"
                );
            }
        }
        let got = content(dir.path());
        no_leftovers(dir.path());
        let expected = if committed_at.is_some() || !crashed {
            &post
        } else {
            &pre
        };
        assert!(
            got == *expected,
            "step {step}: reopened log is neither as expected"
        );
        // Reopening again changes nothing, and cleaning goes on from there.
        assert!(
            content(dir.path()) == *expected,
            "step {step}: second reopen"
        );
        let log = open(dir.path());
        let mut map = OffsetMap::with_memory(1 << 16);
        let _ = clean(&log, &mut map, &params());
        assert_eq!(
            read_records(&log),
            post.1,
            "step {step}: after a further pass"
        );
        drop(log);
        if !crashed {
            assert!(step > 5, "only {step} crash points");
            break;
        }
    }
    assert!(committed_at.is_some_and(|s| s > 1));
}
