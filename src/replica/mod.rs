//! The replica manager: the one component that reads and writes the partitions hosted on this
//! node, as Kafka's `ReplicaManager`. Every caller goes through it: the Kafka handlers, the
//! group coordinator's offsets topic, the replica fetchers, the metrics.
//!
//! It owns:
//! - the hosted partitions ([`Partition`]: a `strata_log::Log`, its replication state and
//!   its remote manifest pointer), opened, reconfigured and removed by the metadata
//!   publisher (`Broker::apply_image`) through [`ReplicaManager::apply_topic`] and
//!   [`ReplicaManager::remove_topic`];
//! - the append path ([`ReplicaManager::append`], `append.rs`): leadership, `acks` and
//!   `min.insync.replicas`, idempotence (in the log), waiting for the ISR (delayed produce);
//! - the fetch path ([`ReplicaManager::fetch`], `fetch.rs`): leader-epoch fencing, follower
//!   progress, the high-watermark bound, reads from either tier (remote reads with their
//!   own deadline, `fetch/remote.rs`), the KIP-74 byte limits, and the long poll woken by
//!   appends (delayed fetch);
//! - transaction markers ([`ReplicaManager::write_txn_markers`], `txn_markers.rs`), written
//!   for the transaction coordinator as acks=all appends;
//! - offset lookups ([`ReplicaManager::list_offsets`], OffsetForLeaderEpoch, DeleteRecords,
//!   `offsets.rs`), across both tiers;
//! - the follower side of replication (`fetcher.rs`) and the disk upkeep of the logs
//!   (`upkeep.rs`: retention, time rolls, flushes).
//!
//! It never sees a Kafka request or picks an error code: handlers translate requests into
//! [`AppendRequest`], [`FetchParams`] and [`OffsetQuery`], and `server::errors` turns a
//! [`ReplicaError`] into a code. It reads topic configs and leadership from the
//! [`MetadataCache`] and never proposes metadata changes (the ISR loop in `broker::cluster`
//! does, from the state this module keeps). The remote tier's uploads belong to the
//! RemoteLogManager (`crate::rlm`), which asks this component for the partitions.

mod append;
mod error;
pub(crate) mod fetch;
mod fetcher;
mod moved;
pub(crate) mod offsets;
mod partition;
pub mod reader_pool;
pub mod selector;
pub mod state;
pub mod throttle;
mod txn_markers;
mod upkeep;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use strata_config::TopicConfig;
use strata_controller::{PartitionMeta, TopicMeta};
use strata_log::{Log, LogConfig, TimestampType};
use strata_tier::object_store::ObjectStore;
use strata_tier::RemoteReader;
use uuid::Uuid;

use crate::metadata::MetadataCache;

pub use append::{AppendEntry, AppendRequest, TxnCheck};
pub use error::ReplicaError;
pub use fetch::{
    FetchOrigin, FetchParams, FetchRecords, FetchedPartition, PartitionFetch, TopicRef,
};
pub use offsets::{OffsetAnswer, OffsetQuery};
pub use partition::{Partition, TopicPartition};
pub use txn_markers::{MarkerPartitionResult, MarkerResult, TxnMarker};

/// What the replica manager needs of the remote tier: reads for Fetch and ListOffsets, and
/// the store for DeleteRecords. Uploads are the RemoteLogManager's.
pub struct RemoteTier {
    pub reader: RemoteReader,
    pub store: Arc<dyn ObjectStore>,
    /// The same bucket below client-side encryption (the same store when it is off):
    /// Iceberg tables are written here, since query engines must read them as they are.
    pub table_store: Arc<dyn ObjectStore>,
    /// `remote.fetch.max.wait.ms`: how long a Fetch waits for remote reads.
    pub fetch_max_wait: Duration,
    /// Where remote reads run (`remote.log.reader.*`).
    pub pool: Arc<reader_pool::ReaderPool>,
}

pub struct ReplicaManager {
    metadata: Arc<MetadataCache>,
    /// Held for the process's life: see `strata_log::lock_log_dir`.
    _dir_locks: Vec<strata_log::LogDirLock>,
    /// Hosted replicas (leaders and followers), by topic.
    partitions: RwLock<HashMap<Arc<str>, Vec<Arc<Partition>>>>,
    remote: Option<RemoteTier>,
    /// Replica fetchers, one per leader this node follows.
    fetchers: fetcher::Fetchers,
    /// The leader's and the follower's replication quotas (KIP-73).
    quotas: throttle::ReplicationQuotas,
}

/// The log settings of a topic's resolved config. A topic whose `cleanup.policy` does not
/// include `delete` has no time or size retention at all (`-1`): a compacted topic keeps the
/// latest record of every key forever, whatever `retention.ms` says, as in Kafka. A topic whose
/// policy includes `compact` refuses records without a key on produce (INVALID_RECORD).
pub fn log_config(t: &TopicConfig) -> LogConfig {
    let (retention_ms, retention_bytes) = if t.deletes() {
        (t.retention_ms, t.retention_bytes)
    } else {
        (-1, -1)
    };
    LogConfig {
        segment_bytes: t.segment_bytes,
        segment_ms: t.segment_ms,
        segment_jitter_ms: t.segment_jitter_ms,
        segment_index_bytes: t.segment_index_bytes,
        index_interval_bytes: t.index_interval_bytes,
        retention_ms,
        retention_bytes,
        max_message_bytes: t.max_message_bytes,
        timestamp_type: if t.log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        flush_messages: t.flush_messages,
        flush_ms: t.flush_ms,
        compact: t.compacts(),
    }
}

