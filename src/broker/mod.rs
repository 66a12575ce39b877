//! The node's assembly and its metadata publisher: the components (the [`MetadataCache`], the
//! [`ReplicaManager`], the [`RemoteLogManager`]) with the controller, and the paths that
//! change metadata: topic administration, liveness and ISR proposals, controlled shutdown,
//! recovery from the bucket. Handlers reach the components directly (through `server::Ctx`);
//! they come here only to change metadata.
//!
//! Metadata flows one way: a change is proposed to the controller, committed through
//! the Raft log, and then *applied* here by [`Broker::apply_image`], which updates the
//! metadata cache and has the replica manager open, reconfigure or remove logs to match.
//! Handlers that change metadata call `apply_image` with the image their proposal returned,
//! so a created topic is usable as soon as CreateTopics answers.

mod cluster;
mod decommission;
pub mod gauges;
mod producer_ids;
mod reassign;
mod recover;
mod tasks;
mod topics;

use std::sync::Arc;

use parking_lot::Mutex;
use strata_config::{BrokerConfig, ConfigError, Configs, Listener};
use strata_controller::{Controller, ControllerError, MetadataImage, TopicMeta};

pub use recover::{RecoverError, RecoverOptions, RecoveryReport};
pub use topics::{validate_topic_name, NewTopic};

use crate::cleaner::LogCleaner;
use crate::metadata::{MetadataCache, TopicState};
use crate::replica::{RemoteTier, ReplicaError, ReplicaManager};
use crate::rlm::RemoteLogManager;

/// Why a metadata change was refused or could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("topic '{topic}' does not exist")]
    UnknownTopic { topic: String },
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
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

pub struct Broker {
    pub metadata: Arc<MetadataCache>,
    pub replicas: Arc<ReplicaManager>,
    /// The RemoteLogManager, when `remote.log.storage.system.enable`.
    pub rlm: Option<Arc<RemoteLogManager>>,
    /// Compacts the logs of topics with `cleanup.policy=compact`.
    pub cleaner: Arc<LogCleaner>,
    pub controller: Controller,
    /// The listener clients are told to connect to; its port is the bound one.
    pub advertised: Listener,
    /// Serialises `apply_image` so that two appliers never open the same log twice.
    apply_lock: Mutex<()>,
    producer_ids: producer_ids::ProducerIds,
    /// Set by controlled shutdown, so that this node does not unfence itself again.
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Broker {
    /// Assembles the components over `controller`; `remote` is the opened remote tier
    /// (`rlm::open_remote`) when `remote.log.storage.system.enable`. Nothing is applied
    /// or started yet: call [`Broker::apply_image`], then [`Broker::spawn_tasks`].
    pub fn new(
        configs: Configs,
        config: BrokerConfig,
        controller: Controller,
        advertised: Listener,
        remote: Option<RemoteTier>,
    ) -> Arc<Broker> {
        let remote_cfg = config.remote.clone();
        let metadata = Arc::new(MetadataCache::new(configs, config, controller.subscribe()));
        let replicas = ReplicaManager::new(metadata.clone(), remote);
        let rlm = RemoteLogManager::new(&remote_cfg, metadata.clone(), replicas.clone());
        let cleaner = LogCleaner::new(metadata.clone(), replicas.clone());
        Arc::new(Broker {
            metadata,
            replicas,
            rlm,
            cleaner,
            controller,
            advertised,
            apply_lock: Mutex::new(()),
            producer_ids: Default::default(),
            shutting_down: Default::default(),
        })
    }

    pub fn config(&self) -> Arc<BrokerConfig> {
        self.metadata.config()
    }

    pub fn node_id(&self) -> i32 {
        self.metadata.node_id()
    }

    /// The latest committed metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    /// Brings this node in line with a committed metadata image: the broker config, then each
    /// topic (opens logs of new topics and partitions, applies changed configs and
    /// leadership, removes deleted topics).
    pub fn apply_image(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let _guard = self.apply_lock.lock();
        let broker = self.metadata.configs.broker(&image.broker_configs)?;
        let cleaner_changed = self.metadata.config().cleaner != broker.cleaner;
        self.metadata.set_config(broker);
        if cleaner_changed {
            self.cleaner.wake();
        }
        for name in self.metadata.topic_names() {
            let keep = image
                .topics
                .get(&*name)
                .map(|m| Some(m.id) == self.metadata.topic(&name).map(|t| t.meta.id));
            if keep != Some(true) {
                self.remove_topic(&name);
            }
        }
        // One line for all the logs an image opens (at startup, every partition of the
        // node), not one per partition: the start of a broker should read at a glance.
        let started = std::time::Instant::now();
        let mut opened = 0;
        for meta in image.topics.values() {
            opened += self.apply_topic(image, meta)?;
        }
        if opened > 0 {
            tracing::info!(
                partitions = opened,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "opened partition logs"
            );
        }
        Ok(())
    }

    /// Returns how many partition logs it opened.
    fn apply_topic(&self, image: &MetadataImage, meta: &TopicMeta) -> Result<usize, BrokerError> {
        let config = self
            .metadata
            .configs
            .topic(&image.broker_configs, &meta.configs)?;
        let existing = self.metadata.topic(&meta.name);
        if let Some(t) = &existing {
            if t.meta == *meta && t.config == config {
                return Ok(0);
            }
            if t.config.remote_storage_enable
                && !config.remote_storage_enable
                && config.remote_log_delete_on_disable
            {
                if let Some(rlm) = &self.rlm {
                    tracing::info!(topic = %meta.name, "remote storage disabled with remote.log.delete.on.disable: deleting remote data");
                    rlm.delete_remote(&self.replicas.topic_partitions(&meta.name));
                }
            }
        }
        let opened = self.replicas.apply_topic(meta, &config)?;
        let compacts = config.compacts();
        self.metadata.put_topic(TopicState {
            meta: meta.clone(),
            config,
        });
        if compacts {
            // A new compacted topic, or new settings: look again now, not after the backoff.
            self.cleaner.wake();
        }
        if let Some(rlm) = &self.rlm {
            let was_tiered = existing.is_some_and(|t| t.config.remote_storage_enable);
            rlm.topic_applied(&meta.name, was_tiered);
        }
        Ok(opened)
    }

    fn remove_topic(&self, name: &str) {
        let Some(state) = self.metadata.remove_topic(name) else {
            return;
        };
        let removed = self.replicas.remove_topic(name);
        if let Some(rlm) = self
            .rlm
            .as_ref()
            .filter(|_| state.config.remote_storage_enable)
        {
            rlm.delete_remote(&removed);
            // Every node forgets its view of the topic's table; the replicas of partition 0
            // (its maintainers) delete the table, if any, even with iceberg.enable off: a
            // table outlives that setting.
            let delete = state.config.iceberg_delete && removed.iter().any(|p| p.tp.partition == 0);
            rlm.table_topic_deleted(name, delete);
        }
    }

    /// Flushes and closes every log so the next start skips recovery.
    pub fn close_logs(&self) {
        self.replicas.close_logs();
    }
}
