//! Hooks for the Iceberg table series (`src/rlm/tables.rs` calls them).
//!
//! | Hook | Prometheus series | Labels |
//! | --- | --- | --- |
//! | [`committed`] | `strata_table_rows_total`, `strata_table_bytes_total`, `strata_table_commits_total` (counters) | topic, partition |
//! | [`committed`] | `strata_table_value_errors_total` (counter: rows whose value did not project, json format) | topic, partition |
//! | [`errors`] | `strata_table_errors_total` (counter) | topic, partition |
//! | [`lag`] | `strata_table_lag_offsets` (gauge) | topic, partition |
//! | [`expired`] | `strata_table_expired_files_total`, `strata_table_expired_rows_total` (counters: data files and rows removed by `iceberg.retention.ms`) | topic |
//! | [`orphans_deleted`] | `strata_table_orphans_deleted_total` (counter: files no snapshot named, deleted by the sweeper) | topic |
//!
//! Lag is the offsets of the partition's remote segments not yet in the table (remote end
//! offset minus the table's committed offset), set after each table pass: the table lags
//! the log by the segments being written plus this.

use opentelemetry::metrics::{Counter, Gauge, Meter};
use opentelemetry::KeyValue;

use super::instruments;

pub(super) struct Instruments {
    rows: Counter<u64>,
    bytes: Counter<u64>,
    commits: Counter<u64>,
    value_errors: Counter<u64>,
    errors: Counter<u64>,
    lag: Gauge<i64>,
    expired_files: Counter<u64>,
    expired_rows: Counter<u64>,
    orphans: Counter<u64>,
}

impl Instruments {
    pub(super) fn new(meter: &Meter) -> Self {
        Instruments {
            rows: meter
                .u64_counter("strata.table.rows")
                .with_description("Records written into Iceberg tables")
                .build(),
            bytes: meter
                .u64_counter("strata.table")
                .with_unit("By")
                .with_description("Parquet bytes written into Iceberg tables")
                .build(),
            commits: meter
                .u64_counter("strata.table.commits")
                .with_description("Iceberg snapshots committed (one per remote segment)")
                .build(),
            value_errors: meter
                .u64_counter("strata.table.value_errors")
                .with_description(
                    "Rows whose value was not a JSON object of the schema's types (kept in _error)",
                )
                .build(),
            errors: meter
                .u64_counter("strata.table.errors")
                .with_description("Failed attempts to write a segment into its Iceberg table")
                .build(),
            lag: meter
                .i64_gauge("strata.table.lag.offsets")
                .with_description("Offsets in the remote tier not yet in the Iceberg table")
                .build(),
            expired_files: meter
                .u64_counter("strata.table.expired_files")
                .with_description("Data files removed from Iceberg tables by iceberg.retention.ms")
                .build(),
            expired_rows: meter
                .u64_counter("strata.table.expired_rows")
                .with_description("Rows removed from Iceberg tables by iceberg.retention.ms")
                .build(),
            orphans: meter
                .u64_counter("strata.table.orphans_deleted")
                .with_description("Files under a table's prefix that no snapshot named, deleted")
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

/// Counts one snapshot of `rows` records in `bytes` of Parquet, `value_errors` of them
/// with a value that did not project.
pub fn committed(topic: &str, partition: i32, rows: u64, bytes: u64, value_errors: u64) {
    let m = &instruments().table;
    let labels = tp(topic, partition);
    m.rows.add(rows, &labels);
    if value_errors > 0 {
        m.value_errors.add(value_errors, &labels);
    }
    m.bytes.add(bytes, &labels);
    m.commits.add(1, &labels);
}

/// Counts one failed attempt.
pub fn errors(topic: &str, partition: i32) {
    instruments().table.errors.add(1, &tp(topic, partition));
}

/// Sets the partition's table lag in offsets.
pub fn lag(topic: &str, partition: i32, offsets: i64) {
    instruments()
        .table
        .lag
        .record(offsets.max(0), &tp(topic, partition));
}

/// Counts data files and rows a retention run removed from `topic`'s table.
pub fn expired(topic: &str, files: u64, rows: u64) {
    let m = &instruments().table;
    let labels = [KeyValue::new("topic", topic.to_string())];
    m.expired_files.add(files, &labels);
    m.expired_rows.add(rows, &labels);
}

/// Counts orphan files the sweeper deleted from `topic`'s table prefix.
pub fn orphans_deleted(topic: &str, files: u64) {
    instruments()
        .table
        .orphans
        .add(files, &[KeyValue::new("topic", topic.to_string())]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Prometheus names in the module docs are what the exporter produces.
    #[test]
    fn table_series_have_the_documented_prometheus_names() {
        let record = |m: &Instruments| {
            m.rows.add(3, &tp("t", 0));
            m.bytes.add(7, &tp("t", 0));
            m.commits.add(1, &tp("t", 0));
            m.errors.add(1, &tp("t", 0));
            m.value_errors.add(2, &tp("t", 0));
            m.lag.record(5, &tp("t", 0));
        };
        crate::metrics::testing::assert_exposed(
            Instruments::new,
            record,
            &[
                r#"strata_table_rows_total{partition="0",topic="t"} 3"#,
                r#"strata_table_bytes_total{partition="0",topic="t"} 7"#,
                r#"strata_table_commits_total{partition="0",topic="t"} 1"#,
                r#"strata_table_errors_total{partition="0",topic="t"} 1"#,
                r#"strata_table_value_errors_total{partition="0",topic="t"} 2"#,
                r#"strata_table_lag_offsets{partition="0",topic="t"} 5"#,
            ],
        );
    }
}
