//! The two meters behind client quotas, pure (time is an argument, in milliseconds):
//!
//! - [`Rate`]: Kafka's sampled rate (`org.apache.kafka.common.metrics.stats.Rate` over
//!   `quota.window.num` samples of `quota.window.size.seconds`), with Kafka's throttle time
//!   `(observed - quota) / quota * window` (`QuotaUtils.throttleTime`). Byte rates and
//!   request time use it. One departure: Kafka measures a new client's first bytes over
//!   `samples - 1` whole windows, so a new client may send ten seconds of its quota at
//!   once, and then the same again each time that burst's sample expires (measured: 1.5x
//!   the quota over 20 s). Here the shortest window grows with the meter's age, from one
//!   window to `samples - 1`, so a new client's burst is one window of quota and the rate
//!   stays smooth; an old meter with sparse traffic is measured as in Kafka.
//! - [`TokenBucket`]: KIP-599's strict meter for `controller_mutation_rate`: a request is
//!   admitted while tokens remain (and may take the bucket below zero); otherwise it is
//!   refused with the time the bucket needs to get back to zero.

/// A rate over a ring of samples.
#[derive(Debug, Clone)]
pub struct Rate {
    window_ms: u64,
    /// `(start_ms, total)` of each sample, oldest first; at most `samples` of them.
    ring: std::collections::VecDeque<(u64, f64)>,
    samples: usize,
    /// When the first value was recorded.
    born_ms: Option<u64>,
}

impl Rate {
    pub fn new(samples: usize, window_ms: u64) -> Rate {
        Rate {
            window_ms: window_ms.max(1),
            ring: Default::default(),
            samples: samples.max(2),
            born_ms: None,
        }
    }

    /// Drops samples older than the whole window.
    fn expire(&mut self, now: u64) {
        let span = self.window_ms * self.samples as u64;
        while self
            .ring
            .front()
            .is_some_and(|(start, _)| start + span <= now)
        {
            self.ring.pop_front();
        }
    }

    pub fn record(&mut self, value: f64, now: u64) {
        self.born_ms.get_or_insert(now);
        self.expire(now);
        match self.ring.back_mut() {
            Some((start, total)) if now < *start + self.window_ms => *total += value,
            _ => {
                if self.ring.len() == self.samples {
                    self.ring.pop_front();
                }
                self.ring.push_back((now, value));
            }
        }
    }

    /// The time the samples span, and at least the meter's age up to `samples - 1`
    /// windows (Kafka: always `samples - 1` windows), and at least one window.
    fn window_size(&self, now: u64) -> u64 {
        let oldest = self.ring.front().map_or(now, |(start, _)| *start);
        let age = now.saturating_sub(self.born_ms.unwrap_or(now));
        let floor = age.min((self.samples as u64 - 1) * self.window_ms);
        now.saturating_sub(oldest).max(floor).max(self.window_ms)
    }

    /// Per second.
    pub fn rate(&mut self, now: u64) -> f64 {
        self.expire(now);
        let total: f64 = self.ring.iter().map(|(_, v)| v).sum();
        total * 1000.0 / self.window_size(now).max(1) as f64
    }

    /// How long the client waits so that its rate comes back to `quota` (0 if it is
    /// within it), at most the whole window.
    pub fn throttle_ms(&mut self, quota: f64, now: u64) -> u64 {
        let observed = self.rate(now);
        if observed <= quota || quota <= 0.0 {
            return 0;
        }
        let ms = (observed - quota) / quota * self.window_size(now) as f64;
        (ms as u64).min(self.window_ms * self.samples as u64)
    }
}

/// KIP-599's token bucket: `rate` tokens a second, at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(burst: f64, now: u64) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last_ms: now,
        }
    }

    /// Takes `n` tokens if any remain (`Ok`), else the milliseconds until the bucket is
    /// back at zero (`Err`).
    pub fn take(&mut self, n: f64, rate: f64, burst: f64, now: u64) -> Result<(), u64> {
        let elapsed = now.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last_ms = now;
        if self.tokens > 0.0 {
            self.tokens -= n;
            Ok(())
        } else {
            Err(((-self.tokens / rate) * 1000.0).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_rate_is_measured_over_the_window() {
        let mut r = Rate::new(11, 1000);
        // 1,000 units a second for 20 s.
        for ms in (0..20_000).step_by(100) {
            r.record(100.0, ms);
        }
        let rate = r.rate(20_000);
        assert!((rate - 1000.0).abs() < 110.0, "{rate}");
        assert_eq!(r.throttle_ms(2000.0, 20_000), 0);
    }

    #[test]
    fn a_new_client_bursts_one_window_and_an_old_one_is_measured_over_the_full_window() {
        let mut r = Rate::new(11, 1000);
        r.record(2_000.0, 0);
        // A new meter: over one window, so twice the quota of 1,000/s waits one window.
        assert_eq!(r.rate(0), 2000.0);
        assert_eq!(r.throttle_ms(1000.0, 0), 1000);
        // An old meter with a lone burst: over ten windows, as Kafka measures it.
        let mut old = Rate::new(11, 1000);
        old.record(1.0, 0);
        old.record(10_000.0, 60_000);
        assert!((old.rate(60_000) - 1000.0).abs() < 1e-6);
        assert_eq!(old.throttle_ms(1000.0, 60_000), 0);
    }

    #[test]
    fn throttling_brings_the_rate_back_to_the_quota() {
        // A client that waits what it is told stays within its quota over time.
        let (quota, mut r, mut now, mut sent) = (1000.0, Rate::new(11, 1000), 0u64, 0.0);
        while now < 60_000 {
            r.record(5000.0, now);
            sent += 5000.0;
            now += r.throttle_ms(quota, now).max(1);
        }
        let achieved = sent / (now as f64 / 1000.0);
        assert!(
            achieved < quota * 1.1 && achieved > quota * 0.9,
            "{achieved}"
        );
    }

    #[test]
    fn old_samples_expire() {
        let mut r = Rate::new(3, 1000);
        r.record(3000.0, 0);
        assert!(r.rate(100) > 0.0);
        assert_eq!(r.rate(3000), 0.0);
    }

    #[test]
    fn the_bucket_admits_while_tokens_remain_and_says_how_long_to_wait() {
        let mut b = TokenBucket::new(10.0, 0);
        assert_eq!(b.take(8.0, 2.0, 10.0, 0), Ok(()));
        assert_eq!(b.take(8.0, 2.0, 10.0, 0), Ok(()), "2 left: admitted, to -6");
        assert_eq!(b.take(1.0, 2.0, 10.0, 0), Err(3000), "6 tokens at 2/s");
        assert_eq!(b.take(1.0, 2.0, 10.0, 3500), Ok(()), "refilled to 1");
    }
}
