//! What the bucket knows about whole topics: the topic metadata object, the
//! listing of every topic and partition, and the discovery of every topic for
//! recovery from the bucket. This sits above [`crate::manifest`] (one partition's
//! manifest chain), which knows nothing of topics.
//!
//! ```text
//! <prefix>/<topic>-<topic_id>/topic.json      TopicMetadata: id, partition count,
//!                                             replication factor, config overrides
//! ```
//!
//! The broker writes `topic.json` (a plain overwrite: it always holds the latest
//! state the broker applied) when a tiered topic is created, grows or changes its
//! configs, so the bucket describes a topic even before its first upload or after
//! a config change with no upload since. Each partition manifest also carries the
//! partition count and configs as of its last publish (DESIGN.md §4); discovery
//! falls back on them for topics tiered before `topic.json` existed.
//!
//! Nothing here touches local disks or the controller: [`discover`] only reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Result, TierError};
use crate::layout::PartitionKey;
use crate::manifest::{self, PartitionManifest};
use crate::retry::retry;

const TOPIC_FILE: &str = "topic.json";

/// A topic as the broker last described it to the bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition_count: i32,
    pub replication_factor: i16,
    /// Topic-level config overrides, Kafka names (`retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
    /// Wall-clock time of the write, for operators reading the bucket.
    pub updated_ms: i64,
}

/// `<topic>-<topic_id>/topic.json`.
pub fn metadata_key(topic: &str, topic_id: Uuid) -> Path {
    Path::from(format!("{topic}-{topic_id}/{TOPIC_FILE}"))
}

/// A key naming the topic for errors (there is no partition: -1).
fn topic_pk(topic: &str, topic_id: Uuid) -> PartitionKey {
    PartitionKey {
        topic: topic.to_string(),
        topic_id,
        partition: -1,
    }
}

/// Writes (overwrites) the topic's metadata object.
pub async fn put_metadata(store: &dyn ObjectStore, meta: &TopicMetadata) -> Result<()> {
    let key = metadata_key(&meta.topic, meta.topic_id);
    let pk = topic_pk(&meta.topic, meta.topic_id);
    let body = serde_json::to_vec_pretty(meta).map_err(|source| TierError::BadManifest {
        partition: pk.clone(),
        key: key.to_string(),
        source,
    })?;
    let body = PutPayload::from(Bytes::from(body));
    retry("put topic metadata", || store.put(&key, body.clone()))
        .await
        .map(|_| ())
        .map_err(|source| TierError::Store {
            partition: pk,
            key: key.to_string(),
            source,
        })
}

