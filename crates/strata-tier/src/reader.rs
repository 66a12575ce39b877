//! Reading the remote tier: whole batches from an offset, like `Log::read`.
//!
//! The manifest names the segment holding the offset; its remote offset index
//! gives the byte position of the closest indexed batch; from there batch headers
//! are scanned to the first batch ending at or after the offset, and whole batches
//! are returned up to `max_bytes`. All object bytes come through [`crate::chunks`]:
//! chunks of `chunk_bytes` held in the [`crate::cache`], fetched by coalesced
//! streamed GETs.
//!
//! Read-ahead, for sequential readers: a read asks for the chunks it can touch and,
//! when the chunk half a window past its end is not cached or in flight, for a whole
//! window of `read_ahead_chunks` chunks beyond it, continuing into the next remote
//! segment (its index too, and a whole window of it) once that half-way point lies
//! in the next segment. All of it is one
//! request to [`Chunks::prefetch`], so it becomes one GET per run of missing chunks,
//! not one per chunk; the window is shrunk when many partitions are being read, so
//! that their read-ahead together fits half the memory cache.
//!
//! Each [`RemoteReader::read`] counts as one cache lookup: a hit when every chunk it
//! needed was already in the cache, a miss when any came from the object store
//! (including one it waited for while a read-ahead fetched it). The totals are in
//! [`RemoteReader::cache_stats`], and a hook set with [`RemoteReader::with_lookup_hook`]
//! sees each lookup with its partition (the broker feeds its metrics from it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::cache::{self, CacheConfig};
use crate::chunks::{Chunks, Lookup, Object};
use crate::error::{Result, TierError};
use crate::layout::{PartitionKey, SegmentFile};
use crate::manifest::{PartitionManifest, RemoteSegment};
use crate::throttle::Throttle;
use crate::Pieces;

/// Length of the v2 batch header we read: base offset (8), length (4), leader
/// epoch (4), magic (1), crc (4), attributes (2), last offset delta (4).
const HEADER: u64 = 27;
const LOG_OVERHEAD: u64 = 12;

/// Called once per remote read with its partition and whether the cache served it.
pub type LookupHook = Arc<dyn Fn(&PartitionKey, bool) + Send + Sync>;

/// Hits and misses of remote reads since the reader was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

#[derive(Clone)]
pub struct RemoteReader {
    chunks: Chunks,
    cfg: CacheConfig,
    hook: Option<LookupHook>,
    stats: Arc<[AtomicU64; 2]>,
    /// Where the last reads of each segment ended: (segment, next offset) -> position.
    /// A sequential consumer's next read starts there, so it needs no offset index.
    cursors: Arc<Mutex<HashMap<(Uuid, i64), u64>>>,
}

