//! Broker metrics: the OpenTelemetry instruments Strata records, and the functions
//! the rest of the broker calls to record them.
//!
//! Everything goes through the OpenTelemetry metrics API; where the numbers go is
//! decided once, at startup, by [`install`]: a Prometheus registry served at
//! `GET /metrics` ([`spawn_server`], on `metrics.listener`) and, when configured, an OTLP
//! exporter (`export.rs`). Before `install` (unit tests, the admin CLI) the
//! instruments are the API's no-ops, so recording is always safe and cheap.
//!
//! Series (Prometheus names; OTel names use dots):
//! - `strata_requests_total{api}` and `strata_request_duration_seconds{api}`
//!   (histogram): every decoded request, by Kafka API name (`Produce`, `Fetch`, ...);
//! - `strata_produce_bytes_total{topic}` and `strata_fetch_bytes_total{topic}`:
//!   record bytes appended by Produce and returned by Fetch (the broker-wide bytes in
//!   and out are their sums);
//! - `strata_fetch_consumer_bytes_total{rack,replica}`: bytes returned to consumers, by the
//!   consumer's `client.rack` against `broker.rack` (`same`, `other`: cross-rack traffic,
//!   `unknown`) and by the replica that served them (`leader`, `follower`: KIP-392);
//! - `strata_partition_log_end_offset{topic,partition}`,
//!   `strata_partition_log_start_offset{topic,partition}`: read from the hosted
//!   partitions at each scrape;
//! - `strata_under_replicated_partitions`: partitions this node leads whose ISR is smaller
//!   than their replica set (Kafka's `UnderReplicatedPartitions`);
//! - `strata_under_min_isr_partitions`: partitions this node leads whose ISR is smaller than
//!   `min.insync.replicas` (`UnderMinIsrPartitionCount`);
//! - `strata_offline_partitions`: partitions without a leader, on the active controller only
//!   (`OfflinePartitionsCount`; 0 elsewhere, so the sum over nodes is the cluster's count);
//! - `strata_replica_fetch_bytes_total{topic}`: record bytes this node copied from leaders as a
//!   follower (a reassignment's new replica shows what it moved);
//! - `strata_replication_throttled_bytes_total{side}`: record bytes moved under a KIP-73
//!   replication throttle, `leader` (sent to out-of-sync throttled followers) or `follower`
//!   (fetched for throttled partitions while out of sync);
//! - `strata_reassigning_partitions` and `strata_reassignment_bytes_left`: partitions this node
//!   leads that are being reassigned, and the local-log bytes their adding replicas still have
//!   to copy (an estimate from the followers' offsets; the sum over nodes is the cluster's);
//! - `strata_tier_*`: the remote tier's series, recorded through [`tier`];
//! - `strata_table_*`: the Iceberg tables' series, recorded through [`table`];
//! - `strata_cleaner_*`: the log cleaner's series, through [`cleaner`];
//! - `strata_consumer_group_lag{group,topic}`: through [`groups`].
//!
//! [`history`] keeps the last hour of a few series in memory for the web console's charts.
//!
//! This module never decides anything for the broker: it only counts. It depends on no
//! other layer: the scrape-time gauges read a [`ScrapeSource`] (the replica manager
//! implements it), and the layers call in to record.

pub mod cleaner;
pub mod client;
mod export;
pub mod groups;
pub mod history;
mod http;
pub mod quota;
pub mod table;
#[cfg(test)]
mod testing;
pub mod tier;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;
use parking_lot::{Mutex, RwLock};

pub use export::{install, tracing_enabled, ExportConfig, MetricsError, Telemetry};
pub use http::{serve, spawn_server};

/// The instrumentation scope of every Strata instrument.
const SCOPE: &str = "strata";

