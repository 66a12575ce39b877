//! kill -9 in the middle of a produce load: the test binary re-runs itself as a
//! child that appends as fast as it can and prints each acknowledged offset; the
//! parent SIGKILLs it, reopens the log, and checks every acknowledged batch is
//! there, with contiguous offsets, and that appends continue after it. The same
//! for a follower: rounds of `append_as_follower` and `truncate_to`, killed at
//! an arbitrary point, reopen to what was acknowledged give or take the one
//! operation in flight.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::log_tests::headers;
use crate::record::testing::batch_n;
use crate::{Log, LogConfig};

const CHILD_ENV: &str = "STRATA_LOG_KILL9_DIR";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// The child half: runs only when the parent sets `CHILD_ENV`.
#[test]
fn kill9_child_appender() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = Log::open(dir.into(), config(), 0).unwrap();
    for i in 0.. {
        let info = log
            .append(&batch_n(i, 1 + (i as usize % 4), 100), i)
            .unwrap();
        println!("ack {}", info.last_offset);
    }
}

#[test]
fn acknowledged_batches_survive_kill9() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_tests::kill9_child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut last_acked = -1;
        let mut acks = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(offset) = line.strip_prefix("ack ") {
                last_acked = offset.trim().parse().unwrap();
                acks += 1;
                if acks == 3_000 {
                    child.kill().unwrap(); // SIGKILL
                }
            }
        }
        child.wait().unwrap();
        assert!(
            acks >= 3_000,
            "round {round}: child stopped after {acks} acks"
        );

        let log = Log::open(dir.path().to_path_buf(), config(), 0).unwrap();
        assert!(
            log.log_end_offset() > last_acked,
            "round {round}: lost acknowledged data"
        );
        assert!(log.segments().len() > 1);
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 100_000, true).unwrap();
            for h in headers(&bytes) {
                assert_eq!(h.base_offset, offset, "round {round}: gap or overlap");
                offset = h.last_offset() + 1;
            }
        }
        let next = log.append(&batch_n(0, 1, 10), 0).unwrap();
        assert_eq!(next.base_offset, offset);
    }
}

const FOLLOWER_ENV: &str = "STRATA_LOG_KILL9_FOLLOWER_DIR";

fn follower_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 << 10,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// The batch the follower child writes at `base` in `round` (its leader
/// epoch): the content depends on both, so the parent can tell which write a
/// recovered batch came from.
fn follower_batch(base: i64, round: i32) -> Vec<u8> {
    let n = 1 + (base % 3) as usize;
    let value = vec![(base % 251) as u8 ^ round as u8; 50 + (base % 100) as usize];
    let values: Vec<&[u8]> = (0..n).map(|_| value.as_slice()).collect();
    let mut b = crate::record::testing::batch(0, base, &values);
    crate::record::set_base_offset(&mut b, base);
    crate::record::set_partition_leader_epoch(&mut b, round);
    b
}

/// The child half of the follower test: rounds of 8 follower appends and a
/// truncation of 5..=11 offsets, printing each acknowledged step.
#[test]
fn kill9_child_follower() {
    let Ok(dir) = std::env::var(FOLLOWER_ENV) else {
        return;
    };
    let log = Log::open(dir.into(), follower_config(), 0).unwrap();
    let first_round = log.latest_epoch().map_or(0, |e| e + 1);
    for round in first_round.. {
        for _ in 0..8 {
            let base = log.log_end_offset();
            log.append_as_follower(&follower_batch(base, round), 0)
                .unwrap();
            println!("ack {base} {round}");
        }
        let target = log.log_end_offset() - 5 - i64::from(round % 7);
        println!("trunc {}", log.truncate_to(target.max(0)).unwrap());
    }
}

/// kill -9 during follower appends and truncations: the reopened log agrees
/// with everything acknowledged, except what the one operation in flight may
/// have changed (a few more batches of an append, or a shorter tail of a
/// truncation), and every batch is one the child wrote at that offset.
#[test]
fn follower_appends_and_truncations_survive_kill9() {
    let dir = tempfile::tempdir().unwrap();
    // (base offset, leader epoch) of each batch, as acknowledged.
    let mut model: Vec<(i64, i32)> = Vec::new();
    for (round, kill_after) in [(0, 1_000), (1, 1_300)] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_tests::kill9_child_follower",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(FOLLOWER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = 0;
        let mut truncations = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The first line follows the harness's "test ... " on the same line.
            let line = ["ack ", "trunc "]
                .iter()
                .find_map(|p| line.find(p).map(|at| &line[at..]))
                .unwrap_or("");
            let fields: Vec<i64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            if line.starts_with("ack ") {
                assert_eq!(fields[0], model.last().map_or(0, |&(b, _)| b + 1 + b % 3));
                model.push((fields[0], fields[1] as i32));
            } else if line.starts_with("trunc ") {
                model.retain(|&(b, _)| b < fields[0]);
                truncations += 1;
            } else {
                continue;
            }
            lines += 1;
            if lines == kill_after {
                child.kill().unwrap(); // SIGKILL
            }
        }
        child.wait().unwrap();
        assert!(
            lines >= kill_after,
            "round {round}: child stopped after {lines} lines"
        );
        assert!(truncations > 50);

        let log = Log::open(dir.path().to_path_buf(), follower_config(), 0).unwrap();
        assert!(log.segments().len() > 10);
        let mut recovered: Vec<(i64, i32)> = Vec::new();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 100_000, true).unwrap();
            for info in crate::record::validate_batches(&bytes, usize::MAX).unwrap() {
                let h = crate::record::BatchHeader::parse(&bytes[info.range()]).unwrap();
                assert_eq!(h.base_offset, offset, "round {round}: gap or overlap");
                let epoch = h.partition_leader_epoch;
                assert_eq!(&bytes[info.range()], &follower_batch(offset, epoch)[..]);
                recovered.push((offset, epoch));
                offset = h.last_offset() + 1;
            }
        }
        let common = recovered.len().min(model.len());
        assert_eq!(recovered[..common], model[..common], "round {round}");
        let model_end = model.last().map_or(0, |&(b, _)| b + 1 + b % 3);
        // A truncation in flight removes at most 11 offsets and the batch
        // holding its target (at most 3 more).
        assert!(
            log.log_end_offset() >= model_end - 14,
            "round {round}: lost acknowledged data"
        );
        // The epoch cache matches the batches.
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        for &(base, epoch) in &recovered {
            if epochs.last().is_none_or(|l| epoch > l.0) {
                epochs.push((epoch, base));
            }
        }
        assert_eq!(log.epoch_entries(), epochs, "round {round}");
        model = recovered;
    }
}
