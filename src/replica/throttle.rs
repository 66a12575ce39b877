//! Replication throttles (KIP-73, with KIP-542's rule that only out-of-sync replicas are
//! throttled), as Kafka's `ReplicationQuotaManager`.
//!
//! Two quotas per broker: the leader's (`leader.replication.throttled.rate`, bytes it sends to
//! followers) and the follower's (`follower.replication.throttled.rate`, bytes it fetches). A
//! partition's replica counts against a quota only when the topic's throttled replica list for
//! that side names it (`partition:this broker`, or `*`) and the follower in question is not in
//! the ISR: a reassignment's adding replica, a replica catching up after a restart. In-sync
//! replication is never held back, so acks=all latency does not depend on a throttle.
//!
//! As in Kafka, the check comes before the bytes are known and the bytes are recorded after:
//! a throttled partition is left out of a fetch (follower) or answered with no records
//! (leader) while the quota is exhausted, and otherwise gets a normal fetch's worth, which may
//! overdraw the quota; the overdraft is paid back before the next one. The quota is a token
//! bucket holding at most one second of the rate, refilled continuously: over any long
//! interval the throttled bytes average the rate (Kafka measures a rate over
//! `replication.quota.window.num` one-second windows, with the same long-run effect). The
//! bucket is pure (time is passed in) so that the rule is tested without sleeping.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The rate that means "no throttle" (Kafka's default, `Long.MAX_VALUE`).
pub const UNTHROTTLED: i64 = i64::MAX;

/// A token bucket of bytes; tokens may go negative (an overdrawn quota).
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            tokens: 0.0,
            last: None,
        }
    }
}

impl Bucket {
    /// Adds what `rate` earned since the last call, up to one second's worth. A bucket used
    /// for the first time starts full.
    fn refill(&mut self, rate: i64, now: Instant) {
        let cap = rate as f64;
        self.tokens = match self.last {
            None => cap,
            Some(last) => {
                let earned = now.saturating_duration_since(last).as_secs_f64() * cap;
                (self.tokens + earned).min(cap)
            }
        };
        self.last = Some(now);
    }

    /// Whether the quota is used up at `now`: throttled replicas get nothing until it is not.
    pub fn exceeded(&mut self, rate: i64, now: Instant) -> bool {
        if rate == UNTHROTTLED {
            return false;
        }
        self.refill(rate, now);
        self.tokens <= 0.0
    }

    /// Charges `bytes` moved for throttled replicas.
    pub fn record(&mut self, rate: i64, bytes: usize, now: Instant) {
        if rate == UNTHROTTLED {
            return;
        }
        self.refill(rate, now);
        self.tokens -= bytes as f64;
    }

    /// How long until the quota has room again (zero if it has now).
    pub fn wait(&mut self, rate: i64, now: Instant) -> Duration {
        if rate == UNTHROTTLED || rate <= 0 {
            // A zero rate never refills: poll slowly rather than compute forever.
            return if rate <= 0 {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            };
        }
        self.refill(rate, now);
        if self.tokens > 0.0 {
            return Duration::ZERO;
        }
        // One byte past zero, so that the quota has room when the wait ends.
        Duration::from_secs_f64((1.0 - self.tokens) / rate as f64)
    }
}

/// Which throttle: the leader's sending side or the follower's fetching side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Leader,
    Follower,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Leader => "leader",
            Side::Follower => "follower",
        }
    }
}

/// This broker's two replication quotas.
#[derive(Default)]
pub struct ReplicationQuotas {
    leader: Mutex<Bucket>,
    follower: Mutex<Bucket>,
}

impl ReplicationQuotas {
    fn bucket(&self, side: Side) -> &Mutex<Bucket> {
        match side {
            Side::Leader => &self.leader,
            Side::Follower => &self.follower,
        }
    }

    pub fn exceeded(&self, side: Side, rate: i64) -> bool {
        self.bucket(side).lock().exceeded(rate, Instant::now())
    }

    pub fn record(&self, side: Side, rate: i64, bytes: usize) {
        if rate == UNTHROTTLED || bytes == 0 {
            return;
        }
        self.bucket(side).lock().record(rate, bytes, Instant::now());
        crate::metrics::replication_throttled_bytes(side.label(), bytes);
    }

    pub fn wait(&self, side: Side, rate: i64) -> Duration {
        self.bucket(side).lock().wait(rate, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1 << 20;

    #[test]
    fn the_unthrottled_rate_never_holds_back() {
        let mut b = Bucket::default();
        let t = Instant::now();
        b.record(UNTHROTTLED, usize::MAX, t);
        assert!(!b.exceeded(UNTHROTTLED, t));
        assert_eq!(b.wait(UNTHROTTLED, t), Duration::ZERO);
    }

    #[test]
    fn a_full_bucket_allows_one_fetch_then_waits_for_the_overdraft() {
        let mut b = Bucket::default();
        let t = Instant::now();
        assert!(!b.exceeded(MIB, t));
        // A fetch of 3 MiB overdraws a 1 MiB/s quota by 2 MiB: two seconds of nothing.
        b.record(MIB, 3 * MIB as usize, t);
        assert!(b.exceeded(MIB, t));
        let w = b.wait(MIB, t);
        assert!(
            w > Duration::from_millis(1990) && w < Duration::from_millis(2010),
            "{w:?}"
        );
        assert!(b.exceeded(MIB, t + Duration::from_millis(1900)));
        assert!(!b.exceeded(MIB, t + Duration::from_millis(2010)));
    }

    #[test]
    fn idle_time_earns_at_most_one_second() {
        let mut b = Bucket::default();
        let t = Instant::now();
        b.record(MIB, MIB as usize, t);
        // An hour idle earns one second's worth, not an hour's.
        let later = t + Duration::from_secs(3600);
        b.record(MIB, 2 * MIB as usize, later);
        assert!(b.exceeded(MIB, later));
        assert!(!b.exceeded(MIB, later + Duration::from_millis(1010)));
    }

    #[test]
    fn throttled_bytes_average_the_rate() {
        // A follower fetching 256 KiB whenever allowed, polled every 10 ms for 20 s, moves
        // about 20 s of the rate (plus the first second's credit and one fetch).
        let mut b = Bucket::default();
        let t0 = Instant::now();
        let mut moved = 0usize;
        for i in 0..2000 {
            let now = t0 + Duration::from_millis(10 * i);
            if !b.exceeded(MIB, now) {
                b.record(MIB, 256 << 10, now);
                moved += 256 << 10;
            }
        }
        let expected = 21.0 * MIB as f64;
        let ratio = moved as f64 / expected;
        assert!(
            (0.95..=1.05).contains(&ratio),
            "moved {moved}, ratio {ratio}"
        );
    }

    #[test]
    fn a_zero_rate_stops_throttled_replication() {
        let mut b = Bucket::default();
        let t = Instant::now();
        assert!(b.exceeded(0, t));
        assert!(b.exceeded(0, t + Duration::from_secs(60)));
        assert_eq!(b.wait(0, t), Duration::from_secs(1));
    }
}
