//! The broker's state: effective configuration, the controller handle, and the
//! partitions hosted here. Handlers in `server/` call into this module; it calls down
//! into `strata-log` and `strata-controller` and never sees a Kafka request.
//!
//! Metadata flows one way: a change is proposed to the controller, committed through
//! the Raft log, and then *applied* here by [`Broker::apply_image`], which opens,
//! reconfigures or deletes logs to match. Handlers that change metadata call
//! `apply_image` with the image their proposal returned, so a created topic is usable
//! as soon as CreateTopics answers.

mod cluster;
mod fetcher;
mod partition;
mod producer_ids;
mod recover;
pub mod replica;
mod tasks;
mod tier;
mod topics;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use strata_config::{BrokerConfig, ConfigError, Configs, Listener, TopicConfig};
use strata_controller::{Controller, ControllerError, MetadataImage, PartitionMeta, TopicMeta};
use strata_log::{Log, LogConfig, LogError, TimestampType};
use uuid::Uuid;

pub use partition::{AppendError, Partition, TopicPartition};
pub use recover::{RecoverError, RecoverOptions, RecoveryReport};
pub(crate) use tasks::off_worker;
pub use tier::{FaultInjectionUnavailable, Tier, TierOpenError};
pub use topics::{validate_topic_name, NewTopic};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("topic '{topic}' does not exist; create it or enable auto.create.topics.enable")]
    UnknownTopic { topic: String },
    #[error("topic id {id} does not exist")]
    UnknownTopicId { id: Uuid },
    #[error("partition {partition} of topic '{topic}' does not exist (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        count: i32,
    },
    #[error("{tp}: this broker is not the leader (leader: {leader}); refresh metadata")]
    NotLeader { tp: TopicPartition, leader: i32 },
    #[error(
        "{tp}: only {isr} in-sync replicas and min.insync.replicas is {min}; acks=all produce \
         refused until replicas catch up"
    )]
    NotEnoughReplicas {
        tp: TopicPartition,
        isr: usize,
        min: i32,
    },
    #[error("{tp}: the in-sync replicas did not confirm offset {offset} within {timeout_ms} ms")]
    ReplicationTimeout {
        tp: TopicPartition,
        offset: i64,
        timeout_ms: i32,
    },
    #[error("invalid topic name '{topic}': {reason}")]
    InvalidTopic { topic: String, reason: String },
    #[error("replication factor {requested} is larger than the {brokers} available broker(s)")]
    InvalidReplicationFactor { requested: i16, brokers: usize },
    #[error("invalid partition count for '{topic}': {reason}")]
    InvalidPartitions { topic: String, reason: String },
    #[error("invalid replica assignment for '{topic}': {reason}")]
    InvalidReplicaAssignment { topic: String, reason: String },
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    DeletionDisabled,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error("{tp}: {source}")]
    Log {
        tp: TopicPartition,
        source: LogError,
    },
    #[error("cannot open the log of {tp} in {dir}: {source}")]
    OpenLog {
        tp: TopicPartition,
        dir: PathBuf,
        source: LogError,
    },
}

/// A topic as applied on this broker.
pub struct TopicState {
    pub meta: TopicMeta,
    pub config: TopicConfig,
    /// The replicas hosted on this broker, by partition index (leaders and followers).
    pub partitions: Vec<Arc<Partition>>,
}

impl TopicState {
    pub fn hosted(&self, partition: i32) -> Option<&Arc<Partition>> {
        self.partitions.iter().find(|p| p.tp.partition == partition)
    }
}

pub struct Broker {
    pub configs: Configs,
    config: RwLock<Arc<BrokerConfig>>,
    pub controller: Controller,
    /// The listener clients are told to connect to; its port is the bound one.
    pub advertised: Listener,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicState>>>,
    topic_ids: RwLock<HashMap<Uuid, Arc<str>>>,
    /// Serialises `apply_image` so that two appliers never open the same log twice.
    apply_lock: Mutex<()>,
    producer_ids: producer_ids::ProducerIds,
    /// The remote tier, when `remote.log.storage.system.enable` (set once at startup).
    tier: OnceLock<Arc<Tier>>,
    /// Replica fetchers, one per leader this broker follows.
    fetchers: fetcher::Fetchers,
    /// When followers last synced their tiered partitions with the bucket (see `tier.rs`).
    follower_tier_sync: Mutex<Option<std::time::Instant>>,
    /// Set by controlled shutdown, so that this node does not unfence itself again.
    shutting_down: std::sync::atomic::AtomicBool,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn log_config(t: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: t.segment_bytes,
        segment_ms: t.segment_ms,
        segment_index_bytes: t.segment_index_bytes,
        index_interval_bytes: t.index_interval_bytes,
        retention_ms: t.retention_ms,
        retention_bytes: t.retention_bytes,
        max_message_bytes: t.max_message_bytes,
        timestamp_type: if t.log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        flush_messages: t.flush_messages,
        flush_ms: t.flush_ms,
    }
}

