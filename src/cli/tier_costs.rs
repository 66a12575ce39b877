//! `strata tier status --costs`: what the remote tier costs, per topic, from a running
//! broker's Prometheus endpoint (`metrics.listener`, `GET /metrics`): object store
//! requests by kind and the bytes they moved since the broker started
//! (`strata_tier_store_{requests,bytes}_total`, counted by strata-tier's `CountingStore`),
//! and the segments it uploaded (`strata_tier_upload_segments_total`).
//!
//! Derived columns:
//! - `WRITES/GB-UP`: PUTs and multipart requests (create, parts, complete) per GB sent;
//! - `GETS/GB-READ`: GETs per GB received;
//! - `OBJ/SEG` (upload amplification): objects written (PUTs plus completed multipart
//!   uploads: the segment, its indexes, its segment manifest, the partition manifest
//!   versions) per segment uploaded.
//!
//! The counters are the broker's since its start; the costs of the bucket's history
//! before that are not known here.
//!
//! The web console's Tier page reads the same series from the broker's own registry and
//! uses [`parse`], [`TopicCosts::totals`] and [`Totals::cost`] (with the
//! `console.tier.price.*` settings), so it and this command count alike.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CliError;
use crate::metrics::label;

/// Per topic: requests and bytes by request kind, and segments uploaded.
#[derive(Default, Debug, PartialEq, Clone)]
pub struct TopicCosts {
    pub requests: BTreeMap<String, f64>,
    pub bytes: BTreeMap<String, f64>,
    pub segments: f64,
}

/// `GET /metrics` of `addr` (`host:port`), the body as text.
async fn scrape(addr: &str, timeout: Duration) -> Result<String, CliError> {
    let fail = |e: String| CliError::Usage(format!("cannot read metrics from {addr}: {e}"));
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let raw = tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(fail(format!(
            "unexpected answer: {}",
            text.lines().next().unwrap_or_default()
        ))),
    }
}

/// The cost series of a Prometheus text exposition, by topic.
pub fn parse(text: &str) -> BTreeMap<String, TopicCosts> {
    let mut out: BTreeMap<String, TopicCosts> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let topic = label(labels, "topic").unwrap_or_default().to_string();
        let request = label(labels, "request").unwrap_or_default().to_string();
        match name {
            "strata_tier_store_requests_total" => {
                *out.entry(topic)
                    .or_default()
                    .requests
                    .entry(request)
                    .or_default() += value
            }
            "strata_tier_store_bytes_total" => {
                *out.entry(topic)
                    .or_default()
                    .bytes
                    .entry(request)
                    .or_default() += value
            }
            "strata_tier_upload_segments_total" => out.entry(topic).or_default().segments += value,
            _ => {}
        }
    }
    out
}

fn get(m: &BTreeMap<String, f64>, k: &str) -> f64 {
    m.get(k).copied().unwrap_or(0.0)
}

/// Request kinds S3 bills at the write rate (PUT, COPY, POST, LIST).
const WRITE_KINDS: &[&str] = &[
    "put",
    "copy",
    "list",
    "multipart_create",
    "multipart_part",
    "multipart_complete",
];
/// Request kinds S3 bills at the read rate (GET and all others but the free DELETE and
/// multipart abort).
const READ_KINDS: &[&str] = &["get", "head"];

/// What the store bills of one topic's traffic (or of several, summed with `add`).
#[derive(Default, Debug, PartialEq, Clone, Copy)]
pub struct Totals {
    /// Requests billed at the write rate ([`WRITE_KINDS`]).
    pub write_requests: f64,
    /// Requests billed at the read rate ([`READ_KINDS`]).
    pub read_requests: f64,
    /// GB (1e9 bytes) sent by PUTs and parts.
    pub gb_sent: f64,
    /// GB received by GETs.
    pub gb_received: f64,
}

impl TopicCosts {
    pub fn totals(&self) -> Totals {
        let sum = |kinds: &[&str]| kinds.iter().map(|k| get(&self.requests, k)).sum();
        Totals {
            write_requests: sum(WRITE_KINDS),
            read_requests: sum(READ_KINDS),
            gb_sent: (get(&self.bytes, "put") + get(&self.bytes, "multipart_part")) / 1e9,
            gb_received: get(&self.bytes, "get") / 1e9,
        }
    }
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.write_requests += o.write_requests;
        self.read_requests += o.read_requests;
        self.gb_sent += o.gb_sent;
        self.gb_received += o.gb_received;
    }

    /// The bill at `prices`: requests per 1000 plus transfer per GB.
    pub fn cost(&self, prices: &strata_config::TierPrices) -> f64 {
        self.write_requests / 1000.0 * prices.write_requests_per_1000
            + self.read_requests / 1000.0 * prices.read_requests_per_1000
            + self.gb_sent * prices.per_gb_sent
            + self.gb_received * prices.per_gb_received
    }
}

