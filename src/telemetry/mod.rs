//! Client telemetry (KIP-714): clients push their own metrics to the broker.
//!
//! A client asks GetTelemetrySubscriptions which metrics to send and how often, then
//! pushes them with PushTelemetry as OTLP protobuf. What is asked for is configured with
//! Kafka's client-metrics subscriptions (`CLIENT_METRICS` config resources, stored in the
//! metadata log: [`subscription`]). The per-client rules (ids, intervals, throttling,
//! errors) are the pure state machine in [`state`]; the payload is decoded and labelled in
//! [`otlp`], then shown on `GET /metrics` (`crate::metrics::client`) and, when a collector
//! is configured (`client.telemetry.otlp.endpoint`, else `otel.exporter.otlp.endpoint`),
//! forwarded to it over OTLP/HTTP.
//!
//! Client instances are kept in memory on the broker the client pushes to (as in Kafka):
//! after a restart a client's next push re-creates its instance.

pub mod otlp;
pub mod state;
pub mod subscription;

use std::collections::BTreeMap;

use bytes::Bytes;
use parking_lot::Mutex;
use uuid::Uuid;

use self::state::{GetAnswer, Push, TelemetryState};
use self::subscription::{ClientMeta, Subscription};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("client instance {client_instance_id}: {what} arrived before its push interval ({interval_ms} ms) passed")]
    Throttled {
        client_instance_id: Uuid,
        interval_ms: i32,
        what: &'static str,
    },
    #[error("client instance {client_instance_id}: subscription id {subscription_id} is not current; get the subscription again")]
    UnknownSubscription {
        client_instance_id: Uuid,
        subscription_id: i32,
    },
    #[error("client instance {client_instance_id}: compression type {compression_type} is not accepted; use one offered by GetTelemetrySubscriptions")]
    UnsupportedCompression {
        client_instance_id: Uuid,
        compression_type: i8,
    },
    #[error("client instance {client_instance_id}: metrics of {size} bytes are over telemetry.max.bytes ({max})")]
    TooLarge {
        client_instance_id: Uuid,
        size: usize,
        max: usize,
    },
    #[error("client instance {client_instance_id}: pushed after its terminating push")]
    AfterTerminating { client_instance_id: Uuid },
    #[error("PushTelemetry needs the client instance id from GetTelemetrySubscriptions, not the nil UUID")]
    NilInstanceId,
    #[error("client instance {client_instance_id}: metrics cannot be read: {reason}")]
    InvalidRecord {
        client_instance_id: Uuid,
        reason: String,
    },
    #[error("cannot start forwarding client telemetry to {url}: {reason}; check client.telemetry.otlp.endpoint")]
    Forwarder { url: String, reason: String },
}

impl TelemetryError {
    /// The outcome label of the push counter.
    pub fn label(&self) -> &'static str {
        match self {
            TelemetryError::Throttled { .. } => "throttling_quota_exceeded",
            TelemetryError::UnknownSubscription { .. } => "unknown_subscription_id",
            TelemetryError::UnsupportedCompression { .. } => "unsupported_compression_type",
            TelemetryError::TooLarge { .. } => "telemetry_too_large",
            TelemetryError::AfterTerminating { .. } | TelemetryError::NilInstanceId => {
                "invalid_request"
            }
            TelemetryError::InvalidRecord { .. } => "invalid_record",
            TelemetryError::Forwarder { .. } => "forwarder",
        }
    }
}

/// Where pushed metrics go besides `/metrics`.
pub enum Destination {
    /// No collector: `/metrics` only.
    None,
    /// An OTLP/HTTP base URL.
    Otlp(String),
}

impl Destination {
    /// `client.telemetry.otlp.endpoint` (`none` disables), else the broker's own
    /// `otel.exporter.otlp.endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn resolve(client_endpoint: Option<&str>, broker_endpoint: Option<&str>) -> Destination {
        let env = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|v| !v.trim().is_empty());
        match client_endpoint {
            Some(v) if v.eq_ignore_ascii_case("none") => Destination::None,
            Some(v) => Destination::Otlp(v.to_string()),
            None => match broker_endpoint.map(str::to_string).or(env) {
                Some(v) => Destination::Otlp(v),
                None => Destination::None,
            },
        }
    }
}

