//! Hooks and gauges of the log cleaner. The cleaner calls the hooks after each pass; the
//! per-partition gauges are read at scrape time from a [`CleanerSource`].
//!
//! | Series (Prometheus) | Kind | Labels |
//! | --- | --- | --- |
//! | `strata_cleaner_read_bytes_total`, `strata_cleaner_written_bytes_total` | counters | |
//! | `strata_cleaner_passes_total`, `strata_cleaner_errors_total` | counters | |
//! | `strata_cleaner_last_pass_duration_seconds` | gauge | |
//! | `strata_cleaner_last_pass_timestamp_seconds` | gauge (Unix time) | |
//! | `strata_cleaner_uncleanable_partitions` | gauge | |
//! | `strata_cleaner_dirty_ratio` | gauge, per compacted partition | topic, partition |
//! | `strata_cleaner_uncleanable_bytes` | gauge, per compacted partition | topic, partition |
//!
//! The dirty ratio is dirty / (clean + dirty) bytes of the cleanable range, compared with
//! `min.cleanable.dirty.ratio`; uncleanable bytes are those the cleaner may not touch yet
//! (the active segment, anything above the high watermark or younger than
//! `min.compaction.lag.ms`).

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Meter};
use opentelemetry::KeyValue;
use parking_lot::Mutex;

use super::meter;

/// What the scrape-time cleaner gauges read; the log cleaner implements it.
pub trait CleanerSource: Send + Sync {
    /// Every compacted partition hosted here.
    fn partitions(&self) -> Vec<PartitionCleaning>;
    /// Partitions whose last pass failed and that wait for the backoff.
    fn uncleanable_partitions(&self) -> usize;
}

/// One compacted partition at a scrape.
pub struct PartitionCleaning {
    pub topic: Arc<str>,
    pub partition: i32,
    pub dirty_ratio: f64,
    pub uncleanable_bytes: u64,
}

struct Instruments {
    read: Counter<u64>,
    written: Counter<u64>,
    passes: Counter<u64>,
    errors: Counter<u64>,
    last_duration: Gauge<f64>,
    last_time: Gauge<f64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
static WATCHED: Mutex<Option<Weak<dyn CleanerSource>>> = Mutex::new(None);

fn instruments() -> &'static Instruments {
    INSTRUMENTS.get_or_init(|| {
        let m = meter();
        Instruments {
            read: m
                .u64_counter("strata.cleaner.read")
                .with_unit("By")
                .with_description("Log bytes the cleaner read (mapping and rewriting)")
                .build(),
            written: m
                .u64_counter("strata.cleaner.written")
                .with_unit("By")
                .with_description("Cleaned segment bytes the cleaner wrote")
                .build(),
            passes: m
                .u64_counter("strata.cleaner.passes")
                .with_description("Cleaning passes committed")
                .build(),
            errors: m
                .u64_counter("strata.cleaner.errors")
                .with_description(
                    "Cleaning passes that failed (the partition waits for log.cleaner.backoff.ms)",
                )
                .build(),
            last_duration: m
                .f64_gauge("strata.cleaner.last_pass.duration")
                .with_unit("s")
                .with_description("How long the last committed pass took")
                .build(),
            last_time: m
                .f64_gauge("strata.cleaner.last_pass.timestamp")
                .with_unit("s")
                .with_description("When the last committed pass ended (Unix time)")
                .build(),
        }
    })
}

/// Creates the cleaner instruments and its scrape-time gauges over `source`.
pub fn watch(source: Arc<dyn CleanerSource>) {
    let first = WATCHED.lock().replace(Arc::downgrade(&source)).is_none();
    instruments();
    if first {
        register_gauges(&meter());
    }
}

fn watched() -> Option<Arc<dyn CleanerSource>> {
    WATCHED.lock().as_ref().and_then(Weak::upgrade)
}

fn register_gauges(meter: &Meter) {
    let labels = |p: &PartitionCleaning| {
        [
            KeyValue::new("topic", Arc::clone(&p.topic)),
            KeyValue::new("partition", i64::from(p.partition)),
        ]
    };
    let _ = meter
        .f64_observable_gauge("strata.cleaner.dirty_ratio")
        .with_description("Dirty bytes over clean plus dirty bytes of a compacted partition")
        .with_callback(move |obs| {
            for p in watched().map(|s| s.partitions()).unwrap_or_default() {
                obs.observe(p.dirty_ratio, &labels(&p));
            }
        })
        .build();
    let _ = meter
        .i64_observable_gauge("strata.cleaner.uncleanable")
        .with_unit("By")
        .with_description("Bytes of a compacted partition the cleaner may not clean yet")
        .with_callback(move |obs| {
            for p in watched().map(|s| s.partitions()).unwrap_or_default() {
                obs.observe(p.uncleanable_bytes as i64, &labels(&p));
            }
        })
        .build();
    let _ = meter
        .i64_observable_gauge("strata.cleaner.uncleanable_partitions")
        .with_description(
            "Compacted partitions whose last pass failed, waiting for log.cleaner.backoff.ms",
        )
        .with_callback(|obs| {
            if let Some(s) = watched() {
                obs.observe(s.uncleanable_partitions() as i64, &[]);
            }
        })
        .build();
}

/// Records a committed pass.
pub fn pass(bytes_read: u64, bytes_written: u64, took: Duration) {
    let m = instruments();
    m.read.add(bytes_read, &[]);
    m.written.add(bytes_written, &[]);
    m.passes.add(1, &[]);
    m.last_duration.record(took.as_secs_f64(), &[]);
    m.last_time.record(crate::now_ms() as f64 / 1000.0, &[]);
}

/// Records a failed pass.
pub fn error() {
    instruments().errors.add(1, &[]);
}
