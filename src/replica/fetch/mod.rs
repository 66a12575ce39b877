//! Fetch: byte ranges of segment files, as a long poll.
//!
//! The request is answered at once when it has `min_bytes`, an error, or
//! `max_wait_ms` of zero; otherwise it waits for an append to any requested partition
//! (no polling) and re-reads, until `max_wait_ms` has passed. Records are never
//! decoded: the log hands back whole batches as stored.
//!
//! A follower's fetch (replica id >= 0) reads up to the log end and reports its progress to
//! the partition, which moves the ISR and high watermark (see `broker::replica`); a consumer's
//! reads up to the high watermark. Only the leader serves either.
//!
//! Offsets below the local log start offset of a tiered partition are read from the
//! remote tier first, each partition on its own task (so many remote partitions are
//! read in parallel and a slow store never blocks the connection's local work),
//! bounded by `remote.fetch.max.wait.ms`, and answered once `min_bytes` of remote records
//! are in: a read not done by then answers with no records for that partition (the client simply fetches again, and the read keeps
//! warming the chunk cache), and a failed one with KAFKA_STORAGE_ERROR for that
//! partition only.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::Ctx;
use crate::broker::{BrokerError, Partition};
use crate::server::error_code;
use crate::server::errors::{log_code, tier_code};

/// Remote read results by (topic index, partition index) in the request.
type RemoteReads = HashMap<(usize, usize), Result<Bytes, ResponseError>>;

/// One requested partition, resolved once per request.
struct Target {
    /// A follower's fetch: read up to the log end, not the high watermark.
    follower: bool,
    index: i32,
    fetch_offset: i64,
    max_bytes: usize,
    partition: Result<Arc<Partition>, ResponseError>,
}

struct TopicTargets {
    name: TopicName,
    id: Uuid,
    partitions: Vec<Target>,
}

pub async fn handle(ctx: &Ctx, req: FetchRequest) -> FetchResponse {
    if req.session_id != 0 && req.session_epoch > 0 {
        // We never hand out sessions (KIP-227 allows a broker to decline), so a client
        // naming one has a stale id: it will fall back to full fetches.
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let replica_id = if ctx.version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let topics: Vec<TopicTargets> = req
        .topics
        .iter()
        .map(|t| resolve(ctx, t, replica_id))
        .collect();
    let read_committed = req.isolation_level == 1;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let remote = read_remote(ctx, &topics, max_bytes, req.min_bytes.max(1) as usize).await;
    loop {
        // Register for wake-ups before reading, so an append in between is not missed.
        let mut waits: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|t| t.partition.as_ref().ok())
            .map(|p| Box::pin(p.appended()))
            .collect();
        for w in waits.iter_mut() {
            w.as_mut().enable();
        }
        let (responses, bytes, errors) = read_all(&topics, &remote, max_bytes, read_committed);
        let done = bytes >= req.min_bytes.max(0) as usize
            || errors
            || req.max_wait_ms <= 0
            || tokio::time::Instant::now() >= deadline
            || waits.is_empty();
        if done {
            record_bytes_out(&topics, &responses);
            return FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
        }
        tokio::select! {
            _ = futures::future::select_all(waits) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn resolve(ctx: &Ctx, t: &FetchTopic, replica_id: i32) -> TopicTargets {
    let follower = replica_id >= 0;
    let now = crate::broker::now_ms();
    let by_id = ctx.version >= 13;
    let name = if by_id {
        ctx.broker
            .topic_name_by_id(t.topic_id)
            .map(|n| n.to_string())
    } else {
        Some(t.topic.0.to_string())
    };
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let partition = match &name {
                None => Err(ResponseError::UnknownTopicId),
                Some(n) => ctx
                    .broker
                    .leader_partition(n, p.partition)
                    .map_err(|e| error_code(&e))
                    .and_then(|part| check_epoch(part, p.current_leader_epoch)),
            };
            let partition = partition.and_then(|part| {
                if follower {
                    follow(&part, replica_id, p.fetch_offset, now)?;
                }
                Ok(part)
            });
            Target {
                follower,
                index: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                partition,
            }
        })
        .collect();
    TopicTargets {
        name: t.topic.clone(),
        id: t.topic_id,
        partitions,
    }
}

/// KIP-320: a fetch naming an older leader epoch is fenced; a newer one means our metadata
/// is behind.
fn check_epoch(part: Arc<Partition>, requested: i32) -> Result<Arc<Partition>, ResponseError> {
    if requested < 0 {
        return Ok(part);
    }
    let current = part.meta().leader_epoch;
    match requested.cmp(&current) {
        std::cmp::Ordering::Less => Err(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Greater => Err(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Equal => Ok(part),
    }
}

/// Records a follower's progress. A follower copies only the leader's local log: below it, on a
/// tiered partition, it is told OFFSET_MOVED_TO_TIERED_STORAGE and starts at the local log start.
fn follow(part: &Partition, replica_id: i32, offset: i64, now: i64) -> Result<(), ResponseError> {
    if offset < part.log.log_start_offset() && part.remote_manifest().is_some() {
        return Err(ResponseError::OffsetMovedToTieredStorage);
    }
    part.on_follower_fetch(replica_id, offset, now);
    Ok(())
}

/// Counts the record bytes of a response that is about to be sent, per topic. The
/// name comes from the resolved partitions: v13+ requests name topics by id only.
fn record_bytes_out(topics: &[TopicTargets], responses: &[FetchableTopicResponse]) {
    for (target, t) in topics.iter().zip(responses) {
        let Some(part) = target
            .partitions
            .iter()
            .find_map(|p| p.partition.as_ref().ok())
        else {
            continue;
        };
        let bytes = t
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, Bytes::len))
            .sum();
        crate::metrics::fetch_bytes(&part.tp.topic, bytes);
    }
}

/// Reads every partition once. Returns the response topics, the bytes gathered, and
/// whether any partition failed (which answers the request at once).
/// Starts a remote read for every partition whose fetch offset is below its local
/// log and in the remote tier, and waits for them up to `remote.fetch.max.wait.ms`.
async fn read_remote(
    ctx: &Ctx,
    topics: &[TopicTargets],
    max_bytes: usize,
    min_bytes: usize,
) -> RemoteReads {
    let mut out = RemoteReads::new();
    let Some(tier) = ctx.broker.tier().cloned() else {
        return out;
    };
    let mut tasks = Vec::new();
    for (ti, t) in topics.iter().enumerate() {
        for (pi, target) in t.partitions.iter().enumerate() {
            let Ok(part) = &target.partition else {
                continue;
            };
            if target.follower {
                continue;
            }
            let Some(m) = part.remote_for(target.fetch_offset) else {
                continue;
            };
            let (tier, offset) = (tier.clone(), target.fetch_offset);
            let limit = target.max_bytes.min(max_bytes);
            let tp = part.tp.clone();
            let task = tokio::spawn(async move {
                let started = std::time::Instant::now();
                let result = tier.reader.read(&m, offset, limit, true).await;
                crate::metrics::tier::remote_fetch(&tp.topic, started.elapsed());
                result.map_err(|e| {
                    tracing::warn!(%tp, offset, error = %e, "remote read failed");
                    tier_code(&e)
                })
            });
            tasks.push(((ti, pi), task));
        }
    }
    // Answer as soon as `min_bytes` of remote records are in (or at the deadline), as a
    // Fetch does for local data: the reads still running go on and warm the chunk cache,
    // so the next Fetch finds them. Waiting for the slowest of many partitions instead
    // would serialize a consumer behind its slowest read.
    let deadline = tokio::time::Instant::now() + tier.fetch_max_wait;
    let keys: Vec<(usize, usize)> = tasks.iter().map(|(at, _)| *at).collect();
    let mut pending: futures::stream::FuturesUnordered<_> = tasks
        .into_iter()
        .map(|(at, task)| async move { (at, task.await) })
        .collect();
    let mut got = 0usize;
    while got < min_bytes {
        let next =
            match tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut pending)).await {
                Ok(Some(next)) => next,
                // All done, or out of time: partial answer, no records for the rest this time.
                Ok(None) | Err(_) => break,
            };
        let (at, joined) = next;
        let result = joined.unwrap_or(Err(ResponseError::KafkaStorageError));
        if let Ok(b) = &result {
            got += b.len();
        }
        out.insert(at, result);
    }
    // Take along the reads that have finished meanwhile, without waiting.
    while let Some(Some((at, joined))) =
        futures::FutureExt::now_or_never(futures::StreamExt::next(&mut pending))
    {
        out.insert(at, joined.unwrap_or(Err(ResponseError::KafkaStorageError)));
    }
    for at in keys {
        out.entry(at).or_insert_with(|| Ok(Bytes::new()));
    }
    out
}

