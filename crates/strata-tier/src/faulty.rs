//! `FaultyStore<S>`: an `ObjectStore` wrapper that injects failures, delays and
//! truncated GET responses, for tests of the uploader and the reader. Faults are
//! pseudo-random with a fixed seed: a call fails with probability 1/n, decided by a
//! hash of its sequence number, so a run replays the same way but faults do not
//! fall in lock-step with a multi-step operation (a strict "every n-th call" with n
//! equal to the number of calls of one upload would fail the same step forever).
//! They can be changed at runtime through [`FaultyStore::set`] (e.g. to heal the store and
//! check that nothing stayed stuck).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use parking_lot::RwLock;

/// What to inject. `0` disables an "every" fault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// About one put/get/list/copy in n fails with a generic (retryable) error.
    pub fail_every: u64,
    /// About one GET in n returns only the first half of its bytes.
    pub truncate_every: u64,
    /// Added before every call.
    pub delay: Duration,
}

pub struct FaultyStore<S> {
    inner: S,
    faults: RwLock<Faults>,
    calls: AtomicU64,
    gets: AtomicU64,
    injected: AtomicU64,
}

impl<S: ObjectStore> FaultyStore<S> {
    pub fn new(inner: S, faults: Faults) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            faults: RwLock::new(faults),
            calls: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        })
    }

    pub fn set(&self, faults: Faults) {
        *self.faults.write() = faults;
    }

    /// How many GETs were made so far.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    async fn before(&self, op: &'static str, path: &Path) -> Result<()> {
        let f = self.faults.read().clone();
        if !f.delay.is_zero() {
            tokio::time::sleep(f.delay).await;
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if hits(n, f.fail_every) {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(object_store::Error::Generic {
                store: "FaultyStore",
                source: format!("injected failure of {op} {path} (call {n})").into(),
            });
        }
        Ok(())
    }
}

/// Whether call `n` is one of the ~1/`every` faulty ones (splitmix64 of `n`).
fn hits(n: u64, every: u64) -> bool {
    if every == 0 {
        return false;
    }
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).is_multiple_of(every)
}

impl<S> fmt::Display for FaultyStore<S>
where
    S: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl<S> fmt::Debug for FaultyStore<S>
where
    S: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.before("put", location).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.before("put_multipart", location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before("get", location).await?;
        let r = self.inner.get_opts(location, options).await?;
        let every = self.faults.read().truncate_every;
        let n = self.gets.fetch_add(1, Ordering::Relaxed) + 1;
        if !hits(n.wrapping_add(0x5eed), every) {
            return Ok(r);
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        let (body, frame) = crate::body::take_body(r);
        let all: Vec<Bytes> = body
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let joined: Bytes = all.concat().into();
        let half = joined.slice(..joined.len() / 2);
        Ok(frame.with_body(futures::stream::once(async move { Ok(half) }).boxed()))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.before("list", prefix.unwrap_or(&Path::default()))
            .await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.before("copy", from).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
