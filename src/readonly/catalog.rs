//! What a read-only node serves: the topics of the bucket with each partition's latest
//! manifest, as of the last poll. Pure: built from `strata_tier::topics::discover_since`'s
//! answer, asked by Fetch, ListOffsets and Metadata; no I/O here.
//!
//! A partition's offsets are the remote tier's: it starts at the manifest's start offset and
//! ends (exclusive) at the remote end offset, which is also the high watermark this node
//! reports. Offsets the cluster holds only locally (the active segment, closed segments not
//! uploaded yet) do not exist here until a later poll finds them uploaded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use strata_tier::topics::BucketTopic;
use strata_tier::{PartitionKey, PartitionManifest};
use uuid::Uuid;

/// One partition as a read-only node sees it.
#[derive(Clone, Debug)]
pub struct PartitionView {
    /// `None` for a partition the topic has but that never uploaded a segment.
    pub manifest: Option<Arc<PartitionManifest>>,
    /// The first offset served.
    pub start: i64,
    /// One past the last offset served: the remote end (the high watermark answered).
    pub end: i64,
    /// The last stable offset of the remote tier (read_committed reads stop there): the first
    /// offset of the oldest transaction still open at the remote end, else `end`.
    pub last_stable: i64,
}

impl PartitionView {
    fn new(manifest: Option<PartitionManifest>, last_stable: Option<i64>) -> PartitionView {
        let (start, end) = manifest.as_ref().map_or((0, 0), |m| {
            let start = m.start_offset().unwrap_or(m.log_start_offset).max(0);
            (start, m.end_offset().unwrap_or(start).max(start))
        });
        PartitionView {
            manifest: manifest.map(Arc::new),
            start,
            end,
            last_stable: last_stable.map_or(end, |l| l.clamp(start, end)),
        }
    }

    /// Where a fetch at `offset` stands.
    pub fn locate(&self, offset: i64, read_committed: bool) -> Position {
        let upper = if read_committed {
            self.last_stable
        } else {
            self.end
        };
        if offset < self.start || offset > self.end {
            Position::OutOfRange
        } else if offset >= upper {
            Position::AtEnd
        } else {
            Position::Readable { upper }
        }
    }
}

/// Where a fetch offset stands in a [`PartitionView`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Below the remote start or above the remote end: OFFSET_OUT_OF_RANGE, as Kafka answers
    /// an offset outside the log (the client resets by `auto.offset.reset`).
    OutOfRange,
    /// At the end (or, read_committed, at the last stable offset): no records yet; the fetch
    /// waits for a poll that finds more.
    AtEnd,
    /// Records below `upper` may be read.
    Readable { upper: i64 },
}

/// A topic of the bucket.
#[derive(Clone, Debug)]
pub struct TopicEntry {
    pub id: Uuid,
    /// Every partition of the topic, by index (`partition_count` of them).
    pub partitions: Vec<PartitionView>,
}

/// The topics served, by name, with an index by id (Fetch v13+ names topics by id).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    topics: BTreeMap<String, TopicEntry>,
    by_id: HashMap<Uuid, String>,
}

/// Why a partition is not in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    Topic,
    TopicId,
    Partition { count: i32 },
}

impl Catalog {
    /// The catalog of a discovery. `last_stable` gives a partition's last stable offset when
    /// an open transaction holds it below the remote end.
    pub fn build<F>(topics: Vec<BucketTopic>, last_stable: F) -> Catalog
    where
        F: Fn(&PartitionKey) -> Option<i64>,
    {
        let mut out = Catalog::default();
        for t in topics {
            let mut manifests = t.partitions;
            let partitions = (0..t.partition_count.max(0))
                .map(|p| {
                    let pk = PartitionKey {
                        topic: t.topic.clone(),
                        topic_id: t.topic_id,
                        partition: p,
                    };
                    PartitionView::new(manifests.remove(&p), last_stable(&pk))
                })
                .collect();
            out.by_id.insert(t.topic_id, t.topic.clone());
            out.topics.insert(
                t.topic,
                TopicEntry {
                    id: t.topic_id,
                    partitions,
                },
            );
        }
        out
    }

    pub fn topics(&self) -> impl Iterator<Item = (&str, &TopicEntry)> {
        self.topics.iter().map(|(n, t)| (n.as_str(), t))
    }

    pub fn topic(&self, name: &str) -> Option<&TopicEntry> {
        self.topics.get(name)
    }

