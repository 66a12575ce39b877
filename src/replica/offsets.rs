//! ListOffsets: special timestamps (-1 latest, -2 earliest, -3 max timestamp,
//! -4 earliest local, -5 latest tiered) and lookups by timestamp through the time index.
//!
//! A lookup by timestamp needs the first *record* with a timestamp at or after the
//! target, so the one batch the log finds is decoded here (decompressing if needed):
//! the read path never decodes, this admin path decodes one batch.
//!
//! On a tiered partition a timestamp is looked up in the remote tier first (through
//! the remote time index), then locally, as Kafka does; -3 compares the remote
//! segments' max timestamps with the local ones and looks where the largest is.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::broker::{BrokerError, Partition};
use crate::server::error_code;
use crate::server::errors::{log_code, tier_code};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut base =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let leader = ctx.broker.leader_partition(&name, p.partition_index);
            if ctx.version >= 4 {
                // The current leader epoch (KIP-320): clients fence stale answers with it.
                let epoch = leader.as_ref().map_or(-1, |part| part.meta().leader_epoch);
                base = base.with_leader_epoch(epoch);
            }
            let remote = match leader {
                Ok(part) if p.timestamp >= 0 => remote_lookup(ctx, &part, p.timestamp).await,
                Ok(part) if p.timestamp == MAX_TIMESTAMP => remote_max_timestamp(ctx, &part).await,
                _ => Ok(None),
            };
            partitions.push(match remote {
                Ok(Some((offset, timestamp))) => base.with_offset(offset).with_timestamp(timestamp),
                Err(code) => base
                    .with_error_code(code.code())
                    .with_offset(-1)
                    .with_timestamp(-1),
                Ok(None) => local_answer(ctx, &name, p.partition_index, p.timestamp, base),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// A timestamp lookup in the remote tier: `Ok(None)` when it has no batch at or
/// after `ts` (or the partition is not tiered).
async fn remote_lookup(
    ctx: &Ctx,
    part: &Partition,
    ts: i64,
) -> Result<Option<(i64, i64)>, ResponseError> {
    let (Some(tier), Some(m)) = (ctx.broker.tier(), part.remote_manifest()) else {
        return Ok(None);
    };
    if m.segments.is_empty() {
        return Ok(None);
    }
    match tier.reader.find_batch_by_timestamp(&m, ts).await {
        Ok(Some(batch)) => {
            Ok(first_at_or_after(batch, ts).map(|(o, t)| (o.max(part.log_start_offset()), t)))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::warn!(tp = %part.tp, error = %e, "remote timestamp lookup failed");
            Err(tier_code(&e))
        }
    }
}

/// ListOffsets -3 (KIP-734) on a tiered partition: when the largest timestamp is in
/// the remote tier (at least as large as any local one: on a tie the earlier offset
/// wins, and remote offsets are earlier), the first record holding it, found through
/// the segment manifests' max timestamps and the remote time index. `Ok(None)` leaves
/// the answer to the local log.
async fn remote_max_timestamp(
    ctx: &Ctx,
    part: &Partition,
) -> Result<Option<(i64, i64)>, ResponseError> {
    let (Some(tier), Some(m)) = (ctx.broker.tier(), part.remote_manifest()) else {
        return Ok(None);
    };
    let floor = m.start_offset().unwrap_or(0);
    let Some(remote_max) = m
        .segments
        .iter()
        .filter(|s| s.next_offset > floor)
        .map(|s| s.max_timestamp)
        .filter(|t| *t >= 0)
        .max()
    else {
        return Ok(None);
    };
    let local_max = part
        .log
        .segments()
        .iter()
        .filter_map(|s| s.max_timestamp)
        .max();
    if local_max.is_some_and(|l| l > remote_max) {
        return Ok(None);
    }
    match tier.reader.find_batch_by_timestamp(&m, remote_max).await {
        Ok(Some(batch)) => Ok(max_record(batch).map(|(o, t)| (o.max(part.log_start_offset()), t))),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::warn!(tp = %part.tp, error = %e, "remote max-timestamp lookup failed");
            Err(tier_code(&e))
        }
    }
}

fn local_answer(
    ctx: &Ctx,
    name: &str,
    index: i32,
    timestamp: i64,
    base: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    match ctx.broker.leader_partition(name, index) {
        Ok(part) => match lookup(&part, timestamp) {
            Ok((offset, timestamp)) => base.with_offset(offset).with_timestamp(timestamp),
            Err(code) => base
                .with_error_code(code.code())
                .with_offset(-1)
                .with_timestamp(-1),
        },
        Err(e) => base
            .with_error_code(error_code(&e).code())
            .with_offset(-1)
            .with_timestamp(-1),
    }
}

/// Returns (offset, timestamp); -1 for either means "none", as Kafka answers.
fn lookup(part: &Partition, timestamp: i64) -> Result<(i64, i64), ResponseError> {
    let log = &part.log;
    let fail = |e| {
        let code = log_code(&e);
        tracing::warn!(error = %BrokerError::Log { tp: part.tp.clone(), source: e }, "list offsets failed");
        code
    };
    match timestamp {
        LATEST => Ok((part.high_watermark(), -1)),
        // With a remote tier, -2 is the remote log start and -4 the local one.
        EARLIEST => Ok((part.log_start_offset(), -1)),
        EARLIEST_LOCAL => Ok((log.log_start_offset(), -1)),
        // The highest offset in the remote tier, -1 when nothing is tiered.
        LATEST_TIERED => Ok((
            part.remote_manifest()
                .and_then(|m| m.end_offset())
                .map_or(-1, |e| e - 1),
            -1,
        )),
        MAX_TIMESTAMP => match log.max_timestamp_batch().map_err(fail)? {
            Some(batch) => Ok(max_record(batch).unwrap_or((-1, -1))),
            None => Ok((-1, -1)),
        },
        ts if ts < 0 => Err(ResponseError::InvalidRequest),
        ts => match log.find_batch_by_timestamp(ts).map_err(fail)? {
            Some(batch) => Ok(first_at_or_after(batch, ts).unwrap_or((-1, -1))),
            None => Ok((-1, -1)),
        },
    }
}

/// Each record's (offset, timestamp) in one stored batch. With LogAppendTime every
/// record carries the batch's max timestamp.
fn records(batch: Bytes) -> Option<Vec<(i64, i64)>> {
    const ATTRIBUTES: usize = 21;
    const MAX_TIMESTAMP_POS: usize = 35;
    if batch.len() < 61 {
        return None;
    }
    let log_append_time = (&batch[ATTRIBUTES..]).get_i16() & 0x08 != 0;
    let max_ts = (&batch[MAX_TIMESTAMP_POS..]).get_i64();
    let mut buf = batch;
    let set = RecordBatchDecoder::decode(&mut buf).ok()?;
    Some(
        set.records
            .iter()
            .filter(|r| !r.control)
            .map(|r| (r.offset, if log_append_time { max_ts } else { r.timestamp }))
            .collect(),
    )
}

fn first_at_or_after(batch: Bytes, ts: i64) -> Option<(i64, i64)> {
    records(batch)?.into_iter().find(|&(_, t)| t >= ts)
}

fn max_record(batch: Bytes) -> Option<(i64, i64)> {
    // The first record holding the largest timestamp, as Kafka (KIP-734) answers.
    records(batch)?
        .into_iter()
        .fold(None, |best, (o, t)| match best {
            Some((_, bt)) if bt >= t => best,
            _ => Some((o, t)),
        })
}
