//! The I/O half of the RemoteLogManager: copying a segment, expiring remote
//! segments, deleting a partition's remote data and sweeping orphans. The
//! decisions are [`crate::rlm`]'s; these functions only perform them.
//!
//! # `copy_segment` contract
//! The segment's files come open ([`LocalSegmentFiles`]), so what is uploaded is
//! the generation of them that was opened, whatever a later compaction or
//! retention does to their names. Steps, in order: `.log`, `.index`,
//! `.timeindex`, `.txnindex` when the segment has aborted transactions, `.snapshot` (the producer state at its end) when there is one (each a new object under a fresh segment uuid), the segment's `.manifest.json`, then a new partition manifest
//! version listing the segment. Only the last step makes the segment part of the
//! remote tier. A crash or error before it leaves orphans (objects of a uuid no
//! manifest names) that [`sweep_orphans`] deletes, and the upload is retried with a
//! new uuid; a crash after it leaves a complete segment. Never a hole while local
//! data exists: the new segment must start at the manifest's end offset, or the
//! update is refused, unless the local log no longer holds the offsets in between
//! (its log start is at or above the segment's base: a gap in both tiers, as Kafka
//! leaves one).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use uuid::Uuid;

use crate::error::{Result, TierError};
use crate::layout::{PartitionKey, SegmentFile};
use crate::manifest::{self, PartitionManifest, RemoteSegment};
use crate::retry::retry;

/// One local file to upload: an open descriptor and how many bytes of it to
/// send, read with positioned reads only (the descriptor may share its file
/// offset with the log's own, and one upload may be retried while another
/// reads it).
#[derive(Clone, Debug)]
pub struct LocalFile {
    pub file: Arc<File>,
    pub len: u64,
    /// Where the file was when opened; for messages only.
    pub path: PathBuf,
}

impl LocalFile {
    /// Opens `path` and takes its current length (tools and tests; the broker
    /// hands over the descriptors `strata_log::Log::open_segment` opened).
    pub fn open(path: impl Into<PathBuf>) -> std::io::Result<LocalFile> {
        let path = path.into();
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        Ok(LocalFile {
            file: Arc::new(file),
            len,
            path,
        })
    }
}

/// The local files of a closed segment, already open: the upload reads the
/// generation of the segment that was opened, whatever happens to the names
/// meanwhile (a compaction renaming a cleaned segment over them, retention or
/// DeleteRecords unlinking them). A file shorter than its `len` fails the
/// upload (it was cut by a truncation).
#[derive(Clone, Debug)]
pub struct LocalSegmentFiles {
    pub log: LocalFile,
    pub index: LocalFile,
    pub timeindex: LocalFile,
    /// The segment's aborted-transaction index (Kafka's `.txnindex` bytes, held in memory
    /// by the log); empty when it has none, and then not uploaded.
    pub txnindex: Vec<u8>,
    /// The producer-state snapshot as of the segment's end (`<next>.snapshot`), so a
    /// follower starting at a later offset, or a topic recovered from the bucket, keeps
    /// its idempotent and transactional producers; empty when there is none.
    pub producer_snapshot: Vec<u8>,
    pub base_offset: i64,
    pub next_offset: i64,
    pub max_timestamp: i64,
}

/// What the copy records about the topic besides the segment (for recovery).
#[derive(Clone, Debug, Default)]
pub struct TopicInfo {
    pub partition_count: i32,
    pub configs: std::collections::BTreeMap<String, String>,
    /// The *local* log start offset at the time of the copy.
    pub log_start_offset: i64,
}

pub use crate::throttle::Throttle;

const UPLOAD_CHUNK: usize = 1 << 20;
/// Files larger than this are streamed as a multipart upload of parts this size.
const MULTIPART_PART: usize = 8 << 20;

fn upload_err(
    pk: &PartitionKey,
    base: i64,
    key: &Path,
) -> impl FnOnce(object_store::Error) -> TierError {
    let (partition, key) = (pk.clone(), key.to_string());
    move |source| TierError::Upload {
        partition,
        base_offset: base,
        key,
        source,
    }
}

