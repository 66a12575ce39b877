//! The cluster metadata image and the pure function that changes it.
//!
//! Owns: [`MetadataImage`] (what every broker acts on), [`MetadataCommand`] (the payload of a
//! metadata log entry) and [`apply`], the deterministic transition `image x command -> image`.
//!
//! Must never: do I/O, read the clock or draw random numbers. Every voter applies the same log
//! and must reach the same image, so anything non-deterministic (topic ids, the cluster id) is
//! decided by the proposer and carried inside the command.
//!
//! Depends on nothing else in this crate; `state_machine` calls [`apply`] for each committed entry.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

/// One topic as the controller knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level config overrides (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// A broker that registered with the controller.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BrokerMeta {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// The committed cluster metadata, as of the last applied log entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetadataImage {
    /// Kafka-style cluster id (22 characters, URL-safe base64 of a random UUID); empty only
    /// before the first entry of a fresh cluster has been applied.
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker-level config overrides (cluster-wide default entity).
    pub broker_configs: BTreeMap<String, String>,
    pub brokers: BTreeMap<i32, BrokerMeta>,
    /// The first producer id not yet handed out: blocks below it were allocated by
    /// [`MetadataCommand::AllocateProducerIds`] and are never reused.
    #[serde(default)]
    pub next_producer_id: i64,
}

/// The payload of one metadata log entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetadataCommand {
    /// Sets the cluster id; proposed once by the first leader of a fresh cluster.
    InitializeCluster {
        cluster_id: String,
    },
    /// Adds or replaces a broker registration (a broker re-registers after a restart).
    RegisterBroker(BrokerMeta),
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        internal: bool,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows the topic to `total` partitions (Kafka never shrinks a topic).
    CreatePartitions {
        name: String,
        total: i32,
    },
    /// Full replacement of the topic's config overrides.
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Full replacement of the dynamic broker config overrides.
    SetBrokerConfigs {
        configs: BTreeMap<String, String>,
    },
    /// Reserves the producer ids `[next_producer_id, next_producer_id + count)` for
    /// the proposer (the image after this entry tells it where its block ends).
    /// Idempotent producers get ids from such blocks; a transaction coordinator
    /// will use the same command.
    AllocateProducerIds {
        count: i64,
    },
}

/// Why a command was rejected by [`apply`]. A rejection is a normal, committed outcome: the entry
/// stays in the log and every voter rejects it the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    #[error("topic {name} already exists; delete it first or pick another name")]
    TopicAlreadyExists { name: String },
    #[error("topic {name} does not exist; list topics to check the name")]
    UnknownTopic { name: String },
    #[error(
        "topic {name} has {current} partitions and cannot have {requested}; \
         the count must be positive and can only grow"
    )]
    InvalidPartitions {
        name: String,
        current: i32,
        requested: i32,
    },
    #[error("topic {name} cannot have replication factor {requested}; it must be at least 1")]
    InvalidReplicationFactor { name: String, requested: i16 },
    #[error(
        "the cluster id is already {current}; refusing to change it to {requested} \
         (a metadata directory belongs to one cluster)"
    )]
    ClusterIdAlreadySet { current: String, requested: String },
    #[error(
        "cannot allocate {count} producer ids after {next}: a block must hold 1..={max} ids \
         and stay below i64::MAX"
    )]
    InvalidProducerIdBlock { count: i64, next: i64, max: i64 },
}

/// The largest block of producer ids one [`MetadataCommand::AllocateProducerIds`] may take.
pub const MAX_PRODUCER_ID_BLOCK: i64 = 1 << 20;