/// The costs table, one line per topic (the empty topic is bucket-wide listing: `-`).
pub(super) fn table(costs: &BTreeMap<String, TopicCosts>) -> String {
    let mut out = String::from(
        "TOPIC\tPUT\tGET\tHEAD\tLIST\tDELETE\tMULTIPART\tPARTS\tGB-UP\tGB-READ\tWRITES/GB-UP\tGETS/GB-READ\tSEGMENTS\tOBJ/SEG\n",
    );
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.1}", a / b)
        } else {
            "-".into()
        }
    };
    for (topic, c) in costs {
        let r = &c.requests;
        let Totals {
            gb_sent: gb_up,
            gb_received: gb_read,
            ..
        } = c.totals();
        let writes = get(r, "put")
            + get(r, "multipart_create")
            + get(r, "multipart_part")
            + get(r, "multipart_complete");
        let objects = get(r, "put") + get(r, "multipart_complete");
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{gb_up:.3}\t{gb_read:.3}\t{}\t{}\t{}\t{}\n",
            if topic.is_empty() { "-" } else { topic },
            get(r, "put"),
            get(r, "get"),
            get(r, "head"),
            get(r, "list"),
            get(r, "delete"),
            get(r, "multipart_create"),
            get(r, "multipart_part"),
            ratio(writes, gb_up),
            ratio(get(r, "get"), gb_read),
            c.segments,
            ratio(objects, c.segments),
        ));
    }
    out
}

/// Prints the costs table of the broker whose metrics are at `addr`.
pub async fn print(addr: &str, timeout: Duration) -> Result<(), CliError> {
    let text = scrape(addr, timeout).await?;
    print!("{}", table(&parse(&text)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_summed_by_topic_and_derived() {
        let text = r#"# HELP x
strata_tier_store_requests_total{request="put",topic="t"} 8
strata_tier_store_requests_total{request="get",topic="t"} 4
strata_tier_store_requests_total{request="list",topic=""} 2
strata_tier_store_bytes_total{request="put",topic="t"} 2000000000
strata_tier_store_bytes_total{request="get",topic="t"} 1000000000
strata_tier_upload_segments_total{partition="0",topic="t"} 1
strata_tier_upload_segments_total{partition="1",topic="t"} 1
"#;
        let c = parse(text);
        assert_eq!(c["t"].segments, 2.0);
        assert_eq!(c[""].requests["list"], 2.0);
        let t = table(&c);
        let line = t
            .lines()
            .find(|l| l.starts_with("t\t"))
            .expect("topic line");
        // 8 PUTs for 2 GB up: 4 per GB; 4 GETs for 1 GB read; 8 objects for 2 segments.
        assert_eq!(
            line,
            "t\t8\t4\t0\t0\t0\t0\t0\t2.000\t1.000\t4.0\t4.0\t2\t4.0"
        );
    }

    #[test]
    fn costs_are_requests_per_1000_and_transfer_per_gb() {
        let mut c = TopicCosts::default();
        for (k, n) in [
            ("put", 600.0),
            ("list", 400.0),
            ("get", 2000.0),
            ("delete", 9.0),
        ] {
            c.requests.insert(k.into(), n);
        }
        c.bytes.insert("put".into(), 3e9);
        c.bytes.insert("get".into(), 1e9);
        let t = c.totals();
        assert_eq!((t.write_requests, t.read_requests), (1000.0, 2000.0));
        let prices = strata_config::TierPrices {
            write_requests_per_1000: 0.005,
            read_requests_per_1000: 0.0004,
            per_gb_sent: 0.01,
            per_gb_received: 0.09,
        };
        // 0.005 + 2 * 0.0004 + 3 * 0.01 + 0.09; DELETE is free.
        assert!(
            (t.cost(&prices) - 0.1258).abs() < 1e-12,
            "{}",
            t.cost(&prices)
        );
    }
}
