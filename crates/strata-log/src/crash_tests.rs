//! kill -9 in the middle of a produce load: the test binary re-runs itself as a
//! child that appends as fast as it can and prints each acknowledged offset; the
//! parent SIGKILLs it, reopens the log, and checks every acknowledged batch is
//! there, with contiguous offsets, and that appends continue after it.

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
