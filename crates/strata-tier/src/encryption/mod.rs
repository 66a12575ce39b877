//! Client-side encryption of the remote tier: [`EncryptedStore`], an `ObjectStore`
//! that encrypts every object on the way out and decrypts on the way in, around any
//! other store (S3, file, memory, a `FaultyStore`).
//!
//! Objects are AES-256-GCM in fixed 64 KiB chunks under a per-object data key, which
//! the object's header carries wrapped ([`format`]): by a master key from a key file
//! ([`keys`], format version 1), or by AWS KMS ([`kms`], version 2, the data key from
//! `GenerateDataKey`); [`keyring`] writes with one and reads both. Because chunk and
//! header sizes are fixed per version, a plaintext
//! range maps to a ciphertext range: ranged GETs fetch only the chunks they cover
//! (plus the header the first time; [`read`]), so the reader's chunk cache and
//! coalesced GETs work unchanged above this wrapper.
//!
//! What callers see is the inner store's behaviour on the plaintext: sizes in
//! `head`/`list`/`get` are plaintext sizes, e-tags and versions are the stored
//! objects', `PutMode::Create`/`Update` and the GET preconditions pass through.
//! Differences: `copy`/`rename` re-encrypt through this process (the path is bound
//! into each header, so a server-side copy would not open at its new name), and an
//! object that is not a Strata-encrypted object is an error, never served as is.
//!
//! Errors of this wrapper are `object_store::Error::Generic` whose source is the
//! [`TierError`] naming the object key and what is wrong (`Tampered`,
//! `TruncatedObject`, `UnknownMasterKey`, `NotEncrypted`, `Kms`, `KmsNotConfigured`);
//! no byte of a chunk that fails authentication is returned.

mod format;
pub mod keyring;
pub mod keys;
pub mod kms;
mod read;
mod upload;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    Result, WriteMultipart,
};

pub use self::format::{cipher_len, plain_len, CHUNK as ENCRYPTION_CHUNK_BYTES};
pub use self::keyring::{Keyring, KmsKeys};
pub use self::keys::MasterKeys;
pub use self::kms::KmsClient;
use crate::error::TierError;

/// Headers kept opened (data keys): enough for every segment a broker's readers
/// touch at once; a miss costs one small GET.
const HEADER_CACHE_ENTRIES: usize = 4096;
/// Payloads above this are sealed on a blocking thread, not on a runtime worker
/// (AES-GCM runs at a few GB/s: 256 KiB is ~0.1 ms).
const SEAL_INLINE_MAX: usize = 256 << 10;
/// `copy` re-encrypts objects above this as a streamed multipart upload.
const COPY_PART: usize = 8 << 20;

/// An `ObjectStore` that keeps every object encrypted in `inner`; see the module docs.
pub struct EncryptedStore<S> {
    inner: Arc<S>,
    keys: Arc<Keyring>,
    headers: read::HeaderCache,
}

impl<S: ObjectStore> EncryptedStore<S> {
    /// `keys`: a key file's [`MasterKeys`], or a [`Keyring`] with KMS.
    pub fn new(inner: S, keys: impl Into<Keyring>) -> Self {
        EncryptedStore {
            inner: Arc::new(inner),
            keys: Arc::new(keys.into()),
            headers: read::HeaderCache::new(HEADER_CACHE_ENTRIES),
        }
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }
}

/// This wrapper's errors as the `object_store` errors its trait returns.
pub(crate) fn store_error(e: TierError) -> object_store::Error {
    object_store::Error::Generic {
        store: "EncryptedStore",
        source: Box::new(e),
    }
}

/// `meta` with the plaintext size of an object of `layout`; sizes no encrypted object
/// has are left as they are (listings show foreign objects; reading them fails).
/// A listing does not read headers, so it counts every object as written in the
/// format this broker writes: after switching between a key file and KMS, listed
/// sizes of objects of the other format are off by the difference of the header
/// lengths (887 bytes). `head` and `get` read the header and are exact; Strata's own
/// reads take sizes from the manifests, not listings.
fn plain_meta(layout: format::Layout, mut meta: ObjectMeta) -> ObjectMeta {
    if let Some(p) = layout.plain_len(meta.size) {
        meta.size = p;
    }
    meta
}