    pub fn name_of(&self, id: Uuid) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    /// The manifest this catalog holds for `pk`, for the next poll to keep when unchanged.
    pub fn manifest(&self, pk: &PartitionKey) -> Option<Arc<PartitionManifest>> {
        let t = self.topics.get(&pk.topic).filter(|t| t.id == pk.topic_id)?;
        t.partitions
            .get(usize::try_from(pk.partition).ok()?)?
            .manifest
            .clone()
    }

    /// The partition `p` of the topic named `name`.
    pub fn partition(&self, name: &str, p: i32) -> Result<&PartitionView, Missing> {
        let t = self.topics.get(name).ok_or(Missing::Topic)?;
        usize::try_from(p)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or(Missing::Partition {
                count: t.partitions.len() as i32,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_tier::RemoteSegment;

    fn segment(base: i64, next: i64) -> RemoteSegment {
        RemoteSegment {
            id: Uuid::new_v4(),
            base_offset: base,
            next_offset: next,
            size_bytes: 100,
            max_timestamp: 0,
            index_bytes: 0,
            timeindex_bytes: 0,
            txnindex_bytes: 0,
            producer_snapshot_bytes: 0,
            crc32c: 0,
        }
    }

    fn topic(count: i32, manifests: Vec<(i32, Vec<RemoteSegment>, i64)>) -> BucketTopic {
        let id = Uuid::new_v4();
        let partitions = manifests
            .into_iter()
            .map(|(p, segments, log_start)| {
                let mut m = PartitionManifest::empty(PartitionKey {
                    topic: "t".into(),
                    topic_id: id,
                    partition: p,
                });
                m.segments = segments;
                m.log_start_offset = log_start;
                (p, m)
            })
            .collect();
        BucketTopic {
            topic: "t".into(),
            topic_id: id,
            partition_count: count,
            replication_factor: 1,
            configs: Default::default(),
            source: strata_tier::topics::MetadataSource::TopicObject,
            partitions,
        }
    }

    #[test]
    fn offsets_are_the_remote_tiers_and_outside_them_is_out_of_range() {
        let t = topic(
            3,
            vec![
                (0, vec![segment(0, 10), segment(10, 25)], 4),
                (2, vec![], 40),
            ],
        );
        let c = Catalog::build(vec![t], |_| None);
        let p0 = c.partition("t", 0).unwrap();
        assert_eq!((p0.start, p0.end, p0.last_stable), (4, 25, 25));
        assert_eq!(p0.locate(3, false), Position::OutOfRange);
        assert_eq!(p0.locate(4, false), Position::Readable { upper: 25 });
        assert_eq!(p0.locate(24, true), Position::Readable { upper: 25 });
        assert_eq!(p0.locate(25, false), Position::AtEnd);
        assert_eq!(p0.locate(26, false), Position::OutOfRange);
        // Never uploaded: empty at 0. Every segment expired: empty at the log start.
        let p1 = c.partition("t", 1).unwrap();
        assert_eq!((p1.start, p1.end), (0, 0));
        assert_eq!(p1.locate(0, false), Position::AtEnd);
        let p2 = c.partition("t", 2).unwrap();
        assert_eq!((p2.start, p2.end), (40, 40));
        assert_eq!(
            c.partition("t", 3).unwrap_err(),
            Missing::Partition { count: 3 }
        );
        assert_eq!(c.partition("u", 0).unwrap_err(), Missing::Topic);
    }

    #[test]
    fn read_committed_stops_at_the_oldest_open_transaction() {
        let t = topic(1, vec![(0, vec![segment(0, 10), segment(10, 25)], 0)]);
        let id = t.topic_id;
        let c = Catalog::build(vec![t], |pk| (pk.partition == 0).then_some(12));
        let p = c.partition("t", 0).unwrap();
        assert_eq!(p.last_stable, 12);
        assert_eq!(p.locate(11, true), Position::Readable { upper: 12 });
        assert_eq!(p.locate(12, true), Position::AtEnd);
        assert_eq!(p.locate(12, false), Position::Readable { upper: 25 });
        assert_eq!(c.name_of(id), Some("t"));
        let pk = PartitionKey {
            topic: "t".into(),
            topic_id: id,
            partition: 0,
        };
        assert_eq!(c.manifest(&pk).unwrap().segments.len(), 2);
    }
}
