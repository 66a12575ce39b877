//! `CountingStore`: an `ObjectStore` wrapper that counts the requests the object store
//! bills for, by kind and by topic, and the bytes they carry: the cost of every byte.
//!
//! Requests are counted when they are issued (a request that fails is still billed);
//! bytes of PUTs and multipart parts when the part is issued, bytes of GETs as the body
//! streams in (a GET abandoned half way counts what arrived). The topic is the first
//! key segment, `<topic>-<topic id>` ([`crate::layout`]); keys outside a topic (the
//! bucket-wide listing of topics) count under the empty topic.
//!
//! What one call costs in HTTP requests is what S3 bills, not what `object_store`
//! calls: a `delete_stream` of n keys is `ceil(n / 1000)` bulk `DeleteObjects`
//! requests on S3 (`bulk_delete = 1000`) and n DELETEs elsewhere; a listing of n
//! entries is `max(1, ceil(n / 1000))` pages. Retries inside the HTTP client (5xx,
//! timeouts) are not seen here, so on a store that fails requests the bill is higher.
//! Sits below `EncryptedStore` and `FaultyStore`, right on the wire store, so sizes are
//! the stored (encrypted) sizes and injected faults are not counted as requests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// S3's page size for ListObjectsV2 and its batch size for DeleteObjects.
pub const S3_PAGE: u64 = 1000;

/// A billed request kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Request {
    Put,
    Get,
    Head,
    List,
    Delete,
    Copy,
    /// CreateMultipartUpload.
    MultipartCreate,
    /// UploadPart: one multipart part.
    MultipartPart,
    /// CompleteMultipartUpload.
    MultipartComplete,
    /// AbortMultipartUpload.
    MultipartAbort,
}

impl Request {
    pub const ALL: [Request; 10] = [
        Request::Put,
        Request::Get,
        Request::Head,
        Request::List,
        Request::Delete,
        Request::Copy,
        Request::MultipartCreate,
        Request::MultipartPart,
        Request::MultipartComplete,
        Request::MultipartAbort,
    ];

    /// The label of the request in metrics and `strata tier status --costs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Put => "put",
            Request::Get => "get",
            Request::Head => "head",
            Request::List => "list",
            Request::Delete => "delete",
            Request::Copy => "copy",
            Request::MultipartCreate => "multipart_create",
            Request::MultipartPart => "multipart_part",
            Request::MultipartComplete => "multipart_complete",
            Request::MultipartAbort => "multipart_abort",
        }
    }
}

/// Called with (topic, kind, requests, bytes) for every count; requests is 0 when only
/// bytes of a streaming GET body arrived.
pub type CountHook = Arc<dyn Fn(&str, Request, u64, u64) + Send + Sync>;

/// Totals by kind since the store was built: (requests, bytes).
#[derive(Default)]
struct Totals([(AtomicU64, AtomicU64); 10]);

pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    hook: Option<CountHook>,
    /// Keys per bulk delete request; 0 means one request per key.
    bulk_delete: u64,
    totals: Arc<Totals>,
}

/// The topic a key belongs to: its first segment without the `-<topic id>` suffix.
pub fn topic_of(path: &str) -> &str {
    let first = path.split('/').next().unwrap_or_default();
    match first.len().checked_sub(37) {
        Some(cut)
            if first.as_bytes().get(cut) == Some(&b'-')
                && uuid::Uuid::parse_str(&first[cut + 1..]).is_ok() =>
        {
            &first[..cut]
        }
        _ => "",
    }
}

struct Counter {
    hook: Option<CountHook>,
    totals: Arc<Totals>,
}

impl Counter {
    fn add(&self, topic: &str, kind: Request, requests: u64, bytes: u64) {
        let (r, b) = &self.totals.0[kind as usize];
        r.fetch_add(requests, Ordering::Relaxed);
        b.fetch_add(bytes, Ordering::Relaxed);
        if let Some(hook) = &self.hook {
            hook(topic, kind, requests, bytes);
        }
    }
}

impl CountingStore {
    /// Counts the requests to `inner`, `bulk_delete` keys per delete request (1000 for
    /// S3's DeleteObjects, 0 for stores that delete one key per request).
    pub fn new(inner: Arc<dyn ObjectStore>, bulk_delete: u64) -> Self {
        CountingStore {
            inner,
            hook: None,
            bulk_delete,
            totals: Arc::default(),
        }
    }

    /// Calls `hook` with every count (the broker feeds its Prometheus series from it).
    pub fn with_hook(mut self, hook: CountHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// (requests, bytes) of `kind` since the store was built.
    pub fn totals(&self, kind: Request) -> (u64, u64) {
        let (r, b) = &self.totals.0[kind as usize];
        (r.load(Ordering::Relaxed), b.load(Ordering::Relaxed))
    }

    fn counter(&self) -> Counter {
        Counter {
            hook: self.hook.clone(),
            totals: self.totals.clone(),
        }
    }

    fn count(&self, path: &Path, kind: Request, bytes: u64) {
        self.counter().add(topic_of(path.as_ref()), kind, 1, bytes);
    }

    fn pages(n: u64) -> u64 {
        n.div_ceil(S3_PAGE).max(1)
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

impl fmt::Debug for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

/// A multipart upload whose parts, completion and abort are counted.
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    topic: String,
    counter: Counter,
}

impl fmt::Debug for CountingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingUpload({})", self.topic)
    }
}

