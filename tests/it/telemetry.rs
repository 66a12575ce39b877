//! KIP-714 over raw frames: GetTelemetrySubscriptions and PushTelemetry with every
//! error code Kafka answers (UNKNOWN_SUBSCRIPTION_ID after a subscription change,
//! THROTTLING_QUOTA_EXCEEDED, INVALID_RECORD, TELEMETRY_TOO_LARGE,
//! UNSUPPORTED_COMPRESSION_TYPE, INVALID_REQUEST after the terminating push), a
//! subscription set with IncrementalAlterConfigs on a CLIENT_METRICS resource, and an
//! accepted push on `/metrics`.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};
use kafka_protocol::ResponseError as E;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, MetricsData, NumberDataPoint, ResourceMetrics,
    ScopeMetrics,
};
use prost::Message;
use uuid::Uuid;

use crate::harness::Broker;
use crate::metrics::scrape;
use crate::txn::{call, sb};

fn get(b: &Broker, id: Uuid) -> GetTelemetrySubscriptionsResponse {
    let req = GetTelemetrySubscriptionsRequest::default().with_client_instance_id(id);
    call(b, ApiKey::GetTelemetrySubscriptions, 0, &req)
}

fn push(b: &Broker, id: Uuid, sub: i32, compression: i8, metrics: Bytes, end: bool) -> i16 {
    let req = PushTelemetryRequest::default()
        .with_client_instance_id(id)
        .with_subscription_id(sub)
        .with_compression_type(compression)
        .with_terminating(end)
        .with_metrics(metrics);
    let resp: PushTelemetryResponse = call(b, ApiKey::PushTelemetry, 0, &req);
    resp.error_code
}

fn subscribe(b: &Broker, name: &str, configs: &[(&str, &str)]) -> i16 {
    let ops = configs
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(sb(k))
                .with_config_operation(0)
                .with_value(Some(sb(v)))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(16)
            .with_resource_name(sb(name))
            .with_configs(ops),
    ]);
    let resp: IncrementalAlterConfigsResponse = call(b, ApiKey::IncrementalAlterConfigs, 1, &req);
    resp.responses[0].error_code
}

fn gauge(name: &str, value: f64) -> Bytes {
    let data = MetricsData {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            value: Some(number_data_point::Value::AsDouble(value)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(data.encode_to_vec())
}

#[test]
fn push_telemetry_answers_as_kafka() {
    let b = Broker::start(&[
        ("telemetry.max.bytes", "4096"),
        ("client.telemetry.otlp.endpoint", "none"),
    ]);
    // No subscription yet: a new instance id, nothing requested, the default interval.
    let first = get(&b, Uuid::nil());
    assert_eq!(first.error_code, 0);
    let id = first.client_instance_id;
    assert!(!id.is_nil());
    assert!(first.requested_metrics.is_empty());
    assert_eq!(first.push_interval_ms, 300_000);
    assert_eq!(first.telemetry_max_bytes, 4096);
    assert_eq!(first.accepted_compression_types, vec![4, 3, 1, 2]);
    assert!(first.delta_temporality);
    // Asking again within the interval is throttled.
    assert_eq!(get(&b, id).error_code, E::ThrottlingQuotaExceeded.code());

    assert_eq!(
        subscribe(&b, "bad", &[("interval.ms", "99")]),
        E::InvalidConfig.code()
    );
    assert_eq!(
        subscribe(&b, "all", &[("metrics", "*"), ("interval.ms", "1000")]),
        0
    );
    // The subscription changed: the old id is refused, and the client may ask at once.
    let sub = first.subscription_id;
    assert_eq!(
        push(&b, id, sub, 0, gauge("x", 1.0), false),
        E::UnknownSubscriptionId.code()
    );
    // (Times are in ms: a Get in the same millisecond as the push would not count as after it.)
    std::thread::sleep(Duration::from_millis(10));
    let second = get(&b, id);
    assert_eq!(second.error_code, 0, "{second:?}");
    assert_eq!(second.client_instance_id, id);
    assert_eq!(second.requested_metrics, vec![sb("")]);
    assert_eq!(second.push_interval_ms, 1000);
    let sub = second.subscription_id;
    assert_ne!(sub, first.subscription_id);

    // Not OTLP: INVALID_RECORD; then the next push within the interval is throttled.
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(
        push(&b, id, sub, 0, Bytes::from_static(b"\xff\xff\xff"), false),
        E::InvalidRecord.code()
    );
    assert_eq!(
        push(&b, id, sub, 0, gauge("x", 1.0), false),
        E::ThrottlingQuotaExceeded.code()
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        push(&b, id, sub, 0, Bytes::from(vec![0u8; 5000]), false),
        E::TelemetryTooLarge.code()
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        push(&b, id, sub, 7, gauge("x", 1.0), false),
        E::UnsupportedCompressionType.code()
    );
    // UNSUPPORTED_COMPRESSION_TYPE: the client gets its subscription again, then pushes.
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(get(&b, id).error_code, 0);
    std::thread::sleep(Duration::from_millis(10));
    let payload = gauge("org.apache.kafka.test.latency.avg", 42.5);
    assert_eq!(push(&b, id, sub, 0, payload, false), 0);
    let (_, body) = scrape(&b.metrics_addr, "/metrics");
    let line = body
        .lines()
        .find(|l| l.starts_with("org_apache_kafka_test_latency_avg{"))
        .unwrap_or_else(|| panic!("pushed gauge not on /metrics:\n{body}"));
    assert!(line.contains("client_id=\"raw\""), "{line}");
    assert!(
        line.contains(&format!("client_instance_id=\"{id}\"")),
        "{line}"
    );
    assert!(line.ends_with(" 42.5"), "{line}");
    assert!(
        body.contains("strata_client_telemetry_pushes_total{outcome=\"invalid_record\""),
        "{body}"
    );

    // The terminating push is accepted within the interval; nothing after it.
    assert_eq!(push(&b, id, sub, 0, Bytes::new(), true), 0);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        push(&b, id, sub, 0, gauge("x", 1.0), false),
        E::InvalidRequest.code()
    );
    assert_eq!(
        push(&b, Uuid::nil(), sub, 0, gauge("x", 1.0), false),
        E::InvalidRequest.code()
    );
}