/// How many logs are closed at once at shutdown (their fsyncs overlap).
const CLOSE_THREADS: usize = 16;

impl ReplicaManager {
    pub fn new(metadata: Arc<MetadataCache>, remote: Option<RemoteTier>) -> Arc<ReplicaManager> {
        // One lock per log dir (Kafka's `.lock`), so partitions take no lock file each;
        // a dir that cannot be locked leaves its partitions to lock their own.
        let dir_locks = metadata
            .config()
            .log_dirs
            .iter()
            .filter_map(|d| match strata_log::lock_log_dir(d) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(dir = %d.display(), error = %e, "could not lock the log dir; each partition locks its own directory");
                    None
                }
            })
            .collect();
        Arc::new(ReplicaManager {
            metadata,
            partitions: RwLock::new(HashMap::new()),
            remote,
            fetchers: Default::default(),
            quotas: Default::default(),
            _dir_locks: dir_locks,
        })
    }

    pub fn metadata(&self) -> &Arc<MetadataCache> {
        &self.metadata
    }

    /// The remote tier's reader, when `remote.log.storage.system.enable`.
    pub fn remote(&self) -> Option<&RemoteTier> {
        self.remote.as_ref()
    }

    /// The replica of `topic`/`partition` hosted here (leader or follower).
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, ReplicaError> {
        let hosted = self
            .partitions
            .read()
            .get(topic)
            .and_then(|ps| ps.iter().find(|p| p.tp.partition == partition).cloned());
        if let Some(p) = hosted {
            return Ok(p);
        }
        let state = self
            .metadata
            .topic(topic)
            .ok_or_else(|| ReplicaError::UnknownTopic {
                topic: topic.to_string(),
            })?;
        match state.meta.partition(partition) {
            Some(m) => Err(ReplicaError::NotLeader {
                tp: TopicPartition {
                    topic: Arc::from(topic),
                    partition,
                },
                leader: m.leader,
            }),
            None => Err(ReplicaError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                count: state.meta.partitions,
            }),
        }
    }

    /// The hosted replica of `topic`/`partition` if this node leads it.
    pub fn leader_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, ReplicaError> {
        let p = self.partition(topic, partition)?;
        let meta = p.meta();
        if meta.leader != self.metadata.node_id() {
            return Err(ReplicaError::NotLeader {
                tp: p.tp.clone(),
                leader: meta.leader,
            });
        }
        Ok(p)
    }

    /// The replicas of `topic` hosted here, in partition order.
    pub fn topic_partitions(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .get(topic)
            .cloned()
            .unwrap_or_default()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .values()
            .flat_map(|ps| ps.iter().cloned())
            .collect()
    }

    /// Partitions this node leads whose ISR is smaller than their replica set (Kafka's
    /// `UnderReplicatedPartitions`, counted by leaders only so a cluster-wide sum counts each
    /// partition once).
    pub fn under_replicated(&self) -> usize {
        let node = self.metadata.node_id();
        self.all_partitions()
            .iter()
            .filter(|p| {
                let m = p.meta();
                m.leader == node && m.isr.len() < m.replicas.len()
            })
            .count()
    }

    /// Brings the replicas of one topic in line with its committed metadata: opens the logs of
    /// partitions newly assigned here, applies config and leadership changes to the others,
    /// and points the replica fetchers at the leaders of the partitions this node follows.
    /// Called by the metadata publisher only. Returns how many logs it opened.
    pub(crate) fn apply_topic(
        &self,
        meta: &TopicMeta,
        config: &TopicConfig,
    ) -> Result<usize, ReplicaError> {
        let name: Arc<str> = Arc::from(meta.name.as_str());
        let existing = self.topic_partitions(&name);
        let node = self.metadata.node_id();
        let now = crate::now_ms();
        let mut hosted = Vec::with_capacity(meta.partitions.max(0) as usize);
        let mut opened = 0;
        let mut failed = None;
        for p in 0..meta.partitions {
            let pmeta = self.metadata.partition_meta(meta, p);
            if !pmeta.replicas.contains(&node) {
                continue;
            }
            let reuse = existing.iter().find(|e| e.tp.partition == p).cloned();
            let partition = match reuse {
                Some(part) => {
                    part.log.update_config(log_config(config));
                    if part.update_meta(pmeta.clone(), now) {
                        tracing::info!(tp = %part.tp, leader = pmeta.leader, leader_epoch = pmeta.leader_epoch, isr = ?pmeta.isr, "leadership changed");
                    }
                    part
                }
                None => match self.open_partition(&name, p, meta.id, config, pmeta.clone()) {
                    Ok(part) => {
                        opened += 1;
                        part
                    }
                    // The others are still opened and registered: returning at the first
                    // failure dropped the logs opened before it from the table while their
                    // fetchers kept them open (and locked), so every later attempt to open
                    // them failed as "already open".
                    Err(e) => {
                        failed.get_or_insert(e);
                        continue;
                    }
                },
            };
            self.fetchers.follow(&partition, &pmeta, node);
            hosted.push(partition);
        }
        let moved: Vec<Arc<Partition>> = existing
            .into_iter()
            .filter(|e| !hosted.iter().any(|h| Arc::ptr_eq(h, e)))
            .collect();
        self.partitions.write().insert(name, hosted);
        self.drop_moved(moved);
        match failed {
            Some(e) => Err(e),
            None => Ok(opened),
        }
    }

    fn open_partition(
        &self,
        topic: &Arc<str>,
        partition: i32,
        topic_id: Uuid,
        config: &TopicConfig,
        meta: PartitionMeta,
    ) -> Result<Arc<Partition>, ReplicaError> {
        let tp = TopicPartition {
            topic: topic.clone(),
            partition,
        };
        let dir = self.partition_dir(&tp);
        let log =
            Log::open(dir.clone(), log_config(config), crate::now_ms()).map_err(|source| {
                ReplicaError::OpenLog {
                    tp: tp.clone(),
                    dir: dir.clone(),
                    source,
                }
            })?;
        write_partition_metadata(&dir, topic_id);
        tracing::debug!(%tp, dir = %dir.display(), log_end_offset = log.log_end_offset(), "opened partition");
        Ok(Arc::new(Partition::new(
            tp,
            topic_id,
            log,
            self.metadata.node_id(),
            meta,
        )))
    }

    /// Stops hosting `topic`: wakes its waiting fetches, stops following its leaders and
    /// deletes its partition directories. Returns the removed replicas (whose remote data the
    /// caller may delete).
    pub(crate) fn remove_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        let removed = self.partitions.write().remove(topic).unwrap_or_default();
        for p in &removed {
            self.drop_replica(p);
        }
        removed
    }

    /// Stops following and serving one replica no longer hosted here and deletes its directory.
    fn drop_replica(&self, p: &Partition) {
        self.fetchers.unfollow(&p.tp);
        p.notify_deleted();
        let dir = self.partition_dir(&p.tp);
        if let Err(e) = delete_partition_dir(&dir) {
            tracing::warn!(tp = %p.tp, dir = %dir.display(), error = %e, "could not delete partition directory; remove it by hand");
        } else {
            tracing::info!(tp = %p.tp, "deleted partition");
        }
    }

    /// The directory of a partition: an existing one in any of `log.dirs`, else a new
    /// one in the first log dir (single-dir placement is enough until JBOD balancing).
    pub(crate) fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        let name = strata_log::partition_dir_name(&tp.topic, tp.partition);
        let dirs = self.metadata.config().log_dirs.clone();
        dirs.iter()
            .map(|d| d.join(&name))
            .find(|p| p.exists())
            .unwrap_or_else(|| dirs[0].join(&name))
    }

    /// Flushes and closes every log so the next start skips recovery.
    ///
    /// A close is a few fsyncs (segment, indexes, checkpoints, producer snapshot), so the
    /// logs are closed by [`CLOSE_THREADS`] threads at once: one by one, 1,000 partitions
    /// took 28-39 s to stop on a loaded disk, 16 at a time a few seconds.
    pub fn close_logs(&self) {
        let partitions = self.all_partitions();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..CLOSE_THREADS.min(partitions.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = partitions.get(i) else {
                        return;
                    };
                    if let Err(e) = p.log.close() {
                        tracing::warn!(tp = %p.tp, error = %e, "clean close failed; the next start will recover this log");
                    }
                });
            }
        });
    }
}

