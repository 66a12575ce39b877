//! The metadata state machine: openraft's [`RaftStateMachine`] around [`crate::image::apply`].
//!
//! Owns `snapshot.json` in the metadata directory: the snapshot meta (last included log id and
//! membership) and the [`MetadataImage`] as of that log id, replaced atomically.
//!
//! Contracts:
//! - `apply` changes memory only; durability comes from the log. On restart the image is the
//!   last snapshot, and openraft re-applies the committed entries after it (it reads
//!   `committed.json` through the log store) before serving.
//! - A snapshot is durable when `build_snapshot` / `install_snapshot` return. The file only ever
//!   moves forward: a snapshot older than the one on disk is not written over it, so the log is
//!   never purged past what the file covers.
//! - Every applied batch publishes the new image on a `watch` channel.

use std::io::Cursor;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::storage::Snapshot;
use openraft::BasicNode;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::RaftSnapshotBuilder;
use openraft::SnapshotMeta;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::StoredMembership;
use parking_lot::Mutex;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::watch;

use crate::disk::read_json;
use crate::disk::write_json_atomic;
use crate::disk::StoreError;
use crate::image::apply;
use crate::image::ApplyError;
use crate::image::MetadataImage;
use crate::TypeConfig;

/// Name of the snapshot file inside the metadata directory.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

type NodeId = u64;
type Membership = StoredMembership<NodeId, BasicNode>;

/// The outcome of applying one log entry: the command's verdict and the image right after it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApplyResponse {
    pub result: Result<(), ApplyError>,
    /// Not serialized: responses never leave the node that applied the entry.
    #[serde(skip)]
    pub image: Arc<MetadataImage>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    image: MetadataImage,
}

/// The applied metadata of one node, plus its current snapshot.
pub struct StateMachine {
    last_applied: Option<LogId<NodeId>>,
    last_membership: Membership,
    image: Arc<MetadataImage>,
    publish: watch::Sender<Arc<MetadataImage>>,
    snapshots: Arc<SnapshotFile>,
}

/// The snapshot on disk, shared by the state machine and its snapshot builders.
struct SnapshotFile {
    path: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotFile {
    /// Persists `snap` unless the file already holds a later one.
    fn store(&self, snap: StoredSnapshot) -> Result<(), StoreError> {
        let mut current = self.current.lock();
        if let Some(cur) = current.as_ref() {
            if cur.meta.last_log_id > snap.meta.last_log_id {
                return Ok(());
            }
        }
        write_json_atomic(&self.path, &snap)?;
        *current = Some(snap);
        Ok(())
    }
}

impl StateMachine {
    /// Loads the state machine from `dir/snapshot.json`, or starts empty.
    pub fn open(dir: &Path) -> Result<StateMachine, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))?;
        let path = dir.join(SNAPSHOT_FILE);
        let stored: Option<StoredSnapshot> = read_json(&path)?;
        let (last_applied, last_membership, image) = match &stored {
            Some(s) => (
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
                s.image.clone(),
            ),
            None => (None, Membership::default(), MetadataImage::default()),
        };
        let image = Arc::new(image);
        let (publish, _) = watch::channel(image.clone());
        let snapshots = Arc::new(SnapshotFile {
            path,
            current: Mutex::new(stored),
        });
        Ok(StateMachine {
            last_applied,
            last_membership,
            image,
            publish,
            snapshots,
        })
    }

    /// A receiver of the image after each applied batch.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.publish.subscribe()
    }

    fn apply_entry(&mut self, entry: Entry<TypeConfig>) -> ApplyResponse {
        self.last_applied = Some(entry.log_id);
        let result = match entry.payload {
            EntryPayload::Blank => Ok(()),
            EntryPayload::Normal(cmd) => {
                let result = apply(Arc::make_mut(&mut self.image), &cmd);
                if let Err(e) = &result {
                    tracing::info!(log_id = %entry.log_id, "metadata command rejected: {e}");
                }
                result
            }
            EntryPayload::Membership(m) => {
                self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                Ok(())
            }
        };
        ApplyResponse {
            result,
            image: self.image.clone(),
        }
    }
}

// The error type is openraft's, fixed by the trait this helps implement.
#[allow(clippy::result_large_err)]
fn snapshot_of(stored: &StoredSnapshot) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
    let data = serde_json::to_vec(&stored.image)
        .map_err(|e| StorageIOError::read_snapshot(Some(stored.meta.signature()), &e))?;
    Ok(Snapshot {
        meta: stored.meta.clone(),
        snapshot: Box::new(Cursor::new(data)),
    })
}

/// Builds a snapshot from a copy of the state machine taken when the builder was created.
pub struct SnapshotBuilder {
    last_applied: Option<LogId<NodeId>>,
    last_membership: Membership,
    image: Arc<MetadataImage>,
    snapshots: Arc<SnapshotFile>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snapshot_id = match self.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term,
                id.index,
                uuid::Uuid::new_v4().simple()
            ),
            None => format!("empty-{}", uuid::Uuid::new_v4().simple()),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta,
            image: (*self.image).clone(),
        };
        let snapshot = snapshot_of(&stored)?;
        let signature = stored.meta.signature();
        self.snapshots
            .store(stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let responses: Vec<_> = entries.into_iter().map(|e| self.apply_entry(e)).collect();
        if !responses.is_empty() {
            self.publish.send_replace(self.image.clone());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            image: self.image.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let image: MetadataImage = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            image: image.clone(),
        };
        self.snapshots
            .store(stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.image = Arc::new(image);
        self.publish.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let current = self.snapshots.current.lock();
        current.as_ref().map(snapshot_of).transpose()
    }
}
