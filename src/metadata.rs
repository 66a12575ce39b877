//! The metadata this node has applied: the effective broker configuration, and each topic's
//! committed metadata and resolved configuration, as Kafka's `MetadataCache`.
//!
//! It is written by one place only, `Broker::apply_image` (the metadata publisher), after a
//! change committed through the controller; everything else reads it. It owns no logs and
//! opens no files: the partitions hosted here belong to the replica manager
//! (`crate::replica`), which asks this cache for topic configs and leadership.
//!
//! Dependencies point down: this module uses `strata-config` and the controller's image
//! types only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use strata_config::{BrokerConfig, Configs, TopicConfig};
use strata_controller::{MetadataImage, PartitionMeta, TopicMeta};
use tokio::sync::watch;
use uuid::Uuid;

/// A topic as applied on this node: its committed metadata and its resolved configuration.
pub struct TopicState {
    pub meta: TopicMeta,
    pub config: TopicConfig,
}

pub struct MetadataCache {
    /// The static configuration layers (file, environment, flags), which resolve a topic's
    /// or the broker's effective config against dynamic overrides.
    pub configs: Configs,
    node_id: i32,
    config: RwLock<Arc<BrokerConfig>>,
    /// The controller's latest committed image (which may be ahead of what is applied here).
    committed: watch::Receiver<Arc<MetadataImage>>,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicState>>>,
    topic_ids: RwLock<HashMap<Uuid, Arc<str>>>,
}

impl MetadataCache {
    /// A cache over `committed`, the controller's image channel
    /// (`strata_controller::Controller::subscribe`).
    pub fn new(
        configs: Configs,
        config: BrokerConfig,
        committed: watch::Receiver<Arc<MetadataImage>>,
    ) -> MetadataCache {
        MetadataCache {
            configs,
            node_id: config.node_id,
            config: RwLock::new(Arc::new(config)),
            committed,
            topics: RwLock::new(HashMap::new()),
            topic_ids: RwLock::new(HashMap::new()),
        }
    }

    /// The effective broker configuration (static layers plus dynamic overrides).
    pub fn config(&self) -> Arc<BrokerConfig> {
        self.config.read().clone()
    }

    /// `node.id`, which never changes while the process runs.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The latest committed metadata image: brokers, every topic's assignment, dynamic
    /// configs. Topics may be in it before they are applied here ([`Self::topic`]).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.committed.borrow().clone()
    }

    pub fn dynamic_broker_configs(&self) -> BTreeMap<String, String> {
        self.image().broker_configs.clone()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_name_by_id(&self, id: Uuid) -> Option<Arc<str>> {
        self.topic_ids.read().get(&id).cloned()
    }

    /// Applied topic names, sorted.
    pub fn topic_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.topics.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Replicas and leadership of a partition: from metadata, or for a topic placed before
    /// brokers registered (a single-node log from an older version), this broker alone.
    pub fn partition_meta(&self, meta: &TopicMeta, partition: i32) -> PartitionMeta {
        meta.partition(partition).cloned().unwrap_or_else(|| {
            let node = self.node_id;
            PartitionMeta::new(vec![node], |_| false)
        })
    }

    // ---- written by the metadata publisher (`Broker::apply_image`) only ----

    /// Records the broker config an applied image resolves to.
    pub(crate) fn set_config(&self, config: BrokerConfig) {
        *self.config.write() = Arc::new(config);
    }

    pub(crate) fn put_topic(&self, state: TopicState) -> Arc<TopicState> {
        let name: Arc<str> = Arc::from(state.meta.name.as_str());
        let id = state.meta.id;
        let state = Arc::new(state);
        self.topics.write().insert(name.clone(), state.clone());
        self.topic_ids.write().insert(id, name);
        state
    }

    pub(crate) fn remove_topic(&self, name: &str) -> Option<Arc<TopicState>> {
        let state = self.topics.write().remove(name)?;
        self.topic_ids.write().remove(&state.meta.id);
        Some(state)
    }
}