impl crate::metrics::ScrapeSource for ReplicaManager {
    fn partition_offsets(&self) -> Vec<crate::metrics::PartitionOffsets> {
        self.all_partitions()
            .iter()
            .map(|p| crate::metrics::PartitionOffsets {
                topic: p.tp.topic.clone(),
                partition: p.tp.partition,
                log_start_offset: p.log.log_start_offset(),
                log_end_offset: p.log.log_end_offset(),
            })
            .collect()
    }

    /// Without the node (tests, tools): only the partitions led here, from their replica state.
    fn partition_health(&self) -> crate::metrics::PartitionHealthCounts {
        crate::metrics::PartitionHealthCounts {
            under_replicated: ReplicaManager::under_replicated(self),
            ..Default::default()
        }
    }
}

/// Records the topic id beside the log, as Kafka's `partition.metadata` does.
fn write_partition_metadata(dir: &std::path::Path, topic_id: Uuid) {
    let path = dir.join("partition.metadata");
    if path.exists() {
        return;
    }
    let body = format!("version: 0\ntopic_id: {topic_id}\n");
    if let Err(e) = std::fs::write(&path, body) {
        tracing::warn!(path = %path.display(), error = %e, "could not write partition.metadata");
    }
}

pub(crate) fn delete_partition_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
