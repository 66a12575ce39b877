//! Chunks of remote objects: the cache, the GETs that fill it, and read-ahead.
//!
//! A chunk (`remote.fetch.chunk.bytes`) is the unit of the [`crate::cache`]; a GET is
//! not. Runs of consecutive missing chunks are fetched by one streamed ranged GET of
//! up to [`MAX_SPAN_BYTES`] (several such GETs run concurrently), and each chunk
//! is cached and handed to its waiters as soon as its last byte arrives, so a reader
//! waits for its own chunks, not for the whole run. A chunk being fetched is
//! registered as in flight: a second reader of it waits for that GET instead of
//! issuing its own. Every byte read from the store passes the fetch
//! [`Throttle`](crate::throttle::Throttle).
//!
//! Why coalesce: an object store charges per request (S3's first-byte latency; moto
//! reads the whole object for every ranged GET), so a 16 MiB segment read as sixteen
//! 1 MiB GETs costs several times one 16 MiB GET. Chunks keep the cache granular.
//!
//! Streams, for sequential readers ([`Chunks::stream`]): one GET from the reader's chunk to
//! the end of the object, kept open across reads (fetches), delivering chunks no further
//! than the reader allows (its position plus its read-ahead window): the body is not pulled
//! past that, so TCP holds the rest and memory stays bounded. A catch-up consumer then
//! costs one GET per segment, as reading the objects whole does (moto even reads the
//! whole object for every ranged GET, so a segment read as 16 MiB ranges costs it several
//! times its size). A stream no reader asks more of for [`STREAM_IDLE`] ends.
//!
//! Errors: a GET that fails or ends short is resumed from its first missing chunk,
//! with backoff; a chunk still missing after that is fetched alone by each waiter
//! (with the same retries), whose error names the object key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cache::ChunkCache;
use crate::error::{Result, TierError};
use crate::layout::PartitionKey;
use crate::throttle::Throttle;
use crate::Pieces;

/// Largest single ranged GET: S3's own guidance for throughput is 8-16 MiB ranges.
pub const MAX_SPAN_BYTES: u64 = 16 << 20;
const ATTEMPTS: u32 = 4;
/// Partitions read within this window share the read-ahead budget.
const ACTIVE_WINDOW: Duration = Duration::from_secs(2);
/// A stream whose reader asked for nothing more for this long ends.
pub const STREAM_IDLE: Duration = Duration::from_secs(30);

/// One remote object.
#[derive(Clone, Debug)]
pub struct Object {
    pub pk: PartitionKey,
    pub key: Path,
    pub size: u64,
}

/// Whether one read needed the object store.
#[derive(Default)]
pub struct Lookup {
    missed: AtomicBool,
}

impl Lookup {
    pub fn missed(&self) -> bool {
        self.missed.load(Ordering::Relaxed)
    }

    /// The read needs a chunk that was neither cached nor in flight.
    pub fn mark_missed(&self) {
        self.missed.store(true, Ordering::Relaxed);
    }
}

/// `None` while the GET runs; `Some(None)` if it gave up on the chunk.
type Slot = watch::Receiver<Option<Option<Bytes>>>;
type SlotTx = watch::Sender<Option<Option<Bytes>>>;

#[derive(Clone)]
pub struct Chunks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    cache: ChunkCache,
    chunk: u64,
    throttle: Arc<Throttle>,
    in_flight: Mutex<HashMap<String, Slot>>,
    /// Bytes of read-ahead that may be outstanding (in flight or cached but not yet
    /// read) across all readers; shared by the partitions read recently.
    ahead_budget: u64,
    active: Mutex<HashMap<PartitionKey, Instant>>,
    /// The open stream of each object being read sequentially, by object key.
    streams: Mutex<HashMap<String, StreamCtl>>,
    stream_ids: std::sync::atomic::AtomicU64,
}

/// One stream: its first chunk, and how far its reader allows it to deliver.
struct StreamCtl {
    id: u64,
    start: u64,
    allow: watch::Sender<u64>,
}

fn chunk_key(key: &Path, i: u64) -> String {
    format!("{key}#{i}")
}

