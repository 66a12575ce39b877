//! KIP-612 connection creation rates: the per-IP quota `connection_creation_rate` (the
//! `ip` quota entity, a named address or the `<default>` IP, set with AlterClientQuotas)
//! and the broker-wide `max.connection.creation.rate`.
//!
//! As in Kafka:
//! - a connection from an IP over its quota is accepted, not served, and closed after
//!   the throttle time (Kafka's delayed close of a throttled socket), and it does not
//!   count against the IP's rate (Kafka unrecords it), so the IP's accepted connections
//!   stay at its quota whatever it tries;
//! - over the broker-wide rate, the listener stops accepting for the throttle time:
//!   clients wait in the TCP backlog instead of being refused.
//!
//! The rates are [`Rate`]s over `quota.window.num` windows of
//! `quota.window.size.seconds`, like the other client quotas. Pure apart from its mutex:
//! the caller passes the clock and the quotas of the metadata image; `listener.rs` acts.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;
use strata_controller::quota::IP_QUOTA_KEY;
use strata_controller::{ClientQuota, EntityName, QuotaEntity};

use super::rate::Rate;

/// Meters of addresses idle this long are dropped.
const IDLE_MS: u64 = 3_600_000;

/// The per-IP and broker-wide connection creation meters of one node.
pub struct ConnectionRates {
    samples: usize,
    window_ms: u64,
    /// `max.connection.creation.rate`; `None` when unlimited (Kafka's Int.MaxValue).
    broker_max: Option<f64>,
    meters: Mutex<Meters>,
}

struct Meters {
    by_ip: HashMap<IpAddr, (Rate, u64)>,
    broker: Rate,
    last_sweep_ms: u64,
}

/// The `connection_creation_rate` that applies to `ip`: its own entity's, else the
/// `<default>` IP's (Kafka's precedence).
pub fn ip_quota(quotas: &[ClientQuota], ip: IpAddr) -> Option<f64> {
    let find = |entity: &QuotaEntity| {
        let i = quotas.binary_search_by(|q| q.entity.cmp(entity)).ok()?;
        quotas[i].values.get(IP_QUOTA_KEY).copied()
    };
    find(&QuotaEntity::ip(Some(&ip.to_string()))).or_else(|| {
        find(&QuotaEntity {
            ip: Some(EntityName::Default),
            ..QuotaEntity::ip(None)
        })
    })
}

impl ConnectionRates {
    pub fn new(samples: i32, window_s: i32, broker_max: i32) -> ConnectionRates {
        let samples = samples.max(2) as usize;
        let window_ms = window_s.max(1) as u64 * 1000;
        ConnectionRates {
            samples,
            window_ms,
            broker_max: (broker_max < i32::MAX).then_some(f64::from(broker_max.max(1))),
            meters: Mutex::new(Meters {
                by_ip: HashMap::new(),
                broker: Rate::new(samples, window_ms),
                last_sweep_ms: 0,
            }),
        }
    }

    /// A new connection from `ip`: 0 to serve it, or how long to hold it before closing
    /// it unserved (its IP is over its `connection_creation_rate`).
    pub fn admit_ip(&self, quotas: &[ClientQuota], ip: IpAddr, now_ms: u64) -> u64 {
        if quotas.is_empty() {
            return 0;
        }
        let Some(quota) = ip_quota(quotas, ip) else {
            return 0;
        };
        let mut m = self.meters.lock();
        if now_ms >= m.last_sweep_ms + IDLE_MS {
            m.by_ip
                .retain(|_, (_, used)| used.saturating_add(IDLE_MS) > now_ms);
            m.last_sweep_ms = now_ms;
        }
        let (samples, window) = (self.samples, self.window_ms);
        let (rate, used) = m
            .by_ip
            .entry(ip)
            .or_insert_with(|| (Rate::new(samples, window), now_ms));
        *used = now_ms;
        rate.record(1.0, now_ms);
        let throttle = rate.throttle_ms(quota, now_ms);
        if throttle > 0 {
            // Not served: it does not count (Kafka unrecords a throttled connection).
            rate.record(-1.0, now_ms);
        }
        throttle
    }

    /// A new connection on any listener: how long the listener pauses accepting because
    /// the node is over `max.connection.creation.rate` (0 when within it).
    pub fn accept_delay(&self, now_ms: u64) -> u64 {
        let Some(max) = self.broker_max else {
            return 0;
        };
        let mut m = self.meters.lock();
        m.broker.record(1.0, now_ms);
        m.broker.throttle_ms(max, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn quota(entity: QuotaEntity, rate: f64) -> ClientQuota {
        ClientQuota {
            entity,
            values: BTreeMap::from([(IP_QUOTA_KEY.to_string(), rate)]),
        }
    }

    #[test]
    fn an_ip_over_its_rate_is_throttled_and_its_accepted_count_stays_at_the_quota() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        let mut quotas = vec![quota(QuotaEntity::ip(Some("127.0.0.1")), 5.0)];
        quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        let r = ConnectionRates::new(11, 1, i32::MAX);
        // 100 connections over 2 s, one every 20 ms.
        let accepted = (0..100u64)
            .filter(|i| r.admit_ip(&quotas, local, 1_000 + i * 20) == 0)
            .count();
        // 5/s over the (at least one-window) span: about 10, never 100.
        assert!((5..=16).contains(&accepted), "{accepted} accepted");
        assert_eq!(
            r.admit_ip(&quotas, other, 3_000),
            0,
            "no quota for other addresses"
        );
        // The <default> IP applies to every address without one of its own.
        let quotas = vec![quota(QuotaEntity::ip(None), 1.0)];
        assert_eq!(r.admit_ip(&quotas, other, 10_000), 0);
        assert!(r.admit_ip(&quotas, other, 10_001) > 0);
    }

    #[test]
    fn the_broker_wide_rate_delays_accepting() {
        let r = ConnectionRates::new(11, 1, 10);
        let delays: Vec<u64> = (0..20).map(|i| r.accept_delay(1_000 + i)).collect();
        assert!(delays[..10].iter().all(|d| *d == 0), "{delays:?}");
        assert!(delays[10..].iter().all(|d| *d > 0), "{delays:?}");
        assert_eq!(ConnectionRates::new(11, 1, i32::MAX).accept_delay(0), 0);
    }
}
