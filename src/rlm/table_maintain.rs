//! Retention and the orphan sweep of topic tables (`strata_iceberg::maintain`), run from
//! the RemoteLogManager's tick every `iceberg.maintenance.interval.ms` by the leader of each
//! `iceberg.enable` topic's partition 0, so one node maintains a table whichever nodes
//! write its partitions. A failure is logged and retried at the next interval; it never
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
            if !topic.config.iceberg_enable || p.tp.partition != 0 {
                continue;
            }
            let name = p.tp.topic.to_string();
            let state = topics.entry(name.clone()).or_default();
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
            tokio::spawn(async move { rlm.maintain_table(name, retention_ms).await });
        }
    }

    async fn maintain_table(self: Arc<Self>, topic: String, retention_ms: i64) {
        let Some(tables) = &self.tables else { return };
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
}