/// `len` bytes of `file` from `at`, on a blocking thread (a produce request
/// must not queue behind a segment's read on a runtime worker), into `buf`,
/// which comes back with them.
async fn read_at(
    file: &Arc<File>,
    at: u64,
    len: usize,
    mut buf: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let file = Arc::clone(file);
    tokio::task::spawn_blocking(move || {
        buf.resize(len, 0);
        file.read_exact_at(&mut buf, at).map(|()| buf)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Uploads one local file to `key`, throttled, returning (size, CRC32C). Small files
/// go in one PUT; larger ones stream as a multipart upload (aborted on error), so a
/// segment is never held in memory whole. Reads go through the open descriptor,
/// so the bytes are those of the file that was opened even if its name now
/// holds another or none.
async fn upload_file(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    base: i64,
    local: &LocalFile,
    key: &Path,
    throttle: &Throttle,
) -> Result<(u64, u32)> {
    let failed = |source| TierError::LocalRead {
        partition: pk.clone(),
        path: local.path.clone(),
        source,
    };
    let len = local.len;
    if len as usize <= MULTIPART_PART {
        throttle.take(len as usize).await;
        let buf = read_at(&local.file, 0, len as usize, Vec::new())
            .await
            .map_err(failed)?;
        let crc = crc32c::crc32c(&buf);
        let payload = PutPayload::from(buf);
        retry("put segment file", || store.put(key, payload.clone()))
            .await
            .map_err(upload_err(pk, base, key))?;
        return Ok((len, crc));
    }
    let mut crc = 0u32;
    let upload = retry("start multipart upload", || store.put_multipart(key))
        .await
        .map_err(upload_err(pk, base, key))?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
    let mut chunk = Vec::with_capacity(UPLOAD_CHUNK);
    let mut pos = 0u64;
    let result: Result<()> = async {
        while pos < len {
            let n = (len - pos).min(UPLOAD_CHUNK as u64) as usize;
            chunk = read_at(&local.file, pos, n, chunk).await.map_err(failed)?;
            throttle.take(n).await;
            crc = crc32c::crc32c_append(crc, &chunk);
            pos += n as u64;
            w.wait_for_capacity(4)
                .await
                .map_err(upload_err(pk, base, key))?;
            w.write(&chunk);
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            w.finish().await.map_err(upload_err(pk, base, key))?;
            Ok((len, crc))
        }
        Err(e) => {
            let _ = w.abort().await;
            Err(e)
        }
    }
}

/// Uploads a segment's objects under a fresh uuid: `.log`, `.index`,
/// `.timeindex`, `.txnindex` (if it has aborted transactions), then its `.manifest.json`. Nothing names them yet: until a
/// partition manifest version lists the returned segment they are orphans
/// (swept after a grace period if that never happens). Used by uploads and by
/// remote compaction, which writes its cleaned segments this way.
pub async fn upload_objects(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    files: &LocalSegmentFiles,
    throttle: &Throttle,
) -> Result<RemoteSegment> {
    let id = Uuid::new_v4();
    let base = files.base_offset;
    let mut uploaded = [(0u64, 0u32); 3];
    let parts = [
        (&files.log, SegmentFile::Log),
        (&files.index, SegmentFile::Index),
        (&files.timeindex, SegmentFile::TimeIndex),
    ];
    for (done, (local, file)) in uploaded.iter_mut().zip(parts) {
        *done = upload_file(
            store,
            pk,
            base,
            local,
            &pk.segment(base, id, file),
            throttle,
        )
        .await?;
    }
    let [(size, crc), (index_bytes, _), (timeindex_bytes, _)] = uploaded;
    for (bytes, file) in [
        (&files.txnindex, SegmentFile::TxnIndex),
        (&files.producer_snapshot, SegmentFile::ProducerSnapshot),
    ] {
        if bytes.is_empty() {
            continue;
        }
        let key = pk.segment(base, id, file);
        throttle.take(bytes.len()).await;
        let payload = PutPayload::from(bytes.clone());
        retry("put segment file", || store.put(&key, payload.clone()))
            .await
            .map_err(upload_err(pk, base, &key))?;
    }
    let seg = RemoteSegment {
        id,
        base_offset: base,
        next_offset: files.next_offset,
        size_bytes: size,
        max_timestamp: files.max_timestamp,
        index_bytes,
        timeindex_bytes,
        txnindex_bytes: files.txnindex.len() as u64,
        producer_snapshot_bytes: files.producer_snapshot.len() as u64,
        crc32c: crc,
    };
    manifest::put_segment_manifest(store, pk, &seg).await?;
    Ok(seg)
}

/// Adds the `.txnindex` object `bytes` to an uploaded segment not yet in any partition
/// manifest (a remote compaction's output, whose aborted transactions come from the
/// segments it replaces), and rewrites its segment manifest to say so.
pub async fn attach_txn_index(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    seg: &mut RemoteSegment,
    bytes: Vec<u8>,
) -> Result<()> {
    let key = pk.segment(seg.base_offset, seg.id, SegmentFile::TxnIndex);
    seg.txnindex_bytes = bytes.len() as u64;
    let payload = PutPayload::from(bytes);
    retry("put segment file", || store.put(&key, payload.clone()))
        .await
        .map_err(upload_err(pk, seg.base_offset, &key))?;
    manifest::put_segment_manifest(store, pk, seg).await
}

/// Copies one closed segment (see the module docs for the steps and what a crash
/// leaves). Returns the manifest that now records it.
pub async fn copy_segment(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    files: &LocalSegmentFiles,
    topic: &TopicInfo,
    throttle: &Throttle,
) -> Result<PartitionManifest> {
    let seg = upload_objects(store, pk, files, throttle).await?;
    let (id, base) = (seg.id, seg.base_offset);
    let mut refused = false;
    let m = manifest::update(store, pk, |m| {
        refused = false;
        if m.segments.iter().any(|s| s.id == seg.id) {
            // Our own publish whose success was lost (retried create-if-absent).
            return false;
        }
        m.partition_count = topic.partition_count.max(m.partition_count);
        m.configs = topic.configs.clone();
        match m.end_offset() {
            // Kafka's RLM copies from max(remote end, local log start): when local
            // retention deleted offsets [end, base) before they were tiered (tiering
            // was off for a while), they are in neither tier, like data removed by
            // retention, and the remote tier continues after the gap.
            Some(end) if end < base && topic.log_start_offset >= base => {
                tracing::warn!(partition = %pk, remote_end = end, base_offset = base, "offsets [{end}, {base}) were deleted locally before being tiered; the remote tier continues after the gap");
            }
            Some(end) if end != base => {
                // Someone else already tiered this range (or local data still exists
                // below `base`): leave the manifest alone; our objects become orphans
                // for the sweeper.
                refused = true;
                return false;
            }
            None => m.log_start_offset = m.log_start_offset.max(topic.log_start_offset).min(base),
            _ => {}
        }
        m.segments.push(seg.clone());
        true
    })
    .await?;
    if refused {
        let remote_end = m.end_offset().unwrap_or(-1);
        if remote_end < base {
            // Recording it would leave a hole over local data: an error, so the
            // scheduler backs off and `tier status` shows it, not a hot retry loop.
            return Err(TierError::WouldLeaveHole {
                partition: pk.clone(),
                base_offset: base,
                remote_end,
                local_start: topic.log_start_offset,
            });
        }
        tracing::warn!(partition = %pk, base_offset = base, remote_end, "segment not recorded: the remote tier already holds its offsets");
    } else {
        tracing::info!(partition = %pk, base_offset = base, next_offset = seg.next_offset, bytes = seg.size_bytes, id = %id, "uploaded segment");
    }
    Ok(m)
}

/// Removes remote segments with `next_offset <= before` from the manifest (raising
/// its log start offset), then deletes their objects. A crash between the two
/// leaves orphans for [`sweep_orphans`].
pub async fn expire(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    before: i64,
) -> Result<PartitionManifest> {
    let mut doomed = Vec::new();
    let m = manifest::update(store, pk, |m| {
        let n = m
            .segments
            .iter()
            .take_while(|s| s.next_offset <= before)
            .count();
        if n == 0 && m.log_start_offset >= before {
            doomed.clear();
            return false;
        }
        doomed = m.segments.drain(..n).collect();
        m.log_start_offset = m.log_start_offset.max(before);
        true
    })
    .await?;
    for s in &doomed {
        delete_segment_objects(store, pk, s).await;
        tracing::info!(partition = %pk, base_offset = s.base_offset, next_offset = s.next_offset, "deleted remote segment");
    }
    Ok(m)
}

/// DeleteRecords: raises the remote log start offset to `offset` and expires the
/// segments wholly below it.
pub async fn delete_records(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    offset: i64,
) -> Result<PartitionManifest> {
    let m = expire(store, pk, offset).await?;
    if m.log_start_offset < offset {
        return manifest::update(store, pk, |m| {
            let raise = m.log_start_offset < offset;
            m.log_start_offset = m.log_start_offset.max(offset);
            raise
        })
        .await;
    }
    Ok(m)
}

/// Deletes the objects of `s`, best effort (what is left is an orphan).
pub(crate) async fn delete_segment_objects(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    s: &RemoteSegment,
) {
    for f in [
        SegmentFile::Manifest,
        SegmentFile::Log,
        SegmentFile::Index,
        SegmentFile::TimeIndex,
        SegmentFile::TxnIndex,
        SegmentFile::ProducerSnapshot,
    ] {
        let absent = match f {
            SegmentFile::TxnIndex => s.txnindex_bytes == 0,
            SegmentFile::ProducerSnapshot => s.producer_snapshot_bytes == 0,
            _ => false,
        };
        if absent {
            continue;
        }
        let key = pk.segment(s.base_offset, s.id, f);
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(partition = %pk, key = %key, error = %e, "could not delete remote object; the sweeper will retry")
            }
        }
    }
}

/// Deletes every object of the partition (topic deletion, `remote.log.delete.on.disable`).
pub async fn delete_partition(store: &dyn ObjectStore, pk: &PartitionKey) -> Result<usize> {
    let dir = pk.dir();
    let keys: Vec<_> = store
        .list(Some(&dir))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|source| TierError::Store {
            partition: pk.clone(),
            key: dir.to_string(),
            source,
        })?;
    // Manifests last, so a crash leaves a partition whose manifest still names
    // its segments rather than a manifest naming deleted objects... except that
    // segments go first: a reader then fails cleanly on NotFound.
    let (manifests, data): (Vec<_>, Vec<_>) = keys
        .into_iter()
        .partition(|k| k.as_ref().contains("/manifest/"));
    let n = data.len() + manifests.len();
    for key in data.into_iter().chain(manifests) {
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(TierError::Store {
                    partition: pk.clone(),
                    key: key.to_string(),
                    source,
                })
            }
        }
    }
    tracing::info!(partition = %pk, objects = n, "deleted remote data of partition");
    Ok(n)
}

