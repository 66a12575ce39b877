//! Client quotas, enforced as Kafka enforces them: the quotas live in the metadata image
//! (`strata_controller::quota`, set with AlterClientQuotas / `strata quota`), and every
//! request of a client is measured against the quota that applies to it.
//!
//! - Which quota applies: for each key separately, the first entity with a value in
//!   Kafka's order (`/users/<u>/clients/<c>`, `/users/<u>/clients/<default>`, `/users/<u>`,
//!   `/users/<default>/clients/<c>`, `/users/<default>/clients/<default>`,
//!   `/users/<default>`, `/clients/<c>`, `/clients/<default>`). Clients that share the
//!   matched entity share its meter: a quota on `user=alice` is shared by all her clients;
//!   a `<default>` entity gives each user (or client id) a meter of its own.
//! - `producer_byte_rate` (Produce record bytes), `consumer_byte_rate` (consumer Fetch
//!   record bytes; followers are not client traffic) and `request_percentage` (the time
//!   the broker's threads spent on the client's requests, 100 = one thread) are
//!   [`rate::Rate`]s. Over its quota, a client is told `throttle_time_ms` and its
//!   connection is muted for that long (KIP-219): the connection loop reads nothing more
//!   from it until the time has passed.
//! - `controller_mutation_rate` (partitions created or deleted per second) is KIP-599's
//!   strict [`rate::TokenBucket`]: topic requests over it are refused with
//!   THROTTLING_QUOTA_EXCEEDED.
//!
//! - `connection_creation_rate` of the `ip` entity and the broker-wide
//!   `max.connection.creation.rate` (KIP-612) are measured per new connection
//!   (`connections.rs`).
//!
//! With no quota in the image the cost per request is one `is_empty` check.

pub mod connections;
pub mod rate;

use std::collections::HashMap;

use parking_lot::Mutex;
use strata_controller::{ClientQuota, EntityName, QuotaEntity};

use rate::{Rate, TokenBucket};

/// The four quota kinds, by Kafka's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
    Request,
    Mutation,
}

impl QuotaKind {
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::Request => "request_percentage",
            QuotaKind::Mutation => "controller_mutation_rate",
        }
    }
}

/// Who is asking: the principal's name (`alice` of `User:alice`) and the client id.
#[derive(Clone, Copy, Debug)]
pub struct Client<'a> {
    pub user: &'a str,
    pub client_id: &'a str,
}

/// The quota for `key` that applies to `client`, and the meter's identity: the user and
/// client id parts of the matched entity ("" where it has none).
pub fn resolve(
    quotas: &[ClientQuota],
    client: Client<'_>,
    key: &str,
) -> Option<(f64, String, String)> {
    let named = |s: &str| Some(EntityName::Named(s.to_string()));
    let (u, c, d) = (
        named(client.user),
        named(client.client_id),
        Some(EntityName::Default),
    );
    let order = [
        (u.clone(), c.clone()),
        (u.clone(), d.clone()),
        (u.clone(), None),
        (d.clone(), c.clone()),
        (d.clone(), d.clone()),
        (d.clone(), None),
        (None, c.clone()),
        (None, d.clone()),
    ];
    order.into_iter().find_map(|(user, client_id)| {
        let entity = QuotaEntity {
            user,
            client_id,
            ip: None,
        };
        let i = quotas.binary_search_by(|q| q.entity.cmp(&entity)).ok()?;
        let value = *quotas[i].values.get(key)?;
        let part = |p: &Option<EntityName>, actual: &str| match p {
            Some(_) => actual.to_string(),
            None => String::new(),
        };
        Some((
            value,
            part(&entity.user, client.user),
            part(&entity.client_id, client.client_id),
        ))
    })
}

enum Meter {
    Rate(Rate),
    Bucket(TokenBucket),
}

struct Sensor {
    meter: Meter,
    last_used_ms: u64,
}

/// Meters of clients idle this long are dropped (Kafka expires quota sensors after an
/// hour).
const SENSOR_EXPIRY_MS: u64 = 3_600_000;

/// The meters of every client under a quota.
pub struct QuotaManager {
    samples: usize,
    window_ms: u64,
    mutation_samples: usize,
    mutation_window_ms: u64,
    sensors: Mutex<Sensors>,
}

#[derive(Default)]
struct Sensors {
    by_client: HashMap<(QuotaKind, String, String), Sensor>,
    last_sweep_ms: u64,
}

impl QuotaManager {
    /// `quota.window.num` samples of `quota.window.size.seconds`, and the same two for
    /// controller mutations.
    pub fn new(
        samples: i32,
        window_s: i32,
        mutation_samples: i32,
        mutation_window_s: i32,
    ) -> QuotaManager {
        QuotaManager {
            samples: samples.max(2) as usize,
            window_ms: window_s.max(1) as u64 * 1000,
            mutation_samples: mutation_samples.max(2) as usize,
            mutation_window_ms: mutation_window_s.max(1) as u64 * 1000,
            sensors: Mutex::new(Sensors::default()),
        }
    }

    /// Records `amount` (bytes, or percent-milliseconds of thread time for requests)
    /// and answers how long the client must wait, 0 when it is within its quota or has
    /// none.
    pub fn record(
        &self,
        quotas: &[ClientQuota],
        kind: QuotaKind,
        client: Client<'_>,
        amount: f64,
        now_ms: u64,
    ) -> u64 {
        if quotas.is_empty() {
            return 0;
        }
        let Some((quota, user, client_id)) = resolve(quotas, client, kind.key()) else {
            return 0;
        };
        let throttle = {
            let mut s = self.sensors.lock();
            s.sweep(now_ms);
            let (samples, window) = (self.samples, self.window_ms);
            let sensor = s
                .by_client
                .entry((kind, user.clone(), client_id.clone()))
                .or_insert_with(|| Sensor {
                    meter: Meter::Rate(Rate::new(samples, window)),
                    last_used_ms: now_ms,
                });
            sensor.last_used_ms = now_ms;
            match &mut sensor.meter {
                Meter::Rate(r) => {
                    r.record(amount, now_ms);
                    r.throttle_ms(quota, now_ms)
                }
                Meter::Bucket(_) => 0,
            }
        };
        if throttle > 0 {
            crate::metrics::quota::throttled(kind.key(), &user, &client_id, throttle);
        }
        throttle
    }

