//! Multipart uploads of encrypted objects.
//!
//! The caller's parts are plaintext of any size; the stored object is the header and
//! the sealed chunks, cut into parts of one fixed size (the caller's first part, at
//! least 5 MiB) except the last, so stores that want equal parts (R2) are served
//! too. Chunk boundaries do not follow part boundaries: a part is the ciphertext
//! bytes `[k * size, (k + 1) * size)`, and a chunk cut by a part boundary is sealed
//! by both parts. That is safe and gives the same bytes, because sealing is
//! deterministic for a given data key, index and plaintext.
//!
//! A chunk is sealed only once it is known not to be the last (more data came after
//! it): the last whole or partial chunk is held back until `complete`, which seals
//! it with the last-chunk flag.
//!
//! Sealing runs on blocking threads (a part is megabytes of AES-GCM), so a part's
//! ciphertext is ready later than `put_part` returns. The inner upload numbers parts
//! in the order its `put_part` is called, so each part's task hands its payload to
//! the inner upload only after the previous part's task did (a chain of one-shot
//! signals). The tasks are spawned, so the order holds however the caller polls the
//! returned futures.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, Result, UploadPart};
use tokio::sync::oneshot;

use super::format::{self, DataKey, Layout, CHUNK, SEALED};
use super::store_error;
use crate::error::TierError;

/// S3's smallest part (all but the last).
const MIN_PART: u64 = 5 << 20;

pub(super) struct EncryptingUpload {
    location: Path,
    inner: Arc<tokio::sync::Mutex<Box<dyn MultipartUpload>>>,
    key: Arc<DataKey>,
    header: Bytes,
    /// Where chunks start: after this object's header.
    layout: Layout,
    plain: PlainBuf,
    /// Ciphertext bytes given to parts so far.
    emitted: u64,
    part_size: Option<u64>,
    /// Fires when the last part started was handed to the inner upload.
    turn: Option<oneshot::Receiver<()>>,
}

impl std::fmt::Debug for EncryptingUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptingUpload")
            .field("location", &self.location)
            .field("received", &self.plain.end())
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl EncryptingUpload {
    pub(super) fn new(
        location: Path,
        inner: Box<dyn MultipartUpload>,
        key: DataKey,
        header: Bytes,
        layout: Layout,
    ) -> Self {
        debug_assert_eq!(header.len() as u64, layout.header());
        EncryptingUpload {
            location,
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            key: Arc::new(key),
            header,
            layout,
            plain: PlainBuf::default(),
            emitted: 0,
            part_size: None,
            turn: None,
        }
    }

    /// Starts the part holding ciphertext bytes `range`. With `complete`, the object
    /// ends at the plaintext received so far.
    fn start_part(&mut self, range: std::ops::Range<u64>, complete: bool) -> UploadPart {
        let received = self.plain.end();
        let chunks = format::chunk_count(received);
        let header_len = self.layout.header();
        let first = range.start.saturating_sub(header_len) / SEALED;
        let until = (range.end.saturating_sub(header_len)).div_ceil(SEALED);
        let until = if complete { until.min(chunks) } else { until };
        let ends_object = complete && until == chunks;
        let pieces = self
            .plain
            .slice(first * CHUNK, (until * CHUNK).min(received));
        // Where the sealed buffer starts in the object: the header is in it when the
        // part starts inside the header.
        let base = if range.start < header_len {
            0
        } else {
            self.layout.chunk_start(first)
        };
        let header = (base == 0).then(|| self.header.clone());
        let key = self.key.clone();
        let location = self.location.clone();
        let seal = move || -> Result<Bytes> {
            let mut out = Vec::with_capacity((range.end - base) as usize + SEALED as usize);
            if let Some(h) = header {
                out.extend_from_slice(&h);
            }
            format::seal_chunks(&key.key, first, &pieces, ends_object, &mut out).map_err(|_| {
                store_error(TierError::Tampered {
                    key: location.to_string(),
                    what: format!("sealing chunks {first}..{until} (the crypto library failed)"),
                    key_id: key.key_id.clone(),
                })
            })?;
            let out = Bytes::from(out);
            let (lo, hi) = ((range.start - base) as usize, (range.end - base) as usize);
            if hi > out.len() {
                return Err(store_error(TierError::TruncatedObject {
                    key: location.to_string(),
                    reason: format!(
                        "part of ciphertext {range:?} sealed only {} bytes",
                        out.len()
                    ),
                }));
            }
            Ok(out.slice(lo..hi))
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return futures::future::ready(Err(object_store::Error::NotSupported {
                source: "EncryptedStore multipart uploads run on a tokio runtime".into(),
            }))
            .boxed();
        };
        let (tx, rx) = oneshot::channel();
        let previous = self.turn.replace(rx);
        let inner = self.inner.clone();
        let location = self.location.clone();
        let task = rt.spawn(async move {
            let payload = tokio::task::spawn_blocking(seal)
                .await
                .map_err(|e| object_store::Error::JoinError { source: e })??;
            if let Some(previous) = previous {
                previous.await.map_err(|_| object_store::Error::Generic {
                    store: "EncryptedStore",
                    source: format!("an earlier part of the upload of {location} failed").into(),
                })?;
            }
            let upload = inner.lock().await.put_part(PutPayload::from(payload));
            // Dropping `tx` unsent tells the next part that this one failed.
            let _ = tx.send(());
            upload.await
        });
        async move {
            task.await
                .map_err(|e| object_store::Error::JoinError { source: e })?
        }
        .boxed()
    }

    /// Forgets plaintext that every started part has taken.
    fn trim(&mut self) {
        let kept_chunk = self.emitted.saturating_sub(self.layout.header()) / SEALED;
        self.plain.drop_before(kept_chunk * CHUNK);
    }
}

