//! The client-instance state machine of KIP-714, as Kafka's `ClientMetricsManager` keeps it.
//!
//! Each client instance (a client library object, named by a UUID the broker hands out)
//! has a subscription computed from the subscriptions that match it, the times of its
//! last GetTelemetrySubscriptions and PushTelemetry, its last error and whether it said it
//! is terminating. From that:
//! - a Get is answered at most once per push interval (THROTTLING_QUOTA_EXCEEDED
//!   otherwise), except right after a push failed with UNKNOWN_SUBSCRIPTION_ID or
//!   UNSUPPORTED_COMPRESSION_TYPE, when the client must fetch the subscription again
//!   (KIP-714's rule; Kafka 3.7-4.0's `validateGetRequest` tests `error != A || error != B`,
//!   always true, so Kafka throttles that Get too and the client waits an interval);
//! - a Push is accepted once per push interval, or at once after a Get (clients add jitter
//!   to their first push), or when it is the terminating push; then its subscription id,
//!   compression type and size are checked, in Kafka's order;
//! - after a terminating push, every push is INVALID_REQUEST;
//! - a change of the subscriptions re-evaluates each instance on its next request, with
//!   fresh timestamps, so the client's next push gets UNKNOWN_SUBSCRIPTION_ID and it
//!   fetches the new subscription.
//!
//! Instances idle for three push intervals (at least a minute) are forgotten, and at most
//! [`MAX_INSTANCES`] are kept (the least recently seen goes first), as Kafka's cache does.
//! Pure: time comes in as `now` (ms), fresh ids as arguments.

use std::collections::HashMap;

use uuid::Uuid;

use super::subscription::{requested, ClientMeta, Requested, Subscription};
use super::TelemetryError;

/// Most client instances remembered (Kafka's cache size).
pub const MAX_INSTANCES: usize = 16_384;
/// Shortest time an idle instance is remembered.
const MIN_EXPIRY_MS: i64 = 60_000;
/// Kafka compression type ids a push may use: none, gzip, snappy, lz4, zstd.
pub const COMPRESSION_NONE: i8 = 0;
/// The codecs offered to clients, Kafka's order of preference.
pub const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];

/// The error a client instance last got, which decides whether a Get may come early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastError {
    None,
    UnknownSubscription,
    UnsupportedCompression,
    Other,
}

#[derive(Debug, Clone)]
struct Instance {
    subscription_id: i32,
    subscriptions_version: u64,
    requested: Requested,
    last_get_ms: i64,
    last_push_ms: i64,
    last_seen_ms: i64,
    last_error: LastError,
    terminating: bool,
}

impl Instance {
    fn expiry_ms(&self) -> i64 {
        (3 * i64::from(self.requested.interval_ms)).max(MIN_EXPIRY_MS)
    }

    fn may_get(&mut self, now: i64) -> bool {
        let last = self.last_get_ms.max(self.last_push_ms);
        if now - last >= i64::from(self.requested.interval_ms) {
            self.last_get_ms = now;
            true
        } else {
            false
        }
    }

    fn may_push(&mut self, now: i64) -> bool {
        let ok = self.last_get_ms > self.last_push_ms
            || now - self.last_push_ms >= i64::from(self.requested.interval_ms);
        if ok {
            self.last_push_ms = now;
        }
        ok
    }
}

/// What a GetTelemetrySubscriptions is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAnswer {
    pub client_instance_id: Uuid,
    pub subscription_id: i32,
    pub metrics: Vec<String>,
    pub push_interval_ms: i32,
}

/// A PushTelemetry, as far as the state machine looks at it.
#[derive(Debug, Clone, Copy)]
pub struct Push {
    pub client_instance_id: Uuid,
    pub subscription_id: i32,
    pub terminating: bool,
    pub compression_type: i8,
    pub payload_len: usize,
}

/// Every client instance this broker knows, and the subscriptions they are matched on.
#[derive(Debug)]
pub struct TelemetryState {
    subscriptions: Vec<Subscription>,
    /// Bumped at every change of the subscriptions.
    version: u64,
    instances: HashMap<Uuid, Instance>,
    last_sweep_ms: i64,
    max_bytes: usize,
}

impl TelemetryState {
    pub fn new(max_bytes: usize) -> TelemetryState {
        TelemetryState {
            subscriptions: Vec::new(),
            version: 0,
            instances: HashMap::new(),
            last_sweep_ms: 0,
            max_bytes,
        }
    }

