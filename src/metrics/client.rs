//! Client metrics pushed through KIP-714, on `GET /metrics`.
//!
//! Kafka hands pushed metrics to a plugin; Strata users scrape `/metrics`, so the latest
//! values of each client instance are kept here and appended to the scrape in Prometheus
//! text format: `org.apache.kafka.producer.node.request.latency.avg` becomes
//! `org_apache_kafka_producer_node_request_latency_avg`, labelled with the data point's
//! attributes and the labels the broker added (client id, instance id, principal, ...).
//! Gauges keep the last value; sums become counters (`_total` is not appended: the name
//! stays the client's) and delta sums, which Strata asks clients for (KIP-714's
//! `DeltaTemporality`), are added up; histograms and summaries show `_sum` and `_count`.
//! A client that stops pushing disappears after [`EXPIRY_MS`]-scale idleness (three of its
//! push intervals, at least a minute). At most [`MAX_CLIENTS`] instances and
//! [`MAX_POINTS`] series per instance are kept, so a client cannot grow the scrape
//! without bound.
//!
//! The push and forward outcomes are ordinary instruments:
//! `strata_client_telemetry_pushes_total{outcome}` and
//! `strata_client_telemetry_forwarded_total{result}`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::OnceLock;

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue as OtlpKeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, MetricsData};
use parking_lot::Mutex;

/// Most client instances shown.
pub const MAX_CLIENTS: usize = 4096;
/// Most series kept per client instance.
pub const MAX_POINTS: usize = 2000;
/// Shortest time a silent client stays on the page.
pub const EXPIRY_MS: i64 = 60_000;
/// OTLP's `AGGREGATION_TEMPORALITY_DELTA`.
const DELTA: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Gauge,
    Counter,
}

/// One client instance's latest values: (name, labels) -> (kind, value).
struct ClientSeries {
    seen_ms: i64,
    expiry_ms: i64,
    points: BTreeMap<(String, String), (Kind, f64)>,
}

static CLIENTS: Mutex<Option<HashMap<String, ClientSeries>>> = Mutex::new(None);

struct Instruments {
    pushes: Counter<u64>,
    forwarded: Counter<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

fn instruments() -> &'static Instruments {
    INSTRUMENTS.get_or_init(|| {
        let meter = super::meter();
        Instruments {
            pushes: meter
                .u64_counter("strata.client_telemetry.pushes")
                .with_description(
                    "PushTelemetry requests (KIP-714) by outcome: ok or the Kafka error",
                )
                .build(),
            forwarded: meter
                .u64_counter("strata.client_telemetry.forwarded")
                .with_description(
                    "Client pushes posted to the OTLP collector: sent, failed, or dropped (queue full)",
                )
                .build(),
        }
    })
}

/// Counts one PushTelemetry by `outcome` (`ok` or an error name).
pub fn push(outcome: &'static str) {
    instruments()
        .pushes
        .add(1, &[KeyValue::new("outcome", outcome)]);
}

/// Counts one post to the collector.
pub fn forwarded(ok: bool) {
    let result = if ok { "sent" } else { "failed" };
    instruments()
        .forwarded
        .add(1, &[KeyValue::new("result", result)]);
}

/// Counts one push dropped because the collector queue was full.
pub fn forward_dropped() {
    instruments()
        .forwarded
        .add(1, &[KeyValue::new("result", "dropped")]);
}