/// The broker's KIP-714 service: one per node, shared by every connection.
pub struct ClientTelemetry {
    state: Mutex<Synced>,
    forwarder: Option<otlp::Forwarder>,
    node_id: i32,
}

/// The state machine and the subscription settings it was last given.
struct Synced {
    state: TelemetryState,
    configs: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

impl ClientTelemetry {
    /// Starts the service; with a collector, its posting task (needs a tokio runtime).
    pub fn new(
        max_bytes: i32,
        destination: Destination,
        node_id: i32,
    ) -> Result<ClientTelemetry, TelemetryError> {
        let forwarder = match destination {
            Destination::None => None,
            Destination::Otlp(base) => {
                let f = otlp::Forwarder::start(&base)?;
                tracing::info!(
                    url = f.url(),
                    "forwarding client telemetry (KIP-714) over OTLP/HTTP"
                );
                Some(f)
            }
        };
        Ok(ClientTelemetry {
            state: Mutex::new(Synced {
                state: TelemetryState::new(max_bytes.max(1) as usize),
                configs: None,
            }),
            forwarder,
            node_id,
        })
    }

    pub fn max_bytes(&self) -> usize {
        self.state.lock().state.max_bytes()
    }

    /// The state machine, with the subscriptions of `configs` (the metadata image's).
    fn synced<'a>(
        synced: &'a mut Synced,
        configs: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> &'a mut TelemetryState {
        if synced.configs.as_ref() != Some(configs) {
            let subs = configs
                .iter()
                .filter_map(|(name, c)| match Subscription::parse(name, c) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a stored client metrics subscription");
                        None
                    }
                })
                .collect();
            synced.state.set_subscriptions(subs);
            synced.configs = Some(configs.clone());
        }
        &mut synced.state
    }

    /// GetTelemetrySubscriptions.
    pub fn get(
        &self,
        configs: &BTreeMap<String, BTreeMap<String, String>>,
        client_instance_id: Uuid,
        client: &ClientMeta,
        now_ms: i64,
    ) -> Result<GetAnswer, TelemetryError> {
        let mut synced = self.state.lock();
        let fresh = Uuid::new_v4();
        Self::synced(&mut synced, configs).get(client_instance_id, fresh, client, now_ms)
    }

    /// PushTelemetry: checks it, decodes and labels the metrics, shows them on
    /// `/metrics` and queues them for the collector.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &self,
        configs: &BTreeMap<String, BTreeMap<String, String>>,
        push: Push,
        metrics: &Bytes,
        client: &ClientMeta,
        principal: &str,
        now_ms: i64,
    ) -> Result<(), TelemetryError> {
        let outcome = self.push_inner(configs, push, metrics, client, principal, now_ms);
        crate::metrics::client::push(match &outcome {
            Ok(()) => "ok",
            Err(e) => e.label(),
        });
        outcome
    }

    fn push_inner(
        &self,
        configs: &BTreeMap<String, BTreeMap<String, String>>,
        push: Push,
        metrics: &Bytes,
        client: &ClientMeta,
        principal: &str,
        now_ms: i64,
    ) -> Result<(), TelemetryError> {
        let id = push.client_instance_id;
        let (max_bytes, interval_ms) = {
            let mut synced = self.state.lock();
            let state = Self::synced(&mut synced, configs);
            state.push(push, client, now_ms)?;
            (state.max_bytes(), state.interval_ms(id))
        };
        if !metrics.is_empty() {
            let mut data = match otlp::decode(id, push.compression_type, metrics, max_bytes) {
                Ok(d) => d,
                Err(e) => {
                    self.state.lock().state.export_failed(id);
                    return Err(e);
                }
            };
            otlp::enrich(
                &mut data,
                &otlp::client_labels(id, client, principal, self.node_id),
            );
            crate::metrics::client::record(&id.to_string(), &data, interval_ms, now_ms);
            if let Some(f) = &self.forwarder {
                if !f.send(data) {
                    crate::metrics::client::forward_dropped();
                }
            }
        }
        Ok(())
    }
}
