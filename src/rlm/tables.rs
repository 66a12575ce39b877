//! Iceberg tables of topics with `iceberg.enable=true` (strata-iceberg), kept in step with
//! the remote tier by the RemoteLogManager.
//!
//! Each tick, for every such topic with a partition this node leads whose remote end is past
//! what the table holds, one pass runs on its own task (one pass per topic at a time): it
//! loads the table, asks `strata_iceberg::plan` which remote segments of each led partition
//! are not in it yet, reads each one's `.log` object back from the remote tier (through the
//! decrypting store), and commits it as one snapshot. The table is written from the tiered
//! copy, not at upload time, so one mechanism covers the segment just uploaded, a retry
//! after a failure or a crash, a new leader taking over, and the backfill of a topic whose
//! history was tiered before the setting was turned on. A failure never touches uploads: it
//! is logged, counted (`strata_table_errors_total`), shown in `tier status` as the
//! partition's last tier error, and retried with backoff (1 s doubling to 60 s).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_config::{IcebergCatalog, RemoteStorageConfig};
use strata_iceberg::{
    plan, AbortedTxn, CatalogChoice, GlueSettings, Outcome, Span, Table, TableWriter, ValueField,
};
use strata_tier::copier::Throttle;
use strata_tier::layout::SegmentFile;
use strata_tier::object_store::ObjectStoreExt;

use super::{Leaders, RemoteLogManager};
use crate::now_ms;
use crate::replica::Partition;

/// Segments one pass writes per partition at most (the next pass goes on).
const STEPS_PER_PASS: usize = 16;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// One topic's table state on this node.
#[derive(Default)]
pub(super) struct TopicTable {
    /// The topic id the state is of: a topic deleted and created again under the same name
    /// starts afresh, even when a pass of the old one ends after the deletion forgot it.
    topic_id: Option<String>,
    running: bool,
    /// Next committed offset per partition, as the last pass saw the table.
    pub(super) committed: HashMap<i32, i64>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Retention and the orphan sweep (`table_maintain.rs`).
    pub(super) maintaining: bool,
    /// With `iceberg.enable` off: the catalog had no table when last asked, so there is
    /// nothing to maintain (reset when the setting is seen on).
    pub(super) absent: bool,
    pub(super) maintained_at: Option<Instant>,
}

/// The table writer and what this node knows of each topic's table.
pub(super) struct Tables {
    pub(super) writer: TableWriter,
    pub(super) topics: Mutex<HashMap<String, TopicTable>>,
    /// `iceberg.write.max.bytes.per.second`, over the segment bytes read for tables.
    throttle: Throttle,
    pub(super) orphan_grace_ms: i64,
    pub(super) maintenance_every: Duration,
}

impl Tables {
    /// Tables in `store` (the bucket below client-side encryption) at `cfg.url`.
    pub(super) fn new(
        cfg: &RemoteStorageConfig,
        store: Arc<dyn strata_tier::object_store::ObjectStore>,
    ) -> Option<Tables> {
        let choice = match &cfg.iceberg_catalog {
            IcebergCatalog::Bucket => CatalogChoice::Bucket,
            IcebergCatalog::Glue {
                endpoint,
                region,
                database,
            } => CatalogChoice::Glue(GlueSettings {
                endpoint: endpoint.clone(),
                region: region.clone(),
                database: database.clone(),
            }),
        };
        match strata_iceberg::writer_with(&cfg.url, store, choice) {
            Ok(writer) => Some(Tables {
                writer,
                topics: Mutex::new(HashMap::new()),
                throttle: Throttle::from_setting(cfg.iceberg_write_max_bytes_per_second),
                orphan_grace_ms: cfg.iceberg_orphan_grace_ms.max(0),
                maintenance_every: Duration::from_millis(
                    cfg.iceberg_maintenance_interval_ms.max(100) as u64,
                ),
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the Iceberg table writer; iceberg.enable topics get no table");
                None
            }
        }
    }
}

/// Whether `p`'s remote tier holds offsets the table does not (as far as `committed` says).
fn behind(p: &Partition, committed: &HashMap<i32, i64>) -> bool {
    let end = p.remote_manifest().and_then(|m| m.end_offset());
    match (end, committed.get(&p.tp.partition)) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(end), Some(&c)) => end > c,
    }
}