impl Broker {
    pub fn new(
        configs: Configs,
        config: BrokerConfig,
        controller: Controller,
        advertised: Listener,
    ) -> Arc<Broker> {
        Arc::new(Broker {
            configs,
            config: RwLock::new(Arc::new(config)),
            controller,
            advertised,
            topics: RwLock::new(HashMap::new()),
            topic_ids: RwLock::new(HashMap::new()),
            apply_lock: Mutex::new(()),
            producer_ids: Default::default(),
            tier: OnceLock::new(),
            fetchers: Default::default(),
            follower_tier_sync: Mutex::new(None),
            shutting_down: Default::default(),
        })
    }

    pub fn tier(&self) -> Option<&Arc<Tier>> {
        self.tier.get()
    }

    /// Installs the remote tier; call before the first `apply_image`.
    pub fn set_tier(&self, tier: Tier) {
        let _ = self.tier.set(Arc::new(tier));
    }

    pub fn config(&self) -> Arc<BrokerConfig> {
        self.config.read().clone()
    }

    pub fn node_id(&self) -> i32 {
        self.config.read().node_id
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_name_by_id(&self, id: Uuid) -> Option<Arc<str>> {
        self.topic_ids.read().get(&id).cloned()
    }

    pub fn topic_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.topics.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// The replica of `topic`/`partition` hosted here (leader or follower).
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, BrokerError> {
        let state = self.topic(topic).ok_or_else(|| BrokerError::UnknownTopic {
            topic: topic.to_string(),
        })?;
        if let Some(p) = state.hosted(partition) {
            return Ok(p.clone());
        }
        match state.meta.partition(partition) {
            Some(m) => Err(BrokerError::NotLeader {
                tp: TopicPartition {
                    topic: Arc::from(topic),
                    partition,
                },
                leader: m.leader,
            }),
            None => Err(BrokerError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                count: state.meta.partitions,
            }),
        }
    }

    /// The hosted replica of `topic`/`partition` if this broker leads it.
    pub fn leader_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, BrokerError> {
        let p = self.partition(topic, partition)?;
        let meta = p.meta();
        if meta.leader != self.node_id() {
            return Err(BrokerError::NotLeader {
                tp: p.tp.clone(),
                leader: meta.leader,
            });
        }
        Ok(p)
    }