fn read_all(
    topics: &[TopicTargets],
    remote: &RemoteReads,
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let mut out = Vec::with_capacity(topics.len());
    for (ti, t) in topics.iter().enumerate() {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, target) in t.partitions.iter().enumerate() {
            let remaining = max_bytes.saturating_sub(total);
            let data = match remote.get(&(ti, pi)) {
                Some(r) => remote_one(target, r, remaining, total == 0, read_committed),
                None => read_one(target, remaining, total == 0, read_committed),
            };
            if data.error_code != 0 {
                errors = true;
            }
            total += data.records.as_ref().map_or(0, Bytes::len);
            partitions.push(data);
        }
        out.push(
            FetchableTopicResponse::default()
                .with_topic(t.name.clone())
                .with_topic_id(t.id)
                .with_partitions(partitions),
        );
    }
    (out, total, errors)
}

fn remote_one(
    target: &Target,
    result: &Result<Bytes, ResponseError>,
    remaining: usize,
    first: bool,
    read_committed: bool,
) -> PartitionData {
    let Ok(part) = &target.partition else {
        return read_one(target, remaining, first, read_committed);
    };
    let hw = part.high_watermark();
    let base = PartitionData::default()
        .with_partition_index(target.index)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(read_committed.then(Vec::new))
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(part.log_start_offset());
    match result {
        // The first partition with data gets its batch even past max_bytes (KIP-74).
        Ok(records) if first || records.len() <= remaining => {
            base.with_records(Some(records.clone()))
        }
        Ok(_) => base.with_records(Some(Bytes::new())),
        Err(code) => base
            .with_error_code(code.code())
            .with_records(Some(Bytes::new())),
    }
}

fn read_one(target: &Target, remaining: usize, first: bool, read_committed: bool) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(target.index)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(read_committed.then(Vec::new));
    let part = match &target.partition {
        Ok(p) => p,
        Err(code) => {
            return base
                .with_error_code(code.code())
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
        }
    };
    let hw = part.high_watermark();
    let base = base
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(part.log_start_offset());
    let limit = target.max_bytes.min(remaining);
    let upper = if target.follower { i64::MAX } else { hw };
    match part.log.read_up_to(
        part.local_read_offset(target.fetch_offset),
        limit,
        first,
        upper,
    ) {
        Ok(records) => base.with_records(Some(records)),
        Err(e) => {
            let code = log_code(&e);
            let err = BrokerError::Log {
                tp: part.tp.clone(),
                source: e,
            };
            tracing::debug!(error = %err, "fetch failed");
            base.with_error_code(code.code())
                .with_records(Some(Bytes::new()))
        }
    }
}
