//! Starts the real `strata` binary on an ephemeral port in a temporary data dir, and
//! kills it when dropped, even if the test panics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    pub data: PathBuf,
    pub addr: String,
    /// `host:port` of `GET /metrics` (an ephemeral port unless a test sets
    /// `metrics.listener`); empty when disabled.
    pub metrics_addr: String,
    /// Listener name -> bound `host:port` (from the `strata: listener` lines).
    pub listeners: std::collections::HashMap<String, String>,
    settings: Vec<(String, String)>,
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

// Not every helper is used by every test module at every point in history.
#[allow(dead_code)]
impl Broker {
    /// A broker with its own temporary data dir and the given extra settings.
    pub fn start(settings: &[(&str, &str)]) -> Broker {
        Broker::start_with_env(settings, &[])
    }

    /// [`Broker::start`] with extra environment variables for the process.
    pub fn start_with_env(settings: &[(&str, &str)], env: &[(&str, &str)]) -> Broker {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut b = Broker {
            child: None,
            data,
            addr: String::new(),
            metrics_addr: String::new(),
            listeners: Default::default(),
            settings,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _tmp: Some(tmp),
        };
        b.spawn(0);
        b
    }

    fn spawn(&mut self, port: u16) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("serve")
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--set")
            .arg(format!("log.dirs={}", self.data.display()))
            // Brokers run in parallel: none may take the default metrics port.
            .arg("--set")
            .arg("metrics.listener=127.0.0.1:0");
        for (k, v) in &self.settings {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        // `STRATA_LOG=info` unless the test asks for another filter.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("broker log file");
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log));
        if !self.env.iter().any(|(k, _)| k == "STRATA_LOG") {
            cmd.env("STRATA_LOG", "info");
        }
        let mut child = cmd.spawn().expect("spawn strata");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The metrics line, when there is one, comes before the listening line.
            let mut metrics = String::new();
            let mut listeners = std::collections::HashMap::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("strata: metrics on ") {
                    metrics = rest.trim().to_string();
                }
                if let Some((name, addr)) = line
                    .strip_prefix("strata: listener ")
                    .and_then(|r| r.split_once(" on "))
                {
                    listeners.insert(name.to_string(), addr.trim().to_string());
                }
                if let Some(rest) = line.strip_prefix("strata: listening on ") {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send((
                        addr,
                        std::mem::take(&mut metrics),
                        std::mem::take(&mut listeners),
                    ));
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((addr, metrics, listeners)) => {
                self.addr = addr;
                self.metrics_addr = metrics;
                self.listeners = listeners;
            }
            Err(_) => panic!("broker did not start within 60 s; its log:\n{}", self.log()),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.data
            .parent()
            .unwrap_or(Path::new("."))
            .join("broker.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `kill -9`: no clean shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("broker did not stop within 30 s after SIGTERM");
        }
    }

    /// Starts again on the same data dir (on a new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn(0);
    }

    /// `kill -9`, then starts again on the same data dir and the same port, so
    /// clients reconnect to the address they bootstrapped from.
    pub fn restart_same_port(&mut self) {
        let port = self.port();
        self.kill9();
        self.spawn(port);
        assert_eq!(self.port(), port, "restarted on another port");
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Changes (or adds) setting `name` for the next [`Broker::start_again`].
    pub fn set(&mut self, name: &str, value: &str) {
        self.settings.retain(|(k, _)| k != name);
        self.settings.push((name.to_string(), value.to_string()));
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        self.spawn(0);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}