impl<S> fmt::Display for EncryptedStore<S>
where
    S: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedStore({})", self.inner)
    }
}

impl<S> fmt::Debug for EncryptedStore<S>
where
    S: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedStore({}, {:?})", self.inner, self.keys)
    }
}

/// Seals a whole payload as a new object at `location`: header, then every chunk.
async fn seal_payload(keys: &Keyring, location: &Path, payload: PutPayload) -> Result<Bytes> {
    let (key, header) = keys.new_object(location).await.map_err(store_error)?;
    let len = payload.content_length();
    let seal = move || {
        let pieces: Vec<Bytes> = payload.into_iter().collect();
        let total =
            header.len() as u64 + len as u64 + format::TAG * format::chunk_count(len as u64);
        let mut out = Vec::with_capacity(total as usize);
        out.extend_from_slice(&header);
        format::seal_chunks(&key.key, 0, &pieces, true, &mut out).map(|()| Bytes::from(out))
    };
    let sealed = match tokio::runtime::Handle::try_current() {
        Ok(rt) if len > SEAL_INLINE_MAX => rt
            .spawn_blocking(seal)
            .await
            .map_err(|e| object_store::Error::JoinError { source: e })?,
        _ => seal(),
    };
    sealed.map_err(|_| {
        store_error(TierError::Tampered {
            key: location.to_string(),
            what: "sealing the upload (the crypto library failed)".into(),
            key_id: keys.active_id().to_string(),
        })
    })
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for EncryptedStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let sealed = seal_payload(&self.keys, location, payload).await?;
        let r = self.inner.put_opts(location, sealed.into(), opts).await;
        self.headers.forget(location);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let (key, header) = self.keys.new_object(location).await.map_err(store_error)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        self.headers.forget(location);
        Ok(Box::new(upload::EncryptingUpload::new(
            location.clone(),
            inner,
            key,
            header,
            self.keys.layout(),
        )))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        read::get(&*self.inner, &self.keys, &self.headers, location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let headers = self.headers.clone();
        self.inner
            .delete_stream(locations)
            .inspect_ok(move |p| headers.forget(p))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let layout = self.keys.layout();
        self.inner
            .list(prefix)
            .map_ok(move |m| plain_meta(layout, m))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let layout = self.keys.layout();
        self.inner
            .list_with_offset(prefix, offset)
            .map_ok(move |m| plain_meta(layout, m))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        let layout = self.keys.layout();
        r.objects = r
            .objects
            .into_iter()
            .map(|m| plain_meta(layout, m))
            .collect();
        Ok(r)
    }

    /// Re-encrypts `from` at `to` under a new data key (the active master key): each
    /// header is bound to its path, so the stored bytes cannot simply be copied.
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let src = self.get_opts(from, GetOptions::default()).await?;
        let mode = match options.mode {
            CopyMode::Overwrite => PutMode::Overwrite,
            CopyMode::Create => PutMode::Create,
        };
        // Create must be one atomic create-if-absent PUT; an overwrite may stream.
        if mode == PutMode::Create || src.meta.size <= COPY_PART as u64 {
            let body = src.bytes().await?;
            self.put_opts(to, body.into(), mode.into()).await?;
            return Ok(());
        }
        let upload = self.put_multipart(to).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, COPY_PART);
        let mut body = src.into_stream();
        let copied: Result<()> = async {
            while let Some(piece) = body.try_next().await? {
                w.wait_for_capacity(4).await?;
                w.put(piece);
            }
            Ok(())
        }
        .await;
        match copied {
            Ok(()) => w.finish().await.map(|_| ()),
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
