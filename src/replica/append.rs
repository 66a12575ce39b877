//! The append path: leadership and `acks`/`min.insync.replicas` checks, the write (the log
//! validates each batch once, assigns offsets and deduplicates idempotent producers), and for
//! `acks=all` the wait until the ISR has the records (Kafka's delayed produce).
//!
//! A topic whose `compression.type` names a codec has each produced batch with another
//! codec rewritten before the write (`strata_log::recompress`), as Kafka's LogValidator
//! does, inline on the request like Kafka's handler threads. `producer` (the default)
//! costs nothing, and batches already in the topic's codec one scan of their headers.
//!
//! Hops of a Produce: handler (decode, acks value) -> [`ReplicaManager::append`] ->
//! [`Partition::append`] (leader epoch stamped) -> `Log::append_with_leader_epoch` (validate,
//! dedupe, pwrite) -> wake parked fetches -> for acks=all [`Partition::wait_replicated`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_config::TopicConfig;
use strata_log::{recompress, timestamps, AppendInfo, LogError, RecordError};

use super::{Partition, ReplicaError, ReplicaManager};

/// `acks=all`: wait until every in-sync replica has the records.
pub const ACKS_ALL: i16 = -1;

/// One partition's records in an append.
pub struct AppendEntry {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Record batches as the producer sent them (a slice of the request frame).
    pub records: Bytes,
    /// Transactional batches with KIP-890 verification on: appended only under the
    /// partition's guard check (see [`Partition::append_txn`]).
    pub txn_check: Option<TxnCheck>,
}

/// The producer of a transactional append and the guard its verification left.
#[derive(Debug, Clone, Copy)]
pub struct TxnCheck {
    pub producer_id: i64,
    pub epoch: i16,
    pub token: Option<u64>,
}

/// An append of record batches to several partitions, as one Produce asks.
pub struct AppendRequest {
    /// 0, 1 or [`ACKS_ALL`]; the handler refuses other values.
    pub acks: i16,
    /// How long `acks=all` waits for the ISR before REQUEST_TIMED_OUT.
    pub timeout: Duration,
    pub entries: Vec<AppendEntry>,
}

impl ReplicaManager {
    /// Appends each entry to its partition as the leader; answers in the order of
    /// `req.entries`. With `acks=all` every successful entry is answered once the high
    /// watermark passes it, or with [`ReplicaError::ReplicationTimeout`] at the deadline.
    pub async fn append(&self, req: AppendRequest) -> Vec<Result<AppendInfo, ReplicaError>> {
        let now = crate::now_ms();
        let mut results = Vec::with_capacity(req.entries.len());
        let mut waits: Vec<(usize, Arc<Partition>, i64)> = Vec::new();
        for (i, entry) in req.entries.iter().enumerate() {
            let result = self.append_one(entry, req.acks, now);
            if let Ok((part, info)) = &result {
                if req.acks == ACKS_ALL {
                    waits.push((i, part.clone(), info.last_offset + 1));
                }
            }
            results.push(result.map(|(_, info)| info));
        }
        let deadline = tokio::time::Instant::now() + req.timeout;
        let timeout_ms = req.timeout.as_millis().min(i32::MAX as u128) as i32;
        for (i, part, offset) in waits {
            if let Err(e) = part.wait_replicated(offset, deadline, timeout_ms).await {
                tracing::debug!(error = %e, "acks=all produce not confirmed");
                results[i] = Err(e);
            }
        }
        results
    }

    fn append_one(
        &self,
        entry: &AppendEntry,
        acks: i16,
        now: i64,
    ) -> Result<(Arc<Partition>, AppendInfo), ReplicaError> {
        let part = self.leader_partition(&entry.topic, entry.partition)?;
        let topic = self.metadata.topic(&entry.topic);
        if acks == ACKS_ALL {
            let isr = part.meta().isr.len();
            let min = topic.as_ref().map_or(1, |t| t.config.min_insync_replicas);
            if (isr as i32) < min {
                let err = ReplicaError::NotEnoughReplicas {
                    tp: part.tp.clone(),
                    isr,
                    min,
                };
                tracing::debug!(error = %err, "produce rejected");
                return Err(err);
            }
        }
        let rewritten = match topic.map(|t| leader_checks(&t.config, &entry.records, now)) {
            Some(Err(source)) => {
                let dir = part.log.dir().to_path_buf();
                let err = ReplicaError::log(&part.tp, LogError::Record { dir, source });
                tracing::debug!(error = %err, "produce rejected");
                return Err(err);
            }
            Some(Ok(r)) => r,
            None => None,
        };
        let records = rewritten.as_deref().unwrap_or(&entry.records);
        let appended = match entry.txn_check {
            None => part.append(records, now),
            Some(c) => part.append_txn(records, now, c.producer_id, c.epoch, c.token),
        };
        match appended {
            Ok(info) => {
                crate::metrics::produce_bytes(&part.tp.topic, entry.records.len());
                if info.duplicate {
                    tracing::debug!(tp = %part.tp, base_offset = info.base_offset, "duplicate batch of an idempotent producer; answered with its original offsets");
                }
                Ok((part, info))
            }
            Err(e) => {
                tracing::debug!(error = %e, "produce rejected");
                Err(e)
            }
        }
    }
}

/// What a topic's settings ask of a leader before the write: CreateTime timestamps within
/// `message.timestamp.difference.max.ms` of `now`, then batches in the topic's
/// `compression.type` (`Some` when rewritten).
fn leader_checks(
    config: &TopicConfig,
    records: &[u8],
    now: i64,
) -> Result<Option<Vec<u8>>, RecordError> {
    if !config.log_append_time {
        timestamps::check(records, now, config.message_timestamp_difference_max_ms)?;
    }
    match recompress::codec_of(&config.compression_type) {
        Some(codec) => recompress::recompress(records, codec),
        None => Ok(None),
    }
}
