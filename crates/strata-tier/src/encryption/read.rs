//! Decrypting GETs: a plaintext range becomes the ciphertext range of the chunks
//! covering it; the chunks are opened as they stream in and only the requested
//! bytes are returned.
//!
//! The header (the wrapped data key) is needed first. Opened headers are cached per
//! path with the identity of the object they came from (e-tag, size, modification
//! time, version); every GET checks that the object it answered from is that one, so
//! an object replaced under the same name is never opened with a stale key: the
//! header is dropped and the read starts again. Without a cached header, a read
//! near the start of the object fetches the header in the same GET; a read further
//! in fetches it with a second, concurrent GET.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, ObjectStore};

use super::format::{self, DataKey, CHUNK, HEADER_LEN, TAG};
use super::keys::MasterKeys;
use super::store_error;
use crate::error::TierError;

type Result<T, E = object_store::Error> = std::result::Result<T, E>;

/// A read starting this close to the object start fetches the header in the same GET.
const INLINE_HEADER_MAX: u64 = 256 << 10;
/// Reads that find the object replaced under them start again this often.
const ATTEMPTS: usize = 3;

/// An opened header and the object it belongs to.
pub(super) struct OpenHeader {
    key: DataKey,
    meta: ObjectMeta,
}

/// Opened headers by object path (a small LRU).
#[derive(Clone)]
pub(super) struct HeaderCache(foyer::Cache<String, Arc<OpenHeader>>);

impl HeaderCache {
    pub(super) fn new(entries: usize) -> Self {
        HeaderCache(foyer::CacheBuilder::new(entries).build())
    }

    fn get(&self, path: &Path) -> Option<Arc<OpenHeader>> {
        self.0.get(path.as_ref()).map(|e| e.value().clone())
    }

    fn put(&self, path: &Path, h: Arc<OpenHeader>) {
        self.0.insert(path.to_string(), h);
    }

    pub(super) fn forget(&self, path: &Path) {
        self.0.remove(path.as_ref());
    }
}

/// Whether two GETs were answered from the same stored object.
fn same_object(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    let tag = match (&a.e_tag, &b.e_tag) {
        (Some(x), Some(y)) => x == y,
        _ => a.last_modified == b.last_modified,
    };
    tag && a.size == b.size && a.version == b.version
}

fn range_error(
    location: &Path,
    e: impl std::error::Error + Send + Sync + 'static,
) -> object_store::Error {
    object_store::Error::Generic {
        store: "EncryptedStore",
        source: format!("invalid range for {location}: {e}").into(),
    }
}

/// The plaintext size of the object `meta` describes.
fn plain_size(location: &Path, meta: &ObjectMeta) -> Result<u64> {
    format::plain_len(meta.size).ok_or_else(|| {
        store_error(TierError::TruncatedObject {
            key: location.to_string(),
            reason: format!(
                "{} bytes is not the size of any encrypted object",
                meta.size
            ),
        })
    })
}

/// The body of a GET as a stream, whatever its payload kind.
fn stream_of(
    payload: GetResultPayload,
    meta: &ObjectMeta,
    range: &Range<u64>,
) -> BoxStream<'static, Result<Bytes>> {
    match payload {
        GetResultPayload::Stream(s) => s,
        file @ GetResultPayload::File(..) => GetResult {
            payload: file,
            meta: meta.clone(),
            range: range.clone(),
            attributes: Default::default(),
            extensions: Default::default(),
        }
        .into_stream(),
    }
}

/// The decrypting GET (see the module docs).
pub(super) async fn get(
    inner: &dyn ObjectStore,
    keys: &MasterKeys,
    headers: &HeaderCache,
    location: &Path,
    options: GetOptions,
) -> Result<GetResult> {
    if options.head {
        let mut r = inner.get_opts(location, options).await?;
        let size = plain_size(location, &r.meta)?;
        r.meta.size = size;
        r.range = 0..size;
        return Ok(r);
    }
    if let Some(range) = &options.range {
        range.is_valid().map_err(|e| range_error(location, e))?;
    }
    for _ in 0..ATTEMPTS {
        if let Some(r) = try_get(inner, keys, headers, location, &options).await? {
            return Ok(r);
        }
        headers.forget(location);
    }
    Err(object_store::Error::Generic {
        store: "EncryptedStore",
        source: format!("{location} was replaced during each of {ATTEMPTS} reads").into(),
    })
}

/// GETs the header of `location` alone and opens it.
async fn fetch_header(
    inner: &dyn ObjectStore,
    keys: &MasterKeys,
    location: &Path,
    options: &GetOptions,
) -> Result<Arc<OpenHeader>> {
    let opts = GetOptions {
        range: Some(GetRange::Bounded(0..HEADER_LEN as u64)),
        ..options.clone()
    };
    let r = inner.get_opts(location, opts).await?;
    let meta = r.meta.clone();
    let bytes = r.bytes().await?;
    let key = format::open_header(keys, location, &bytes).map_err(store_error)?;
    Ok(Arc::new(OpenHeader { key, meta }))
}

