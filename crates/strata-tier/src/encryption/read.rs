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
//!
//! Each received byte is copied once, into the output buffer, where its chunk is
//! opened in place; output pieces are 1 MiB-aligned runs of chunks, opened on a
//! blocking thread while the next piece is received.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, ObjectStore};

use super::format::{self, DataKey, Layout, CHUNK, HEADER_LEN, MAX_HEADER_LEN, TAG};
use super::keyring::Keyring;
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
    layout: Layout,
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

/// The plaintext size of the object `meta` describes, whose header is of `layout`.
fn plain_size(location: &Path, layout: Layout, meta: &ObjectMeta) -> Result<u64> {
    layout.plain_len(meta.size).ok_or_else(|| {
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
    keys: &Keyring,
    headers: &HeaderCache,
    location: &Path,
    options: GetOptions,
) -> Result<GetResult> {
    if options.head {
        let mut r = inner.get_opts(location, options).await?;
        // The header's length is known from a cached header, else assumed to be that
        // of the format this broker writes (see `plain_meta`).
        let layout = headers
            .get(location)
            .filter(|h| same_object(&h.meta, &r.meta))
            .map_or(keys.layout(), |h| h.layout);
        let size = plain_size(location, layout, &r.meta)?;
        r.meta.size = size;
        r.range = 0..size;
        return Ok(r);
    }
    if let Some(range) = &options.range {
        range.is_valid().map_err(|e| range_error(location, e))?;
    }
    // A relayout (the header was of the other format) is at most one more attempt.
    for _ in 0..ATTEMPTS + 1 {
        match try_get(inner, keys, headers, location, &options).await? {
            Attempt::Done(r) => return Ok(r),
            Attempt::Replaced => headers.forget(location),
            Attempt::Relayout => {}
        }
    }
    Err(object_store::Error::Generic {
        store: "EncryptedStore",
        source: format!("{location} was replaced during each of {ATTEMPTS} reads").into(),
    })
}

/// GETs the header of `location` alone and opens it.
async fn fetch_header(
    inner: &dyn ObjectStore,
    keys: &Keyring,
    location: &Path,
    options: &GetOptions,
) -> Result<Arc<OpenHeader>> {
    // The longest header of any version: the store clips the range to the object.
    let opts = GetOptions {
        range: Some(GetRange::Bounded(0..MAX_HEADER_LEN as u64)),
        ..options.clone()
    };
    let r = inner.get_opts(location, opts).await?;
    let meta = r.meta.clone();
    let bytes = r.bytes().await?;
    let (layout, key) = keys.open(location, &bytes).await.map_err(store_error)?;
    Ok(Arc::new(OpenHeader { key, layout, meta }))
}

/// How one attempt of a read ended.
enum Attempt {
    Done(GetResult),
    /// The object changed between the header and the data: start again afresh.
    Replaced,
    /// The header is of another format than the data GET assumed (an object written
    /// before switching between a key file and KMS): it is cached now, so the next
    /// attempt asks for the right bytes.
    Relayout,
}

/// One attempt (see [`Attempt`]).
async fn try_get(
    inner: &dyn ObjectStore,
    keys: &Keyring,
    headers: &HeaderCache,
    location: &Path,
    options: &GetOptions,
) -> Result<Attempt> {
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
            let size = plain_size(location, h.layout, &h.meta)?;
            cached = Some(h);
            // An empty suffix still reads (and authenticates) the last chunk.
            (
                size.saturating_sub(*n).min(size.saturating_sub(1)) / CHUNK,
                None,
            )
        }
    };
    // Chunk offsets depend on the header's length: a cached header tells it, else
    // the format this broker writes is assumed (and checked once the header is in).
    let layout = cached.as_ref().map_or(keys.layout(), |h| h.layout);
    let inline = cached.is_none() && layout.chunk_start(first) <= INLINE_HEADER_MAX;
    let from = if inline { 0 } else { layout.chunk_start(first) };
    let data_opts = GetOptions {
        range: match until {
            Some(e) => Some(GetRange::Bounded(from..layout.chunk_start(e))),
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
        Err(e) if from > 0 => return Err(past_the_end(inner, layout, location, options, e).await),
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
    let mut stream = stream_of(payload, &meta, &got);
    let mut pending = Bytes::new();
    let header = match header {
        Some(h) if same_object(&h.meta, &meta) => {
            if cached.is_none() {
                headers.put(location, h.clone());
            }
            h
        }
        Some(_) => return Ok(Attempt::Replaced),
        None => {
            // The header, then the chunks before `first` that came with it. Its
            // version (byte 6) tells its length.
            let (start, rest) = read_prefix(&mut stream, 8, location).await?;
            let actual = format::header_layout(location, &start).map_err(store_error)?;
            let skip = if actual == layout {
                layout.chunk_start(first) as usize
            } else {
                actual.header() as usize
            };
            let mut stream = futures::stream::once(futures::future::ready(Ok(rest)))
                .chain(stream)
                .boxed();
            let (more, rest) = read_prefix(&mut stream, skip - start.len(), location).await?;
            let mut h = BytesMut::with_capacity(skip);
            h.extend_from_slice(&start);
            h.extend_from_slice(&more);
            let (layout_read, key) = keys.open(location, &h).await.map_err(store_error)?;
            let h = Arc::new(OpenHeader {
                key,
                layout: layout_read,
                meta: meta.clone(),
            });
            headers.put(location, h.clone());
            if actual != layout {
                return Ok(Attempt::Relayout);
            }
            pending = rest;
            // `h` holds the header and the chunks before `first`: the stream goes on.
            return finish(
                stream, pending, h, location, options, first, meta, attributes, extensions,
            );
        }
    };
    if header.layout != layout {
        return Ok(Attempt::Relayout);
    }
    finish(
        stream, pending, header, location, options, first, meta, attributes, extensions,
    )
}

/// The decrypting body of a read whose header is open and whose data GET started at
/// chunk `first` (or at 0 with the header and earlier chunks already taken).
#[allow(clippy::too_many_arguments)]
fn finish(
    stream: BoxStream<'static, Result<Bytes>>,
    pending: Bytes,
    header: Arc<OpenHeader>,
    location: &Path,
    options: &GetOptions,
    first: u64,
    meta: ObjectMeta,
    attributes: object_store::Attributes,
    extensions: object_store::Extensions,
) -> Result<Attempt> {
    let size = plain_size(location, header.layout, &meta)?;
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
        opened: VecDeque::new(),
    };
    Ok(Attempt::Done(GetResult {
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
    layout: Layout,
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
    let Some(size) = layout.plain_len(meta.size) else {
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

/// Plaintext is returned in pieces of up to this many chunks (1 MiB), cut at multiples
/// of it, so a reader whose cache chunks are 1 MiB-aligned (the default
/// `remote.fetch.chunk.bytes`) takes each piece whole, without copying it again.
const PIECE_CHUNKS: u64 = 16;
/// Pieces at least this large are opened on a blocking thread while the next one is
/// received; smaller ones (ranged reads, manifests) inline, where a thread hop would
/// cost more than it saves.
const OPEN_INLINE_MAX: usize = 256 << 10;

/// The state of a decrypting body: chunks `next..end` are still to be received, and
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
    /// Pieces received, in order: at most two, the first possibly still opening.
    opened: VecDeque<Opening>,
}

enum Opening {
    Running(tokio::task::JoinHandle<Result<Bytes>>),
    Done(Bytes),
}

/// A piece received and not yet opened: its chunks' ciphertext laid out where their
/// plaintext goes (so it is opened in place, with no copy after), and their tags.
struct Sealed {
    first: u64,
    body: BytesMut,
    tags: Vec<[u8; TAG as usize]>,
}

impl Decrypting {
    /// The next non-empty piece of plaintext. Two stages: this task receives a piece
    /// (copying its bytes once, into place) while the piece before it is opened on a
    /// blocking thread, so decryption overlaps the transfer instead of stalling it.
    async fn step(mut self) -> Result<Option<(Bytes, Decrypting)>> {
        loop {
            let front_ready = match self.opened.front() {
                Some(Opening::Done(_)) => true,
                Some(Opening::Running(h)) => h.is_finished(),
                None => false,
            };
            let piece = if !front_ready && self.next < self.end && self.opened.len() < 2 {
                let sealed = self.receive().await?;
                let opening = self.open(sealed)?;
                self.opened.push_back(opening);
                continue;
            } else {
                match self.opened.pop_front() {
                    Some(Opening::Done(b)) => b,
                    Some(Opening::Running(h)) => h
                        .await
                        .map_err(|e| object_store::Error::JoinError { source: e })??,
                    None => return Ok(None),
                }
            };
            if !piece.is_empty() {
                return Ok(Some((piece, self)));
            }
        }
    }

    /// Receives the chunks from `next` up to the next multiple of [`PIECE_CHUNKS`].
    async fn receive(&mut self) -> Result<Sealed> {
        let first = self.next;
        let upto = ((first / PIECE_CHUNKS + 1) * PIECE_CHUNKS).min(self.end);
        let plain = (upto * CHUNK).min(self.plain_len) - first * CHUNK;
        let mut body = BytesMut::with_capacity(plain as usize);
        let mut tags = Vec::with_capacity((upto - first) as usize);
        for i in first..upto {
            let need = format::sealed_len(i, self.plain_len) as usize;
            let text = need - TAG as usize;
            let start = body.len();
            while body.len() - start < text {
                let piece = self
                    .take(i, body.len() - start, need, text - (body.len() - start))
                    .await?;
                body.extend_from_slice(&piece);
            }
            let mut tag = [0u8; TAG as usize];
            let mut got = 0;
            while got < tag.len() {
                let piece = self.take(i, text + got, need, tag.len() - got).await?;
                tag[got..got + piece.len()].copy_from_slice(&piece);
                got += piece.len();
            }
            tags.push(tag);
        }
        self.next = upto;
        Ok(Sealed { first, body, tags })
    }

    /// Opens `sealed` inline, or on a blocking thread when it is large.
    fn open(&self, sealed: Sealed) -> Result<Opening> {
        let (header, location) = (self.header.clone(), self.location.clone());
        let (plain_len, emit) = (self.plain_len, self.emit.clone());
        let big = sealed.body.len() >= OPEN_INLINE_MAX;
        let job = move || open_piece(&header, &location, plain_len, &emit, sealed);
        Ok(match tokio::runtime::Handle::try_current() {
            Ok(rt) if big => Opening::Running(rt.spawn_blocking(job)),
            _ => Opening::Done(job()?),
        })
    }

    /// Up to `max` bytes of the body (at least one); its end inside chunk `i` (after
    /// `have` of its `need` bytes) is a truncated object.
    async fn take(&mut self, i: u64, have: usize, need: usize, max: usize) -> Result<Bytes> {
        while self.pending.is_empty() {
            match self.inner.next().await {
                Some(Ok(b)) => self.pending = b,
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
        Ok(self.pending.split_to(max.min(self.pending.len())))
    }
}

/// Opens every chunk of `sealed` in place and cuts the result to `emit`; a chunk
/// that fails authentication fails the piece, and none of its bytes are returned.
fn open_piece(
    header: &OpenHeader,
    location: &Path,
    plain_len: u64,
    emit: &Range<u64>,
    sealed: Sealed,
) -> Result<Bytes> {
    let Sealed {
        first,
        mut body,
        tags,
    } = sealed;
    let chunks = format::chunk_count(plain_len);
    for (k, tag) in tags.iter().enumerate() {
        let i = first + k as u64;
        let from = k * CHUNK as usize;
        let to = (from + CHUNK as usize).min(body.len());
        format::open_detached(
            &header.key.key,
            i,
            i + 1 == chunks,
            tag,
            &mut body[from..to],
        )
        .map_err(|_| {
            let at = i * CHUNK;
            store_error(TierError::Tampered {
                key: location.to_string(),
                what: format!(
                    "chunk {i} (plaintext bytes {at}..{})",
                    (at + CHUNK).min(plain_len)
                ),
                key_id: header.key.key_id.clone(),
            })
        })?;
    }
    let at = first * CHUNK;
    let body = body.freeze();
    let lo = (emit.start.saturating_sub(at) as usize).min(body.len());
    let hi = (emit.end.saturating_sub(at) as usize).min(body.len());
    Ok(body.slice(lo..hi.max(lo)))
}
