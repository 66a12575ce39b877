//! Retention and the orphan sweep of topic tables (`strata_iceberg::maintain`), run from
//! the RemoteLogManager's tick every `iceberg.maintenance.interval.ms` by the leader of each
//! tiered topic's partition 0, so one node maintains a table whichever nodes write its
//! partitions. A table outlives `iceberg.enable=false`: writes stop, the table stays
//! readable, and its retention and orphan sweep go on; deleting the topic deletes the table
//! unless `iceberg.delete=false` ([`RemoteLogManager::table_topic_deleted`]). A failure is logged and retried at the next interval; it never
//! touches uploads or table writes.

use std::sync::Arc;
use std::time::Instant;

use super::{Leaders, RemoteLogManager};
use crate::now_ms;
use crate::protocol::tier_state::TableState;
use crate::replica::Partition;

impl RemoteLogManager {
    /// How far `p` is in its topic's table (`None`: not an `iceberg.enable` topic).
    pub(super) fn table_state(
        &self,
        p: &Partition,
        m: Option<&strata_tier::PartitionManifest>,
    ) -> Option<TableState> {
        let tables = self.tables.as_ref()?;
        let on = self
            .metadata
            .topic(&p.tp.topic)
            .is_some_and(|t| t.config.iceberg_enable);
        if !on {
            return None;
        }
        let committed = tables
            .topics
            .lock()
            .get(&*p.tp.topic)
            .and_then(|t| t.committed.get(&p.tp.partition).copied());
        let pending: Vec<_> = m
            .map(|m| m.segments.iter())
            .into_iter()
            .flatten()
            .filter(|s| committed.is_none_or(|c| s.next_offset > c))
            .collect();
        Some(TableState {
            committed,
            pending_segments: pending.len(),
            pending_bytes: pending.iter().map(|s| s.size_bytes).sum(),
        })
    }

    /// Starts the maintenance of each due table whose partition 0 this node leads.
    pub(super) fn maintain_tables(self: &Arc<Self>, leaders: &Leaders) {
        let Some(tables) = &self.tables else { return };
        let now = Instant::now();
        let mut topics = tables.topics.lock();
        for (p, topic) in leaders.values() {
            if p.tp.partition != 0 || topic.meta.internal {
                continue;
            }
            let name = p.tp.topic.to_string();
            let state = topics.entry(name.clone()).or_default();
            // A table outlives `iceberg.enable=false`: it stays readable and is still
            // maintained. A tiered topic that never had one is asked once per process.
            if topic.config.iceberg_enable {
                state.absent = false;
            } else if state.absent {
                continue;
            }
            let due = state
                .maintained_at
                .is_none_or(|t| now.duration_since(t) >= tables.maintenance_every);
            if state.maintaining || !due {
                continue;
            }
            state.maintaining = true;
            state.maintained_at = Some(now);
            // -2: the topic's own retention; -1 (either): keep everything.
            let retention_ms = match topic.config.iceberg_retention_ms {
                -2 => topic.config.retention_ms,
                r => r,
            };
            let rlm = self.clone();
            let enabled = topic.config.iceberg_enable;
            tokio::spawn(async move { rlm.maintain_table(name, retention_ms, enabled).await });
        }
    }

    async fn maintain_table(self: Arc<Self>, topic: String, retention_ms: i64, enabled: bool) {
        let Some(tables) = &self.tables else { return };
        if !enabled && !self.table_exists(tables, &topic).await {
            if let Some(s) = tables.topics.lock().get_mut(&topic) {
                s.maintaining = false;
            }
            return;
        }
        if retention_ms >= 0 {
            match tables.writer.expire(&topic, retention_ms, now_ms()).await {
                Ok(e) if e.data_files > 0 || e.snapshots > 0 => {
                    tracing::info!(%topic, files = e.data_files, rows = e.rows, snapshots = e.snapshots, retention_ms, "Iceberg table retention removed data files and expired snapshots");
                    crate::metrics::table::expired(&topic, e.data_files as u64, e.rows);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%topic, error = %e, "Iceberg table retention failed; retried at the next interval")
                }
            }
        }
        match tables
            .writer
            .sweep_orphans(&topic, tables.orphan_grace_ms, now_ms())
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(%topic, files = n, "deleted orphan files of the Iceberg table");
                crate::metrics::table::orphans_deleted(&topic, n);
            }
            Err(e) => {
                tracing::warn!(%topic, error = %e, "Iceberg orphan sweep failed; retried at the next interval")
            }
        }
        if let Some(s) = tables.topics.lock().get_mut(&topic) {
            s.maintaining = false;
        }
    }

    /// Whether `topic` has a table. A failed lookup is logged and counts as no for this
    /// interval only (asked again at the next).
    async fn table_exists(&self, tables: &super::tables::Tables, topic: &str) -> bool {
        let ident = strata_iceberg::TableWriter::ident(topic);
        match tables.writer.catalog().load_table_opt(&ident).await {
            Ok(Some(_)) => true,
            Ok(None) => {
                if let Some(s) = tables.topics.lock().get_mut(topic) {
                    s.absent = true;
                }
                false
            }
            Err(e) => {
                tracing::warn!(%topic, error = %e, "cannot look up the Iceberg table of a topic with iceberg.enable=false; asked again at the next maintenance interval");
                false
            }
        }
    }

    /// `topic` was deleted: forgets what this node knew of its table (a new topic of the
    /// same name starts from what the catalog says), and with `delete` (`iceberg.delete`,
    /// on a replica of partition 0) deletes the table in the background; a failure is
    /// logged, and the files are left for deletion by hand.
    pub fn table_topic_deleted(self: &Arc<Self>, topic: &str, delete: bool) {
        let Some(tables) = &self.tables else { return };
        tables.topics.lock().remove(topic);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !delete {
            return;
        }
        let writer = tables.writer.clone();
        let topic = topic.to_string();
        rt.spawn(async move {
            match writer.delete_table(&topic).await {
                Ok(n) => tracing::info!(%topic, objects = n, "topic deleted with iceberg.delete=true: deleted its Iceberg table"),
                Err(e) => tracing::warn!(%topic, error = %e, location = %writer.table_location(&topic), "could not delete the Iceberg table of a deleted topic; delete it by hand"),
            }
        });
    }
}
