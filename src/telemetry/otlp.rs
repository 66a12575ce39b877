//! The pushed payload: decompression, OTLP decoding, the labels the broker adds, and
//! forwarding to an OTLP/HTTP collector.
//!
//! A KIP-714 push carries an OTLP `MetricsData` message (protobuf), compressed with one of
//! Kafka's codecs. It is decoded with the `opentelemetry-proto` types, so a payload that is
//! not OTLP is INVALID_RECORD, as Kafka's receiver answers. The broker adds the client's
//! identity to every resource (what Kafka hands its `ClientTelemetryReceiver`): instance
//! id, client id, software name and version, source address and port, principal and the
//! broker's node id. The enriched message is posted as an OTLP/HTTP
//! `ExportMetricsServiceRequest` to `<collector>/v1/metrics` by one background task, through
//! a bounded queue: a slow or absent collector drops pushes (counted), it never delays a
//! Kafka request.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::MetricsData;
use prost::Message;
use tokio::sync::mpsc;

use super::subscription::ClientMeta;
use super::TelemetryError;
use uuid::Uuid;

/// Pushes waiting for the collector; more are dropped.
const QUEUE: usize = 256;
/// How long one post to the collector may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// A decompressed payload may be at most this many times `telemetry.max.bytes`.
const MAX_EXPANSION: usize = 32;

/// Decompresses and decodes a pushed payload.
pub fn decode(
    id: Uuid,
    compression_type: i8,
    payload: &Bytes,
    max_bytes: usize,
) -> Result<MetricsData, TelemetryError> {
    let invalid = |reason: String| TelemetryError::InvalidRecord {
        client_instance_id: id,
        reason,
    };
    let mut buf = payload.clone();
    let take = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(std::mem::take(b)) };
    let raw = match compression_type {
        0 => Ok(buf),
        1 => Gzip::decompress(&mut buf, take),
        2 => Snappy::decompress(&mut buf, take),
        3 => Lz4::decompress(&mut buf, take),
        4 => Zstd::decompress(&mut buf, take),
        other => {
            return Err(TelemetryError::UnsupportedCompression {
                client_instance_id: id,
                compression_type: other,
            })
        }
    }
    .map_err(|e| {
        invalid(format!(
            "cannot decompress (compression type {compression_type}): {e}"
        ))
    })?;
    if raw.len() > max_bytes.saturating_mul(MAX_EXPANSION) {
        return Err(invalid(format!(
            "decompressed payload of {} bytes is over {MAX_EXPANSION} times telemetry.max.bytes",
            raw.len()
        )));
    }
    MetricsData::decode(raw).map_err(|e| invalid(format!("not OTLP MetricsData: {e}")))
}

/// The labels the broker adds to every resource of a client's push.
pub fn client_labels(
    id: Uuid,
    client: &ClientMeta,
    principal: &str,
    node_id: i32,
) -> Vec<(&'static str, String)> {
    vec![
        ("client_instance_id", id.to_string()),
        ("client_id", client.client_id.clone()),
        ("client_software_name", client.client_software_name.clone()),
        (
            "client_software_version",
            client.client_software_version.clone(),
        ),
        (
            "client_source_address",
            client.client_source_address.clone(),
        ),
        ("client_source_port", client.client_source_port.clone()),
        ("principal", principal.to_string()),
        ("broker_id", node_id.to_string()),
    ]
}

/// Adds `labels` to every resource (replacing a client-sent attribute of the same key).
pub fn enrich(data: &mut MetricsData, labels: &[(&'static str, String)]) {
    for rm in &mut data.resource_metrics {
        let resource = rm.resource.get_or_insert_with(Default::default);
        resource
            .attributes
            .retain(|kv| !labels.iter().any(|(k, _)| *k == kv.key));
        for (k, v) in labels {
            resource.attributes.push(KeyValue {
                key: (*k).to_string(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(v.clone())),
                }),
                ..Default::default()
            });
        }
    }
}

