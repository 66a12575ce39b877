//! Background upkeep of the hosted logs: retention, time-based rolling and flushing,
//! and following committed metadata. Each loop is a thin driver over methods of
//! `Log` that decide from `now`; shutdown is a `watch` flag.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{now_ms, Broker};

impl Broker {
    /// Spawns the upkeep loops; they end when `shutdown` turns true.
    pub fn spawn_tasks(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        self.spawn_rlm(shutdown.clone());
        self.spawn_fetchers(shutdown.clone());
        self.spawn_cluster_tasks(shutdown.clone());
        let b = self.clone();
        let s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let every = b.config().log_retention_check_interval_ms.max(10) as u64;
                if wait_or_stop(&s, Duration::from_millis(every)).await {
                    return;
                }
                let b = b.clone();
                off_worker(move || b.enforce_retention()).await;
            }
        });
        let b = self.clone();
        let s = shutdown.clone();
        tokio::spawn(async move {
            // Rolling by segment.ms and flushing by flush.ms have millisecond settings;
            // checking every 100 ms is Kafka's `log.flush.scheduler.interval.ms` spirit.
            while !wait_or_stop(&s, Duration::from_millis(100)).await {
                let b = b.clone();
                off_worker(move || b.roll_and_flush()).await;
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

    pub fn enforce_retention(&self) {
        let now = now_ms();
        let tiered: std::collections::HashSet<_> = self
            .topic_names()
            .into_iter()
            .filter(|n| self.topic(n).is_some_and(|t| self.is_tiered(&t)))
            .collect();
        for p in self.all_partitions() {
            // Tiered logs are trimmed by local retention in the RemoteLogManager,
            // which never deletes a segment the remote tier does not hold.
            if tiered.contains(&p.tp.topic) {
                continue;
            }
            match p.log.enforce_retention(now) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(tp = %p.tp, segments = n, log_start_offset = p.log.log_start_offset(), "retention deleted segments")
                }
                Err(e) => tracing::warn!(tp = %p.tp, error = %e, "retention failed; will retry"),
            }
        }
    }

    fn roll_and_flush(&self) {
        let now = now_ms();
        for p in self.all_partitions() {
            if let Err(e) = p.log.roll_if_due(now) {
                tracing::warn!(tp = %p.tp, error = %e, "time-based roll failed; will retry");
            }
            if let Err(e) = p.log.flush_if_due(now) {
                tracing::warn!(tp = %p.tp, error = %e, "flush failed; will retry");
            }
        }
    }
}

/// Runs log upkeep that blocks on the disk (fsyncs, unlinks of whole segments) on the
/// blocking pool: produce and fetch requests queued on a runtime worker must not wait
/// for it (a 10 ms fsync there showed as the produce p99 of every partition).
pub(crate) async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "log upkeep task failed");
            None
        }
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
