//! The node's background loops: the replica manager's upkeep passes (retention, time-based
//! rolls and flushes) and replica fetchers, the RemoteLogManager, the cluster loops, and
//! following committed metadata. Each loop is a thin driver over a component's method
//! that decides from `now`; shutdown is a `watch` flag.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Broker;
use crate::blocking::off_worker;

impl Broker {
    /// Spawns the upkeep loops; they end when `shutdown` turns true.
    pub fn spawn_tasks(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        if let Some(rlm) = &self.rlm {
            rlm.spawn(shutdown.clone());
        }
        self.replicas.spawn_fetchers(shutdown.clone());
        self.cleaner.spawn(shutdown.clone());
        self.spawn_cluster_tasks(shutdown.clone());
        let replicas = self.replicas.clone();
        let s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let every = replicas.metadata().config().log_retention_check_interval_ms;
                let every = every.max(10) as u64;
                if wait_or_stop(&s, Duration::from_millis(every)).await {
                    return;
                }
                let r = replicas.clone();
                off_worker(move || r.enforce_retention()).await;
            }
        });
        let replicas = self.replicas.clone();
        let s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let every = replicas
                    .metadata()
                    .config()
                    .txn
                    .producer_id_expiration_check_interval_ms;
                let every = every.max(10) as u64;
                if wait_or_stop(&s, Duration::from_millis(every)).await {
                    return;
                }
                let r = replicas.clone();
                off_worker(move || r.expire_producers()).await;
            }
        });
        let replicas = self.replicas.clone();
        let s = shutdown.clone();
        tokio::spawn(async move {
            // Rolling by segment.ms and flushing by flush.ms have millisecond settings;
            // checking every 100 ms is Kafka's `log.flush.scheduler.interval.ms` spirit.
            while !wait_or_stop(&s, Duration::from_millis(100)).await {
                let r = replicas.clone();
                off_worker(move || r.roll_and_flush()).await;
            }
        });
        let b = self.clone();
        let mut s = shutdown;
        let mut images = b.controller.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = images.changed() => {
                        if changed.is_err() { return; }
                        let image = images.borrow_and_update().clone();
                        if let Err(e) = b.apply_image(&image) {
                            tracing::error!(error = %e, "could not apply committed metadata");
                        }
                    }
                    _ = s.changed() => return,
                }
            }
        });
    }
}

/// Sleeps for `d`; returns true if shutdown was signalled first.
async fn wait_or_stop(shutdown: &watch::Receiver<bool>, d: Duration) -> bool {
    let mut s = shutdown.clone();
    if *s.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *s.borrow(),
        _ = s.changed() => true,
    }
}