impl Chunks {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        cache: ChunkCache,
        chunk: u64,
        throttle: Arc<Throttle>,
        ahead_budget: u64,
    ) -> Self {
        Chunks {
            inner: Arc::new(Inner {
                store,
                cache,
                chunk: chunk.max(1),
                throttle,
                in_flight: Mutex::new(HashMap::new()),
                ahead_budget,
                active: Mutex::new(HashMap::new()),
                streams: Mutex::new(HashMap::new()),
                stream_ids: Default::default(),
            }),
        }
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.inner.chunk
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The same store and cache behind another throttle (for building a reader).
    pub fn with_throttle(&self, throttle: Arc<Throttle>) -> Self {
        let i = &self.inner;
        Chunks::new(
            i.store.clone(),
            i.cache.clone(),
            i.chunk,
            throttle,
            i.ahead_budget,
        )
    }

    /// Closes the cache (see [`crate::reader::RemoteReader::close`]).
    pub async fn close(&self) -> Result<()> {
        self.inner
            .cache
            .close()
            .await
            .map_err(|e| TierError::Cache {
                reason: format!("closing the chunk cache: {e}"),
            })
    }

    /// Whether chunk `i` of `obj` is cached or being fetched.
    pub fn present(&self, obj: &Object, i: u64) -> bool {
        let key = chunk_key(&obj.key, i);
        self.inner.in_flight.lock().contains_key(&key) || self.inner.cache.contains(&key)
    }

    /// How many chunks a partition may read ahead now: `wanted`, shrunk so that all
    /// partitions read in the last [`ACTIVE_WINDOW`] together stay in the budget.
    pub fn ahead_chunks(&self, pk: &PartitionKey, wanted: u64) -> u64 {
        let now = Instant::now();
        let mut active = self.inner.active.lock();
        active.insert(pk.clone(), now);
        if active.len() > 64 {
            active.retain(|_, t| now.duration_since(*t) < ACTIVE_WINDOW);
        }
        let readers = active
            .values()
            .filter(|t| now.duration_since(**t) < ACTIVE_WINDOW)
            .count() as u64;
        wanted.min(self.inner.ahead_budget / self.inner.chunk / readers.max(1))
    }

    /// Starts GETs for the chunks `[from, to)` of `obj` that are neither cached nor
    /// in flight, one GET per run of consecutive missing chunks (split at
    /// [`MAX_SPAN_BYTES`]). Returns at once.
    pub fn prefetch(&self, obj: &Arc<Object>, from: u64, to: u64) {
        let to = to.min(obj.size.div_ceil(self.inner.chunk));
        let max_run = (MAX_SPAN_BYTES / self.inner.chunk).max(1);
        let mut runs: Vec<(u64, Vec<SlotTx>)> = Vec::new();
        {
            let mut in_flight = self.inner.in_flight.lock();
            let mut run_end = None;
            for i in from..to {
                let key = chunk_key(&obj.key, i);
                if in_flight.contains_key(&key) || self.inner.cache.contains(&key) {
                    run_end = None;
                    continue;
                }
                let (tx, rx) = watch::channel(None);
                in_flight.insert(key, rx);
                match runs.last_mut() {
                    Some((_, txs)) if run_end == Some(i) && (txs.len() as u64) < max_run => {
                        txs.push(tx)
                    }
                    _ => runs.push((i, vec![tx])),
                }
                run_end = Some(i + 1);
            }
        }
        for (first, txs) in runs {
            let (this, obj) = (self.clone(), obj.clone());
            tokio::spawn(async move { this.fetch_run(&obj, first, txs).await });
        }
    }

    /// A sequential reader needs chunks `[from, to)` of `obj` (its read and read-ahead):
    /// raises the allowance of the object's stream, or starts one at the first of them
    /// that is missing. Returns at once.
    pub fn stream(&self, obj: &Arc<Object>, from: u64, to: u64) {
        let to = to.min(obj.size.div_ceil(self.inner.chunk));
        if from >= to {
            return;
        }
        let key = obj.key.to_string();
        if let Some(s) = self.inner.streams.lock().get(&key) {
            if s.start <= from && !s.allow.is_closed() {
                s.allow.send_if_modified(|a| {
                    let raise = to > *a;
                    *a = (*a).max(to);
                    raise
                });
                return;
            }
        }
        let Some(first) = (from..to).find(|&i| !self.present(obj, i)) else {
            return;
        };
        let id = self.inner.stream_ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(to);
        // Replacing an older stream of the object (its reader went back) closes it: it
        // delivers what it registered and ends.
        self.inner.streams.lock().insert(
            key,
            StreamCtl {
                id,
                start: first,
                allow: tx,
            },
        );
        let (this, obj) = (self.clone(), obj.clone());
        tokio::spawn(async move { this.stream_run(obj, id, first, rx).await });
    }

    /// The stream's task: see the module docs. Chunks are registered as in flight as the
    /// reader allows them, so readers wait for the stream instead of fetching themselves.
    async fn stream_run(
        &self,
        obj: Arc<Object>,
        id: u64,
        first: u64,
        mut allow: watch::Receiver<u64>,
    ) {
        let chunk = self.inner.chunk;
        let n = obj.size.div_ceil(chunk);
        let (mut next, mut registered) = (first, first);
        let mut txs: std::collections::VecDeque<(u64, SlotTx)> = Default::default();
        let mut failures = 0;
        let mut delay = Duration::from_millis(50);
        'get: while next < n && failures < ATTEMPTS {
            if failures > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let opts = GetOptions {
                range: Some(GetRange::Bounded(next * chunk..obj.size)),
                ..Default::default()
            };
            let mut body = match self.inner.store.get_opts(&obj.key, opts).await {
                Ok(r) => r.into_stream(),
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => {
                    tracing::debug!(key = %obj.key, error = %e, "remote stream GET failed; resuming");
                    failures += 1;
                    continue;
                }
            };
            let mut buf = BytesMut::new();
            // Body bytes past what the reader allows so far (a store may answer in one piece).
            let mut held = Bytes::new();
            loop {
                let allowed = (*allow.borrow_and_update()).min(n);
                if registered < allowed {
                    let mut in_flight = self.inner.in_flight.lock();
                    for i in registered..allowed {
                        let key = chunk_key(&obj.key, i);
                        if in_flight.contains_key(&key) || self.inner.cache.contains(&key) {
                            continue;
                        }
                        let (tx, rx) = watch::channel(None);
                        in_flight.insert(key, rx);
                        txs.push_back((i, tx));
                    }
                    registered = allowed;
                }
                if next >= n {
                    break 'get;
                }
                if next >= registered {
                    // Everything allowed is delivered: wait for the reader (TCP holds the
                    // rest of the body), or end when it is gone.
                    match tokio::time::timeout(STREAM_IDLE, allow.changed()).await {
                        Ok(Ok(())) => continue,
                        _ => break 'get,
                    }
                }
                let mut piece = if !held.is_empty() {
                    std::mem::take(&mut held)
                } else {
                    match body.next().await {
                        Some(Ok(piece)) => {
                            self.inner.throttle.take(piece.len()).await;
                            piece
                        }
                        Some(Err(e)) => {
                            tracing::debug!(key = %obj.key, error = %e, "remote stream body failed; resuming");
                            failures += 1;
                            continue 'get;
                        }
                        None => {
                            failures += 1;
                            continue 'get;
                        }
                    }
                };
                while !piece.is_empty() && next < n {
                    if next >= registered {
                        held = piece;
                        break;
                    }
                    let want = (((next + 1) * chunk).min(obj.size) - next * chunk) as usize;
                    let bytes = if buf.is_empty() && piece.len() >= want {
                        piece.split_to(want)
                    } else {
                        if buf.is_empty() {
                            // One allocation of the chunk's size: growing from empty
                            // reallocated and copied it about log2(chunk) times.
                            buf.reserve(want);
                        }
                        let take = piece.len().min(want - buf.len());
                        buf.extend_from_slice(&piece.split_to(take));
                        if buf.len() < want {
                            break;
                        }
                        buf.split().freeze()
                    };
                    let tx = match txs.front() {
                        Some((i, _)) if *i == next => txs.pop_front().map(|(_, tx)| tx),
                        _ => None,
                    };
                    // A chunk not registered was cached or fetched by someone else: skipped.
                    if let Some(tx) = tx {
                        self.deliver(&obj, next, bytes, Some(tx), true);
                    }
                    next += 1;
                    failures = 0;
                }
            }
        }
        // Registered chunks not delivered: their readers fetch them alone.
        for (i, tx) in txs {
            self.inner.in_flight.lock().remove(&chunk_key(&obj.key, i));
            let _ = tx.send(Some(None));
        }
        let mut streams = self.inner.streams.lock();
        if streams.get(obj.key.as_ref()).is_some_and(|s| s.id == id) {
            streams.remove(obj.key.as_ref());
        }
    }

    /// Chunk `i` of `obj`: from the cache, from a GET in flight, or from a new GET.
    /// `lookup` is marked missed unless the cache had it.
    pub async fn get(&self, obj: &Arc<Object>, i: u64, lookup: &Lookup) -> Result<Bytes> {
        let key = chunk_key(&obj.key, i);
        let slot = self.inner.in_flight.lock().get(&key).cloned();
        if slot.is_none() {
            if let Ok(Some(entry)) = self.inner.cache.get(&key).await {
                return Ok(entry.value().clone());
            }
        }
        lookup.missed.store(true, Ordering::Relaxed);
        let slot = match slot {
            Some(s) => Some(s),
            None => {
                self.prefetch(obj, i, i + 1);
                self.inner.in_flight.lock().get(&key).cloned()
            }
        };
        if let Some(mut rx) = slot {
            match rx.wait_for(Option::is_some).await {
                Ok(v) => {
                    if let Some(Some(b)) = v.clone() {
                        return Ok(b);
                    }
                }
                // The GET's task is gone (runtime shutting down): forget its slot.
                Err(_) => {
                    self.inner.in_flight.lock().remove(&key);
                }
            }
        } else if let Ok(Some(entry)) = self.inner.cache.get(&key).await {
            // Fetched and cached between our two looks.
            return Ok(entry.value().clone());
        }
        // The shared GET gave up on this chunk: try alone, for a precise error.
        let b = self.fetch_alone(obj, i).await?;
        self.inner.cache.insert(key, b.clone());
        Ok(b)
    }

    /// Bytes `[from, to)` of `obj` as slices of the chunks that hold them (no copy); the
    /// chunks of a read spanning several are waited for concurrently.
    pub async fn read_range(
        &self,
        obj: &Arc<Object>,
        from: u64,
        to: u64,
        lookup: &Lookup,
    ) -> Result<Pieces> {
        let chunk = self.inner.chunk;
        let (first, last) = (from / chunk, (to.max(from + 1) - 1) / chunk);
        if first < last {
            self.prefetch(obj, first, last + 1);
        }
        let chunks =
            futures::future::try_join_all((first..=last).map(|i| self.get(obj, i, lookup))).await?;
        Ok((first..=last)
            .zip(chunks)
            .map(|(i, c)| {
                let lo = from.saturating_sub(i * chunk) as usize;
                let hi = ((to - i * chunk) as usize).min(c.len());
                c.slice(lo.min(hi)..hi)
            })
            .collect())
    }

    /// One streamed GET of chunks `first..first + txs.len()`, resumed on errors and
    /// short bodies. Each chunk is cached, then taken out of `in_flight`, then sent.
    async fn fetch_run(&self, obj: &Object, first: u64, txs: Vec<SlotTx>) {
        let chunk = self.inner.chunk;
        let end_chunk = first + txs.len() as u64;
        let end = (end_chunk * chunk).min(obj.size);
        let mut next = first; // the first chunk not delivered yet
        let mut delay = Duration::from_millis(50);
        let mut txs = txs.into_iter();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let opts = GetOptions {
                range: Some(GetRange::Bounded(next * chunk..end)),
                ..Default::default()
            };
            let mut stream = match self.inner.store.get_opts(&obj.key, opts).await {
                Ok(r) => r.into_stream(),
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => {
                    tracing::debug!(key = %obj.key, error = %e, "remote GET failed; resuming");
                    continue;
                }
            };
            // Bytes of chunk `next` so far. A chunk arriving in pieces is copied once,
            // into its own buffer, so a cached chunk pins no network buffer.
            let mut buf = BytesMut::new();
            let mut ok = true;
            while ok && next < end_chunk {
                let mut piece = match stream.next().await {
                    Some(Ok(piece)) => piece,
                    Some(Err(e)) => {
                        tracing::debug!(key = %obj.key, error = %e, "remote GET body failed; resuming");
                        break;
                    }
                    None => break, // short body
                };
                self.inner.throttle.take(piece.len()).await;
                while !piece.is_empty() {
                    if next == end_chunk {
                        ok = false; // longer than asked: ignore the excess
                        break;
                    }
                    let want = (((next + 1) * chunk).min(obj.size) - next * chunk) as usize;
                    if buf.is_empty() && piece.len() >= want {
                        // A whole chunk in one piece (memory and file stores): no copy.
                        self.deliver(obj, next, piece.split_to(want), txs.next(), false);
                        next += 1;
                        continue;
                    }
                    if buf.is_empty() {
                        buf.reserve(want);
                    }
                    let n = piece.len().min(want - buf.len());
                    buf.extend_from_slice(&piece.split_to(n));
                    if buf.len() == want {
                        self.deliver(obj, next, buf.split().freeze(), txs.next(), false);
                        next += 1;
                    }
                }
            }
            if next == end_chunk {
                return;
            }
        }
        // Give up on the rest: waiters fetch alone and report the error.
        for (i, tx) in (next..end_chunk).zip(txs) {
            self.inner.in_flight.lock().remove(&chunk_key(&obj.key, i));
            let _ = tx.send(Some(None));
        }
    }

    /// Caches chunk `i`, then takes it out of `in_flight`, then wakes its waiters: a
    /// reader that finds no slot finds the cache. `scan` chunks (brought by a sequential
    /// reader's stream) are admitted at low priority and memory only, see [`crate::cache`].
    fn deliver(&self, obj: &Object, i: u64, bytes: Bytes, tx: Option<SlotTx>, scan: bool) {
        let key = chunk_key(&obj.key, i);
        if scan {
            self.inner.cache.insert_with_properties(
                key.clone(),
                bytes.clone(),
                crate::cache::scan_properties(),
            );
        } else {
            self.inner.cache.insert(key.clone(), bytes.clone());
        }
        self.inner.in_flight.lock().remove(&key);
        if let Some(tx) = tx {
            let _ = tx.send(Some(Some(bytes)));
        }
    }

    /// One ranged GET of chunk `i`, retried on errors and short answers.
    async fn fetch_alone(&self, obj: &Object, i: u64) -> Result<Bytes> {
        let chunk = self.inner.chunk;
        let range = i * chunk..((i + 1) * chunk).min(obj.size);
        let want = range.end - range.start;
        let mut delay = Duration::from_millis(50);
        let mut last_err = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let store_err = |source| TierError::Store {
                partition: obj.pk.clone(),
                key: obj.key.to_string(),
                source,
            };
            let opts = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                ..Default::default()
            };
            let got = match self.inner.store.get_opts(&obj.key, opts).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            match got {
                Ok(b) if b.len() as u64 == want => {
                    self.inner.throttle.take(b.len()).await;
                    return Ok(b);
                }
                Ok(b) => {
                    last_err = Some(TierError::CorruptSegment {
                        partition: obj.pk.clone(),
                        key: obj.key.to_string(),
                        position: range.start,
                        reason: format!("short read: {} of {want} bytes", b.len()),
                    })
                }
                Err(e @ object_store::Error::NotFound { .. }) => return Err(store_err(e)),
                Err(e) => last_err = Some(store_err(e)),
            }
        }
        Err(last_err.unwrap_or(TierError::Cache {
            reason: format!("chunk {i} of {}: no attempt made", obj.key),
        }))
    }
}
