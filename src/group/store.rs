//! `__consumer_offsets` as the coordinator's storage: creating the topic, appending
//! commit and group records to a group's partition, waiting until the ISR has them,
//! and replaying a partition into memory. The log cleaner compacts the topic
//! (`cleanup.policy=compact`), keeping the latest record of every key; replay is "last write
//! wins, tombstones delete", so it reads a cleaned log and an uncleaned one alike.
//!
//! Every call the coordinator makes for its storage is in this file: the partitions come
//! from the replica manager (`ReplicaManager::partition`, `Partition::append`,
//! `Partition::wait_replicated`, the partition's log), topic metadata and the `offsets.*`
//! settings from the metadata cache; the topic is created through the broker's topic
//! administration once, at start. Leadership is read in `ownership.rs` through this file.
//!
//! [`OffsetsTopic`] holds no state and takes no lock. Its callers hold the coordinator
//! mutex across a decision and the append that records it, so the order of records in
//! the log is the order of decisions, which replay relies on ("last write wins").
//!
//! Dependencies point down: `codec.rs` (record schemas, batches, placement),
//! `offsets.rs` (replay fills the offset cache), `crate::replica` and `crate::metadata`. `driver.rs`,
//! `commits.rs` and `ownership.rs` call it; it never calls them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::codec::{self, GroupSnapshot, Key, OffsetValue};
use super::codec_consumer::{self, ConsumerGroupRecords};
use super::offsets::OffsetStore;
use super::GroupError;
use crate::broker::{Broker, BrokerError};
use crate::internal_topic::InternalTopic;
use crate::now_ms;
use crate::replica::{Partition, ReplicaError};

/// Kafka's internal topic for committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A key and its value (`None`: a tombstone), encoded with `codec.rs`.
pub(super) type Record = (Bytes, Option<Bytes>);

/// The group metadata a replay found: the last value of each group (`None`: deleted).
pub(super) type ReplayedGroups = HashMap<String, Option<GroupSnapshot>>;

/// A transactional offset waiting for its marker: group, topic, partition, value.
pub(super) type PendingOffset = (String, String, i32, OffsetValue);

/// What [`OffsetsTopic::replay`] read from one partition besides committed offsets.
pub(super) struct Replay {
    pub(super) groups: ReplayedGroups,
    /// KIP-848 consumer groups' records, by group.
    pub(super) consumer: HashMap<String, ConsumerGroupRecords>,
    pub(super) records: u64,
    /// Transactional offsets whose transaction has no marker yet, by producer id.
    pub(super) pending: HashMap<i64, Vec<PendingOffset>>,
}

/// Records appended to a group's partition, for [`OffsetsTopic::wait_replicated`].
pub(crate) struct Appended {
    part: Arc<Partition>,
    /// The offset after the last record appended.
    end: i64,
}

pub(super) struct OffsetsTopic {
    topic: InternalTopic,
}

/// The shared lookups (partition of a group, hosted replicas, leaders) and the node's
/// metadata and replicas.
impl std::ops::Deref for OffsetsTopic {
    type Target = InternalTopic;

    fn deref(&self) -> &InternalTopic {
        &self.topic
    }
}

