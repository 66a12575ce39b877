//! The record browser: reads records of one partition with Fetch from its leader, from an
//! offset or from the first offset at or after a timestamp (ListOffsets), and shows key,
//! value and headers as text, pretty JSON or hex. Each record is marked with the tier it
//! came from: an offset below the partition's local log start (ListOffsets -4, KIP-1005)
//! is no longer on the leader's disk, so the leader served it from the remote tier.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::records::RecordBatchDecoder;
use maud::{html, Markup};

use super::{urlencoding, Console};
use crate::cli::{log_dirs, str_bytes, tier, topic, CliError};

/// At most this many records on one page.
const PAGE_RECORDS: usize = 50;
/// Fetch asks for at most this many bytes of the partition.
const FETCH_BYTES: i32 = 1 << 20;
/// Fetch v12 is the last that names topics (v13 uses topic ids).
const FETCH_VERSION: i16 = 12;

/// Where to start reading and how to show bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Browse {
    pub partition: i32,
    pub start: Start,
    pub format: Format,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Start {
    /// The partition's log start (the earliest offset, in either tier).
    Earliest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Format {
    Text,
    Json,
    Hex,
}

impl Browse {
    /// From the query string; an empty field is unset. Bad input gets a message.
    pub fn parse(
        partition: i32,
        offset: Option<&str>,
        timestamp: Option<&str>,
        format: Option<&str>,
    ) -> Result<Browse, String> {
        fn nonempty(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        if partition < 0 {
            return Err(format!("partition {partition} is negative"));
        }
        let start = match (nonempty(offset), nonempty(timestamp)) {
            (Some(_), Some(_)) => return Err("give an offset or a timestamp, not both".into()),
            (Some(o), None) => match o.parse::<i64>() {
                Ok(o) if o >= 0 => Start::Offset(o),
                _ => return Err(format!("offset '{o}' is not a non-negative integer")),
            },
            (None, Some(t)) => match t.parse::<i64>() {
                Ok(t) if t >= 0 => Start::Timestamp(t),
                _ => {
                    return Err(format!(
                        "timestamp '{t}' is not milliseconds since 1970 (a non-negative integer)"
                    ))
                }
            },
            (None, None) => Start::Earliest,
        };
        let format = match nonempty(format).unwrap_or("text") {
            "text" => Format::Text,
            "json" => Format::Json,
            "hex" => Format::Hex,
            f => return Err(format!("format '{f}' is not text, json or hex")),
        };
        Ok(Browse {
            partition,
            start,
            format,
        })
    }
}

/// One record as read.
pub struct Row {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub remote: bool,
}

/// What one browse read.
pub struct View {
    /// The offset reading started at (`None`: no record at or after the timestamp).
    pub from: Option<i64>,
    pub local_start: Option<i64>,
    pub high_watermark: i64,
    pub rows: Vec<Row>,
}

/// Reads up to [`PAGE_RECORDS`] records of `name`/`b.partition` from its leader.
pub async fn read(c: &Console, name: &str, b: &Browse) -> Result<View, CliError> {
    let mut client = c.client().await?;
    let md = topic::metadata(&mut client, Some(&[name.to_string()])).await?;
    let t = topic::known(&md, name)?;
    let Some(p) = t
        .partitions
        .iter()
        .find(|p| p.partition_index == b.partition)
    else {
        return Err(CliError::Usage(format!(
            "topic '{name}' has no partition {}",
            b.partition
        )));
    };
    let mut lc = log_dirs::leader_client(&client, &c.connection(), &md, p.leader_id.0).await?;
    let leader = lc.as_mut().unwrap_or(&mut client);
    let tp = [(name.to_string(), b.partition)];
    let first = |v: Vec<(log_dirs::Tp, Option<i64>)>| v.into_iter().next().and_then(|(_, o)| o);
    let local_start = first(tier::list_offsets(leader, &tp, tier::EARLIEST_LOCAL).await?);
    let from = match b.start {
        Start::Offset(o) => Some(o),
        Start::Earliest => first(tier::list_offsets(leader, &tp, tier::EARLIEST).await?),
        Start::Timestamp(ts) => first(tier::list_offsets(leader, &tp, ts).await?),
    };
    let Some(from) = from else {
        return Ok(View {
            from: None,
            local_start,
            high_watermark: -1,
            rows: Vec::new(),
        });
    };
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(1000)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(str_bytes(name)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(b.partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(from)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(FETCH_BYTES)])]);
    let resp = leader.send_capped(req, FETCH_VERSION).await?;
    let Some(pd) = resp.responses.iter().flat_map(|t| &t.partitions).next() else {
        return Err(CliError::Usage(format!(
            "the leader of {name}-{} answered no partition",
            b.partition
        )));
    };
    if pd.error_code != 0 {
        return Err(CliError::kafka(
            format!("reading {name}-{} from offset {from}", b.partition),
            pd.error_code,
            None,
        ));
    }
    let mut data = pd.records.clone().unwrap_or_default();
    let mut rows = Vec::new();
    // The last batch may be cut at max_bytes: stop at the first that does not decode.
    while !data.is_empty() && rows.len() < PAGE_RECORDS {
        let Ok(set) = RecordBatchDecoder::decode(&mut data) else {
            break;
        };
        for r in set.records {
            if r.control || r.offset < from || rows.len() >= PAGE_RECORDS {
                continue;
            }
            rows.push(Row {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                remote: local_start.is_some_and(|l| r.offset < l),
            });
        }
    }
    Ok(View {
        from: Some(from),
        local_start,
        high_watermark: pd.high_watermark,
        rows,
    })
}

