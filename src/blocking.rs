//! Work that blocks on the disk, run on tokio's blocking pool so that produce and fetch
//! requests queued on a runtime worker never wait for it (a 10 ms fsync there showed as
//! the produce p99 of every partition). Used by every component that does disk upkeep:
//! retention and rolls (`broker::tasks`), uploads and local retention (`rlm`), the log
//! cleaner, the group coordinator's expiry.

/// Runs `f` on the blocking pool and waits for it; `None` if it panicked (logged).
pub async fn off_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "log upkeep task failed");
            None
        }
    }
}
