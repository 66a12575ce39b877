//! Segment manifests and the partition manifest chain.
//!
//! The partition manifest is a chain of immutable versions
//! `manifest/{version:020}.json`. [`update`] reads the highest version, applies a
//! change and creates version N+1 with `PutMode::Create`; `AlreadyExists` means
//! another writer won the race, so it reloads and retries. Every backend supports
//! create-if-absent (S3 If-None-Match, hard-link publish on the local filesystem,
//! memory), unlike e-tag updates.
//!
//! # Contract
//! - A segment is *in the remote tier* iff the highest manifest version lists it.
//!   Its objects are uploaded before the version naming it is created, and deleted
//!   only after a version without it exists.
//! - A crash between two steps leaves either objects no manifest names (orphans,
//!   removed by [`crate::copier::sweep_orphans`]) or an older, still valid version.
//! - Versions older than [`KEEP_VERSIONS`] behind the head are deleted best-effort
//!   after a successful publish; a reader racing that deletion just reloads.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Result, TierError};
use crate::layout::{PartitionKey, SegmentFile};
use crate::retry::retry;

/// Old manifest versions kept behind the head (a grace period for readers).
pub const KEEP_VERSIONS: u64 = 8;
const MAX_ATTEMPTS: u32 = 64;

/// One uploaded segment (also stored on its own as `...manifest.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    pub id: Uuid,
    pub base_offset: i64,
    /// One past the last offset the segment holds.
    pub next_offset: i64,
    pub size_bytes: u64,
    /// Largest batch maxTimestamp, -1 if unknown.
    pub max_timestamp: i64,
    pub index_bytes: u64,
    pub timeindex_bytes: u64,
    /// Bytes of the `.txnindex` object (Kafka's aborted-transaction index of the segment);
    /// 0 when the segment has no aborted transaction, and then there is no object.
    /// Absent in manifests written before transactions: 0.
    #[serde(default)]
    pub txnindex_bytes: u64,
    /// Bytes of the `.snapshot` object: the producer state as of `next_offset` (the log's
    /// snapshot file); 0 when none was uploaded (before transactions, or no snapshot).
    #[serde(default)]
    pub producer_snapshot_bytes: u64,
    /// CRC32C of the `.log` object, checked by recovery tools.
    pub crc32c: u32,
}

/// The partition manifest: live remote segments and what is needed to rebuild the
/// topic from the bucket alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionManifest {
    pub version: u64,
    pub partition: PartitionKey,
    pub partition_count: i32,
    pub configs: BTreeMap<String, String>,
    /// The log start offset of the whole partition (DeleteRecords, retention).
    pub log_start_offset: i64,
    /// Sorted by base offset, contiguous except where local retention deleted
    /// offsets before they could be tiered (see `copier::copy_segment`). A
    /// compacted segment covers what it replaced: its batches may start after
    /// its base and end before its next offset, and it may hold none.
    pub segments: Vec<RemoteSegment>,
    /// Remote compaction: every remote offset below this was in the key map of
    /// a committed remote pass (the remote "first dirty offset"). 0 in
    /// manifests written before compaction existed: all of it is dirty.
    #[serde(default)]
    pub first_dirty_offset: i64,
    /// Remote compaction: the earliest delete horizon of a tombstone the last
    /// remote pass kept; a pass from then on can remove it.
    #[serde(default)]
    pub tombstone_horizon_ms: Option<i64>,
    /// Segments a remote pass replaced, with when: no longer part of the
    /// remote tier, their objects are deleted once [`crate::compaction::RETIRED_GRACE`]
    /// has passed, so that reads that started with an older manifest finish.
    #[serde(default)]
    pub retired: Vec<RetiredSegment>,
}

/// A segment replaced by a remote compaction pass, waiting for its objects to
/// be deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredSegment {
    pub segment: RemoteSegment,
    /// Wall-clock time of the swap that replaced it.
    pub retired_ms: i64,
}

impl PartitionManifest {
    pub fn empty(partition: PartitionKey) -> Self {
        PartitionManifest {
            version: 0,
            partition,
            partition_count: 1,
            configs: BTreeMap::new(),
            log_start_offset: 0,
            segments: Vec::new(),
            first_dirty_offset: 0,
            tombstone_horizon_ms: None,
            retired: Vec::new(),
        }
    }

    /// One past the last tiered offset, or `None` if nothing is tiered.
    pub fn end_offset(&self) -> Option<i64> {
        self.segments.last().map(|s| s.next_offset)
    }

    /// The first readable remote offset: the log start offset, or the first
    /// segment's base if that is later.
    pub fn start_offset(&self) -> Option<i64> {
        self.segments
            .first()
            .map(|s| s.base_offset.max(self.log_start_offset))
    }

    /// Where the remote dirty range starts: the first dirty offset, or the
    /// remote start if that is higher.
    pub fn dirty_start(&self) -> i64 {
        self.first_dirty_offset
            .max(self.start_offset().unwrap_or(self.first_dirty_offset))
    }