/// One attempt; `None` when the object changed between the header and the data.
async fn try_get(
    inner: &dyn ObjectStore,
    keys: &MasterKeys,
    headers: &HeaderCache,
    location: &Path,
    options: &GetOptions,
) -> Result<Option<GetResult>> {
    let mut cached = headers.get(location);
    // Which chunks: from `first` to `until` (exclusive), or to the object end.
    let (first, until) = match &options.range {
        None => (0, None),
        Some(GetRange::Bounded(r)) => (r.start / CHUNK, Some(r.end.div_ceil(CHUNK))),
        Some(GetRange::Offset(o)) => (o / CHUNK, None),
        Some(GetRange::Suffix(n)) => {
            // Needs the size, which the header's GET tells.
            let h = match cached.clone() {
                Some(h) => h,
                None => fetch_header(inner, keys, location, options).await?,
            };
            let size = plain_size(location, &h.meta)?;
            cached = Some(h);
            // An empty suffix still reads (and authenticates) the last chunk.
            (
                size.saturating_sub(*n).min(size.saturating_sub(1)) / CHUNK,
                None,
            )
        }
    };
    let inline = cached.is_none() && format::chunk_start(first) <= INLINE_HEADER_MAX;
    let from = if inline {
        0
    } else {
        format::chunk_start(first)
    };
    let data_opts = GetOptions {
        range: match until {
            Some(e) => Some(GetRange::Bounded(from..format::chunk_start(e))),
            None if from > 0 => Some(GetRange::Offset(from)),
            None => None,
        },
        ..options.clone()
    };
    let (data, header) = match (&cached, inline) {
        (None, false) => {
            let (d, h) = futures::join!(
                inner.get_opts(location, data_opts),
                fetch_header(inner, keys, location, options)
            );
            (d, Some(h?))
        }
        (h, _) => (inner.get_opts(location, data_opts).await, h.clone()),
    };
    let data = match data {
        Ok(d) => d,
        Err(e) if from > 0 => return Err(past_the_end(inner, location, options, e).await),
        Err(e) => return Err(e),
    };
    let GetResult {
        payload,
        meta,
        range: got,
        attributes,
        extensions,
    } = data;
    if got.start != from {
        return Err(store_error(TierError::TruncatedObject {
            key: location.to_string(),
            reason: format!(
                "the store answered bytes from {} to a GET from {from}",
                got.start
            ),
        }));
    }
    let size = plain_size(location, &meta)?;
    let mut stream = stream_of(payload, &meta, &got);
    let mut pending = Bytes::new();
    let header = match header {
        Some(h) if same_object(&h.meta, &meta) => {
            if cached.is_none() {
                headers.put(location, h.clone());
            }
            h
        }
        Some(_) => return Ok(None),
        None => {
            // The header, then the chunks before `first` that came with it.
            let skip = format::chunk_start(first) as usize;
            let (h, rest) = read_prefix(&mut stream, skip, location).await?;
            pending = rest;
            let key = format::open_header(keys, location, &h).map_err(store_error)?;
            let h = Arc::new(OpenHeader {
                key,
                meta: meta.clone(),
            });
            headers.put(location, h.clone());
            h
        }
    };
    let want = match &options.range {
        Some(r) => r.as_range(size).map_err(|e| range_error(location, e))?,
        None => 0..size,
    };
    let end = want
        .end
        .div_ceil(CHUNK)
        .max(first + 1)
        .min(format::chunk_count(size));
    let state = Decrypting {
        inner: stream,
        pending,
        header,
        location: location.clone(),
        next: first,
        end,
        plain_len: size,
        emit: want.clone(),
    };
    Ok(Some(GetResult {
        payload: GetResultPayload::Stream(
            futures::stream::try_unfold(state, Decrypting::step).boxed(),
        ),
        meta: ObjectMeta { size, ..meta },
        range: want,
        attributes,
        extensions,
    }))
}

/// A GET from inside the object failed. When the object exists and the request
/// starts past its plaintext end, that is the error (in plaintext numbers, as the
/// inner store would give it for a plaintext object); otherwise `e` as it is.
async fn past_the_end(
    inner: &dyn ObjectStore,
    location: &Path,
    options: &GetOptions,
    e: object_store::Error,
) -> object_store::Error {
    if matches!(e, object_store::Error::NotFound { .. }) {
        return e;
    }
    let Ok(meta) = object_store::ObjectStoreExt::head(inner, location).await else {
        return e;
    };
    let Some(size) = format::plain_len(meta.size) else {
        return e;
    };
    match options.range.as_ref().map(|r| r.as_range(size)) {
        Some(Err(r)) => range_error(location, r),
        _ => e,
    }
}