#[async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let n = data.content_length() as u64;
        self.counter.add(&self.topic, Request::MultipartPart, 1, n);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.counter
            .add(&self.topic, Request::MultipartComplete, 1, 0);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.counter.add(&self.topic, Request::MultipartAbort, 1, 0);
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.count(location, Request::Put, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.count(location, Request::MultipartCreate, 0);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload {
            inner,
            topic: topic_of(location.as_ref()).to_string(),
            counter: self.counter(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            self.count(location, Request::Head, 0);
            return self.inner.get_opts(location, options).await;
        }
        self.count(location, Request::Get, 0);
        let r = self.inner.get_opts(location, options).await?;
        // A local file: nothing is billed per byte, but its bytes count the same way.
        let (body, frame) = crate::body::take_body(r);
        let (counter, topic) = (self.counter(), topic_of(location.as_ref()).to_string());
        let body = body
            .inspect(move |piece| {
                if let Ok(b) = piece {
                    counter.add(&topic, Request::Get, 0, b.len() as u64);
                }
            })
            .boxed();
        Ok(frame.with_body(body))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Requests are counted as keys go in: the first key of each batch of
        // `bulk_delete` keys (or every key) opens one request.
        let (counter, bulk) = (self.counter(), self.bulk_delete);
        let mut n = 0u64;
        let counted = locations
            .inspect(move |item| {
                if let Ok(p) = item {
                    n += 1;
                    if bulk <= 1 || n % bulk == 1 {
                        counter.add(topic_of(p.as_ref()), Request::Delete, 1, 0);
                    }
                }
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let topic = prefix.map_or("", |p| topic_of(p.as_ref())).to_string();
        let counter = self.counter();
        let mut n = 0u64;
        // A page is a request: the first when the listing starts, one more per S3_PAGE.
        counter.add(&topic, Request::List, 1, 0);
        self.inner
            .list(prefix)
            .inspect(move |item| {
                if item.is_ok() {
                    n += 1;
                    if n > S3_PAGE && n % S3_PAGE == 1 {
                        counter.add(&topic, Request::List, 1, 0);
                    }
                }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let topic = prefix.map_or("", |p| topic_of(p.as_ref())).to_string();
        let r = self.inner.list_with_delimiter(prefix).await;
        let n = r
            .as_ref()
            .map_or(0, |r| (r.objects.len() + r.common_prefixes.len()) as u64);
        self.counter().add(&topic, Request::List, Self::pages(n), 0);
        r
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.count(to, Request::Copy, 0);
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, WriteMultipart};

    use super::*;

    #[test]
    fn topics_come_from_the_first_key_segment() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(topic_of(&format!("orders-eu-{id}/0/x.log")), "orders-eu");
        assert_eq!(topic_of(&format!("t-{id}")), "t");
        assert_eq!(topic_of("topic.json"), "");
        assert_eq!(topic_of(""), "");
    }

    /// Every kind is counted once per request with the bytes it carried.
    #[tokio::test]
    async fn counts_requests_and_bytes_by_kind() {
        let store = CountingStore::new(Arc::new(InMemory::new()), 1000);
        let id = uuid::Uuid::new_v4();
        let key = |i: usize| Path::from(format!("t-{id}/0/{i:020}.log"));
        for i in 0..3 {
            store
                .put(&key(i), PutPayload::from(vec![7u8; 100]))
                .await
                .expect("put");
        }
        let up = store.put_multipart(&key(9)).await.expect("multipart");
        let mut w = WriteMultipart::new_with_chunk_size(up, 5 << 20);
        w.write(&vec![1u8; 11 << 20]);
        w.finish().await.expect("finish");
        let got = store.get(&key(0)).await.expect("get").bytes().await;
        assert_eq!(got.expect("body").len(), 100);
        store.head(&key(1)).await.expect("head");
        let listed: Vec<_> = store.list(None).collect().await;
        assert_eq!(listed.len(), 4);
        store.delete(&key(2)).await.expect("delete");
        assert_eq!(store.totals(Request::Put), (3, 300));
        assert_eq!(store.totals(Request::MultipartCreate), (1, 0));
        assert_eq!(store.totals(Request::MultipartPart), (3, 11 << 20));
        assert_eq!(store.totals(Request::MultipartComplete), (1, 0));
        assert_eq!(store.totals(Request::Get), (1, 100));
        assert_eq!(store.totals(Request::Head), (1, 0));
        assert_eq!(store.totals(Request::List), (1, 0));
        assert_eq!(store.totals(Request::Delete), (1, 0));
    }

    /// Bulk deletes: 2500 keys are 3 requests of up to 1000 keys; listing them is 3
    /// pages. Without bulk deletes every key is a request.
    #[tokio::test]
    async fn bulk_deletes_and_list_pages() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = CountingStore::new(inner.clone(), 1000);
        let keys: Vec<Path> = (0..2500).map(|i| Path::from(format!("k/{i}"))).collect();
        for k in &keys {
            inner
                .put(k, PutPayload::from_static(b"x"))
                .await
                .expect("put");
        }
        let listed: Vec<_> = store.list(Some(&Path::from("k"))).collect().await;
        assert_eq!(listed.len(), 2500);
        assert_eq!(store.totals(Request::List).0, 3);
        let stream = futures::stream::iter(keys.clone().into_iter().map(Ok)).boxed();
        let deleted: Vec<_> = store.delete_stream(stream).collect().await;
        assert_eq!(deleted.len(), 2500);
        assert_eq!(store.totals(Request::Delete).0, 3);
        let single = CountingStore::new(inner, 0);
        let stream = futures::stream::iter(keys.into_iter().take(10).map(Ok)).boxed();
        let _: Vec<_> = single.delete_stream(stream).collect().await;
        assert_eq!(single.totals(Request::Delete).0, 10);
    }
}