/// Posts enriched pushes to a collector, from one task.
pub struct Forwarder {
    url: String,
    tx: mpsc::Sender<Bytes>,
}

impl Forwarder {
    /// Starts the posting task for the OTLP/HTTP base URL `base` (`<base>/v1/metrics`).
    /// Needs a tokio runtime.
    pub fn start(base: &str) -> Result<Forwarder, TelemetryError> {
        let url = format!("{}/v1/metrics", base.trim_end_matches('/'));
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Forwarder {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(post_loop(http, url.clone(), rx));
        Ok(Forwarder { url, tx })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues `data` for the collector; `false` when the queue is full (dropped).
    pub fn send(&self, data: MetricsData) -> bool {
        let request = ExportMetricsServiceRequest {
            resource_metrics: data.resource_metrics,
        };
        self.tx
            .try_send(Bytes::from(request.encode_to_vec()))
            .is_ok()
    }
}

async fn post_loop(http: reqwest::Client, url: String, mut rx: mpsc::Receiver<Bytes>) {
    let mut failing = false;
    while let Some(body) = rx.recv().await {
        let sent = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status()))
                }
            });
        crate::metrics::client::forwarded(sent.is_ok());
        match sent {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(%url, error = %e, "cannot forward client telemetry to the OTLP collector; dropping pushes until it answers");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::compression::Compressor;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };

    fn sample() -> MetricsData {
        MetricsData {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "org.apache.kafka.producer.node.request.latency.avg".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                value: Some(number_data_point::Value::AsDouble(1.5)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn payloads_decode_in_every_codec() {
        let raw = Bytes::from(sample().encode_to_vec());
        let id = Uuid::new_v4();
        assert_eq!(decode(id, 0, &raw, 1 << 20).unwrap(), sample());
        let mut zstd = bytes::BytesMut::new();
        Zstd::compress(&mut zstd, |out| {
            out.extend_from_slice(&raw);
            Ok(())
        })
        .unwrap();
        assert_eq!(decode(id, 4, &zstd.freeze(), 1 << 20).unwrap(), sample());
        let mut gzip = bytes::BytesMut::new();
        Gzip::compress(&mut gzip, |out| {
            out.extend_from_slice(&raw);
            Ok(())
        })
        .unwrap();
        assert_eq!(decode(id, 1, &gzip.freeze(), 1 << 20).unwrap(), sample());
    }

    #[test]
    fn garbage_is_invalid_record() {
        let id = Uuid::new_v4();
        let e = decode(id, 0, &Bytes::from_static(b"\xff\xff\xff\xff"), 1024).unwrap_err();
        assert!(matches!(e, TelemetryError::InvalidRecord { .. }), "{e}");
        let e = decode(id, 4, &Bytes::from_static(b"not zstd"), 1024).unwrap_err();
        assert!(matches!(e, TelemetryError::InvalidRecord { .. }), "{e}");
        // A payload that expands past the bound is refused.
        let big = Bytes::from(sample().encode_to_vec());
        let e = decode(id, 0, &big, 1).unwrap_err();
        assert!(matches!(e, TelemetryError::InvalidRecord { .. }), "{e}");
    }

    #[test]
    fn enrichment_replaces_client_sent_labels() {
        let mut d = sample();
        let client = ClientMeta {
            client_id: "c1".into(),
            ..Default::default()
        };
        let id = Uuid::new_v4();
        enrich(&mut d, &client_labels(id, &client, "User:alice", 3));
        enrich(&mut d, &client_labels(id, &client, "User:alice", 3));
        let attrs = &d.resource_metrics[0].resource.as_ref().unwrap().attributes;
        assert_eq!(attrs.len(), 8);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            get("principal"),
            Some(any_value::Value::StringValue("User:alice".into()))
        );
        assert_eq!(
            get("client_id"),
            Some(any_value::Value::StringValue("c1".into()))
        );
    }
}
