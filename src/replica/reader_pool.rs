//! The remote read pool (Kafka's `remote.log.reader.threads` and
//! `remote.log.reader.max.pending.tasks`): remote reads of fetches run on a tokio runtime of
//! their own, so their GETs, the decoding of batch headers and the chunk cache traffic never
//! take a worker thread that produce requests and tail reads need.
//!
//! Bounded: at most `threads + max_pending` reads are admitted at once (a read holds its
//! place until it ends, also after its fetch has answered: it goes on warming the cache).
//! When the pool is full, [`ReaderPool::spawn`] returns `None` at once and the caller answers
//! that partition with no records; nothing ever waits for a place. Kafka answers a rejected
//! remote read with an error; an empty answer is what Strata already gives a read that did
//! not finish within `remote.fetch.max.wait.ms`, and clients simply fetch again.
//!
//! The runtime is shut down in the background when the pool is dropped (a runtime cannot be
//! dropped from inside another one), which ends the reads in flight.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Why the pool could not be built.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot start the remote read pool of {threads} threads (remote.log.reader.threads): {source}"
)]
pub struct ReaderPoolError {
    threads: usize,
    source: std::io::Error,
}

pub struct ReaderPool {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    places: Arc<Semaphore>,
    capacity: usize,
}

impl ReaderPool {
    pub fn new(threads: usize, max_pending: usize) -> Result<ReaderPool, ReaderPoolError> {
        let threads = threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("strata-remote-reader")
            .enable_all()
            .build()
            .map_err(|source| ReaderPoolError { threads, source })?;
        let capacity = threads + max_pending;
        Ok(ReaderPool {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            places: Arc::new(Semaphore::new(capacity)),
            capacity,
        })
    }

    /// Runs `read` on the pool, or `None` when `threads + max_pending` reads are in already.
    pub fn spawn<F>(&self, read: F) -> Option<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let place = self.places.clone().try_acquire_owned().ok()?;
        Some(self.handle.spawn(async move {
            let out = read.await;
            drop(place);
            out
        }))
    }

    /// Reads admitted now (running or queued).
    pub fn in_use(&self) -> usize {
        self.capacity - self.places.available_permits()
    }
}

impl Drop for ReaderPool {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A full pool refuses at once instead of queueing; a place frees when a read ends; the
    /// reads run on the pool's threads, not the caller's.
    #[tokio::test]
    async fn a_full_pool_refuses_at_once() {
        let pool = ReaderPool::new(1, 1).expect("pool");
        let (tx, rx) = tokio::sync::watch::channel(false);
        let hold = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
            std::thread::current().name().map(str::to_string)
        };
        let a = pool.spawn(hold(rx.clone())).expect("first place");
        let b = pool.spawn(hold(rx.clone())).expect("second place");
        assert_eq!(pool.in_use(), 2);
        assert!(pool.spawn(hold(rx.clone())).is_none(), "third is refused");
        tx.send(true).expect("release");
        for t in [a, b] {
            let name = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("in time")
                .expect("joined");
            assert_eq!(name.as_deref(), Some("strata-remote-reader"));
        }
        let c = pool.spawn(async { 7 }).expect("a place again");
        assert_eq!(c.await.expect("joined"), 7);
    }
}
