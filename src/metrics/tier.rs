//! Hooks for the remote tier's series. The tier code calls these; nothing here knows
//! how segments are uploaded or fetched.
//!
//! | Hook | Prometheus series | Labels |
//! | --- | --- | --- |
//! | [`upload_lag`] | `strata_tier_upload_lag_bytes` (gauge) | topic, partition |
//! | [`uploaded`] | `strata_tier_upload_bytes_total`, `strata_tier_upload_segments_total` (counters) | topic, partition |
//! | [`upload_errors`] | `strata_tier_upload_errors_total` (counter) | topic, partition |
//! | [`remote_fetch`] | `strata_tier_remote_fetch_duration_seconds` (histogram) | topic |
//! | [`remote_read_rejected`] | `strata_tier_remote_read_rejected_total` (counter) | topic |
//! | [`cache_lookup`] | `strata_tier_cache_hits_total`, `strata_tier_cache_misses_total` (counters) | topic, partition |
//! | [`compaction_pass`] | `strata_tier_compaction_passes_total`, `strata_tier_compaction_read_bytes_total`, `strata_tier_compaction_upload_bytes_total`, `strata_tier_compaction_removed_bytes_total` (counters) | topic, partition |
//! | [`compaction_errors`] | `strata_tier_compaction_errors_total` (counter) | topic, partition |
//! | [`store_request`] | `strata_tier_store_requests_total`, `strata_tier_store_bytes_total` (counters) | topic, request |
//!
//! Upload lag is the bytes of local segments eligible for upload (rolled, below the
//! high watermark) that are not in the remote tier yet; set it after each upload
//! pass. Store requests are what the object store bills: `request` is `put`, `get`,
//! `head`, `list`, `delete`, `copy`, `multipart_create`, `multipart_part`,
//! `multipart_complete` or `multipart_abort` (strata-tier's `CountingStore`); bytes are
//! those sent by PUTs and parts and received by GETs. A cache lookup is one remote read: a hit when every chunk it needed was
//! cached, a miss when any came from the object store. The cache hit rate is
//! `hits / (hits + misses)` in PromQL.

use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use opentelemetry::KeyValue;

use super::instruments;

/// Seconds: an object store GET takes from a few milliseconds to many seconds.
const REMOTE_FETCH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub(super) struct Instruments {
    upload_lag: Gauge<i64>,
    upload_bytes: Counter<u64>,
    upload_segments: Counter<u64>,
    upload_errors: Counter<u64>,
    remote_fetch: Histogram<f64>,
    remote_read_rejected: Counter<u64>,
    cache_hits: Counter<u64>,
    cache_misses: Counter<u64>,
    compaction_passes: Counter<u64>,
    compaction_read: Counter<u64>,
    compaction_upload: Counter<u64>,
    compaction_removed: Counter<u64>,
    compaction_errors: Counter<u64>,
    store_requests: Counter<u64>,
    store_bytes: Counter<u64>,
}

impl Instruments {
    pub(super) fn new(meter: &Meter) -> Self {
        Instruments {
            upload_lag: meter
                .i64_gauge("strata.tier.upload.lag")
                .with_unit("By")
                .with_description(
                    "Bytes of rolled local segments not yet uploaded to the remote tier",
                )
                .build(),
            upload_bytes: meter
                .u64_counter("strata.tier.upload")
                .with_unit("By")
                .with_description("Segment bytes uploaded to the remote tier")
                .build(),
            upload_segments: meter
                .u64_counter("strata.tier.upload.segments")
                .with_description("Segments uploaded to the remote tier")
                .build(),
            upload_errors: meter
                .u64_counter("strata.tier.upload.errors")
                .with_description("Failed segment uploads to the remote tier")
                .build(),
            remote_fetch: meter
                .f64_histogram("strata.tier.remote_fetch.duration")
                .with_unit("s")
                .with_description("Latency of reads served from the remote tier")
                .with_boundaries(REMOTE_FETCH_BUCKETS.to_vec())
                .build(),
            remote_read_rejected: meter
                .u64_counter("strata.tier.remote_read.rejected")
                .with_description(
                    "Remote reads answered with no records because the remote read pool was full",
                )
                .build(),
            cache_hits: meter
                .u64_counter("strata.tier.cache.hits")
                .with_description("Remote-tier reads served entirely from the chunk cache")
                .build(),
            cache_misses: meter
                .u64_counter("strata.tier.cache.misses")
                .with_description("Remote-tier reads that needed a chunk from the object store")
                .build(),
            compaction_passes: meter
                .u64_counter("strata.tier.compaction.passes")
                .with_description("Remote compaction passes published")
                .build(),
            compaction_read: meter
                .u64_counter("strata.tier.compaction.read")
                .with_unit("By")
                .with_description("Remote segment bytes read by published remote compaction passes")
                .build(),
            compaction_upload: meter
                .u64_counter("strata.tier.compaction.upload")
                .with_unit("By")
                .with_description(
                    "Bytes of cleaned segments (and indexes) uploaded by remote compaction",
                )
                .build(),
            compaction_removed: meter
                .u64_counter("strata.tier.compaction.removed")
                .with_unit("By")
                .with_description(
                    "Remote segment bytes remote compaction removed (before minus after)",
                )
                .build(),
            compaction_errors: meter
                .u64_counter("strata.tier.compaction.errors")
                .with_description("Failed remote compaction passes")
                .build(),
            store_requests: meter
                .u64_counter("strata.tier.store.requests")
                .with_description("Object store requests, by topic and kind (what the store bills)")
                .build(),
            store_bytes: meter
                .u64_counter("strata.tier.store")
                .with_unit("By")
                .with_description(
                    "Bytes sent to (PUT, parts) and received from (GET) the object store, by topic and kind",
                )
                .build(),
        }
    }
}

