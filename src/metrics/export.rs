//! Where metrics and traces go: the process-wide OpenTelemetry providers.
//!
//! [`install`] builds, once per process, a meter provider with two readers: the
//! Prometheus exporter (`opentelemetry-prometheus`, into a `prometheus::Registry`
//! that `http.rs` encodes) and, when an OTLP endpoint is configured, a periodic
//! OTLP/HTTP reader. With OTLP it also builds a tracer provider whose spans the
//! `tracing` bridge (`crate::logging`) feeds. The OTLP exporters run on the SDK's
//! own threads with a blocking HTTP client, so an unreachable collector delays only
//! those threads, never a Kafka request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, OTEL_EXPORTER_OTLP_ENDPOINT};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// How often metrics are pushed over OTLP (the SDK's default).
const OTLP_METRICS_INTERVAL: Duration = Duration::from_secs(60);
/// How long one OTLP export may take before the SDK gives up on it.
const OTLP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot set up the Prometheus exporter: {0}")]
    Prometheus(String),
    #[error("cannot set up OTLP {signal} export to {endpoint}: {reason}; check otel.exporter.otlp.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT")]
    Otlp {
        signal: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error("cannot listen for metrics on {addr}: {source}; is another process using the port? (metrics.listener)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// What [`install`] needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct ExportConfig {
    /// `otel.exporter.otlp.endpoint`: an OTLP/HTTP base URL such as
    /// `http://127.0.0.1:4318`. `None` falls back to `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
    /// Reported as the `service.instance.id` resource attribute.
    pub node_id: i32,
}

/// The installed providers; [`Telemetry::shutdown`] flushes them.
pub struct Telemetry {
    /// The OTLP destination, for the startup log line.
    pub otlp: Option<String>,
    meter_provider: SdkMeterProvider,
    tracer_provider: Option<SdkTracerProvider>,
}

static REGISTRY: OnceLock<prometheus::Registry> = OnceLock::new();
static TRACING: AtomicBool = AtomicBool::new(false);

/// The registry the Prometheus exporter writes into, once [`install`] has run.
pub(super) fn registry() -> Option<&'static prometheus::Registry> {
    REGISTRY.get()
}

/// Whether spans are exported (OTLP configured), so that request spans are worth
/// creating.
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// Sets up the global meter provider (and, with OTLP, a tracer provider). Call once
/// per process, before the first metric is recorded: instruments bind to the meter
/// provider that is installed when they are first used.
pub fn install(config: &ExportConfig) -> Result<Telemetry, MetricsError> {
    let resource = Resource::builder()
        .with_service_name("strata")
        .with_attribute(KeyValue::new(
            "service.instance.id",
            i64::from(config.node_id),
        ))
        .build();
    let registry = REGISTRY.get_or_init(prometheus::Registry::new).clone();
    let prometheus = opentelemetry_prometheus::exporter()
        .with_registry(registry)
        .scope_info_enabled(false)
        .build()
        .map_err(|e| MetricsError::Prometheus(e.to_string()))?;
    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(prometheus);
    let mut tracer_provider = None;
    let target = otlp_target(config);
    if let Some(otlp) = &target {
        let exporter = metric_exporter(otlp)?;
        meters = meters.with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(OTLP_METRICS_INTERVAL)
                .build(),
        );
        let spans = span_exporter(otlp)?;
        tracer_provider = Some(
            SdkTracerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(spans)
                .build(),
        );
        TRACING.store(true, Ordering::Relaxed);
    }
    let meter_provider = meters.build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    Ok(Telemetry {
        otlp: target.as_ref().map(OtlpTarget::describe),
        meter_provider,
        tracer_provider,
    })
}

impl Telemetry {
    /// The tracer provider to bridge `tracing` spans into, when OTLP is on.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.tracer_provider.as_ref()
    }

    /// Flushes pending spans and metrics (best effort) and stops the exporters.
    pub fn shutdown(self) {
        if let Some(t) = self.tracer_provider {
            if let Err(e) = t.shutdown() {
                tracing::warn!(error = %e, "OTLP trace export did not shut down cleanly");
            }
        }
        if let Err(e) = self.meter_provider.shutdown() {
            tracing::warn!(error = %e, "metrics export did not shut down cleanly");
        }
    }
}

/// Where OTLP goes: an explicit base URL from the config, or the standard
/// environment variable, which the exporter reads itself.
enum OtlpTarget {
    Base(String),
    FromEnv(String),
}

impl OtlpTarget {
    fn describe(&self) -> String {
        match self {
            OtlpTarget::Base(b) => b.clone(),
            OtlpTarget::FromEnv(e) => format!("{e} ({OTEL_EXPORTER_OTLP_ENDPOINT})"),
        }
    }

    /// The endpoint of one signal: OTLP/HTTP puts each at `<base>/v1/<signal>`.
    fn signal_url(&self, signal: &str) -> Option<String> {
        match self {
            OtlpTarget::Base(b) => Some(format!("{}/v1/{signal}", b.trim_end_matches('/'))),
            OtlpTarget::FromEnv(_) => None,
        }
    }
}

fn otlp_target(config: &ExportConfig) -> Option<OtlpTarget> {
    if let Some(base) = config.otlp_endpoint.clone() {
        return Some(OtlpTarget::Base(base));
    }
    std::env::var(OTEL_EXPORTER_OTLP_ENDPOINT)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(OtlpTarget::FromEnv)
}

fn metric_exporter(
    target: &OtlpTarget,
) -> Result<opentelemetry_otlp::MetricExporter, MetricsError> {
    let mut b = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_timeout(OTLP_TIMEOUT);
    if let Some(url) = target.signal_url("metrics") {
        b = b.with_endpoint(url);
    }
    b.build().map_err(|e| MetricsError::Otlp {
        signal: "metrics",
        endpoint: target.describe(),
        reason: e.to_string(),
    })
}

fn span_exporter(target: &OtlpTarget) -> Result<opentelemetry_otlp::SpanExporter, MetricsError> {
    let mut b = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_timeout(OTLP_TIMEOUT);
    if let Some(url) = target.signal_url("traces") {
        b = b.with_endpoint(url);
    }
    b.build().map_err(|e| MetricsError::Otlp {
        signal: "traces",
        endpoint: target.describe(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_urls_append_the_otlp_http_paths() {
        let t = OtlpTarget::Base("http://127.0.0.1:4318/".into());
        assert_eq!(
            t.signal_url("traces").as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        let e = OtlpTarget::FromEnv("http://x:4318".into());
        assert_eq!(e.signal_url("metrics"), None);
    }
}
