//! A calm start (issue 20): `strata serve` at the default log level prints a banner and
//! what needs attention, not library internals or a line per partition.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The start of a fresh broker with no `STRATA_LOG`: stdout up to the listening line,
/// and everything on stderr until the process is stopped right after it.
#[test]
fn a_default_start_prints_at_most_15_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--set", "listeners=PLAINTEXT://127.0.0.1:0"])
        .args(["--set", "metrics.listener=127.0.0.1:0"])
        .arg("--set")
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .env_remove("STRATA_LOG")
        .env_remove("STRATA_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = line.starts_with("strata: listening on ");
            lines.push(line);
            if done {
                let _ = tx.send(lines);
                return;
            }
        }
    });
    let printed = rx.recv_timeout(Duration::from_secs(60));
    // Let the lines logged while becoming ready reach stderr, then stop.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let printed = printed.unwrap_or_else(|_| panic!("broker did not start; stderr:\n{stderr}"));
    let logged: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let all = printed.len() + logged.len();
    let everything = format!("{}\n{}", printed.join("\n"), logged.join("\n"));
    assert!(all <= 15, "{all} lines at start:\n{everything}");
    assert!(
        printed[0].starts_with("strata ") && printed[0].contains("node 1"),
        "{everything}"
    );
    assert!(
        printed.last().unwrap().contains("127.0.0.1:"),
        "{everything}"
    );
    for quiet in ["openraft", "foyer"] {
        assert!(
            !everything.contains(quiet),
            "{quiet} logged at start:\n{everything}"
        );
    }
    assert!(
        everything.contains("opened partition logs"),
        "no summary of opened partitions:\n{everything}"
    );
}
