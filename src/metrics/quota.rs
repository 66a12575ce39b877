//! Client quota series: `strata_client_quota_throttle_time_milliseconds_total{quota,user,client_id}`
//! (milliseconds clients were told to wait, Kafka's `throttle-time` per client) and
//! `strata_client_quota_throttled_total{quota,user,client_id}` (responses that carried a
//! throttle). Only throttled clients appear, so the label set stays as small as the set of
//! clients over a quota.
//!
//! KIP-612's connection rates use the same two series with labels `{quota, source}`:
//! `quota="connection_creation_rate"`, `source` the IP address whose connections were
//! held and closed; `quota="max.connection.creation.rate"`, `source` the listener that
//! paused accepting.

use std::sync::OnceLock;

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;

struct Instruments {
    throttle_ms: Counter<u64>,
    throttled: Counter<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

fn instruments() -> &'static Instruments {
    INSTRUMENTS.get_or_init(|| {
        let meter = super::meter();
        Instruments {
            throttle_ms: meter
                .u64_counter("strata.client.quota.throttle.time")
                .with_unit("ms")
                .with_description(
                    "Milliseconds clients were throttled for, by quota (producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate), user and client id",
                )
                .build(),
            throttled: meter
                .u64_counter("strata.client.quota.throttled")
                .with_description("Responses that throttled their client, by quota, user and client id")
                .build(),
        }
    })
}

/// `user`/`client_id` are the quota entity's parts ("" where the entity has none).
pub fn throttled(quota: &'static str, user: &str, client_id: &str, ms: u64) {
    let labels = [
        KeyValue::new("quota", quota),
        KeyValue::new("user", user.to_string()),
        KeyValue::new("client_id", client_id.to_string()),
    ];
    let m = instruments();
    m.throttle_ms.add(ms, &labels);
    m.throttled.add(1, &labels);
}

/// A connection throttled by KIP-612's rates: `source` is the IP address
/// (`connection_creation_rate`) or the listener (`max.connection.creation.rate`).
pub fn connection_throttled(quota: &'static str, source: &str, ms: u64) {
    let labels = [
        KeyValue::new("quota", quota),
        KeyValue::new("source", source.to_string()),
    ];
    let m = instruments();
    m.throttle_ms.add(ms, &labels);
    m.throttled.add(1, &labels);
}
