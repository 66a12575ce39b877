//! Transaction markers: the partition-leader side of Kafka's WriteTxnMarkers. The transaction
//! coordinator (this node's or another's, over the wire) asks the leader of every partition of
//! a transaction to write a COMMIT or ABORT control batch; the leader writes it as an acks=all
//! append (min.insync.replicas checked, then a wait until the high watermark passes the
//! marker), as Kafka's `ReplicaManager.appendRecords` with origin COORDINATOR.
//!
//! The log checks the marker against its producer state: a producer epoch older than the
//! partition's ([`strata_log::ProducerError::InvalidProducerEpoch`]) or a coordinator epoch
//! older than the last marker's (`CoordinatorFenced`) writes nothing. Once the marker is
//! replicated, the partition's last stable offset has moved past the transaction and
//! read_committed consumers see its records (COMMIT) or drop them (ABORT, listed in the
//! `.txnindex`).

use std::sync::Arc;
use std::time::Duration;

use strata_log::TxnMarkerSpec;

use super::{Partition, ReplicaError, ReplicaManager};

/// One marker to write: the end of `producer_id`'s transaction on each of `partitions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// `(topic, partition)`s of the transaction led by this node.
    pub partitions: Vec<(Arc<str>, i32)>,
}

/// The outcome of one marker on one partition.
#[derive(Debug)]
pub struct MarkerPartitionResult {
    pub topic: Arc<str>,
    pub partition: i32,
    /// `Ok(offset of the marker)` once replicated to the ISR.
    pub result: Result<i64, ReplicaError>,
}

/// The outcomes of one [`TxnMarker`], in the order of its partitions.
#[derive(Debug)]
pub struct MarkerResult {
    pub producer_id: i64,
    pub partitions: Vec<MarkerPartitionResult>,
}

impl ReplicaManager {
    /// Writes each marker on each of its partitions (this node must lead them) and waits,
    /// up to `timeout`, until the in-sync replicas have every marker written. Answers in the
    /// order of `markers` and of their partitions. Errors per partition: unknown topic or
    /// partition, NotLeader, NotEnoughReplicas, the log's producer checks (stale producer or
    /// coordinator epoch), ReplicationTimeout. A marker already written is idempotent in
    /// effect: writing it again ends an empty transaction, as in Kafka.
    pub async fn write_txn_markers(
        &self,
        markers: Vec<TxnMarker>,
        timeout: Duration,
    ) -> Vec<MarkerResult> {
        let now = crate::now_ms();
        let mut waits: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
        let mut results = Vec::with_capacity(markers.len());
        for (m, marker) in markers.iter().enumerate() {
            let spec = TxnMarkerSpec {
                producer_id: marker.producer_id,
                producer_epoch: marker.producer_epoch,
                coordinator_epoch: marker.coordinator_epoch,
                commit: marker.commit,
            };
            let mut parts = Vec::with_capacity(marker.partitions.len());
            for (p, (topic, partition)) in marker.partitions.iter().enumerate() {
                let result = self.write_marker(topic, *partition, spec, now);
                if let Ok((part, offset)) = &result {
                    waits.push((m, p, Arc::clone(part), *offset + 1));
                }
                parts.push(MarkerPartitionResult {
                    topic: Arc::clone(topic),
                    partition: *partition,
                    result: result.map(|(_, offset)| offset),
                });
            }
            results.push(MarkerResult {
                producer_id: marker.producer_id,
                partitions: parts,
            });
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        for (m, p, part, offset) in waits {
            if let Err(e) = part.wait_replicated(offset, deadline, timeout_ms).await {
                tracing::debug!(error = %e, "transaction marker not confirmed");
                results[m].partitions[p].result = Err(e);
            }
        }
        results
    }

    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        spec: TxnMarkerSpec,
        now: i64,
    ) -> Result<(Arc<Partition>, i64), ReplicaError> {
        let part = self.leader_partition(topic, partition)?;
        let isr = part.meta().isr.len();
        let min = self
            .metadata
            .topic(topic)
            .map_or(1, |t| t.config.min_insync_replicas);
        if (isr as i32) < min {
            return Err(ReplicaError::NotEnoughReplicas {
                tp: part.tp.clone(),
                isr,
                min,
            });
        }
        let info = part.append_marker(spec, now).inspect_err(|e| {
            tracing::debug!(error = %e, producer_id = spec.producer_id, "transaction marker refused");
        })?;
        Ok((part, info.base_offset))
    }
}