impl RemoteLogManager {
    /// Starts a table pass for each `iceberg.enable` topic that is behind (see the module docs).
    pub(super) fn write_tables(self: &Arc<Self>, leaders: &Leaders) {
        let Some(tables) = &self.tables else { return };
        type Parts = (Vec<Arc<Partition>>, Vec<ValueField>);
        let mut by_topic: HashMap<String, Parts> = HashMap::new();
        for (p, topic) in leaders.values() {
            if topic.config.iceberg_enable {
                let e = by_topic
                    .entry(p.tp.topic.to_string())
                    .or_insert_with(|| (Vec::new(), topic.config.iceberg_value_fields.clone()));
                e.0.push(p.clone());
            }
        }
        self.maintain_tables(leaders);
        let now = Instant::now();
        let mut topics = tables.topics.lock();
        for (topic, (mut parts, fields)) in by_topic {
            let id = parts.first().map(|p| p.topic_id.to_string());
            let state = topics.entry(topic.clone()).or_default();
            if state.topic_id.is_some() && state.topic_id != id {
                *state = TopicTable::default();
            }
            state.topic_id = id;
            let due = state.retry_at.is_none_or(|t| now >= t);
            if state.running || !due || !parts.iter().any(|p| behind(p, &state.committed)) {
                continue;
            }
            state.running = true;
            parts.sort_by_key(|p| p.tp.partition);
            let rlm = self.clone();
            tokio::spawn(async move { rlm.table_pass(topic, parts, fields).await });
        }
    }

    async fn table_pass(
        self: Arc<Self>,
        topic: String,
        parts: Vec<Arc<Partition>>,
        fields: Vec<ValueField>,
    ) {
        let Some(tables) = &self.tables else { return };
        let mut failed = None;
        let mut committed = HashMap::new();
        let topic_id = parts.first().map(|p| p.topic_id.to_string());
        match tables.writer.open_for(&topic, topic_id.as_deref()).await {
            Err(e) => failed = Some((parts.first().cloned(), e.to_string())),
            Ok(mut table) => {
                for p in &parts {
                    match self
                        .write_partition(tables, &topic, table.clone(), p, &fields)
                        .await
                    {
                        Ok((t, next)) => {
                            table = t;
                            if let Some(next) = next {
                                committed.insert(p.tp.partition, next);
                            }
                        }
                        Err(e) => {
                            failed = Some((Some(p.clone()), e));
                            break;
                        }
                    }
                }
            }
        }
        let mut topics = tables.topics.lock();
        let state = topics.entry(topic.clone()).or_default();
        if state.topic_id.is_some() && state.topic_id != topic_id {
            return; // the topic was deleted and created again: its state is the new one's
        }
        state.topic_id = topic_id;
        state.running = false;
        state.committed.extend(committed);
        match failed {
            None => {
                state.failures = 0;
                state.retry_at = None;
            }
            Some((p, error)) => {
                state.failures = state.failures.saturating_add(1);
                let backoff = BACKOFF_MIN
                    .saturating_mul(1 << state.failures.min(6).saturating_sub(1))
                    .min(BACKOFF_MAX);
                state.retry_at = Some(Instant::now() + backoff);
                let partition = p.as_ref().map_or(-1, |p| p.tp.partition);
                tracing::warn!(%topic, partition, %error, retry_in = ?backoff, "Iceberg table write failed; segment uploads go on, the table is retried");
                crate::metrics::table::errors(&topic, partition);
                if let Some(p) = p {
                    *p.last_tier_error.lock() = Some((format!("iceberg table: {error}"), now_ms()));
                }
            }
        }
    }