impl OffsetsTopic {
    /// Creates `__consumer_offsets` unless it exists (`offsets.topic.num.partitions`,
    /// `offsets.topic.segment.bytes`).
    pub(super) async fn open(broker: &Broker) -> Result<OffsetsTopic, BrokerError> {
        let partitions = broker.config().offsets_topic_num_partitions;
        let segment_bytes = broker.config().offsets_topic_segment_bytes;
        let configs = BTreeMap::from([
            // Compacted by the log cleaner; a compact-only topic has no time or size
            // retention.
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), segment_bytes.to_string()),
        ]);
        broker
            // Kafka's offsets.topic.replication.factor (3).
            .ensure_internal_topic(OFFSETS_TOPIC, partitions, 3, configs)
            .await?;
        Ok(OffsetsTopic {
            topic: InternalTopic::new(
                OFFSETS_TOPIC,
                broker.metadata.clone(),
                broker.replicas.clone(),
            ),
        })
    }

    /// Appends `records` of `group` to its partition as one batch, as the leader.
    pub(super) fn append(&self, group: &str, records: Vec<Record>) -> Result<Appended, GroupError> {
        let index = self
            .partition_of(group)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let storage = |reason: String| GroupError::Storage {
            group: group.to_string(),
            partition: index,
            reason,
        };
        let part = self.partition(index).map_err(|e| storage(e.to_string()))?;
        let now = now_ms();
        let batch = codec::batch(&records, now).map_err(storage)?;
        let info = part
            .append(&batch, now)
            .map_err(|e| storage(e.to_string()))?;
        Ok(Appended {
            part,
            end: info.last_offset + 1,
        })
    }

    /// Appends the transactional offset records of `producer` (id, epoch) for `group`
    /// (TxnOffsetCommit), as Kafka writes them: a transactional batch that the
    /// transaction's marker commits or aborts. `next_seq` remembers each producer's next
    /// sequence on this node; a guess the log refuses is corrected from its answer.
    pub(super) fn append_txn(
        &self,
        group: &str,
        producer: (i64, i16),
        records: Vec<Record>,
        next_seq: &mut HashMap<i64, i32>,
    ) -> Result<Appended, GroupError> {
        use strata_log::{LogError, ProducerError};
        let index = self
            .partition_of(group)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let storage = |reason: String| GroupError::Storage {
            group: group.to_string(),
            partition: index,
            reason,
        };
        let part = self.partition(index).map_err(|e| storage(e.to_string()))?;
        let now = now_ms();
        let mut seq = next_seq.get(&producer.0).copied().unwrap_or(0);
        for _ in 0..3 {
            let batch = codec::producer_batch(&records, now, Some((producer.0, producer.1, seq)))
                .map_err(storage)?;
            match part.append(&batch, now) {
                // The guess matched one of the producer's earlier batches (this node lost
                // its sequence on a restart): nothing was written. A guess far away is
                // refused with the expected sequence, which the next round uses.
                Ok(info) if info.duplicate => seq = seq.wrapping_add(1 << 20) & i32::MAX,
                Ok(info) => {
                    let next = seq.wrapping_add(records.len() as i32) & i32::MAX;
                    next_seq.insert(producer.0, next);
                    return Ok(Appended {
                        part,
                        end: info.last_offset + 1,
                    });
                }
                Err(ReplicaError::Log {
                    source:
                        LogError::Producer {
                            source: ProducerError::OutOfOrderSequence { expected, .. },
                            ..
                        },
                    ..
                }) => seq = expected,
                Err(ReplicaError::Log {
                    source:
                        LogError::Producer {
                            source: ProducerError::InvalidProducerEpoch { .. },
                            ..
                        },
                    ..
                }) => {
                    return Err(GroupError::ProducerFenced {
                        group: group.to_string(),
                        producer_id: producer.0,
                        epoch: producer.1,
                    })
                }
                Err(e) => return Err(storage(e.to_string())),
            }
        }
        Err(storage("the producer's sequence kept changing".into()))
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

    /// Replays `part` from its log start: committed offsets go into `offsets` as they
    /// are read; group metadata is returned. The caller holds the coordinator mutex.
    /// An undecodable batch ends the replay of the partition with a warning.
    pub(super) fn replay(
        &self,
        part: &Partition,
        offsets: &mut OffsetStore,
    ) -> Result<Replay, ReplicaError> {
        let mut groups = HashMap::new();
        let mut consumer = HashMap::new();
        let mut pending: HashMap<i64, Vec<PendingOffset>> = HashMap::new();
        let mut records = 0u64;
        let mut offset = part.log.log_start_offset();
        let end = part.log.log_end_offset();
        while offset < end {
            let mut data = part
                .log
                .read(offset, 1 << 20, true)
                .map_err(|source| ReplicaError::log(&part.tp, source))?;
            if data.is_empty() {
                break;
            }
            let sets = match RecordBatchDecoder::decode_all(&mut data) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(tp = %part.tp, offset, error = %e, "undecodable batch in __consumer_offsets; skipping the rest of this partition");
                    break;
                }
            };
            let mut next = offset;
            for set in sets {
                for r in set.records {
                    next = next.max(r.offset + 1);
                    records += 1;
                    if r.control {
                        // A COMMIT (type 1) or ABORT (0) marker of a TxnOffsetCommit.
                        let commit = r
                            .key
                            .as_deref()
                            .is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 1]);
                        for (g, t, p, v) in pending.remove(&r.producer_id).unwrap_or_default() {
                            if commit {
                                offsets.put(&g, &t, p, v);
                            }
                        }
                    } else if r.transactional {
                        hold_record(
                            &mut pending,
                            r.producer_id,
                            r.key.as_deref(),
                            r.value.as_deref(),
                        );
                    } else {
                        let replayed = Replayed {
                            offsets: &mut *offsets,
                            groups: &mut groups,
                            consumer: &mut consumer,
                        };
                        apply_record(replayed, r.key.as_deref(), r.value.as_deref());
                    }
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(Replay {
            groups,
            consumer,
            records,
            pending,
        })
    }

    /// Whether `topic` has partition `partition`; an OffsetCommit names only those. Not
    /// storage, but a lookup in the broker's topics, kept here with the others.
    pub(super) fn has_partition(&self, topic: &str, partition: i32) -> bool {
        self.metadata
            .topic(topic)
            .is_some_and(|t| (0..t.meta.partitions).contains(&partition))
    }

    /// `offsets.retention.minutes`, in milliseconds.
    pub(super) fn retention_ms(&self) -> i64 {
        self.metadata.config().offsets_retention_minutes as i64 * 60_000
    }

    /// `offsets.retention.check.interval.ms`, at least 10 ms.
    pub(super) fn retention_check_interval(&self) -> Duration {
        let every = self
            .metadata
            .config()
            .offsets_retention_check_interval_ms
            .max(10) as u64;
        Duration::from_millis(every)
    }
}