/// Applies `cmd` to `image`. On error the image is left unchanged.
pub fn apply(image: &mut MetadataImage, cmd: &MetadataCommand) -> Result<(), ApplyError> {
    match cmd {
        MetadataCommand::InitializeCluster { cluster_id } => {
            if !image.cluster_id.is_empty() && image.cluster_id != *cluster_id {
                return Err(ApplyError::ClusterIdAlreadySet {
                    current: image.cluster_id.clone(),
                    requested: cluster_id.clone(),
                });
            }
            image.cluster_id = cluster_id.clone();
        }
        MetadataCommand::RegisterBroker(broker) => {
            image.brokers.insert(broker.node_id, broker.clone());
        }
        MetadataCommand::CreateTopic {
            name,
            id,
            partitions,
            replication_factor,
            configs,
            internal,
        } => {
            if image.topics.contains_key(name) {
                return Err(ApplyError::TopicAlreadyExists { name: name.clone() });
            }
            if *partitions <= 0 {
                return Err(ApplyError::InvalidPartitions {
                    name: name.clone(),
                    current: 0,
                    requested: *partitions,
                });
            }
            if *replication_factor <= 0 {
                return Err(ApplyError::InvalidReplicationFactor {
                    name: name.clone(),
                    requested: *replication_factor,
                });
            }
            let topic = TopicMeta {
                name: name.clone(),
                id: *id,
                partitions: *partitions,
                replication_factor: *replication_factor,
                configs: configs.clone(),
                internal: *internal,
            };
            image.topics.insert(name.clone(), topic);
        }
        MetadataCommand::DeleteTopic { name } => {
            image
                .topics
                .remove(name)
                .ok_or_else(|| ApplyError::UnknownTopic { name: name.clone() })?;
        }
        MetadataCommand::CreatePartitions { name, total } => {
            let topic = topic_mut(image, name)?;
            if *total <= topic.partitions {
                return Err(ApplyError::InvalidPartitions {
                    name: name.clone(),
                    current: topic.partitions,
                    requested: *total,
                });
            }
            topic.partitions = *total;
        }
        MetadataCommand::SetTopicConfigs { name, configs } => {
            topic_mut(image, name)?.configs = configs.clone();
        }
        MetadataCommand::SetBrokerConfigs { configs } => {
            image.broker_configs = configs.clone();
        }
        MetadataCommand::AllocateProducerIds { count } => {
            let next = image.next_producer_id;
            let end = next
                .checked_add(*count)
                .filter(|_| (1..=MAX_PRODUCER_ID_BLOCK).contains(count));
            image.next_producer_id = end.ok_or(ApplyError::InvalidProducerIdBlock {
                count: *count,
                next,
                max: MAX_PRODUCER_ID_BLOCK,
            })?;
        }
    }
    Ok(())
}

fn topic_mut<'a>(
    image: &'a mut MetadataImage,
    name: &str,
) -> Result<&'a mut TopicMeta, ApplyError> {
    image
        .topics
        .get_mut(name)
        .ok_or_else(|| ApplyError::UnknownTopic {
            name: name.to_string(),
        })
}