/// Upper bounds, in seconds, of the request latency buckets: 100 µs to 30 s, so that
/// both a page-cache produce and a long-polling fetch land in a useful bucket.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The synchronous instruments, created once per process from the installed meter.
struct Instruments {
    requests: Counter<u64>,
    request_duration: Histogram<f64>,
    produce_bytes: Counter<u64>,
    fetch_bytes: Counter<u64>,
    replica_fetch_bytes: Counter<u64>,
    replication_throttled_bytes: Counter<u64>,
    consumer_fetch_bytes: Counter<u64>,
    fetch_session_requests: Counter<u64>,
    fetch_session_partitions_left_out: Counter<u64>,
    fetch_request_partitions: Counter<u64>,
    tier: tier::Instruments,
    table: table::Instruments,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// What the scrape-time gauges read; the replica manager implements it.
pub trait ScrapeSource: Send + Sync {
    /// The log start and end offsets of every hosted partition.
    fn partition_offsets(&self) -> Vec<PartitionOffsets>;
    /// The partition-health counts (`broker::gauges`).
    fn partition_health(&self) -> PartitionHealthCounts;
}

/// Partition-health counts at a scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionHealthCounts {
    /// Led here, ISR smaller than the replica set (Kafka's `UnderReplicatedPartitions`).
    pub under_replicated: usize,
    /// Led here, ISR smaller than `min.insync.replicas` (`UnderMinIsrPartitionCount`).
    pub under_min_isr: usize,
    /// Without a leader; counted by the active controller only (`OfflinePartitionsCount`).
    pub offline: usize,
    /// Led here and being reassigned (Kafka's `ReassigningPartitions`, counted by leaders).
    pub reassigning: usize,
    /// Local-log bytes the adding replicas of those partitions have yet to copy (estimate).
    pub reassignment_bytes_left: u64,
}

/// One hosted partition's offsets at a scrape.
pub struct PartitionOffsets {
    pub topic: Arc<str>,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// The source the partition gauges read at scrape time (the last one started in this
/// process; a process normally runs one).
static WATCHED: Mutex<Option<Weak<dyn ScrapeSource>>> = Mutex::new(None);

/// `ApiKey` names as `'static` strings, so that labelling a request allocates nothing.
static API_NAMES: RwLock<Option<HashMap<i16, &'static str>>> = RwLock::new(None);

fn meter() -> Meter {
    opentelemetry::global::meter_provider().meter(SCOPE)
}

fn instruments() -> &'static Instruments {
    INSTRUMENTS.get_or_init(|| {
        let meter = meter();
        Instruments {
            requests: meter
                .u64_counter("strata.requests")
                .with_description("Requests decoded, by Kafka API")
                .build(),
            request_duration: meter
                .f64_histogram("strata.request.duration")
                .with_unit("s")
                .with_description(
                    "Time from a decoded request to its encoded response, by Kafka API",
                )
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            produce_bytes: meter
                .u64_counter("strata.produce.bytes")
                .with_description("Record batch bytes appended by Produce (bytes in), by topic")
                .build(),
            fetch_bytes: meter
                .u64_counter("strata.fetch.bytes")
                .with_description("Record batch bytes returned by Fetch (bytes out), by topic")
                .build(),
            replica_fetch_bytes: meter
                .u64_counter("strata.replica.fetch.bytes")
                .with_description(
                    "Record batch bytes this node copied from partition leaders as a follower, by topic",
                )
                .build(),
            replication_throttled_bytes: meter
                .u64_counter("strata.replication.throttled.bytes")
                .with_description(
                    "Record batch bytes moved under a replication throttle (KIP-73), by side: leader (sent to throttled out-of-sync followers) or follower (fetched for throttled partitions while out of sync)",
                )
                .build(),
            consumer_fetch_bytes: meter
                .u64_counter("strata.fetch.consumer.bytes")
                .with_description(
                    "Record batch bytes returned to consumers, by the consumer's rack against this broker's (same, other, unknown) and by the replica that served them (leader, follower)",
                )
                .build(),
            fetch_session_requests: meter
                .u64_counter("strata.fetch.session.requests")
                .with_description(
                    "Fetch requests by session kind (KIP-227): sessionless, full (opened a session) or incremental",
                )
                .build(),
            fetch_session_partitions_left_out: meter
                .u64_counter("strata.fetch.session.partitions_left_out")
                .with_description(
                    "Partitions fetched in a session but left out of the response: nothing changed since the client last heard",
                )
                .build(),
            fetch_request_partitions: meter
                .u64_counter("strata.fetch.request.partitions")
                .with_description(
                    "Partitions listed in Fetch requests, by session kind: an incremental request lists only what changed",
                )
                .build(),
            tier: tier::Instruments::new(&meter),
            table: table::Instruments::new(&meter),
        }
    })
}