/// Deletes segment objects no manifest names that are older than `grace` (an upload
/// in progress has young objects). Segments a remote pass retired are not orphans:
/// [`crate::compaction::delete_retired`] deletes them once their own grace is over.
/// Returns how many objects were removed.
pub async fn sweep_orphans(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    grace: Duration,
) -> Result<usize> {
    let m = manifest::load(store, pk).await?;
    let live: std::collections::HashSet<Uuid> = m
        .iter()
        .flat_map(|m| {
            let retired = m.retired.iter().map(|r| &r.segment);
            m.segments.iter().chain(retired).map(|s| s.id)
        })
        .collect();
    let dir = pk.dir();
    let metas: Vec<_> = store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|source| TierError::Store {
            partition: pk.clone(),
            key: dir.to_string(),
            source,
        })?;
    let cutoff = chrono_cutoff(grace);
    let mut removed = 0;
    for meta in metas {
        let Some(name) = meta.location.filename() else {
            continue;
        };
        // `{base:020}-{uuid}.{ext}`
        let Some(id) = name.get(21..57).and_then(|s| Uuid::parse_str(s).ok()) else {
            continue;
        };
        if live.contains(&id) || meta.last_modified.timestamp_millis() > cutoff {
            continue;
        }
        if store.delete(&meta.location).await.is_ok() {
            removed += 1;
            tracing::info!(partition = %pk, key = %meta.location, "swept orphaned remote object");
        }
    }
    Ok(removed)
}

fn chrono_cutoff(grace: Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    now - grace.as_millis() as i64
}