    /// Bytes of the remote segments ending above [`Self::dirty_start`]: what
    /// no remote pass has mapped yet.
    pub fn dirty_bytes(&self) -> u64 {
        let from = self.dirty_start();
        self.segments
            .iter()
            .filter(|s| s.next_offset > from)
            .map(|s| s.size_bytes)
            .sum()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    /// The segment holding `offset`.
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteSegment> {
        self.segment_at_or_after(offset)
            .filter(|s| s.base_offset <= offset)
    }

    /// The segment holding `offset`, or else the first one after it (an offset in a
    /// gap between remote segments reads on from the next one).
    pub fn segment_at_or_after(&self, offset: i64) -> Option<&RemoteSegment> {
        let i = self.segments.partition_point(|s| s.next_offset <= offset);
        self.segments.get(i)
    }
}

/// The highest manifest version of `pk`, or `None` if the partition has none.
pub async fn load(store: &dyn ObjectStore, pk: &PartitionKey) -> Result<Option<PartitionManifest>> {
    Ok(match load_newer(store, pk, None).await? {
        Latest::Loaded(m) => Some(m),
        Latest::Absent | Latest::Unchanged => None,
    })
}

/// What [`load_newer`] found.
#[derive(Debug)]
pub enum Latest {
    /// The partition has no manifest.
    Absent,
    /// The highest version is the one the caller knows.
    Unchanged,
    Loaded(PartitionManifest),
}

/// [`load`] for a reader that polls the chain (a read-only node): when the highest version
/// is `known`, one LIST and no GET.
pub async fn load_newer(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    known: Option<u64>,
) -> Result<Latest> {
    let store_err = |key: String| {
        let partition = pk.clone();
        move |source| TierError::Store {
            partition,
            key,
            source,
        }
    };
    let dir = pk.manifest_dir();
    let metas: Vec<_> = retry("list manifests", || {
        store.list(Some(&dir)).try_collect::<Vec<_>>()
    })
    .await
    .map_err(store_err(dir.to_string()))?;
    let Some(latest) = metas
        .iter()
        .filter_map(|m| PartitionKey::parse_manifest_version(&m.location))
        .max()
    else {
        return Ok(Latest::Absent);
    };
    if known == Some(latest) {
        return Ok(Latest::Unchanged);
    }
    let key = pk.manifest(latest);
    let got = retry("get manifest", || async {
        store.get(&key).await?.bytes().await
    })
    .await;
    let bytes = match got {
        Ok(b) => b,
        // Deleted by GC under us: a newer version exists.
        Err(object_store::Error::NotFound { .. }) => {
            return Box::pin(load_newer(store, pk, known)).await
        }
        Err(e) => return Err(store_err(key.to_string())(e)),
    };
    decode(pk, key.as_ref(), &bytes).map(Latest::Loaded)
}

fn decode(pk: &PartitionKey, key: &str, bytes: &[u8]) -> Result<PartitionManifest> {
    serde_json::from_slice(bytes).map_err(|source| TierError::BadManifest {
        partition: pk.clone(),
        key: key.to_string(),
        source,
    })
}

/// Applies `change` to the latest manifest (or an empty one) and publishes the
/// result as the next version. `change` returns `false` to publish nothing. Retries
/// on a lost race with a freshly loaded manifest. Returns the manifest now current.
pub async fn update<F>(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    mut change: F,
) -> Result<PartitionManifest>
where
    F: FnMut(&mut PartitionManifest) -> bool,
{
    for _ in 0..MAX_ATTEMPTS {
        let current = load(store, pk)
            .await?
            .unwrap_or_else(|| PartitionManifest::empty(pk.clone()));
        let mut next = current.clone();
        if !change(&mut next) {
            return Ok(current);
        }
        next.version = current.version + 1;
        let key = pk.manifest(next.version);
        let body = serde_json::to_vec_pretty(&next).map_err(|source| TierError::BadManifest {
            partition: pk.clone(),
            key: key.to_string(),
            source,
        })?;
        let body = PutPayload::from(body);
        let put = retry("publish manifest", || {
            store.put_opts(&key, body.clone(), PutOptions::from(PutMode::Create))
        });
        match put.await {
            Ok(_) => {
                tracing::info!(partition = %pk, version = next.version, segments = next.segments.len(), "published partition manifest");
                collect_old_versions(store, pk, next.version).await;
                return Ok(next);
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                tracing::debug!(partition = %pk, version = next.version, "lost the manifest race; reloading");
            }
            Err(source) => {
                return Err(TierError::Store {
                    partition: pk.clone(),
                    key: key.to_string(),
                    source,
                })
            }
        }
    }
    Err(TierError::ManifestContention {
        partition: pk.clone(),
        attempts: MAX_ATTEMPTS,
    })
}

async fn collect_old_versions(store: &dyn ObjectStore, pk: &PartitionKey, head: u64) {
    if head <= KEEP_VERSIONS {
        return;
    }
    // One old version per publish keeps the chain bounded without a listing.
    let old = pk.manifest(head - KEEP_VERSIONS - 1);
    match store.delete(&old).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => {
            tracing::debug!(partition = %pk, key = %old, error = %e, "old manifest not deleted")
        }
    }
}

/// Writes a segment's own manifest object (the third upload step).
pub async fn put_segment_manifest(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    seg: &RemoteSegment,
) -> Result<()> {
    let key = pk.segment(seg.base_offset, seg.id, SegmentFile::Manifest);
    let body =
        Bytes::from(
            serde_json::to_vec_pretty(seg).map_err(|source| TierError::BadManifest {
                partition: pk.clone(),
                key: key.to_string(),
                source,
            })?,
        );
    let body = PutPayload::from(body);
    retry("put segment manifest", || store.put(&key, body.clone()))
        .await
        .map(|_| ())
        .map_err(|source| TierError::Upload {
            partition: pk.clone(),
            base_offset: seg.base_offset,
            key: key.to_string(),
            source,
        })
}
