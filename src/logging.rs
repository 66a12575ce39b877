//! Process-wide `tracing` setup: human-readable lines on stderr, or JSON lines with
//! `STRATA_LOG_FORMAT=json`, filtered by `STRATA_LOG` (like `RUST_LOG`); and, when
//! OTLP export is on (`crate::metrics::install`), a bridge that turns Strata's
//! spans into OpenTelemetry spans.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The variable that picks the log line format: `text` (default) or `json`.
pub const LOG_FORMAT_VAR: &str = "STRATA_LOG_FORMAT";

/// Libraries whose INFO lines describe their own internals (openraft's engine states,
/// foyer's recovery, connection pools): without `STRATA_LOG` they log at WARN, so a
/// default start shows Strata's banner and what needs attention, not 180 lines.
const QUIET_LIBRARIES: &[&str] = &[
    "openraft",
    "foyer",
    "hyper",
    "h2",
    "rustls",
    "reqwest",
    "tower",
    "opentelemetry",
];

/// The filter used when `STRATA_LOG` is unset or invalid: `default_level` for Strata,
/// never more than WARN for [`QUIET_LIBRARIES`].
pub fn default_filter(default_level: &str) -> String {
    let mut filter = default_level.to_string();
    for lib in QUIET_LIBRARIES {
        filter.push_str(&format!(",{lib}=warn"));
    }
    filter
}

/// Installs the global subscriber. `default_level` applies when `STRATA_LOG` is unset
/// or invalid; `spans` receives Strata's spans at info and above.
pub fn init(default_level: &str, spans: Option<&SdkTracerProvider>) {
    let filter = EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter(default_level)));
    let format = std::env::var(LOG_FORMAT_VAR).unwrap_or_default();
    let json = format.eq_ignore_ascii_case("json");
    let lines = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let otel = spans.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("strata"))
            .with_filter(Targets::new().with_target("strata", tracing::Level::INFO))
    });
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(otel)
        .init();
    if !json && !format.is_empty() && !format.eq_ignore_ascii_case("text") {
        tracing::warn!(value = %format, "{LOG_FORMAT_VAR} must be text or json; using text");
    }
}