/// Cursors kept before the map is cleared (a bounded memory, not an LRU: a consumer
/// that loses its cursor reads the offset index once more).
const MAX_CURSORS: usize = 4096;

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader")
            .field("store", &self.chunks.store().to_string())
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl RemoteReader {
    pub async fn new(store: Arc<dyn ObjectStore>, cfg: CacheConfig) -> Result<Self> {
        let cache = cache::build(&cfg).await?;
        let chunks = Chunks::new(
            store,
            cache,
            cfg.chunk_bytes as u64,
            Arc::new(Throttle::new(0)),
            cfg.memory_bytes as u64 / 2,
        );
        Ok(RemoteReader {
            chunks,
            cfg,
            hook: None,
            stats: Arc::default(),
            cursors: Arc::default(),
        })
    }

    /// Limits the bytes read from the store (by reads and read-ahead) to `throttle`
    /// (`remote.log.manager.fetch.max.bytes.per.second`).
    pub fn with_fetch_throttle(mut self, throttle: Arc<Throttle>) -> Self {
        self.chunks = self.chunks.with_throttle(throttle);
        self
    }

    /// Calls `hook` once per read with its partition and whether it was a hit.
    pub fn with_lookup_hook(mut self, hook: LookupHook) -> Self {
        self.hook = Some(hook);
        self
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.chunks.store()
    }

    /// Closes the chunk cache (waits for its flushes), so that its tasks do not outlive
    /// the runtime: call once at shutdown; reads after it still work, uncached.
    pub async fn close(&self) -> Result<()> {
        self.chunks.close().await
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.stats[0].load(Ordering::Relaxed),
            misses: self.stats[1].load(Ordering::Relaxed),
        }
    }

    fn count(&self, pk: &PartitionKey, lookup: &Lookup) {
        let hit = !lookup.missed();
        self.stats[usize::from(!hit)].fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = &self.hook {
            hook(pk, hit);
        }
    }

    /// Whole batches starting with the one containing `offset`, up to `max_bytes`
    /// (at least one whole batch if `min_one_batch`), from one remote segment.
    /// An offset in a gap (between remote segments, or inside a compacted one)
    /// reads from the next batch there is; empty when no remote batch ends at or
    /// after `offset` (a compacted tier whose last records were removed: the
    /// caller goes on at the remote end). Errors with `OffsetNotTiered` if
    /// `offset` is below the remote start or at or past the remote end. The bytes are
    /// slices of the cached chunks that hold them ([`Pieces`]), not joined.
    pub async fn read(
        &self,
        m: &PartitionManifest,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Pieces> {
        let lookup = Lookup::default();
        let out = self
            .read_counted(m, offset, max_bytes, min_one_batch, true, &lookup)
            .await;
        if out.is_ok() {
            self.count(&m.partition, &lookup);
        }
        out
    }

    async fn read_counted(
        &self,
        m: &PartitionManifest,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        read_ahead: bool,
        lookup: &Lookup,
    ) -> Result<Pieces> {
        let pk = &m.partition;
        let mut offset = offset;
        if m.start_offset().is_none_or(|s| s > offset) || m.segment_at_or_after(offset).is_none() {
            return Err(TierError::OffsetNotTiered {
                partition: pk.clone(),
                offset,
                start: m.start_offset().unwrap_or(-1),
                end: m.end_offset().unwrap_or(-1),
            });
        }
        // The first batch ending at or after `offset`: in the segment holding it, or in
        // a later one. An offset in a gap reads on from the next batch that exists, as
        // over a compacted log's gaps: between segments (offsets deleted before they were
        // tiered), before a compacted segment's first batch, or after its last one (then
        // the next segment; a compacted segment may hold no batch at all).
        let (seg, log, mut cur, start) = loop {
            let Some(seg) = m.segment_at_or_after(offset) else {
                return Ok(Pieces::new());
            };
            offset = offset.max(seg.base_offset);
            let log = log_object(pk, seg);
            // A read at a segment's start, or where the previous read ended, is part of a
            // sequential scan: its chunks come by the segment's stream.
            let sequential =
                offset <= seg.base_offset || self.cursors.lock().contains_key(&(seg.id, offset));
            let mut pos = self.index_position(pk, seg, offset, lookup).await?;
            if sequential && !self.chunks.present(&log, pos / self.chunks.chunk_bytes()) {
                // Its stream is about to fetch it: the read waits for the store.
                lookup.mark_missed();
            }
            self.prefetch(m, seg, &log, pos, max_bytes as u64, read_ahead, sequential);
            let mut cur = None;
            let found = loop {
                if pos + HEADER > log.size {
                    break None;
                }
                let h = self.header(&log, pos, &mut cur, lookup).await?;
                let (_, total, last) = parse_header(&log, pos, &h)?;
                if last >= offset {
                    break Some(pos);
                }
                pos += total;
            };
            match found {
                Some(start) => break (seg, log, cur, start),
                None => offset = seg.next_offset,
            }
        };
        let mut end = start;
        let mut next_offset = offset;
        while end + HEADER <= log.size {
            let h = self.header(&log, end, &mut cur, lookup).await?;
            let (_, total, last) = parse_header(&log, end, &h)?;
            let first = end == start;
            if (end + total - start) as usize > max_bytes && !(first && min_one_batch) {
                break;
            }
            end += total;
            next_offset = last + 1;
            if end - start >= max_bytes as u64 {
                break;
            }
        }
        if end == start {
            return Ok(Pieces::new());
        }
        let bytes = self.chunks.read_range(&log, start, end, lookup).await?;
        let mut cursors = self.cursors.lock();
        if cursors.len() >= MAX_CURSORS {
            cursors.clear();
        }
        cursors.insert((seg.id, next_offset), end);
        Ok(bytes)
    }

    /// Asks for the chunks a read from `pos` of up to `max_bytes` can touch, and for
    /// the read-ahead window: a sequential reader through the segment's stream, any other
    /// when the chunk half a window past them is missing.
    #[allow(clippy::too_many_arguments)]
    fn prefetch(
        &self,
        m: &PartitionManifest,
        seg: &RemoteSegment,
        log: &Arc<Object>,
        pos: u64,
        max_bytes: u64,
        read_ahead: bool,
        sequential: bool,
    ) {
        let chunk = self.chunks.chunk_bytes();
        let n = log.size.div_ceil(chunk);
        let end = pos.saturating_add(max_bytes).saturating_add(HEADER);
        let (first, end) = (pos / chunk, end.div_ceil(chunk).min(n));
        let ahead = if read_ahead {
            self.chunks
                .ahead_chunks(&m.partition, self.cfg.read_ahead_chunks as u64)
        } else {
            0
        };
        let next = m.segments.iter().find(|s| s.base_offset >= seg.next_offset);
        if sequential && ahead > 0 {
            // One stream per segment, allowed up to the read-ahead window; once the window
            // reaches past the segment's end, the next segment's stream starts too.
            self.chunks.stream(log, first, end + ahead);
            if let (Some(s), true) = (next, end + ahead > n) {
                self.chunks
                    .stream(&log_object(&m.partition, s), 0, end + ahead - n);
            }
            return;
        }
        let probe = end + ahead / 2;
        let missing = ahead > 0
            && match next {
                _ if probe < n => !self.chunks.present(log, probe),
                Some(s) => !self.chunks.present(&log_object(&m.partition, s), probe - n),
                None => false,
            };
        if !missing {
            self.chunks.prefetch(log, first, end);
            return;
        }
        self.chunks.prefetch(log, first, end + ahead);
        if let (Some(s), true) = (next, probe >= n) {
            // Continue into the next segment with a whole window (one GET, not two). Its
            // offset index is not needed: a sequential reader starts at its base offset.
            self.chunks
                .prefetch(&log_object(&m.partition, s), 0, ahead.max(end + ahead - n));
        }
    }

    /// The 27-byte batch header at `pos`, from `cur` (the chunk last used) when it
    /// holds it.
    async fn header(
        &self,
        log: &Arc<Object>,
        pos: u64,
        cur: &mut Option<(u64, Bytes)>,
        lookup: &Lookup,
    ) -> Result<Bytes> {
        let chunk = self.chunks.chunk_bytes();
        let i = pos / chunk;
        let lo = (pos - i * chunk) as usize;
        let c = match cur {
            Some((at, c)) if *at == i => c,
            _ => &cur.insert((i, self.chunks.get(log, i, lookup).await?)).1,
        };
        if lo + HEADER as usize <= c.len() {
            return Ok(c.slice(lo..lo + HEADER as usize));
        }
        Ok(self
            .chunks
            .read_range(log, pos, pos + HEADER, lookup)
            .await?
            .to_bytes())
    }

    /// The first remote batch whose maxTimestamp is at or after `ts` (ListOffsets by
    /// timestamp), seeking with the remote time index. `None` if no remote segment
    /// has such a batch. Batches below the manifest's log start offset are skipped.
    pub async fn find_batch_by_timestamp(
        &self,
        m: &PartitionManifest,
        ts: i64,
    ) -> Result<Option<Bytes>> {
        let floor = m.start_offset().unwrap_or(0);
        let Some(seg) = m
            .segments
            .iter()
            .find(|s| s.max_timestamp >= ts && s.next_offset > floor)
        else {
            return Ok(None);
        };
        let lookup = Lookup::default();
        let mut offset = self
            .time_index_offset(&m.partition, seg, ts, &lookup)
            .await?
            .max(floor);
        while offset < seg.next_offset {
            let batch = self
                .read_counted(m, offset, 1, true, false, &lookup)
                .await?
                .to_bytes();
            if batch.len() < 61 {
                return Ok(None);
            }
            let max_ts = i64::from_be_bytes(batch[35..43].try_into().unwrap_or([0; 8]));
            let last = i64::from_be_bytes(batch[0..8].try_into().unwrap_or([0; 8]))
                + i64::from(i32::from_be_bytes(
                    batch[23..27].try_into().unwrap_or([0; 4]),
                ));
            if max_ts >= ts {
                return Ok(Some(batch));
            }
            offset = last + 1;
        }
        Ok(None)
    }

    /// The `.txnindex` bytes of remote segment `seg` of `m` (Kafka's aborted-transaction
    /// index, 34-byte entries), through the chunk cache; empty when it has none.
    pub async fn txn_index(&self, m: &PartitionManifest, seg: &RemoteSegment) -> Result<Bytes> {
        if seg.txnindex_bytes == 0 {
            return Ok(Bytes::new());
        }
        let obj = Arc::new(Object {
            pk: m.partition.clone(),
            key: m
                .partition
                .segment(seg.base_offset, seg.id, SegmentFile::TxnIndex),
            size: seg.txnindex_bytes,
        });
        let lookup = Lookup::default();
        let out = self
            .chunks
            .read_range(&obj, 0, seg.txnindex_bytes, &lookup)
            .await
            .map(|p| p.to_bytes());
        if out.is_ok() {
            self.count(&m.partition, &lookup);
        }
        out
    }

    /// The producer snapshot uploaded with remote segment `seg` (the producer state as of
    /// its next offset), read straight from the store; empty when it has none.
    pub async fn producer_snapshot(&self, pk: &PartitionKey, seg: &RemoteSegment) -> Result<Bytes> {
        if seg.producer_snapshot_bytes == 0 {
            return Ok(Bytes::new());
        }
        let key = pk.segment(seg.base_offset, seg.id, SegmentFile::ProducerSnapshot);
        let store = self.chunks.store();
        let got = crate::retry::retry("get producer snapshot", || async {
            object_store::ObjectStoreExt::get(&**store, &key)
                .await?
                .bytes()
                .await
        })
        .await;
        got.map_err(|source| TierError::Store {
            partition: pk.clone(),
            key: key.to_string(),
            source,
        })
    }

    /// The offset of the last time-index entry with a timestamp below `ts` (or the
    /// segment base): every batch before it is older than `ts`.
    async fn time_index_offset(
        &self,
        pk: &PartitionKey,
        seg: &RemoteSegment,
        ts: i64,
        lookup: &Lookup,
    ) -> Result<i64> {
        if seg.timeindex_bytes < 12 {
            return Ok(seg.base_offset);
        }
        let obj = Arc::new(Object {
            pk: pk.clone(),
            key: pk.segment(seg.base_offset, seg.id, SegmentFile::TimeIndex),
            size: seg.timeindex_bytes,
        });
        let bytes = self
            .chunks
            .read_range(
                &obj,
                0,
                seg.timeindex_bytes - seg.timeindex_bytes % 12,
                lookup,
            )
            .await?
            .to_bytes();
        let mut offset = seg.base_offset;
        for e in bytes.chunks_exact(12) {
            let t = i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
            let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if t >= ts {
                break;
            }
            // The entry's offset is the last of a batch older than `ts`.
            offset = seg.base_offset + i64::from(rel) + 1;
        }
        Ok(offset)
    }

    /// Byte position of the last indexed batch ending at or below `offset`.
    async fn index_position(
        &self,
        pk: &PartitionKey,
        seg: &RemoteSegment,
        offset: i64,
        lookup: &Lookup,
    ) -> Result<u64> {
        if seg.index_bytes < 8 || offset <= seg.base_offset {
            return Ok(0);
        }
        if let Some(pos) = self.cursors.lock().get(&(seg.id, offset)) {
            return Ok(*pos);
        }
        let idx = index_object(pk, seg);
        let bytes = self
            .chunks
            .read_range(&idx, 0, seg.index_bytes - seg.index_bytes % 8, lookup)
            .await?
            .to_bytes();
        let rel_target = offset.saturating_sub(seg.base_offset);
        let mut pos = 0u64;
        let mut prev: Option<(u32, u32)> = None;
        for e in bytes.chunks_exact(8) {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let p = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            // Entries are strictly increasing; anything else is a torn tail.
            if prev.is_some_and(|(r, q)| rel <= r || p <= q) || i64::from(rel) > rel_target {
                break;
            }
            prev = Some((rel, p));
            pos = u64::from(p);
        }
        Ok(pos.min(seg.size_bytes))
    }
}