    /// Writes `p`'s remote segments that the table lacks; returns the table and the
    /// partition's committed offset after the pass (`None`: nothing committed yet).
    async fn write_partition(
        &self,
        tables: &Tables,
        topic: &str,
        mut table: Table,
        p: &Partition,
        fields: &[ValueField],
    ) -> Result<(Table, Option<i64>), String> {
        let partition = p.tp.partition;
        let Some(manifest) = p.remote_manifest() else {
            return Ok((table, None));
        };
        let spans: Vec<Span> = manifest
            .segments
            .iter()
            .map(|s| Span {
                base_offset: s.base_offset,
                next_offset: s.next_offset,
            })
            .collect();
        let key = p.tier_key();
        let mut written = 0;
        while written < STEPS_PER_PASS {
            let committed = TableWriter::committed(topic, &table).map_err(|e| e.to_string())?;
            let steps = plan(committed.next(partition), &spans, STEPS_PER_PASS - written);
            let Some(first) = steps.first() else {
                let end = manifest.end_offset().unwrap_or(0);
                let done = committed.next(partition);
                crate::metrics::table::lag(topic, partition, end - done.unwrap_or(end));
                return Ok((table, done));
            };
            // Every transaction in the segment must be decided before it is written: a
            // segment is tiered once below the high watermark, which may be above the
            // last stable offset. The table shows what read_committed shows.
            if first.next_offset > p.last_stable_offset() {
                let done = committed.next(partition);
                return Ok((table, done));
            }
            let seg = manifest
                .segments
                .iter()
                .find(|s| s.base_offset == first.base_offset)
                .ok_or_else(|| format!("segment {} left the manifest", first.base_offset))?;
            // The rate limit counts the segment's bytes before they are read: a backfill
            // of a long history reads at most iceberg.write.max.bytes.per.second.
            tables.throttle.take(seg.size_bytes as usize).await;
            let aborted = self
                .aborted(p, &manifest, first.from, first.next_offset)
                .await?;
            let object = key.segment(seg.base_offset, seg.id, SegmentFile::Log);
            let bytes = self
                .store
                .get(&object)
                .await
                .map_err(|e| format!("cannot read remote segment {object}: {e}"))?
                .bytes()
                .await
                .map_err(|e| format!("cannot read remote segment {object}: {e}"))?;
            let (t, outcome) = tables
                .writer
                .write_step(topic, table, partition, *first, &bytes, &aborted, fields)
                .await
                .map_err(|e| e.to_string())?;
            table = t;
            written += 1;
            match outcome {
                Outcome::Committed {
                    rows,
                    files,
                    bytes,
                    value_errors,
                } => {
                    tracing::debug!(%topic, partition, from = first.from, next = first.next_offset, rows, files, bytes, value_errors, "segment committed to the Iceberg table");
                    crate::metrics::table::committed(topic, partition, rows, bytes, value_errors);
                }
                Outcome::AlreadyCommitted | Outcome::Replan => {}
            }
        }
        let committed = TableWriter::committed(topic, &table).map_err(|e| e.to_string())?;
        Ok((table, committed.next(partition)))
    }

    /// The aborted transactions overlapping `[from, upper)` of `p` (Kafka's
    /// `collectAbortedTransactions`): from the `.txnindex` objects of the remote segments
    /// at and after `from` (an ABORT marker may be in a later segment than the records it
    /// aborts), then the local log's index for markers not tiered yet.
    async fn aborted(
        &self,
        p: &Partition,
        manifest: &strata_tier::PartitionManifest,
        from: i64,
        upper: i64,
    ) -> Result<Vec<AbortedTxn>, String> {
        let mut entries = Vec::new();
        let mut done = false;
        for seg in manifest
            .segments
            .iter()
            .filter(|s| s.next_offset > from && s.txnindex_bytes > 0)
        {
            let object = p
                .tier_key()
                .segment(seg.base_offset, seg.id, SegmentFile::TxnIndex);
            let bytes = async { self.store.get(&object).await?.bytes().await }
                .await
                .map_err(|e| format!("cannot read remote transaction index {object}: {e}"))?;
            let all = strata_log::txn_index::decode_all(&bytes)
                .map_err(|e| format!("remote transaction index {object}: {e}"))?;
            if strata_log::txn_index::collect(&all, from, upper, &mut entries) {
                done = true;
                break;
            }
        }
        if !done {
            entries.extend(p.aborted_txns(from, upper));
        }
        Ok(entries
            .into_iter()
            .map(|e| AbortedTxn {
                first_offset: e.first_offset,
                producer_id: e.producer_id,
            })
            .collect())
    }
}
