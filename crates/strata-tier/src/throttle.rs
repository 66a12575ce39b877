//! A byte-rate limit shared by many tasks: the broker's uploads
//! (`remote.log.manager.copy.max.bytes.per.second`) and, separately, its remote reads
//! (`remote.log.manager.fetch.max.bytes.per.second`).
//!
//! A token bucket holding one second of budget: up to `bytes_per_sec` bytes pass at
//! once, after that callers wait so that the long-run rate is the limit. Waiters are
//! served in arrival order (a fair `tokio` mutex), so one busy partition cannot starve
//! another. Time is tokio's, so tests run it under a paused clock.

use std::time::Duration;

#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    state: tokio::sync::Mutex<(tokio::time::Instant, f64)>,
}

impl Throttle {
    /// `bytes_per_sec == 0` or `u64::MAX` (Kafka's `Long.MAX_VALUE` default, read as
    /// i64::MAX too) means unlimited.
    pub fn new(bytes_per_sec: u64) -> Self {
        Throttle {
            bytes_per_sec,
            state: tokio::sync::Mutex::new((tokio::time::Instant::now(), 0.0)),
        }
    }

    /// From a Kafka `Long` setting: anything not positive, or `Long.MAX_VALUE`, is
    /// unlimited.
    pub fn from_setting(bytes_per_sec: i64) -> Self {
        Throttle::new(if bytes_per_sec <= 0 || bytes_per_sec == i64::MAX {
            0
        } else {
            bytes_per_sec as u64
        })
    }

    pub fn is_unlimited(&self) -> bool {
        self.bytes_per_sec == 0 || self.bytes_per_sec == u64::MAX
    }

    /// Waits until `n` more bytes fit in the budget.
    pub async fn take(&self, n: usize) {
        if self.is_unlimited() {
            return;
        }
        let mut s = self.state.lock().await;
        let now = tokio::time::Instant::now();
        let rate = self.bytes_per_sec as f64;
        // Debt left after refilling since the last call.
        let refilled = now.duration_since(s.0).as_secs_f64() * rate;
        let debt = (s.1 - refilled).max(0.0) + n as f64;
        *s = (now, debt);
        let wait = (debt - rate).max(0.0) / rate;
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Passing `n` bytes through a limit of `rate` bytes/s takes (n - rate) / rate
    /// seconds of (paused, virtual) time: one second of budget is free.
    #[tokio::test(start_paused = true)]
    async fn long_run_rate_is_the_limit() {
        let rate = 1 << 20;
        let t = Throttle::new(rate);
        let start = tokio::time::Instant::now();
        let n = 8 * rate as usize;
        for _ in 0..n / 65536 {
            t.take(65536).await;
        }
        let took = start.elapsed().as_secs_f64();
        let want = (n as f64 - rate as f64) / rate as f64;
        assert!(
            (took / want - 1.0).abs() < 0.01,
            "{n} bytes at {rate} B/s took {took:.3} s of virtual time, want {want:.3}"
        );
    }

    /// Concurrent takers share one budget: two tasks together get the limit, not twice it.
    #[tokio::test(start_paused = true)]
    async fn concurrent_takers_share_the_budget() {
        let rate = 1 << 20;
        let t = Arc::new(Throttle::new(rate));
        let start = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move {
                    for _ in 0..64 {
                        t.take(65536).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("taker");
        }
        let took = start.elapsed().as_secs_f64();
        // 8 MiB in all: 7 s after the free first second.
        assert!((took / 7.0 - 1.0).abs() < 0.01, "took {took:.3} s");
    }

    #[tokio::test(start_paused = true)]
    async fn kafka_default_is_unlimited() {
        let t = Throttle::from_setting(i64::MAX);
        let start = tokio::time::Instant::now();
        t.take(1 << 40).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(Throttle::from_setting(0).is_unlimited());
        assert!(!Throttle::from_setting(1).is_unlimited());
    }
}