/// Records a client instance's push: `data` is already enriched with the broker's labels
/// on its resources; `interval_ms` is its push interval.
pub fn record(instance: &str, data: &MetricsData, interval_ms: i32, now_ms: i64) {
    let mut guard = CLIENTS.lock();
    let clients = guard.get_or_insert_with(HashMap::new);
    clients.retain(|_, c| now_ms - c.seen_ms < c.expiry_ms);
    if !clients.contains_key(instance) && clients.len() >= MAX_CLIENTS {
        if let Some(oldest) = clients
            .iter()
            .min_by_key(|(_, c)| c.seen_ms)
            .map(|(k, _)| k.clone())
        {
            clients.remove(&oldest);
        }
    }
    let entry = clients
        .entry(instance.to_string())
        .or_insert_with(|| ClientSeries {
            seen_ms: now_ms,
            expiry_ms: EXPIRY_MS,
            points: BTreeMap::new(),
        });
    entry.seen_ms = now_ms;
    entry.expiry_ms = (3 * i64::from(interval_ms)).max(EXPIRY_MS);
    for rm in &data.resource_metrics {
        let resource: &[OtlpKeyValue] = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let name = prometheus_name(&m.name);
            let mut put = |suffix: &str, attrs: &[OtlpKeyValue], kind, value: f64, add: bool| {
                let key = (format!("{name}{suffix}"), labels(resource, attrs));
                if !entry.points.contains_key(&key) && entry.points.len() >= MAX_POINTS {
                    return;
                }
                let slot = entry.points.entry(key).or_insert((kind, 0.0));
                *slot = (kind, if add { slot.1 + value } else { value });
            };
            match &m.data {
                Some(metric::Data::Gauge(g)) => {
                    for p in &g.data_points {
                        put("", &p.attributes, Kind::Gauge, number(&p.value), false);
                    }
                }
                Some(metric::Data::Sum(s)) => {
                    let kind = if s.is_monotonic {
                        Kind::Counter
                    } else {
                        Kind::Gauge
                    };
                    let add = s.aggregation_temporality == DELTA;
                    for p in &s.data_points {
                        put("", &p.attributes, kind, number(&p.value), add);
                    }
                }
                Some(metric::Data::Histogram(h)) => {
                    let add = h.aggregation_temporality == DELTA;
                    for p in &h.data_points {
                        put("_count", &p.attributes, Kind::Counter, p.count as f64, add);
                        let sum = p.sum.unwrap_or_default();
                        put("_sum", &p.attributes, Kind::Counter, sum, add);
                    }
                }
                Some(metric::Data::Summary(s)) => {
                    for p in &s.data_points {
                        put(
                            "_count",
                            &p.attributes,
                            Kind::Counter,
                            p.count as f64,
                            false,
                        );
                        put("_sum", &p.attributes, Kind::Counter, p.sum, false);
                    }
                }
                Some(metric::Data::ExponentialHistogram(h)) => {
                    let add = h.aggregation_temporality == DELTA;
                    for p in &h.data_points {
                        put("_count", &p.attributes, Kind::Counter, p.count as f64, add);
                        let sum = p.sum.unwrap_or_default();
                        put("_sum", &p.attributes, Kind::Counter, sum, add);
                    }
                }
                None => {}
            }
        }
    }
}

/// The Prometheus text of every live client's series, families grouped.
pub fn render(now_ms: i64) -> String {
    let mut families: BTreeMap<&str, (Kind, Vec<String>)> = BTreeMap::new();
    let mut guard = CLIENTS.lock();
    let Some(clients) = guard.as_mut() else {
        return String::new();
    };
    clients.retain(|_, c| now_ms - c.seen_ms < c.expiry_ms);
    for c in clients.values() {
        for ((name, labels), (kind, value)) in &c.points {
            let family = families.entry(name).or_insert((*kind, Vec::new()));
            family
                .1
                .push(format!("{name}{{{labels}}} {}", format_value(*value)));
        }
    }
    let mut out = String::new();
    for (name, (kind, lines)) in families {
        let ty = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {name} Pushed by Kafka clients (KIP-714)");
        let _ = writeln!(out, "# TYPE {name} {ty}");
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// A Prometheus metric or label name: anything outside `[a-zA-Z0-9_:]` becomes `_`,
/// and a leading digit gets a `_` before it.
pub fn prometheus_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `k="v",...` of the resource's and the point's attributes (the point's win), sorted.
fn labels(resource: &[OtlpKeyValue], point: &[OtlpKeyValue]) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for kv in resource.iter().chain(point) {
        let name = prometheus_name(&kv.key).replace(':', "_");
        map.insert(name, any_to_string(kv.value.as_ref()));
    }
    let mut out = String::new();
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    out
}

fn any_to_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> OtlpKeyValue {
        OtlpKeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn point(v: f64, attrs: Vec<OtlpKeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn data(client: &str, latency: f64, sent: f64) -> MetricsData {
        MetricsData {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("client_id", client)],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "org.apache.kafka.producer.node.request.latency.avg".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![point(latency, vec![kv("node.id", "1")])],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "org.apache.kafka.client.connection.creations".into(),
                            data: Some(metric::Data::Sum(Sum {
                                data_points: vec![point(sent, vec![])],
                                aggregation_temporality: DELTA,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn pushes_render_as_prometheus_families() {
        // The store is process-wide: use instance ids no other test uses.
        record("test-a", &data("a\"1", 2.5, 3.0), 1000, 1_000);
        record("test-a", &data("a\"1", 4.0, 2.0), 1000, 2_000);
        record("test-b", &data("b", 1.0, 1.0), 1000, 2_000);
        let text = render(2_000);
        assert!(text.contains("# TYPE org_apache_kafka_producer_node_request_latency_avg gauge"));
        assert!(text.contains(
            "org_apache_kafka_producer_node_request_latency_avg{client_id=\"a\\\"1\",node_id=\"1\"} 4\n"
        ), "{text}");
        // Deltas add up.
        assert!(
            text.contains("org_apache_kafka_client_connection_creations{client_id=\"a\\\"1\"} 5\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE org_apache_kafka_client_connection_creations counter")
                .count(),
            1
        );
        // Silent for a minute: gone.
        assert!(!render(2_000 + EXPIRY_MS).contains("client_id=\"a"));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(prometheus_name("a.b-c/d"), "a_b_c_d");
        assert_eq!(prometheus_name("1x"), "_1x");
    }
}