/// Holds a transactional offset record until its producer's marker.
fn hold_record(
    pending: &mut HashMap<i64, Vec<PendingOffset>>,
    producer_id: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let key = key.and_then(codec::decode_key);
    let value = value.and_then(codec::decode_offset);
    if let (
        Some(Key::Offset {
            group,
            topic,
            partition,
        }),
        Some(v),
    ) = (key, value)
    {
        pending
            .entry(producer_id)
            .or_default()
            .push((group, topic, partition, v));
    }
}

/// Where a replay puts what it reads.
struct Replayed<'a> {
    offsets: &'a mut OffsetStore,
    groups: &'a mut ReplayedGroups,
    consumer: &'a mut HashMap<String, ConsumerGroupRecords>,
}

/// Replays one record of `__consumer_offsets`: last write wins, null values delete.
fn apply_record(into: Replayed<'_>, key: Option<&[u8]>, value: Option<&[u8]>) {
    let Replayed {
        offsets,
        groups,
        consumer,
    } = into;
    let Some(key) = key.and_then(codec::decode_key) else {
        tracing::warn!("skipping a __consumer_offsets record with an unreadable key");
        return;
    };
    match (key, value) {
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            None,
        ) => {
            offsets.remove(&group, &topic, partition);
        }
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            Some(v),
        ) => match codec::decode_offset(v) {
            Some(v) => offsets.put(&group, &topic, partition, v),
            None => tracing::warn!(
                group,
                topic,
                partition,
                "skipping an unreadable committed offset"
            ),
        },
        (Key::Group { group }, None) => {
            groups.insert(group, None);
        }
        (Key::Group { group }, Some(v)) => match codec::decode_group(v) {
            Some(s) => {
                groups.insert(group, Some(s));
            }
            None => tracing::warn!(group, "skipping unreadable group metadata"),
        },
        (key, value) => {
            let decoded = match value {
                None => None,
                Some(v) => match codec_consumer::decode_value(&key, v) {
                    Some(v) => Some(v),
                    None => {
                        tracing::warn!(
                            group = key.group(),
                            "skipping an unreadable consumer group record"
                        );
                        return;
                    }
                },
            };
            consumer
                .entry(key.group().to_string())
                .or_default()
                .apply(&key, decoded);
        }
    }
}
