//! Object names of the remote tier (DESIGN.md §4):
//!
//! ```text
//! <prefix>/<topic>-<topic_id>/<partition>/
//!     {base:020}-{uuid}.log / .index / .timeindex / .txnindex / .snapshot / .manifest.json
//!     manifest/{version:020}.json
//! ```
//!
//! The prefix is applied by the store (a `PrefixStore`), so keys here start at the
//! topic directory. Nothing in this module performs I/O.

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A partition as the remote tier names it: the topic id makes a re-created topic
/// with the same name a different directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionKey {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The files of one segment, as uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentFile {
    Log,
    Index,
    TimeIndex,
    TxnIndex,
    ProducerSnapshot,
    Manifest,
}

impl SegmentFile {
    fn suffix(self) -> &'static str {
        match self {
            SegmentFile::Log => "log",
            SegmentFile::Index => "index",
            SegmentFile::TimeIndex => "timeindex",
            SegmentFile::TxnIndex => "txnindex",
            SegmentFile::ProducerSnapshot => "snapshot",
            SegmentFile::Manifest => "manifest.json",
        }
    }
}

impl PartitionKey {
    /// `<topic>-<topic_id>/<partition>`.
    pub fn dir(&self) -> Path {
        Path::from(format!(
            "{}-{}/{}",
            self.topic, self.topic_id, self.partition
        ))
    }

    /// `<topic>-<topic_id>`: everything of the topic.
    pub fn topic_dir(&self) -> Path {
        Path::from(format!("{}-{}", self.topic, self.topic_id))
    }

    pub fn segment(&self, base_offset: i64, id: Uuid, file: SegmentFile) -> Path {
        Path::from(format!(
            "{}/{:020}-{}.{}",
            self.dir(),
            base_offset,
            id,
            file.suffix()
        ))
    }

    pub fn manifest_dir(&self) -> Path {
        Path::from(format!("{}/manifest", self.dir()))
    }

    pub fn manifest(&self, version: u64) -> Path {
        Path::from(format!("{}/manifest/{:020}.json", self.dir(), version))
    }

    /// Parses a manifest version back from its key's file name.
    pub fn parse_manifest_version(key: &Path) -> Option<u64> {
        key.filename()?.strip_suffix(".json")?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design() {
        let id = Uuid::nil();
        let pk = PartitionKey {
            topic: "orders".into(),
            topic_id: id,
            partition: 3,
        };
        assert_eq!(
            pk.segment(1234, id, SegmentFile::Log).as_ref(),
            format!("orders-{id}/3/00000000000000001234-{id}.log")
        );
        assert_eq!(
            pk.manifest(42).as_ref(),
            format!("orders-{id}/3/manifest/00000000000000000042.json")
        );
        assert_eq!(
            PartitionKey::parse_manifest_version(&pk.manifest(42)),
            Some(42)
        );
    }
}
