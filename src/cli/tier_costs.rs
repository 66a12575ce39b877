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

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CliError;

/// Per topic: requests and bytes by request kind, and segments uploaded.
#[derive(Default, Debug, PartialEq)]
pub(super) struct TopicCosts {
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

/// The value of label `name` in a `{a="x",b="y"}` label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let at = labels.find(&key)? + key.len();
    let rest = &labels[at..];
    Some(&rest[..rest.find('"')?])
}

/// The cost series of a Prometheus text exposition, by topic.
pub(super) fn parse(text: &str) -> BTreeMap<String, TopicCosts> {
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
        let gb_up = (get(&c.bytes, "put") + get(&c.bytes, "multipart_part")) / 1e9;
        let gb_read = get(&c.bytes, "get") / 1e9;
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
}