#[async_trait]
impl MultipartUpload for EncryptingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let part = *self.part_size.get_or_insert(len.max(MIN_PART));
        for piece in data {
            self.plain.push(piece);
        }
        let received = self.plain.end();
        // Every chunk but the last whole or partial one is surely not the last.
        let sealable = received.div_ceil(CHUNK).saturating_sub(1);
        let ready = self.layout.header() + sealable * SEALED;
        let mut parts: Vec<BoxFuture<'static, Result<()>>> = Vec::new();
        while ready.saturating_sub(self.emitted) >= part {
            parts.push(self.start_part(self.emitted..self.emitted + part, false));
            self.emitted += part;
        }
        self.trim();
        async move {
            futures::future::try_join_all(parts).await?;
            Ok(())
        }
        .boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let total = self.layout.cipher_len(self.plain.end());
        let part = self.part_size.unwrap_or(MIN_PART);
        let mut parts = Vec::new();
        while total - self.emitted > part {
            parts.push(self.start_part(self.emitted..self.emitted + part, true));
            self.emitted += part;
        }
        parts.push(self.start_part(self.emitted..total, true));
        self.emitted = total;
        self.trim();
        futures::future::try_join_all(parts).await?;
        self.inner.lock().await.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.lock().await.abort().await
    }
}

/// Plaintext received and not yet taken by every part that needs it: a queue of the
/// caller's buffers (no copy), from absolute offset `base`.
#[derive(Default)]
struct PlainBuf {
    pieces: VecDeque<Bytes>,
    base: u64,
    len: u64,
}

impl PlainBuf {
    fn push(&mut self, b: Bytes) {
        self.len += b.len() as u64;
        self.pieces.push_back(b);
    }

    /// Absolute offset just past the last byte received.
    fn end(&self) -> u64 {
        self.base + self.len
    }

    /// Bytes `[from, to)` (absolute; `from >= base`) as slices of the buffers.
    fn slice(&self, from: u64, to: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut at = self.base;
        for p in &self.pieces {
            let end = at + p.len() as u64;
            if end > from && at < to {
                let lo = from.saturating_sub(at) as usize;
                let hi = (to.min(end) - at) as usize;
                out.push(p.slice(lo..hi));
            }
            at = end;
            if at >= to {
                break;
            }
        }
        out
    }

    /// Drops bytes below absolute offset `offset`.
    fn drop_before(&mut self, offset: u64) {
        while self.base < offset {
            let Some(front) = self.pieces.front_mut() else {
                return;
            };
            let cut = (offset - self.base).min(front.len() as u64);
            if cut == front.len() as u64 {
                self.pieces.pop_front();
            } else {
                *front = front.slice(cut as usize..);
            }
            self.base += cut;
            self.len -= cut;
        }
    }
}