    /// KIP-599: admits a topic request that creates or deletes `partitions`, or answers
    /// how long the client must wait before asking again.
    pub fn admit_mutation(
        &self,
        quotas: &[ClientQuota],
        client: Client<'_>,
        partitions: f64,
        now_ms: u64,
    ) -> Result<(), u64> {
        if quotas.is_empty() {
            return Ok(());
        }
        let kind = QuotaKind::Mutation;
        let Some((rate, user, client_id)) = resolve(quotas, client, kind.key()) else {
            return Ok(());
        };
        let burst = rate * (self.mutation_samples as u64 * self.mutation_window_ms) as f64 / 1000.0;
        let outcome = {
            let mut s = self.sensors.lock();
            let sensor = s
                .by_client
                .entry((kind, user.clone(), client_id.clone()))
                .or_insert_with(|| Sensor {
                    meter: Meter::Bucket(TokenBucket::new(burst, now_ms)),
                    last_used_ms: now_ms,
                });
            sensor.last_used_ms = now_ms;
            match &mut sensor.meter {
                Meter::Bucket(b) => b.take(partitions, rate, burst, now_ms),
                Meter::Rate(_) => Ok(()),
            }
        };
        if let Err(ms) = outcome {
            crate::metrics::quota::throttled(kind.key(), &user, &client_id, ms);
        }
        outcome
    }
}

impl Sensors {
    fn sweep(&mut self, now_ms: u64) {
        if now_ms < self.last_sweep_ms + 60_000 {
            return;
        }
        self.last_sweep_ms = now_ms;
        self.by_client
            .retain(|_, s| s.last_used_ms + SENSOR_EXPIRY_MS > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn quota(
        user: Option<EntityName>,
        client_id: Option<EntityName>,
        key: &str,
        v: f64,
    ) -> ClientQuota {
        ClientQuota {
            entity: QuotaEntity {
                user,
                client_id,
                ip: None,
            },
            values: BTreeMap::from([(key.to_string(), v)]),
        }
    }

    fn named(s: &str) -> Option<EntityName> {
        Some(EntityName::Named(s.into()))
    }

    #[test]
    fn kafka_precedence_picks_the_most_specific_entity_per_key() {
        let d = Some(EntityName::Default);
        let mut quotas = vec![
            quota(None, d.clone(), "producer_byte_rate", 8.0),
            quota(None, named("app"), "producer_byte_rate", 7.0),
            quota(d.clone(), None, "producer_byte_rate", 6.0),
            quota(named("alice"), None, "producer_byte_rate", 3.0),
            quota(named("alice"), named("app"), "consumer_byte_rate", 1.0),
        ];
        quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        let alice_app = Client {
            user: "alice",
            client_id: "app",
        };
        assert_eq!(
            resolve(&quotas, alice_app, "producer_byte_rate"),
            Some((3.0, "alice".into(), String::new())),
            "user beats client id; the consumer quota of alice/app does not cover produce"
        );
        assert_eq!(
            resolve(&quotas, alice_app, "consumer_byte_rate"),
            Some((1.0, "alice".into(), "app".into()))
        );
        let bob_app = Client {
            user: "bob",
            client_id: "app",
        };
        assert_eq!(
            resolve(&quotas, bob_app, "producer_byte_rate"),
            Some((6.0, "bob".into(), String::new())),
            "the default user entity gives bob a meter of his own"
        );
        assert_eq!(resolve(&quotas, bob_app, "request_percentage"), None);
    }

    #[test]
    fn a_client_over_its_byte_rate_is_throttled_and_others_are_not() {
        let m = QuotaManager::new(11, 1, 11, 1);
        let quotas = vec![quota(None, named("noisy"), "producer_byte_rate", 1000.0)];
        let noisy = Client {
            user: "ANONYMOUS",
            client_id: "noisy",
        };
        let quiet = Client {
            user: "ANONYMOUS",
            client_id: "quiet",
        };
        assert_eq!(m.record(&quotas, QuotaKind::Produce, noisy, 500.0, 0), 0);
        assert!(m.record(&quotas, QuotaKind::Produce, noisy, 50_000.0, 10) > 0);
        assert_eq!(
            m.record(&quotas, QuotaKind::Produce, quiet, 50_000.0, 10),
            0
        );
        assert_eq!(m.record(&[], QuotaKind::Produce, noisy, 1e9, 20), 0);
    }

    #[test]
    fn mutations_are_refused_once_the_bucket_is_empty() {
        let m = QuotaManager::new(11, 1, 2, 1);
        let quotas = vec![quota(
            None,
            Some(EntityName::Default),
            "controller_mutation_rate",
            5.0,
        )];
        let c = Client {
            user: "u",
            client_id: "admin",
        };
        // Burst: 5/s over 2 windows of 1 s = 10 partitions.
        assert_eq!(m.admit_mutation(&quotas, c, 10.0, 0), Ok(()));
        assert_eq!(m.admit_mutation(&quotas, c, 1.0, 0), Err(1));
        assert_eq!(m.admit_mutation(&quotas, c, 1.0, 1000), Ok(()));
    }
}
