//! Delivery latencies of a producer, shared by the load examples (each includes this file
//! with `#[path]`; it is not an example of its own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

/// Collects delivery reports. The opaque of each record is its send time in
/// nanoseconds since `start` ([`Reports::now_ns`]), so no per-record allocation is needed.
pub struct Reports {
    start: Instant,
    latencies_us: Mutex<Vec<u32>>,
    failed: AtomicU64,
}

impl Reports {
    pub fn new(capacity: usize) -> Self {
        Reports {
            start: Instant::now(),
            latencies_us: Mutex::new(Vec::with_capacity(capacity)),
            failed: AtomicU64::new(0),
        }
    }

    /// The opaque to send a record with now.
    pub fn now_ns(&self) -> usize {
        self.start.elapsed().as_nanos() as usize
    }

    /// The latencies delivered since the last call, sorted (µs), and how many failed.
    pub fn take(&self) -> (Vec<u32>, u64) {
        let mut lat =
            std::mem::take(&mut *self.latencies_us.lock().unwrap_or_else(|e| e.into_inner()));
        lat.sort_unstable();
        (lat, self.failed.swap(0, Ordering::Relaxed))
    }
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let us = (self.now_ns() as u64).saturating_sub(sent_ns as u64) / 1000;
        let mut l = self.latencies_us.lock().unwrap_or_else(|e| e.into_inner());
        l.push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

/// The `p` quantile (0..=1) of sorted latencies in µs, in ms.
/// "N records, latency ms p50 .. p99 .. max ..", for one phase of a load example.
#[allow(dead_code)] // not every example that includes this file prints phases
pub fn phase_summary(lat: &[u32]) -> String {
    format!(
        "{} records, latency ms p50 {:.2} p99 {:.2} max {:.2}",
        lat.len(),
        pct(lat, 0.5),
        pct(lat, 0.99),
        pct(lat, 1.0)
    )
}

/// "0.93x, 1.02x, ..." for the per-round ratios of an A/B latency example.
#[allow(dead_code)] // not every example that includes this file compares rounds
pub fn ratios(values: &[f64]) -> String {
    values
        .iter()
        .map(|r| format!("{r:.2}x"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn pct(lat: &[u32], p: f64) -> f64 {
    lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
        .map_or(0.0, |&us| f64::from(us) / 1000.0)
}
