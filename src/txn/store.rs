//! `__transaction_state` as the coordinator's storage: creating the topic, appending a
//! transactional id's record to its partition, waiting until the ISR has it, and
//! replaying a partition. The topic is compacted by the log cleaner
//! (`cleanup.policy=compact`); replay is "last write wins, tombstones delete".
//!
//! [`TxnTopic`] holds no state and takes no lock; the driver holds its mutex across a
//! decision and the append that records it, so the log's order is the order of
//! decisions.
//!
//! Dependencies: `codec.rs`, `crate::broker` (topic creation), `crate::replica`,
//! `crate::metadata`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::codec;
use super::state::TxnMeta;
use super::TxnError;
use crate::broker::{Broker, BrokerError};
use crate::internal_topic::InternalTopic;
use crate::now_ms;
use crate::replica::{Partition, ReplicaError};

/// Kafka's internal topic for transaction metadata.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

/// Records appended to an id's partition, for [`TxnTopic::wait_replicated`].
pub(super) struct Appended {
    part: Arc<Partition>,
    end: i64,
}

pub(super) struct TxnTopic {
    topic: InternalTopic,
}

/// The shared lookups (partition of an id, hosted replicas, leaders) and the node's
/// metadata and replicas.
impl std::ops::Deref for TxnTopic {
    type Target = InternalTopic;

    fn deref(&self) -> &InternalTopic {
        &self.topic
    }
}

impl TxnTopic {
    /// Creates `__transaction_state` unless it exists
    /// (`transaction.state.log.num.partitions`, `.replication.factor`, `.min.isr`,
    /// `.segment.bytes`).
    pub(super) async fn open(broker: &Broker) -> Result<TxnTopic, BrokerError> {
        let c = &broker.config().txn;
        let rf = c.state_log_replication_factor;
        let min_isr = c.state_log_min_isr.min(rf as i32).max(1);
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                c.state_log_segment_bytes.to_string(),
            ),
            ("min.insync.replicas".to_string(), min_isr.to_string()),
        ]);
        broker
            .ensure_internal_topic(TXN_STATE_TOPIC, c.state_log_num_partitions, rf, configs)
            .await?;
        Ok(TxnTopic {
            topic: InternalTopic::new(
                TXN_STATE_TOPIC,
                broker.metadata.clone(),
                broker.replicas.clone(),
            ),
        })
    }

    /// Appends `id`'s metadata (None: a tombstone) to its partition as the leader.
    pub(super) fn append(&self, id: &str, meta: Option<&TxnMeta>) -> Result<Appended, TxnError> {
        let index = self
            .partition_of(id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        let storage = |reason: String| TxnError::Storage {
            id: id.to_string(),
            partition: index,
            reason,
        };
        let part = self.partition(index).map_err(|e| storage(e.to_string()))?;
        let now = now_ms();
        let record = (codec::encode_key(id), meta.map(codec::encode_value));
        let batch = crate::group::codec::batch(&[record], now).map_err(storage)?;
        let info = part
            .append(&batch, now)
            .map_err(|e| storage(e.to_string()))?;
        Ok(Appended {
            part,
            end: info.last_offset + 1,
        })
    }

    /// Waits until every ISR member has `appended`, for at most `timeout`.
    pub(super) async fn wait_replicated(
        &self,
        appended: &Appended,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        let deadline = tokio::time::Instant::now() + timeout;
        appended
            .part
            .wait_replicated(appended.end, deadline, timeout.as_millis() as i32)
            .await
    }

    /// Replays `part` from its log start: the last value of every transactional id
    /// (None: deleted). An undecodable batch ends the replay with a warning.
    pub(super) fn replay(
        &self,
        part: &Partition,
    ) -> Result<HashMap<String, Option<TxnMeta>>, ReplicaError> {
        let mut ids = HashMap::new();
        let mut offset = part.log.log_start_offset();
        let end = part.log.log_end_offset();
        while offset < end {
            let mut data: Bytes = part
                .log
                .read(offset, 1 << 20, true)
                .map_err(|source| ReplicaError::log(&part.tp, source))?;
            if data.is_empty() {
                break;
            }
            let sets = match RecordBatchDecoder::decode_all(&mut data) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(tp = %part.tp, offset, error = %e, "undecodable batch in __transaction_state; skipping the rest of this partition");
                    break;
                }
            };
            let mut next = offset;
            for set in sets {
                for r in set.records {
                    next = next.max(r.offset + 1);
                    let Some(id) = r.key.as_deref().and_then(codec::decode_key) else {
                        tracing::warn!(tp = %part.tp, offset = r.offset, "skipping a __transaction_state record with an unreadable key");
                        continue;
                    };
                    match r.value.as_deref() {
                        None => {
                            ids.insert(id, None);
                        }
                        Some(v) => match codec::decode_value(&id, v) {
                            Some(m) => {
                                ids.insert(id, Some(m));
                            }
                            None => {
                                tracing::warn!(tp = %part.tp, offset = r.offset, id, "skipping an unreadable transaction state")
                            }
                        },
                    }
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(ids)
    }

    /// The leader of `topic`-`partition` from the applied metadata (None: unknown
    /// partition; -1: no leader), for markers.
    pub(super) fn leader_of_partition(&self, topic: &str, partition: i32) -> Option<i32> {
        let t = self.metadata.topic(topic)?;
        if !(0..t.meta.partitions).contains(&partition) {
            return None;
        }
        Some(self.metadata.partition_meta(&t.meta, partition).leader)
    }

    /// Whether `topic` has partition `partition`: AddPartitionsToTxn names only those.
    pub(super) fn has_partition(&self, topic: &str, partition: i32) -> bool {
        self.leader_of_partition(topic, partition).is_some()
    }
}
