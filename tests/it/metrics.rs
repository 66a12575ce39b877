//! `GET /metrics` after real traffic: the named series exist and have moved; and a
//! broker with OTLP export pointed at a closed local port keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rdkafka::Offset;

use crate::harness::Broker;
use crate::kafka::{consume, create_topic, produce_n, producer};

const N: usize = 50;

/// One scrape over plain HTTP/1.1; returns (status line, body).
pub(crate) fn scrape(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read metrics response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full HTTP response");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

/// The value of the sample whose name and labels are exactly `series`, e.g.
/// `strata_requests_total{api="Produce"}`.
pub(crate) fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn value(body: &str, series: &str) -> f64 {
    sample(body, series).unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_after_produce_and_fetch_shows_moved_series() {
    let broker = Broker::start(&[]);
    assert!(!broker.metrics_addr.is_empty(), "no metrics line on stdout");
    let topic = "metrics-topic";
    create_topic(&broker.addr, topic, 1, &[]).await;
    let p = producer(&broker.addr, &[("linger.ms", "5")]);
    produce_n(&p, topic, 0, N).await;
    let got = consume(
        &broker.addr,
        topic,
        0,
        Offset::Beginning,
        N,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), N);

    let (status, body) = scrape(&broker.metrics_addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(value(&body, r#"strata_requests_total{api="Produce"}"#) > 0.0);
    assert!(value(&body, r#"strata_requests_total{api="Fetch"}"#) > 0.0);
    assert!(
        value(
            &body,
            r#"strata_request_duration_seconds_count{api="Produce"}"#
        ) > 0.0
    );
    assert!(body.contains(r#"strata_request_duration_seconds_bucket{api="Fetch",le="0.001"}"#));
    let topic_label = format!(r#"{{topic="{topic}"}}"#);
    assert!(value(&body, &format!("strata_produce_bytes_total{topic_label}")) > 0.0);
    assert!(value(&body, &format!("strata_fetch_bytes_total{topic_label}")) > 0.0);
    let tp = format!(r#"{{partition="0",topic="{topic}"}}"#);
    assert_eq!(
        value(&body, &format!("strata_partition_log_end_offset{tp}")),
        N as f64
    );
    assert_eq!(
        value(&body, &format!("strata_partition_log_start_offset{tp}")),
        0.0
    );
    assert_eq!(value(&body, "strata_under_replicated_partitions"), 0.0);

    let (status, _) = scrape(&broker.metrics_addr, "/nope");
    assert!(status.contains("404"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_to_a_closed_port_does_not_stop_serving() {
    // Bind and drop a listener: its port is closed for the rest of the test.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port");
    let endpoint = format!("http://{closed}");
    let broker = Broker::start(&[("otel.exporter.otlp.endpoint", endpoint.as_str())]);
    let topic = "otlp-topic";
    create_topic(&broker.addr, topic, 1, &[]).await;
    let p = producer(&broker.addr, &[]);
    produce_n(&p, topic, 0, 10).await;
    let got = consume(
        &broker.addr,
        topic,
        0,
        Offset::Beginning,
        10,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), 10);
    let (status, body) = scrape(&broker.metrics_addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(value(&body, r#"strata_requests_total{api="Produce"}"#) > 0.0);
}

#[test]
fn log_format_json_writes_json_lines() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--set", "listeners=PLAINTEXT://127.0.0.1:0"])
        .args(["--set", "metrics.listener=none"])
        .arg("--set")
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .env("STRATA_LOG", "info")
        .env("STRATA_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let stdout = child.stdout.take().unwrap();
    // Drained on its own thread: startup logs more than a pipe buffer holds, and a full
    // pipe would block the broker before it prints "listening".
    let mut err = child.stderr.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("strata: listening on "));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready.is_some(), "broker did not start");
    let stderr = drain.join().unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
}
