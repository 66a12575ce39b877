//! Offset lookups: ListOffsets, OffsetForLeaderEpoch and DeleteRecords, across both tiers.
//!
//! ListOffsets answers the special timestamps (-1 latest, -2 earliest, -3 max timestamp,
//! -4 earliest local, -5 latest tiered) and lookups by timestamp through the time index.
//! A lookup by timestamp needs the first *record* with a timestamp at or after the target,
//! so the one batch the log finds is decoded here (decompressing if needed): the read path
//! never decodes, this admin path decodes one batch.
//!
//! On a tiered partition a timestamp is looked up in the remote tier first (through the
//! remote time index), then locally, as Kafka does; -3 compares the remote segments' max
//! timestamps with the local ones and looks where the largest is.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::records::RecordBatchDecoder;

use super::{Partition, ReplicaError, ReplicaManager};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// One partition of a ListOffsets.
pub struct OffsetQuery {
    pub topic: Arc<str>,
    pub partition: i32,
    /// A timestamp, or one of the special values in the module docs.
    pub timestamp: i64,
    /// `isolation_level=1`: -1 answers the last stable offset, and a record found by
    /// timestamp counts only below it (Kafka's `lastFetchableOffset`).
    pub read_committed: bool,
}

pub struct OffsetAnswer {
    /// The current leader epoch (KIP-320), -1 when this node is not the leader.
    pub leader_epoch: i32,
    /// (offset, timestamp); -1 for either means "none", as Kafka answers.
    pub result: Result<(i64, i64), ReplicaError>,
}

impl ReplicaManager {
    /// ListOffsets, answered by the leader in the order of `queries`.
    pub async fn list_offsets(&self, queries: &[OffsetQuery]) -> Vec<OffsetAnswer> {
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            out.push(self.list_offset(q).await);
        }
        out
    }

    async fn list_offset(&self, q: &OffsetQuery) -> OffsetAnswer {
        let part = match self.leader_partition(&q.topic, q.partition) {
            Ok(part) => part,
            Err(e) => {
                return OffsetAnswer {
                    leader_epoch: -1,
                    result: Err(e),
                }
            }
        };
        let remote = match q.timestamp {
            ts if ts >= 0 => self.remote_lookup(&part, ts).await,
            MAX_TIMESTAMP => self.remote_max_timestamp(&part).await,
            _ => Ok(None),
        };
        let result = match remote {
            Ok(Some(found)) => Ok(found),
            Err(e) => Err(e),
            Ok(None) if q.read_committed && q.timestamp == LATEST => {
                Ok((part.last_stable_offset(), -1))
            }
            Ok(None) => local_lookup(&part, q.timestamp),
        };
        let result = match result {
            // A record found by timestamp at or past the last stable offset is not yet
            // readable by a read_committed consumer: none, as Kafka answers.
            Ok((offset, _))
                if q.read_committed && q.timestamp >= 0 && offset >= part.last_stable_offset() =>
            {
                Ok((-1, -1))
            }
            other => other,
        };
        OffsetAnswer {
            leader_epoch: part.meta().leader_epoch,
            result,
        }
    }

    /// OffsetForLeaderEpoch (KIP-101/279/320): where `leader_epoch` ends in this leader's log,
    /// as (epoch, end offset), from the log's leader epoch cache; `None` for an epoch older than
    /// the cache (answered UNDEFINED). Followers ask it after a leader change, to truncate
    /// records the new leader never had; consumers, to validate their position.
    pub fn end_offset_for_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<Option<(i32, i64)>, ReplicaError> {
        let part = self.leader_partition(topic, partition)?;
        part.check_leader_epoch(current_leader_epoch)?;
        Ok(part.log.end_offset_for_epoch(leader_epoch))
    }

    /// DeleteRecords: local log first (it refuses offsets past the end), then the remote tier.
    /// Returns the partition's new log start offset over both tiers (the low watermark).
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, ReplicaError> {
        let part = self.partition(topic, partition)?;
        part.log
            .delete_records_before(offset)
            .map_err(|e| ReplicaError::log(&part.tp, e))?;
        let target = if offset == -1 {
            part.high_watermark()
        } else {
            offset
        };
        let Some(tier) = self.remote.as_ref() else {
            return Ok(part.log_start_offset());
        };
        if part.remote_manifest().is_none_or(|m| m.segments.is_empty()) {
            return Ok(part.log_start_offset());
        }
        let m = strata_tier::copier::delete_records(&*tier.store, &part.tier_key(), target)
            .await
            .map_err(|e| ReplicaError::remote(&part.tp, target, e))?;
        part.set_remote_manifest(m);
        Ok(part.log_start_offset())
    }

    /// A timestamp lookup in the remote tier: `Ok(None)` when it has no batch at or
    /// after `ts` (or the partition is not tiered).
    async fn remote_lookup(
        &self,
        part: &Partition,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, ReplicaError> {
        let (Some(tier), Some(m)) = (self.remote.as_ref(), part.remote_manifest()) else {
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
                Err(ReplicaError::remote(&part.tp, ts, e))
            }
        }
    }

    /// ListOffsets -3 (KIP-734) on a tiered partition: when the largest timestamp is in
    /// the remote tier (at least as large as any local one: on a tie the earlier offset
    /// wins, and remote offsets are earlier), the first record holding it, found through
    /// the segment manifests' max timestamps and the remote time index. `Ok(None)` leaves
    /// the answer to the local log.
    async fn remote_max_timestamp(
        &self,
        part: &Partition,
    ) -> Result<Option<(i64, i64)>, ReplicaError> {
        let (Some(tier), Some(m)) = (self.remote.as_ref(), part.remote_manifest()) else {
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
            Ok(Some(batch)) => {
                Ok(max_record(batch).map(|(o, t)| (o.max(part.log_start_offset()), t)))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(tp = %part.tp, error = %e, "remote max-timestamp lookup failed");
                Err(ReplicaError::remote(&part.tp, remote_max, e))
            }
        }
    }
}

/// Returns (offset, timestamp); -1 for either means "none", as Kafka answers.
fn local_lookup(part: &Partition, timestamp: i64) -> Result<(i64, i64), ReplicaError> {
    let log = &part.log;
    let fail = |e| {
        let err = ReplicaError::log(&part.tp, e);
        tracing::warn!(error = %err, "list offsets failed");
        err
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
        ts if ts < 0 => Err(ReplicaError::InvalidTimestamp {
            tp: part.tp.clone(),
            timestamp: ts,
        }),
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

pub(crate) fn first_at_or_after(batch: Bytes, ts: i64) -> Option<(i64, i64)> {
    records(batch)?.into_iter().find(|&(_, t)| t >= ts)
}

pub(crate) fn max_record(batch: Bytes) -> Option<(i64, i64)> {
    // The first record holding the largest timestamp, as Kafka (KIP-734) answers.
    records(batch)?
        .into_iter()
        .fold(None, |best, (o, t)| match best {
            Some((_, bt)) if bt >= t => best,
            _ => Some((o, t)),
        })
}