fn tp(topic: &str, partition: i32) -> [KeyValue; 2] {
    [
        KeyValue::new("topic", topic.to_string()),
        KeyValue::new("partition", i64::from(partition)),
    ]
}

/// Sets the upload lag of a partition, in bytes (0 when caught up).
pub fn upload_lag(topic: &str, partition: i32, bytes: u64) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    instruments()
        .tier
        .upload_lag
        .record(bytes, &tp(topic, partition));
}

/// Counts `bytes` of one segment (and its indexes) uploaded for a partition.
pub fn uploaded(topic: &str, partition: i32, bytes: u64) {
    let m = &instruments().tier;
    let labels = tp(topic, partition);
    m.upload_bytes.add(bytes, &labels);
    m.upload_segments.add(1, &labels);
}

/// Counts `count` failed upload attempts for a partition.
pub fn upload_errors(topic: &str, partition: i32, count: u64) {
    instruments()
        .tier
        .upload_errors
        .add(count, &tp(topic, partition));
}

/// Records one read served from the remote tier that took `elapsed`.
pub fn remote_fetch(topic: &str, elapsed: Duration) {
    instruments().tier.remote_fetch.record(
        elapsed.as_secs_f64(),
        &[KeyValue::new("topic", topic.to_string())],
    );
}

/// Counts one remote read refused because the remote read pool was full.
pub fn remote_read_rejected(topic: &str) {
    instruments()
        .tier
        .remote_read_rejected
        .add(1, &[KeyValue::new("topic", topic.to_string())]);
}

/// Records one remote-tier read of a partition: `hit` when the local cache served it.
pub fn cache_lookup(topic: &str, partition: i32, hit: bool) {
    let m = &instruments().tier;
    let counter = if hit { &m.cache_hits } else { &m.cache_misses };
    counter.add(1, &tp(topic, partition));
}

/// Counts one published remote compaction pass of a partition: bytes it read, uploaded,
/// and removed from the remote tier.
pub fn compaction_pass(topic: &str, partition: i32, read: u64, uploaded: u64, removed: u64) {
    let m = &instruments().tier;
    let labels = tp(topic, partition);
    m.compaction_passes.add(1, &labels);
    m.compaction_read.add(read, &labels);
    m.compaction_upload.add(uploaded, &labels);
    m.compaction_removed.add(removed, &labels);
}

/// Counts one failed remote compaction pass of a partition.
pub fn compaction_errors(topic: &str, partition: i32) {
    instruments()
        .tier
        .compaction_errors
        .add(1, &tp(topic, partition));
}

/// Counts `requests` object store requests of kind `request` on `topic` and the `bytes`
/// they carried (requests is 0 for the bytes of a GET body as it streams in).
pub fn store_request(topic: &str, request: &'static str, requests: u64, bytes: u64) {
    let m = &instruments().tier;
    let labels = [
        KeyValue::new("topic", topic.to_string()),
        KeyValue::new("request", request),
    ];
    if requests > 0 {
        m.store_requests.add(requests, &labels);
    }
    if bytes > 0 {
        m.store_bytes.add(bytes, &labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Prometheus names in the module docs are what the exporter produces.
    #[test]
    fn tier_series_have_the_documented_prometheus_names() {
        let record = |m: &Instruments| {
            m.upload_lag.record(5, &tp("t", 0));
            m.upload_bytes.add(7, &tp("t", 0));
            m.upload_segments.add(1, &tp("t", 0));
            m.upload_errors.add(1, &tp("t", 0));
            m.remote_fetch.record(0.2, &[KeyValue::new("topic", "t")]);
            m.cache_hits.add(1, &tp("t", 0));
            m.remote_read_rejected
                .add(1, &[KeyValue::new("topic", "t")]);
            m.cache_misses.add(1, &tp("t", 0));
            m.compaction_passes.add(1, &tp("t", 0));
            m.compaction_read.add(9, &tp("t", 0));
            m.compaction_upload.add(4, &tp("t", 0));
            m.compaction_removed.add(5, &tp("t", 0));
            m.compaction_errors.add(1, &tp("t", 0));
            let st = [KeyValue::new("topic", "t"), KeyValue::new("request", "get")];
            m.store_requests.add(2, &st);
            m.store_bytes.add(3, &st);
        };
        crate::metrics::testing::assert_exposed(
            Instruments::new,
            record,
            &[
                r#"strata_tier_upload_lag_bytes{partition="0",topic="t"} 5"#,
                r#"strata_tier_upload_bytes_total{partition="0",topic="t"} 7"#,
                r#"strata_tier_upload_segments_total{partition="0",topic="t"} 1"#,
                r#"strata_tier_upload_errors_total{partition="0",topic="t"} 1"#,
                r#"strata_tier_remote_fetch_duration_seconds_count{topic="t"} 1"#,
                r#"strata_tier_cache_hits_total{partition="0",topic="t"} 1"#,
                r#"strata_tier_remote_read_rejected_total{topic="t"} 1"#,
                r#"strata_tier_cache_misses_total{partition="0",topic="t"} 1"#,
                r#"strata_tier_compaction_passes_total{partition="0",topic="t"} 1"#,
                r#"strata_tier_compaction_read_bytes_total{partition="0",topic="t"} 9"#,
                r#"strata_tier_compaction_upload_bytes_total{partition="0",topic="t"} 4"#,
                r#"strata_tier_compaction_removed_bytes_total{partition="0",topic="t"} 5"#,
                r#"strata_tier_compaction_errors_total{partition="0",topic="t"} 1"#,
                r#"strata_tier_store_requests_total{request="get",topic="t"} 2"#,
                r#"strata_tier_store_bytes_total{request="get",topic="t"} 3"#,
            ],
        );
    }
}