fn log_object(pk: &PartitionKey, seg: &RemoteSegment) -> Arc<Object> {
    Arc::new(Object {
        pk: pk.clone(),
        key: pk.segment(seg.base_offset, seg.id, SegmentFile::Log),
        size: seg.size_bytes,
    })
}

fn index_object(pk: &PartitionKey, seg: &RemoteSegment) -> Arc<Object> {
    Arc::new(Object {
        pk: pk.clone(),
        key: pk.segment(seg.base_offset, seg.id, SegmentFile::Index),
        size: seg.index_bytes,
    })
}

/// (base offset, total length, last offset) of the batch header at `pos`.
fn parse_header(obj: &Object, pos: u64, h: &[u8]) -> Result<(i64, u64, i64)> {
    let corrupt = |reason: String| TierError::CorruptSegment {
        partition: obj.pk.clone(),
        key: obj.key.to_string(),
        position: pos,
        reason,
    };
    if (h.len() as u64) < HEADER {
        return Err(corrupt(format!(
            "truncated batch header ({} bytes)",
            h.len()
        )));
    }
    let base = i64::from_be_bytes(h[0..8].try_into().map_err(|_| corrupt("header".into()))?);
    let len = i32::from_be_bytes(h[8..12].try_into().map_err(|_| corrupt("header".into()))?);
    let delta = i32::from_be_bytes(h[23..27].try_into().map_err(|_| corrupt("header".into()))?);
    if len < (HEADER - LOG_OVERHEAD) as i32 || h[16] != 2 {
        return Err(corrupt(format!(
            "bad batch length {len} or magic {}",
            h[16]
        )));
    }
    let total = LOG_OVERHEAD + len as u64;
    if pos + total > obj.size {
        return Err(corrupt(format!(
            "batch of {total} bytes runs past the object end {}",
            obj.size
        )));
    }
    Ok((base, total, base + i64::from(delta.max(0))))
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