/// This broker's own series named in `names` (Prometheus names, `_total` included) in the
/// text format, as `GET /metrics` shows them: what the console reads, in process, without
/// encoding the series it does not show.
pub fn text(names: &[&str]) -> String {
    let wanted = |family: &str| {
        names
            .iter()
            .any(|n| *n == family || n.strip_suffix("_total") == Some(family))
    };
    String::from_utf8_lossy(&http::own(&wanted)).into_owned()
}

/// The value of label `name` in a `{a="x",b="y"}` label set of the text format.
pub fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    // Anchored at the start or after a comma, so `topic` does not match `xtopic`.
    let at = labels
        .match_indices(&key)
        .find(|(i, _)| *i == 0 || labels.as_bytes()[i - 1] == b',')?
        .0
        + key.len();
    let rest = &labels[at..];
    Some(&rest[..rest.find('"')?])
}

/// Creates the instruments and the scrape-time gauges over `source`'s partitions.
/// Call after [`install`] (or without it, for no-op metrics).
pub fn watch_partitions(source: Arc<dyn ScrapeSource>) {
    let first = WATCHED.lock().replace(Arc::downgrade(&source)).is_none();
    instruments();
    if first {
        register_partition_gauges(&meter());
        register_reassignment_gauges(&meter());
    }
}

fn watched() -> Option<Arc<dyn ScrapeSource>> {
    WATCHED.lock().as_ref().and_then(Weak::upgrade)
}

fn partition_offsets() -> Vec<PartitionOffsets> {
    watched().map(|s| s.partition_offsets()).unwrap_or_default()
}

fn register_partition_gauges(meter: &Meter) {
    // The SDK keeps the callbacks for the life of the meter provider.
    let _ = meter
        .i64_observable_gauge("strata.partition.log_end_offset")
        .with_description("Offset the next appended record will get, per hosted partition")
        .with_callback(|obs| {
            for p in partition_offsets() {
                obs.observe(p.log_end_offset, &partition_labels(&p));
            }
        })
        .build();
    let _ = meter
        .i64_observable_gauge("strata.partition.log_start_offset")
        .with_description("First offset still in the log, per hosted partition")
        .with_callback(|obs| {
            for p in partition_offsets() {
                obs.observe(p.log_start_offset, &partition_labels(&p));
            }
        })
        .build();
    let _ = meter
        .i64_observable_gauge("strata.under_replicated_partitions")
        .with_description(
            "Partitions led by this node whose in-sync replicas are fewer than their replicas",
        )
        .with_callback(|obs| {
            if let Some(source) = watched() {
                obs.observe(source.partition_health().under_replicated as i64, &[]);
            }
        })
        .build();
    let _ = meter
        .i64_observable_gauge("strata.under_min_isr_partitions")
        .with_description(
            "Partitions led by this node whose in-sync replicas are fewer than min.insync.replicas (acks=all is refused)",
        )
        .with_callback(|obs| {
            if let Some(source) = watched() {
                obs.observe(source.partition_health().under_min_isr as i64, &[]);
            }
        })
        .build();
    let _ = meter
        .i64_observable_gauge("strata.offline_partitions")
        .with_description(
            "Partitions without a leader, reported by the active controller (0 on every other node)",
        )
        .with_callback(|obs| {
            if let Some(source) = watched() {
                obs.observe(source.partition_health().offline as i64, &[]);
            }
        })
        .build();
}

fn register_reassignment_gauges(meter: &Meter) {
    let _ = meter
        .i64_observable_gauge("strata.reassigning_partitions")
        .with_description("Partitions led by this node with a reassignment in progress")
        .with_callback(|obs| {
            if let Some(source) = watched() {
                obs.observe(source.partition_health().reassigning as i64, &[]);
            }
        })
        .build();
    let _ = meter
        .u64_observable_gauge("strata.reassignment_bytes_left")
        .with_description(
            "Local-log bytes that the adding replicas of partitions led by this node still have to copy (estimate)",
        )
        .with_callback(|obs| {
            if let Some(source) = watched() {
                obs.observe(source.partition_health().reassignment_bytes_left, &[]);
            }
        })
        .build();
}

fn partition_labels(p: &PartitionOffsets) -> [KeyValue; 2] {
    [
        KeyValue::new("topic", Arc::clone(&p.topic)),
        KeyValue::new("partition", i64::from(p.partition)),
    ]
}

