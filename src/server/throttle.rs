//! Client quotas at the connection (see `crate::quota` for the rules): what a request
//! costs its client, measured around the handler, and the throttle that follows.
//!
//! - Before the handler, [`Usage::of`] notes what the quota meters need from the
//!   request: Produce record bytes, whether a Fetch is a consumer's, whether the API is
//!   exempt from `request_percentage` (ApiVersions, and what brokers send each other).
//! - The handler's thread time is measured by [`Busy`]: the time spent inside `poll`, not
//!   the time a long poll or an acks=all produce waits, as Kafka counts I/O thread time
//!   and not purgatory time.
//! - After it, [`after`] records the bytes and the time and answers the throttle: the
//!   larger of the byte and request throttles. It is written into the response's
//!   `throttle_time_ms` for Produce and Fetch, and the connection loop mutes the
//!   connection for that long (KIP-219), for every API.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{RequestKind, ResponseKind};

use super::Services;
use crate::quota::{Client, QuotaKind};

/// What the quota meters need to know about one request before it is handled.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    produce_bytes: Option<usize>,
    consumer_fetch: bool,
    exempt: bool,
}

impl Usage {
    pub fn of(body: &RequestKind, version: i16) -> Usage {
        match body {
            RequestKind::Produce(r) => Usage {
                produce_bytes: Some(
                    r.topic_data
                        .iter()
                        .flat_map(|t| &t.partition_data)
                        .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
                        .sum(),
                ),
                ..Usage::default()
            },
            RequestKind::Fetch(r) => {
                let replica = if version >= 15 {
                    r.replica_state.replica_id.0
                } else {
                    r.replica_id.0
                };
                // A follower's fetch is replication, not client traffic.
                Usage {
                    consumer_fetch: replica < 0,
                    exempt: replica >= 0,
                    ..Usage::default()
                }
            }
            RequestKind::ApiVersions(_) | RequestKind::WriteTxnMarkers(_) => Usage {
                exempt: true,
                ..Usage::default()
            },
            _ => Usage::default(),
        }
    }
}

/// Records the request's cost and answers the throttle in milliseconds (0: none).
pub fn after(
    services: &Services,
    client: Client<'_>,
    usage: Usage,
    response: &mut Option<ResponseKind>,
    busy: Duration,
) -> u64 {
    let image = services.broker.image();
    let quotas = &image.quotas;
    if quotas.is_empty() {
        return 0;
    }
    let now = crate::now_ms().max(0) as u64;
    let q = &services.quotas;
    let mut throttle = 0;
    if let Some(bytes) = usage.produce_bytes {
        throttle = q.record(quotas, QuotaKind::Produce, client, bytes as f64, now);
    }
    if usage.consumer_fetch {
        if let Some(ResponseKind::Fetch(f)) = response {
            let bytes: usize = f
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
                .sum();
            throttle = q.record(quotas, QuotaKind::Fetch, client, bytes as f64, now);
        }
    }
    if !usage.exempt {
        // Kafka's unit: percent of one thread, per second; a millisecond of one thread
        // is 0.1 of it.
        let percent_ms = busy.as_secs_f64() * 100.0;
        throttle = throttle.max(q.record(quotas, QuotaKind::Request, client, percent_ms, now));
    }
    if throttle > 0 {
        let ms = i32::try_from(throttle).unwrap_or(i32::MAX);
        match response {
            Some(ResponseKind::Produce(r)) => r.throttle_time_ms = r.throttle_time_ms.max(ms),
            Some(ResponseKind::Fetch(r)) => r.throttle_time_ms = r.throttle_time_ms.max(ms),
            _ => {}
        }
    }
    throttle
}

/// Runs a pinned future and adds the time spent in its `poll` to `spent` (no allocation:
/// the caller pins the future on its stack).
pub struct Busy<'a, F> {
    inner: Pin<&'a mut F>,
    spent: &'a mut Duration,
}

impl<'a, F: Future> Busy<'a, F> {
    pub fn new(inner: Pin<&'a mut F>, spent: &'a mut Duration) -> Busy<'a, F> {
        Busy { inner, spent }
    }
}

impl<F: Future> Future for Busy<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let started = Instant::now();
        let out = this.inner.as_mut().poll(cx);
        *this.spent += started.elapsed();
        out
    }
}
