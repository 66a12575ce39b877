//! For the tests that check the Prometheus names the module docs promise: instruments made
//! on a private exporter, recorded, and the exposition text checked for each series.

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

/// Makes instruments with `make` on a fresh exporter, lets `record` use them, and asserts
/// that every line of `series` is in the exposition text.
pub(crate) fn assert_exposed<I>(
    make: impl FnOnce(&Meter) -> I,
    record: impl FnOnce(&I),
    series: &[&str],
) {
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .scope_info_enabled(false)
        .build()
        .unwrap();
    let provider = SdkMeterProvider::builder().with_reader(exporter).build();
    let instruments = make(&provider.meter("test"));
    record(&instruments);
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    for s in series {
        assert!(text.contains(s), "{s} missing from:\n{text}");
    }
}