/// The first `n` bytes of `stream` (at least a header), and what came with them
/// beyond `n`.
async fn read_prefix(
    stream: &mut BoxStream<'static, Result<Bytes>>,
    n: usize,
    location: &Path,
) -> Result<(Bytes, Bytes)> {
    let mut buf = BytesMut::new();
    while buf.len() < n {
        match stream.next().await {
            Some(Ok(b)) if buf.is_empty() && b.len() >= n => {
                return Ok((b.slice(..n), b.slice(n..)));
            }
            Some(Ok(b)) => buf.extend_from_slice(&b),
            Some(Err(e)) => return Err(e),
            None if buf.len() < HEADER_LEN => {
                return Err(store_error(TierError::NotEncrypted {
                    key: location.to_string(),
                    reason: format!("{} bytes, shorter than a header", buf.len()),
                }))
            }
            None => {
                return Err(store_error(TierError::TruncatedObject {
                    key: location.to_string(),
                    reason: format!("the body ended at byte {} of {n} asked for", buf.len()),
                }))
            }
        }
    }
    let rest = buf.split_off(n);
    Ok((buf.freeze(), rest.freeze()))
}

/// The state of a decrypting body: chunks `next..end` are still to be opened, and
/// the plaintext bytes `emit` of them are returned.
struct Decrypting {
    inner: BoxStream<'static, Result<Bytes>>,
    /// Ciphertext received and not yet used.
    pending: Bytes,
    header: Arc<OpenHeader>,
    location: Path,
    next: u64,
    end: u64,
    plain_len: u64,
    emit: Range<u64>,
}

impl Decrypting {
    /// The next non-empty piece of plaintext: one opened chunk, cut to `emit`.
    async fn step(mut self) -> Result<Option<(Bytes, Decrypting)>> {
        while self.next < self.end {
            let i = self.next;
            let plain = self.open_next().await?;
            self.next += 1;
            let at = i * CHUNK;
            let lo = (self.emit.start.saturating_sub(at) as usize).min(plain.len());
            let hi = (self.emit.end.saturating_sub(at) as usize).min(plain.len());
            if lo < hi {
                return Ok(Some((plain.slice(lo..hi), self)));
            }
        }
        Ok(None)
    }

    /// Opens chunk `next`: straight from the received bytes when they hold the whole
    /// sealed chunk, else after gathering it into one buffer.
    async fn open_next(&mut self) -> Result<Bytes> {
        let i = self.next;
        let need = format::sealed_len(i, self.plain_len) as usize;
        let last = i + 1 == format::chunk_count(self.plain_len);
        let header = self.header.clone();
        let key = &header.key.key;
        if self.pending.is_empty() {
            self.pending = self.pull(i, 0, need).await?;
        }
        if self.pending.len() >= need {
            let sealed = self.pending.split_to(need);
            let mut out = BytesMut::zeroed(need - TAG as usize);
            format::open_into(key, i, last, &sealed, &mut out).map_err(|_| self.tampered(i))?;
            return Ok(out.freeze());
        }
        let mut buf = BytesMut::with_capacity(need);
        buf.extend_from_slice(&std::mem::take(&mut self.pending));
        while buf.len() < need {
            let mut piece = self.pull(i, buf.len(), need).await?;
            let take = piece.len().min(need - buf.len());
            buf.extend_from_slice(&piece.split_to(take));
            self.pending = piece;
        }
        let n = format::open_in_place(key, i, last, &mut buf).map_err(|_| self.tampered(i))?;
        buf.truncate(n);
        Ok(buf.freeze())
    }

    /// The next piece of the body; its end inside chunk `i` is a truncated object.
    async fn pull(&mut self, i: u64, have: usize, need: usize) -> Result<Bytes> {
        loop {
            match self.inner.next().await {
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => return Ok(b),
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(store_error(TierError::TruncatedObject {
                        key: self.location.to_string(),
                        reason: format!(
                            "the body ended {have} bytes into chunk {i}, which has {need} (object of {} plaintext bytes)",
                            self.plain_len
                        ),
                    }))
                }
            }
        }
    }

    fn tampered(&self, i: u64) -> object_store::Error {
        let from = i * CHUNK;
        let to = (from + CHUNK).min(self.plain_len);
        store_error(TierError::Tampered {
            key: self.location.to_string(),
            what: format!("chunk {i} (plaintext bytes {from}..{to})"),
            key_id: self.header.key.key_id.clone(),
        })
    }
}