/// The topic's metadata object, `None` if it has none.
pub async fn load_metadata(
    store: &dyn ObjectStore,
    topic: &str,
    topic_id: Uuid,
) -> Result<Option<TopicMetadata>> {
    let key = metadata_key(topic, topic_id);
    let pk = topic_pk(topic, topic_id);
    let got = retry("get topic metadata", || async {
        store.get(&key).await?.bytes().await
    })
    .await;
    let bytes = match got {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => {
            return Err(TierError::Store {
                partition: pk,
                key: key.to_string(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| TierError::BadManifest {
            partition: pk,
            key: key.to_string(),
            source,
        })
}

/// Deletes the topic's metadata object (topic deletion); absent is fine.
pub async fn delete_metadata(store: &dyn ObjectStore, topic: &str, topic_id: Uuid) -> Result<()> {
    let key = metadata_key(topic, topic_id);
    match store.delete(&key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(TierError::Store {
            partition: topic_pk(topic, topic_id),
            key: key.to_string(),
            source,
        }),
    }
}

/// Every `<topic>-<topic_id>` directory under the store's root, sorted.
pub async fn list_topics(store: &dyn ObjectStore) -> Result<Vec<(String, Uuid)>> {
    let top = retry("list topics", || store.list_with_delimiter(None))
        .await
        .map_err(|source| TierError::Store {
            partition: topic_pk("", Uuid::nil()),
            key: "/".into(),
            source,
        })?;
    let mut out: Vec<(String, Uuid)> = top
        .common_prefixes
        .iter()
        .filter_map(|dir| parse_topic_dir(dir.filename()?))
        .collect();
    out.sort();
    Ok(out)
}

/// `<topic>-<uuid>` (a uuid is 36 characters) back into its parts.
pub fn parse_topic_dir(name: &str) -> Option<(String, Uuid)> {
    if name.len() < 38 {
        return None;
    }
    let (topic, id) = name.split_at(name.len() - 36);
    let topic = topic.strip_suffix('-')?;
    let id = Uuid::parse_str(id).ok()?;
    Some((topic.to_string(), id))
}

/// The partition indexes that have a directory under the topic's.
pub async fn list_topic_partitions(
    store: &dyn ObjectStore,
    topic: &str,
    topic_id: Uuid,
) -> Result<Vec<i32>> {
    let dir = Path::from(format!("{topic}-{topic_id}"));
    let listed = retry("list partitions", || store.list_with_delimiter(Some(&dir)))
        .await
        .map_err(|source| TierError::Store {
            partition: topic_pk(topic, topic_id),
            key: dir.to_string(),
            source,
        })?;
    let mut out: Vec<i32> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename()?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Every partition directory of every topic under the store's root, sorted, for
/// `tier inspect`.
pub async fn list_partitions(store: &Arc<dyn ObjectStore>) -> Result<Vec<PartitionKey>> {
    let mut out = Vec::new();
    for (topic, topic_id) in list_topics(&**store).await? {
        for partition in list_topic_partitions(&**store, &topic, topic_id).await? {
            out.push(PartitionKey {
                topic: topic.clone(),
                topic_id,
                partition,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Where a discovered topic's id, partition count and configs came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataSource {
    /// `topic.json`.
    TopicObject,
    /// The partition manifests only (topics tiered before `topic.json` existed).
    PartitionManifests,
}

/// A topic found in the bucket, with everything needed to re-create it.
#[derive(Clone, Debug)]
pub struct BucketTopic {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition_count: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    pub source: MetadataSource,
    /// The latest manifest of each partition that has one.
    pub partitions: BTreeMap<i32, PartitionManifest>,
}

impl BucketTopic {
    /// The offset at which partition `p`'s local log restarts: one past the last
    /// tiered offset, or the log start offset the manifest records when no
    /// segment is left (all expired), or 0 for a partition never tiered.
    pub fn resume_offset(&self, p: i32) -> i64 {
        self.partitions.get(&p).map_or(0, |m| {
            m.end_offset().unwrap_or(0).max(m.log_start_offset).max(0)
        })
    }
}

/// Reads every topic of the bucket: its metadata object (if any) and the latest
/// manifest of each partition. A topic with neither is skipped. Errors name the
/// object that could not be read; a bad object fails the whole discovery rather
/// than restoring a topic with wrong offsets.
pub async fn discover(store: &Arc<dyn ObjectStore>) -> Result<Vec<BucketTopic>> {
    discover_since(store, |_| None).await
}

/// [`discover`] for a poller: `known` gives the manifest it already holds for a partition,
/// which is kept (without a GET) while its version is still the latest.
pub async fn discover_since<F>(store: &Arc<dyn ObjectStore>, known: F) -> Result<Vec<BucketTopic>>
where
    F: Fn(&PartitionKey) -> Option<PartitionManifest>,
{
    let mut out = Vec::new();
    for (topic, topic_id) in list_topics(&**store).await? {
        let meta = load_metadata(&**store, &topic, topic_id).await?;
        let mut partitions = BTreeMap::new();
        for p in list_topic_partitions(&**store, &topic, topic_id).await? {
            let pk = PartitionKey {
                topic: topic.clone(),
                topic_id,
                partition: p,
            };
            let held = known(&pk);
            let version = held.as_ref().map(|m| m.version);
            match manifest::load_newer(&**store, &pk, version).await? {
                manifest::Latest::Loaded(m) => {
                    partitions.insert(p, m);
                }
                manifest::Latest::Unchanged => {
                    partitions.extend(held.map(|m| (p, m)));
                }
                manifest::Latest::Absent => {}
            }
        }
        if let Some(t) = combine(topic, topic_id, meta, partitions) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Merges the metadata object with the manifests: the object's configs win (it is
/// rewritten on every change), the partition count is the largest any source
/// implies.
fn combine(
    topic: String,
    topic_id: Uuid,
    meta: Option<TopicMetadata>,
    partitions: BTreeMap<i32, PartitionManifest>,
) -> Option<BucketTopic> {
    if meta.is_none() && partitions.is_empty() {
        return None;
    }
    let from_manifests = partitions
        .iter()
        .map(|(p, m)| m.partition_count.max(p + 1))
        .max()
        .unwrap_or(0);
    let (count, rf, configs, source) = match meta {
        Some(m) => (
            m.partition_count,
            m.replication_factor,
            m.configs,
            MetadataSource::TopicObject,
        ),
        None => (
            0,
            1,
            partitions
                .values()
                .next()
                .map(|m| m.configs.clone())
                .unwrap_or_default(),
            MetadataSource::PartitionManifests,
        ),
    };
    Some(BucketTopic {
        topic,
        topic_id,
        partition_count: count.max(from_manifests).max(1),
        replication_factor: rf.max(1),
        configs,
        source,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_dirs_parse_back() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse_topic_dir(&format!("my-topic.v2-{id}")),
            Some(("my-topic.v2".to_string(), id))
        );
        assert_eq!(parse_topic_dir("short"), None);
        assert_eq!(parse_topic_dir(&format!("x{id}")), None);
    }

    #[test]
    fn combine_prefers_the_topic_object_and_the_largest_partition_count() {
        let id = Uuid::new_v4();
        let pk = |partition| PartitionKey {
            topic: "t".into(),
            topic_id: id,
            partition,
        };
        let mut m = PartitionManifest::empty(pk(4));
        m.partition_count = 3; // stale: the topic grew after this publish
        m.configs.insert("retention.ms".into(), "1".into());
        let parts = BTreeMap::from([(4, m)]);
        let without = combine("t".into(), id, None, parts.clone()).unwrap();
        assert_eq!(without.partition_count, 5);
        assert_eq!(without.source, MetadataSource::PartitionManifests);
        assert_eq!(without.configs["retention.ms"], "1");
        let meta = TopicMetadata {
            topic: "t".into(),
            topic_id: id,
            partition_count: 8,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".into(), "2".into())]),
            updated_ms: 0,
        };
        let with = combine("t".into(), id, Some(meta), parts).unwrap();
        assert_eq!(with.partition_count, 8);
        assert_eq!(with.configs["retention.ms"], "2");
        assert_eq!(with.resume_offset(4), 0);
        assert_eq!(with.resume_offset(0), 0);
        assert!(combine("t".into(), id, None, BTreeMap::new()).is_none());
    }
}