/// `bytes` shown as `format`; text falls back to hex for bytes that are not UTF-8, JSON to
/// text for what does not parse.
pub fn show(bytes: &[u8], format: Format) -> String {
    match format {
        Format::Hex => hex(bytes),
        Format::Json => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Err(_) => show(bytes, Format::Text),
        },
        Format::Text => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => hex(bytes),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(name: &str, b: &Browse, v: &View) -> Markup {
    let opt = |o: Option<&Bytes>| o.map_or_else(|| "null".to_string(), |v| show(v, b.format));
    let offset_field = match b.start {
        Start::Offset(o) => o.to_string(),
        _ => String::new(),
    };
    let ts_field = match b.start {
        Start::Timestamp(t) => t.to_string(),
        _ => String::new(),
    };
    html! {
        form method="get" action={ "/topics/" (urlencoding(name)) "/records" } {
            label { "Partition " input type="number" name="partition" min="0" value=(b.partition); }
            " "
            label { "Offset " input type="number" name="offset" min="0" value=(offset_field); }
            " "
            label { "or timestamp (ms) " input type="number" name="timestamp" min="0" value=(ts_field); }
            " "
            label { "Format "
                select name="format" {
                    @for (f, label) in [(Format::Text, "text"), (Format::Json, "json"), (Format::Hex, "hex")] {
                        option value=(label) selected[f == b.format] { (label) }
                    }
                }
            }
            " "
            button type="submit" { "Read" }
        }
        p #browse-summary {
            @match v.from {
                Some(f) => { "From offset " (f) }
                None => { "No record at or after that timestamp" }
            }
            "; local log starts at " (v.local_start.map_or_else(|| "-".to_string(), |o| o.to_string()))
            " (offsets below it are read from the remote tier); high watermark " (v.high_watermark) "."
        }
        table #records {
            thead { tr { th { "Offset" } th { "Tier" } th { "Timestamp" } th { "Key" } th { "Value" } th { "Headers" } } }
            tbody {
                @for r in &v.rows {
                    tr data-offset=(r.offset) {
                        td { (r.offset) }
                        td.tier { @if r.remote { "remote" } @else { "local" } }
                        td { (r.timestamp) }
                        td.key { pre { (opt(r.key.as_ref())) } }
                        td.value { pre { (opt(r.value.as_ref())) } }
                        td.headers {
                            @for (k, hv) in &r.headers { div { (k) ": " (opt(hv.as_ref())) } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browse_parses_offsets_timestamps_and_formats() {
        let b = Browse::parse(2, Some("17"), Some(""), Some("hex")).unwrap();
        assert_eq!(b.start, Start::Offset(17));
        assert_eq!(b.format, Format::Hex);
        assert_eq!(
            Browse::parse(0, None, Some("1700000000000"), None)
                .unwrap()
                .start,
            Start::Timestamp(1_700_000_000_000)
        );
        assert_eq!(
            Browse::parse(0, None, None, None).unwrap().start,
            Start::Earliest
        );
        assert!(Browse::parse(0, Some("1"), Some("2"), None).is_err());
        assert!(Browse::parse(0, Some("-1"), None, None).is_err());
        assert!(Browse::parse(0, None, None, Some("xml")).is_err());
        assert!(Browse::parse(-1, None, None, None).is_err());
    }

    #[test]
    fn bytes_show_as_text_json_or_hex() {
        assert_eq!(show(b"{\"a\":1}", Format::Json), "{\n  \"a\": 1\n}");
        assert_eq!(show(b"not json", Format::Json), "not json");
        assert_eq!(show(&[0xff, 0x01], Format::Text), "ff 01");
        assert_eq!(show(b"AB", Format::Hex), "41 42");
    }
}