fn api_label(api: ApiKey) -> KeyValue {
    let key = api as i16;
    if let Some(name) = API_NAMES.read().as_ref().and_then(|m| m.get(&key)) {
        return KeyValue::new("api", *name);
    }
    let mut names = API_NAMES.write();
    // At most one leaked string per Kafka API (about 80), never per request.
    let name = *names
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| Box::leak(format!("{api:?}").into_boxed_str()));
    KeyValue::new("api", name)
}

/// Records one handled request of `api` that took `elapsed`.
pub fn request(api: ApiKey, elapsed: Duration) {
    let m = instruments();
    let label = [api_label(api)];
    m.requests.add(1, &label);
    m.request_duration.record(elapsed.as_secs_f64(), &label);
}

/// Records `bytes` of record batches appended to `topic` by Produce. The name is
/// shared, not copied: labelling costs a reference count, not an allocation.
pub fn produce_bytes(topic: &Arc<str>, bytes: usize) {
    instruments()
        .produce_bytes
        .add(bytes as u64, &[KeyValue::new("topic", Arc::clone(topic))]);
}

/// Records `bytes` of record batches of `topic` returned by Fetch.
pub fn fetch_bytes(topic: &Arc<str>, bytes: usize) {
    if bytes > 0 {
        instruments()
            .fetch_bytes
            .add(bytes as u64, &[KeyValue::new("topic", Arc::clone(topic))]);
    }
}

/// Records `bytes` of record batches of `topic` copied from its leader by this node's fetcher.
pub fn replica_fetch_bytes(topic: &Arc<str>, bytes: usize) {
    if bytes > 0 {
        instruments()
            .replica_fetch_bytes
            .add(bytes as u64, &[KeyValue::new("topic", Arc::clone(topic))]);
    }
}

/// Records `bytes` moved under a replication throttle; `side` is `leader` or `follower`.
pub fn replication_throttled_bytes(side: &'static str, bytes: usize) {
    if bytes > 0 {
        instruments()
            .replication_throttled_bytes
            .add(bytes as u64, &[KeyValue::new("side", side)]);
    }
}

/// Records `bytes` returned to a consumer: `rack` is `same`, `other` (cross-rack traffic) or
/// `unknown` (see `replica::selector::rack_relation`); `by_follower` when a follower served it
/// (KIP-392).
pub fn consumer_fetch_bytes(bytes: usize, rack: &'static str, by_follower: bool) {
    if bytes > 0 {
        let replica = if by_follower { "follower" } else { "leader" };
        instruments().consumer_fetch_bytes.add(
            bytes as u64,
            &[
                KeyValue::new("rack", rack),
                KeyValue::new("replica", replica),
            ],
        );
    }
}

/// Records one Fetch by its session `kind` (`sessionless`, `full`, `incremental`), how
/// many partitions its request listed and how many its response left out.
pub fn fetch_session(kind: &'static str, listed: usize, left_out: usize) {
    let i = instruments();
    let kind = [KeyValue::new("kind", kind)];
    i.fetch_session_requests.add(1, &kind);
    i.fetch_request_partitions.add(listed as u64, &kind);
    if left_out > 0 {
        i.fetch_session_partitions_left_out
            .add(left_out as u64, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_labels_are_kafka_names_and_cached() {
        let a = api_label(ApiKey::Produce);
        let b = api_label(ApiKey::Produce);
        assert_eq!(a.value.as_str(), "Produce");
        assert_eq!(a, b);
        assert_eq!(api_label(ApiKey::Fetch).value.as_str(), "Fetch");
    }

    #[test]
    fn labels_are_found_whole() {
        let l = r#"xtopic="no",request="get",topic="t"}"#;
        assert_eq!(label(l, "topic"), Some("t"));
        assert_eq!(label(l, "request"), Some("get"));
        assert_eq!(label(l, "partition"), None);
    }

    #[test]
    fn recording_without_install_is_a_no_op() {
        request(ApiKey::Metadata, Duration::from_millis(1));
        let t: Arc<str> = "t".into();
        produce_bytes(&t, 10);
        fetch_bytes(&t, 0);
        tier::upload_errors("t", 0, 1);
    }
}