/// A new Kafka-style cluster id: the URL-safe, unpadded base64 of a random UUID (22 chars).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut image = MetadataImage::default();
        let alloc = |count| MetadataCommand::AllocateProducerIds { count };
        apply(&mut image, &alloc(1000)).unwrap();
        assert_eq!(image.next_producer_id, 1000);
        apply(&mut image, &alloc(5)).unwrap();
        assert_eq!(image.next_producer_id, 1005);
        for bad in [0, -1, MAX_PRODUCER_ID_BLOCK + 1] {
            assert!(apply(&mut image, &alloc(bad)).is_err());
        }
        image.next_producer_id = i64::MAX - 1;
        assert!(apply(&mut image, &alloc(5)).is_err());
        assert_eq!(image.next_producer_id, i64::MAX - 1);
        // Images persisted before producer ids existed load with the counter at 0.
        let old: MetadataImage = serde_json::from_str(
            r#"{"cluster_id":"c","topics":{},"broker_configs":{},"brokers":{}}"#,
        )
        .unwrap();
        assert_eq!(old.next_producer_id, 0);
    }

    fn create(name: &str, partitions: i32) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            internal: false,
        }
    }

    fn image_with(name: &str, partitions: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        apply(&mut image, &create(name, partitions)).unwrap();
        image
    }

    #[test]
    fn create_topic_then_duplicate_is_rejected_without_change() {
        let mut image = image_with("orders", 3);
        let before = image.clone();
        let err = apply(&mut image, &create("orders", 5)).unwrap_err();
        assert_eq!(
            err,
            ApplyError::TopicAlreadyExists {
                name: "orders".into()
            }
        );
        assert_eq!(image, before);
        assert_eq!(image.topics["orders"].partitions, 3);
        assert_eq!(image.topics["orders"].configs["retention.ms"], "1000");
    }

    #[test]
    fn create_topic_validates_partitions_and_replication_factor() {
        let mut image = MetadataImage::default();
        for bad in [0, -1] {
            let err = apply(&mut image, &create("t", bad)).unwrap_err();
            assert!(
                matches!(err, ApplyError::InvalidPartitions { requested, .. } if requested == bad)
            );
        }
        let cmd = MetadataCommand::CreateTopic {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 1,
            replication_factor: 0,
            configs: BTreeMap::new(),
            internal: false,
        };
        assert!(matches!(
            apply(&mut image, &cmd),
            Err(ApplyError::InvalidReplicationFactor { requested: 0, .. })
        ));
        assert!(image.topics.is_empty());
    }

    #[test]
    fn delete_topic_and_unknown_topic() {
        let mut image = image_with("a", 1);
        apply(
            &mut image,
            &MetadataCommand::DeleteTopic { name: "a".into() },
        )
        .unwrap();
        assert!(image.topics.is_empty());
        let unknown = ApplyError::UnknownTopic { name: "a".into() };
        let cmds = [
            MetadataCommand::DeleteTopic { name: "a".into() },
            MetadataCommand::CreatePartitions {
                name: "a".into(),
                total: 2,
            },
            MetadataCommand::SetTopicConfigs {
                name: "a".into(),
                configs: BTreeMap::new(),
            },
        ];
        for cmd in &cmds {
            assert_eq!(apply(&mut image, cmd).unwrap_err(), unknown);
        }
    }

    #[test]
    fn create_partitions_only_grows() {
        let mut image = image_with("a", 3);
        for total in [3, 2, 0] {
            let err = apply(
                &mut image,
                &MetadataCommand::CreatePartitions {
                    name: "a".into(),
                    total,
                },
            )
            .unwrap_err();
            assert_eq!(
                err,
                ApplyError::InvalidPartitions {
                    name: "a".into(),
                    current: 3,
                    requested: total
                }
            );
        }
        apply(
            &mut image,
            &MetadataCommand::CreatePartitions {
                name: "a".into(),
                total: 7,
            },
        )
        .unwrap();
        assert_eq!(image.topics["a"].partitions, 7);
    }

    #[test]
    fn configs_are_replaced_not_merged() {
        let mut image = image_with("a", 1);
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        let cmd = MetadataCommand::SetTopicConfigs {
            name: "a".into(),
            configs: configs.clone(),
        };
        apply(&mut image, &cmd).unwrap();
        assert_eq!(image.topics["a"].configs, configs);

        let broker = BTreeMap::from([("log.retention.ms".to_string(), "5".to_string())]);
        apply(
            &mut image,
            &MetadataCommand::SetBrokerConfigs {
                configs: broker.clone(),
            },
        )
        .unwrap();
        assert_eq!(image.broker_configs, broker);
        apply(
            &mut image,
            &MetadataCommand::SetBrokerConfigs {
                configs: BTreeMap::new(),
            },
        )
        .unwrap();
        assert!(image.broker_configs.is_empty());
    }

    #[test]
    fn register_broker_replaces_registration() {
        let mut image = MetadataImage::default();
        let mut broker = BrokerMeta {
            node_id: 1,
            host: "a".into(),
            port: 9092,
            rack: None,
        };
        apply(&mut image, &MetadataCommand::RegisterBroker(broker.clone())).unwrap();
        broker.host = "b".into();
        apply(&mut image, &MetadataCommand::RegisterBroker(broker.clone())).unwrap();
        assert_eq!(image.brokers.len(), 1);
        assert_eq!(image.brokers[&1], broker);
    }

    #[test]
    fn cluster_id_is_set_once() {
        let mut image = MetadataImage::default();
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        apply(
            &mut image,
            &MetadataCommand::InitializeCluster {
                cluster_id: id.clone(),
            },
        )
        .unwrap();
        // Re-applying the same id is harmless; a different one is refused.
        apply(
            &mut image,
            &MetadataCommand::InitializeCluster {
                cluster_id: id.clone(),
            },
        )
        .unwrap();
        let other = MetadataCommand::InitializeCluster {
            cluster_id: new_cluster_id(),
        };
        assert!(matches!(
            apply(&mut image, &other),
            Err(ApplyError::ClusterIdAlreadySet { .. })
        ));
        assert_eq!(image.cluster_id, id);
    }
}