    /// Replicas and leadership of a partition: from metadata, or for a topic placed before
    /// brokers registered (a single-node log from an older version), this broker alone.
    pub fn partition_meta(&self, meta: &TopicMeta, partition: i32) -> PartitionMeta {
        meta.partition(partition).cloned().unwrap_or_else(|| {
            let node = self.node_id();
            PartitionMeta::new(vec![node], |_| false)
        })
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Brings the hosted partitions in line with a committed metadata image: opens logs
    /// of new topics and partitions, applies changed configs, deletes removed topics.
    pub fn apply_image(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let _guard = self.apply_lock.lock();
        let broker = self.configs.broker(&image.broker_configs)?;
        *self.config.write() = Arc::new(broker);

        let current: Vec<Arc<str>> = self.topics.read().keys().cloned().collect();
        for name in current {
            let keep = image
                .topics
                .get(&*name)
                .map(|m| Some(m.id) == self.topic(&name).map(|t| t.meta.id));
            if keep != Some(true) {
                self.remove_topic(&name);
            }
        }
        for meta in image.topics.values() {
            self.apply_topic(image, meta)?;
        }
        Ok(())
    }

    fn apply_topic(&self, image: &MetadataImage, meta: &TopicMeta) -> Result<(), BrokerError> {
        let config = self.configs.topic(&image.broker_configs, &meta.configs)?;
        let existing = self.topic(&meta.name);
        if let Some(t) = &existing {
            if t.meta == *meta && t.config == config {
                return Ok(());
            }
            if t.config.remote_storage_enable
                && !config.remote_storage_enable
                && config.remote_log_delete_on_disable
            {
                tracing::info!(topic = %meta.name, "remote storage disabled with remote.log.delete.on.disable: deleting remote data");
                self.delete_remote(&t.partitions);
            }
        }
        let name: Arc<str> = Arc::from(meta.name.as_str());
        let node = self.node_id();
        let now = now_ms();
        let mut partitions = Vec::with_capacity(meta.partitions.max(0) as usize);
        for p in 0..meta.partitions {
            let pmeta = self.partition_meta(meta, p);
            if !pmeta.replicas.contains(&node) {
                continue;
            }
            let reuse = existing.as_ref().and_then(|t| t.hosted(p).cloned());
            let partition = match reuse {
                Some(part) => {
                    part.log.update_config(log_config(&config));
                    let changed = part.update_meta(pmeta.clone(), now);
                    if changed {
                        tracing::info!(tp = %part.tp, leader = pmeta.leader, leader_epoch = pmeta.leader_epoch, isr = ?pmeta.isr, "leadership changed");
                    }
                    part
                }
                None => self.open_partition(&name, p, meta.id, &config, pmeta.clone())?,
            };
            self.fetchers.follow(&partition, &pmeta, node);
            partitions.push(partition);
        }
        let state = Arc::new(TopicState {
            meta: meta.clone(),
            config,
            partitions,
        });
        self.topics.write().insert(name.clone(), state);
        self.topic_ids.write().insert(meta.id, name);
        let was_tiered = existing.is_some_and(|t| t.config.remote_storage_enable);
        self.topic_applied(&meta.name, was_tiered);
        Ok(())
    }

    fn open_partition(
        &self,
        topic: &Arc<str>,
        partition: i32,
        topic_id: Uuid,
        config: &TopicConfig,
        meta: PartitionMeta,
    ) -> Result<Arc<Partition>, BrokerError> {
        let tp = TopicPartition {
            topic: topic.clone(),
            partition,
        };
        let dir = self.partition_dir(&tp);
        let log = Log::open(dir.clone(), log_config(config), now_ms()).map_err(|source| {
            BrokerError::OpenLog {
                tp: tp.clone(),
                dir: dir.clone(),
                source,
            }
        })?;
        topics::write_partition_metadata(&dir, topic_id);
        tracing::info!(%tp, dir = %dir.display(), log_end_offset = log.log_end_offset(), "opened partition");
        Ok(Arc::new(Partition::new(
            tp,
            topic_id,
            log,
            self.node_id(),
            meta,
        )))
    }

    /// The directory of a partition: an existing one in any of `log.dirs`, else a new
    /// one in the first log dir (single-dir placement is enough until JBOD balancing).
    fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        let name = strata_log::partition_dir_name(&tp.topic, tp.partition);
        let dirs = self.config().log_dirs.clone();
        dirs.iter()
            .map(|d| d.join(&name))
            .find(|p| p.exists())
            .unwrap_or_else(|| dirs[0].join(&name))
    }

    fn remove_topic(&self, name: &str) {
        let Some(state) = self.topics.write().remove(name) else {
            return;
        };
        self.topic_ids.write().remove(&state.meta.id);
        if state.config.remote_storage_enable {
            self.delete_remote(&state.partitions);
        }
        for p in &state.partitions {
            self.fetchers.unfollow(&p.tp);
            p.notify_deleted();
            let dir = self.partition_dir(&p.tp);
            if let Err(e) = topics::delete_partition_dir(&dir) {
                tracing::warn!(tp = %p.tp, dir = %dir.display(), error = %e, "could not delete partition directory; remove it by hand");
            } else {
                tracing::info!(tp = %p.tp, "deleted partition");
            }
        }
    }

    /// Log dirs as configured, for DescribeLogDirs.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.config().log_dirs.clone()
    }

    /// Flushes and closes every log so the next start skips recovery.
    pub fn close_logs(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.log.close() {
                tracing::warn!(tp = %p.tp, error = %e, "clean close failed; the next start will recover this log");
            }
        }
    }

    pub fn dynamic_broker_configs(&self) -> BTreeMap<String, String> {
        self.image().broker_configs.clone()
    }
}
