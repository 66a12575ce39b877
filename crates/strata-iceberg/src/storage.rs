//! The `iceberg` crate's file I/O over the remote tier's `object_store`: the table lives in
//! the same bucket (and S3 client, credentials, request counting) as the segments, under
//! its own prefix, and the crate's own S3 backend (OpenDAL) is not built at all.
//!
//! A location is `<root>/<key>`, where `<root>` is `remote.storage.url` (so paths in the
//! table's metadata are the URLs an engine opens, `s3://bucket/prefix/...` or
//! `file:///...`) and `<key>` the object key inside the store. The storage is never
//! serialized across processes (the crate's `typetag` bound requires the derive): a
//! deserialized copy has no store and fails every call with a clear error.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

/// Object-store backed iceberg storage rooted at `root`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStorage {
    root: String,
    #[serde(skip)]
    store: Option<Arc<dyn ObjectStore>>,
}

impl ObjectStorage {
    pub fn new(root: &str, store: Arc<dyn ObjectStore>) -> Self {
        Self {
            root: root.trim_end_matches('/').to_string(),
            store: Some(store),
        }
    }

    /// A `FileIO` over this storage.
    pub fn file_io(&self) -> FileIO {
        FileIOBuilder::new(Arc::new(ObjectStorageFactory(self.clone()))).build()
    }

    /// The location (URL) of object `key`.
    pub fn location(&self, key: &str) -> String {
        format!("{}/{}", self.root, key.trim_start_matches('/'))
    }

    /// The store, unless this copy was deserialized.
    pub fn store_handle(&self) -> Option<Arc<dyn ObjectStore>> {
        self.store.clone()
    }

    fn store(&self) -> Result<&Arc<dyn ObjectStore>> {
        self.store.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "strata's object storage was deserialized without its store",
            )
        })
    }

    /// The object key of `location`.
    pub fn key(&self, location: &str) -> Result<Path> {
        let rest = location
            .strip_prefix(&self.root)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::DataInvalid,
                    format!("{location} is not under the remote tier {}", self.root),
                )
            })?;
        Path::parse(rest).map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))
    }
}

fn io_err(location: &str, e: object_store::Error) -> Error {
    Error::new(ErrorKind::Unexpected, format!("object {location}: {e}")).with_retryable(true)
}

#[async_trait::async_trait]
#[typetag::serde(name = "strata-object-store")]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        match self.store()?.head(&self.key(path)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_err(path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let meta = self
            .store()?
            .head(&self.key(path)?)
            .await
            .map_err(|e| io_err(path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let got = self
            .store()?
            .get(&self.key(path)?)
            .await
            .map_err(|e| io_err(path, e))?;
        got.bytes().await.map_err(|e| io_err(path, e))
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        Ok(Box::new(Reader {
            store: self.store()?.clone(),
            key: self.key(path)?,
            location: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        self.store()?
            .put(&self.key(path)?, bs.into())
            .await
            .map(|_| ())
            .map_err(|e| io_err(path, e))
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        Ok(Box::new(Writer {
            storage: self.clone(),
            location: path.to_string(),
            buf: Vec::new(),
            closed: false,
        }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self.store()?.delete(&self.key(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_err(path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let store = self.store()?.clone();
        let prefix = self.key(path)?;
        let keys: Vec<Path> = store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| io_err(path, e))?;
        for k in keys {
            match store.delete(&k).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io_err(k.as_ref(), e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> Result<()> {
        let paths: Vec<String> = paths.collect().await;
        for p in paths {
            self.delete(&p).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Hands the crate's `FileIO` the one storage it was built with.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ObjectStorageFactory(ObjectStorage);

#[typetag::serde(name = "strata-object-store-factory")]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.0.clone()))
    }
}

struct Reader {
    store: Arc<dyn ObjectStore>,
    key: Path,
    location: String,
}

#[async_trait::async_trait]
impl FileRead for Reader {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&self.key, range)
            .await
            .map_err(|e| io_err(&self.location, e))
    }
}

/// Buffers in memory and puts the object on close: everything the table writes (manifests,
/// manifest lists) is small; data files are put whole by the writer itself.
struct Writer {
    storage: ObjectStorage,
    location: String,
    buf: Vec<u8>,
    closed: bool,
}

#[async_trait::async_trait]
impl FileWrite for Writer {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{} closed twice", self.location),
            ));
        }
        self.closed = true;
        let body = Bytes::from(std::mem::take(&mut self.buf));
        self.storage.write(&self.location, body).await
    }
}