    /// Replaces the subscriptions; every instance is re-evaluated on its next request.
    pub fn set_subscriptions(&mut self, subscriptions: Vec<Subscription>) {
        self.subscriptions = subscriptions;
        self.version += 1;
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The push interval of instance `id` (the default when unknown).
    pub fn interval_ms(&self, id: Uuid) -> i32 {
        self.instances
            .get(&id)
            .map_or(super::subscription::DEFAULT_INTERVAL_MS, |i| {
                i.requested.interval_ms
            })
    }

    /// How many instances are remembered.
    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// The instance `id`, created or re-evaluated for `client` when it is unknown or the
    /// subscriptions changed since.
    fn instance(&mut self, id: Uuid, client: &ClientMeta, now: i64) -> &mut Instance {
        let current = self
            .instances
            .get(&id)
            .is_some_and(|i| i.subscriptions_version == self.version);
        if !current {
            if !self.instances.contains_key(&id) {
                self.make_room(now);
            }
            let mut client = client.clone();
            client.client_instance_id = id.to_string();
            let requested = requested(&self.subscriptions, &client);
            let instance = Instance {
                subscription_id: subscription_id(&requested, id),
                subscriptions_version: self.version,
                requested,
                last_get_ms: 0,
                last_push_ms: 0,
                last_seen_ms: now,
                last_error: LastError::None,
                terminating: false,
            };
            self.instances.insert(id, instance);
        }
        let instance = self.instances.get_mut(&id).expect("inserted above");
        instance.last_seen_ms = now;
        instance
    }

    /// Forgets expired instances (at most once a minute, or when full), and the least
    /// recently seen one when still full.
    fn make_room(&mut self, now: i64) {
        let full = self.instances.len() >= MAX_INSTANCES;
        if full || now - self.last_sweep_ms >= MIN_EXPIRY_MS {
            self.last_sweep_ms = now;
            self.instances
                .retain(|_, i| now - i.last_seen_ms < i.expiry_ms());
        }
        if self.instances.len() >= MAX_INSTANCES {
            if let Some(oldest) = self
                .instances
                .iter()
                .min_by_key(|(_, i)| i.last_seen_ms)
                .map(|(id, _)| *id)
            {
                self.instances.remove(&oldest);
            }
        }
    }

    /// GetTelemetrySubscriptions from `client`. A nil `client_instance_id` is a new
    /// client: it gets `fresh` (a random UUID the caller drew) as its id.
    pub fn get(
        &mut self,
        client_instance_id: Uuid,
        fresh: Uuid,
        client: &ClientMeta,
        now: i64,
    ) -> Result<GetAnswer, TelemetryError> {
        let id = if client_instance_id.is_nil() {
            fresh
        } else {
            client_instance_id
        };
        let instance = self.instance(id, client, now);
        let may = instance.may_get(now);
        let early_allowed = matches!(
            instance.last_error,
            LastError::UnknownSubscription | LastError::UnsupportedCompression
        );
        instance.last_error = LastError::None;
        if !may {
            if !early_allowed {
                return Err(TelemetryError::Throttled {
                    client_instance_id: id,
                    interval_ms: instance.requested.interval_ms,
                    what: "GetTelemetrySubscriptions",
                });
            }
            // The client was told to fetch the subscription again: its next push is the
            // first after a Get, accepted early like any first push.
            instance.last_get_ms = now;
        }
        Ok(GetAnswer {
            client_instance_id: id,
            subscription_id: instance.subscription_id,
            metrics: instance.requested.metrics.clone(),
            push_interval_ms: instance.requested.interval_ms,
        })
    }

    /// PushTelemetry from `client`: `Ok` means its metrics are to be exported (then
    /// [`TelemetryState::export_failed`] if they cannot be decoded).
    pub fn push(
        &mut self,
        push: Push,
        client: &ClientMeta,
        now: i64,
    ) -> Result<(), TelemetryError> {
        let id = push.client_instance_id;
        if id.is_nil() {
            return Err(TelemetryError::NilInstanceId);
        }
        let max_bytes = self.max_bytes;
        let instance = self.instance(id, client, now);
        let outcome = check_push(instance, &push, max_bytes, now);
        instance.terminating |= push.terminating;
        instance.last_error = match &outcome {
            Ok(()) => LastError::None,
            Err(TelemetryError::UnknownSubscription { .. }) => LastError::UnknownSubscription,
            Err(TelemetryError::UnsupportedCompression { .. }) => LastError::UnsupportedCompression,
            Err(_) => LastError::Other,
        };
        outcome
    }

    /// The accepted push of `id` could not be decoded (INVALID_RECORD).
    pub fn export_failed(&mut self, id: Uuid) {
        if let Some(i) = self.instances.get_mut(&id) {
            i.last_error = LastError::Other;
        }
    }
}

fn check_push(
    instance: &mut Instance,
    push: &Push,
    max_bytes: usize,
    now: i64,
) -> Result<(), TelemetryError> {
    let id = push.client_instance_id;
    if instance.terminating {
        return Err(TelemetryError::AfterTerminating {
            client_instance_id: id,
        });
    }
    if !instance.may_push(now) && !push.terminating {
        return Err(TelemetryError::Throttled {
            client_instance_id: id,
            interval_ms: instance.requested.interval_ms,
            what: "PushTelemetry",
        });
    }
    if push.subscription_id != instance.subscription_id {
        return Err(TelemetryError::UnknownSubscription {
            client_instance_id: id,
            subscription_id: push.subscription_id,
        });
    }
    if push.compression_type != COMPRESSION_NONE
        && !ACCEPTED_COMPRESSION.contains(&push.compression_type)
    {
        return Err(TelemetryError::UnsupportedCompression {
            client_instance_id: id,
            compression_type: push.compression_type,
        });
    }
    if push.payload_len > max_bytes {
        return Err(TelemetryError::TooLarge {
            client_instance_id: id,
            size: push.payload_len,
            max: max_bytes,
        });
    }
    Ok(())
}

/// A subscription id that changes with what the client is asked for, the same on every
/// broker (Kafka hashes the same inputs with CRC32C).
fn subscription_id(requested: &Requested, id: Uuid) -> i32 {
    let text = format!("{:?}{}{}", requested.metrics, requested.interval_ms, id);
    crc32c::crc32c(text.as_bytes()) as i32
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
