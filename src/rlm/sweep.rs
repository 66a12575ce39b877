//! Deleting remote objects no manifest needs any more, on the leader, from the RemoteLogManager's
//! tick:
//!
//! - **Retired segments** (replaced by a remote compaction pass): their objects go once
//!   `strata_tier::compaction::RETIRED_GRACE` has passed since the swap, as the manifest
//!   records it ([`strata_tier::compaction::delete_retired`]). Cheap: the manifest in memory
//!   says when one is due, and deleting needs no listing.
//! - **Orphans** (objects of a uuid no manifest names, left by an upload or a pass that
//!   failed or crashed before publishing): [`strata_tier::copier::sweep_orphans`] lists the
//!   partition and deletes those older than [`ORPHAN_GRACE`]. It runs when a partition's
//!   manifest is first loaded, then at most every [`ORPHAN_SWEEP_EVERY`] per partition and at
//!   most one partition per tick, and never while an upload or a pass of the partition is in
//!   flight on this broker: an operation that runs longer than the grace has objects older
//!   than it that no manifest names yet. (An operation that starts during a sweep writes
//!   objects younger than the sweep's cutoff, which it leaves alone.)
//!
//! At most one sweep of each kind runs per partition at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_tier::compaction::{self, RETIRED_GRACE};
use strata_tier::copier;
use strata_tier::PartitionKey;

use super::{Leaders, RemoteLogManager};
use crate::replica::Partition;

/// Objects younger than this are never swept as orphans (an upload may be writing them).
pub(super) const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// How often a partition's objects are listed to sweep orphans, after the first time.
pub(super) const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// One partition's sweeps.
#[derive(Debug, Default)]
pub(super) struct SweepState {
    last_orphan_sweep: Option<Instant>,
    orphans_running: bool,
    retired_running: bool,
}

pub(super) type Sweeps = parking_lot::Mutex<HashMap<PartitionKey, SweepState>>;

impl RemoteLogManager {
    /// Starts the sweeps the partitions this node leads are due for (see the module docs).
    pub(super) fn sweep(self: &Arc<Self>, leaders: &Leaders, now_ms: i64) {
        let grace_ms = RETIRED_GRACE.as_millis() as i64;
        let mut listing_started = false;
        let mut sweeps = self.sweeps.lock();
        sweeps.retain(|k, s| leaders.contains_key(k) || s.orphans_running || s.retired_running);
        for (key, (p, _)) in leaders {
            let state = sweeps.entry(key.clone()).or_default();
            let retired_due = p.remote_manifest().is_some_and(|m| {
                m.retired
                    .iter()
                    .any(|r| r.retired_ms.saturating_add(grace_ms) <= now_ms)
            });
            if retired_due && !state.retired_running {
                state.retired_running = true;
                self.spawn_retired_deletion(p.clone(), now_ms);
            }
            let orphans_due = state
                .last_orphan_sweep
                .is_none_or(|t| t.elapsed() >= ORPHAN_SWEEP_EVERY);
            if listing_started || !orphans_due || state.orphans_running || self.busy(key) {
                continue;
            }
            listing_started = true;
            state.orphans_running = true;
            state.last_orphan_sweep = Some(Instant::now());
            self.spawn_orphan_sweep(key.clone());
        }
    }

    /// Whether an upload or a remote pass of `key` is in flight on this broker.
    fn busy(&self, key: &PartitionKey) -> bool {
        let s = self.scheduler.lock();
        s.state(key).is_some_and(|u| u.in_flight.is_some())
            || s.compaction_state(key).is_some_and(|c| c.in_flight)
    }

    /// Records that `key`'s manifest was loaded and sweeps its orphans now, once (the tick's
    /// periodic sweep then takes over).
    pub(super) fn sweep_after_load(self: &Arc<Self>, key: PartitionKey) {
        let mut sweeps = self.sweeps.lock();
        let state = sweeps.entry(key.clone()).or_default();
        if state.orphans_running || state.last_orphan_sweep.is_some() {
            return;
        }
        state.orphans_running = true;
        state.last_orphan_sweep = Some(Instant::now());
        drop(sweeps);
        self.spawn_orphan_sweep(key);
    }

    fn spawn_orphan_sweep(self: &Arc<Self>, key: PartitionKey) {
        let rlm = self.clone();
        tokio::spawn(async move {
            match copier::sweep_orphans(&*rlm.store, &key, ORPHAN_GRACE).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(partition = %key, objects = n, "swept orphaned remote objects")
                }
                Err(e) => {
                    tracing::warn!(partition = %key, error = %e, "orphan sweep failed; will retry later")
                }
            }
            if let Some(s) = rlm.sweeps.lock().get_mut(&key) {
                s.orphans_running = false;
            }
        });
    }

    fn spawn_retired_deletion(self: &Arc<Self>, p: Arc<Partition>, now_ms: i64) {
        let rlm = self.clone();
        tokio::spawn(async move {
            let key = p.tier_key();
            match compaction::delete_retired(&*rlm.store, &key, now_ms, RETIRED_GRACE).await {
                Ok(Some(m)) => p.set_remote_manifest(m),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(tp = %p.tp, error = %e, "deleting the objects of segments replaced by remote compaction failed; will retry")
                }
            }
            if let Some(s) = rlm.sweeps.lock().get_mut(&key) {
                s.retired_running = false;
            }
        });
    }
}
