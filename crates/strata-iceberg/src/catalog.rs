//! The default catalog: nothing but the bucket. Each table's metadata versions are
//! `<table>/metadata/v<N>.metadata.json` (the file-system layout Hadoop catalogs, pyiceberg's
//! `StaticTable` and DuckDB's `iceberg_scan` read), and a commit is the creation of version
//! N+1 with `PutMode::Create`: create-if-absent is the compare-and-swap, exactly as the
//! partition manifests of the remote tier are published (S3 and moto `If-None-Match`, the
//! local filesystem's hard-link publish). `AlreadyExists` means another writer (a new
//! leader, another broker's partition of the same topic) committed first: the commit fails
//! with `CatalogCommitConflicts`, not retryable, so the caller reloads and decides
//! (`plan::after_conflict`) instead of the crate re-applying a stale summary.
//! `metadata/version-hint.text` names the latest version for readers that want a pointer;
//! it is written after the commit and may lag (a reader that trusts it sees the previous
//! snapshot, never a torn one). Loading lists `metadata/` and takes the highest version.
//!
//! Why not a SQL catalog in SQLite: a file under one broker's data dir is not shared by the
//! other brokers, so a new leader would not see the table; and why not a REST catalog by
//! default: it is a server to run. The bucket is already shared and already has the CAS.

use std::collections::HashMap;

use async_trait::async_trait;
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent, TableRequirement, TableUpdate,
};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions};

use crate::pinned::{apply_updates, TopicCatalog};
use crate::storage::ObjectStorage;

/// Where tables live inside the store: `<TABLES_DIR>/<table name>/`.
pub const TABLES_DIR: &str = "iceberg";

/// The bucket catalog over `storage` (see the module docs).
#[derive(Debug, Clone)]
pub struct BucketCatalog {
    storage: ObjectStorage,
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::FeatureUnsupported,
        format!("the bucket catalog does not {what}"),
    )
}

/// `v<N>.metadata.json` -> N.
fn version_of(file_name: &str) -> Option<u64> {
    file_name
        .strip_prefix('v')?
        .strip_suffix(".metadata.json")?
        .parse()
        .ok()
}

impl BucketCatalog {
    pub fn new(storage: ObjectStorage) -> Self {
        Self { storage }
    }

    /// The object key of a table's directory.
    pub fn table_dir(ident: &TableIdent) -> String {
        format!("{TABLES_DIR}/{}", ident.name())
    }

    fn metadata_key(ident: &TableIdent, version: u64) -> String {
        format!(
            "{}/metadata/v{version}.metadata.json",
            Self::table_dir(ident)
        )
    }

    /// The location (URL) of the table's directory.
    pub fn table_location(&self, ident: &TableIdent) -> String {
        self.storage.location(&Self::table_dir(ident))
    }

    /// The highest metadata version of the table, if it exists.
    pub async fn latest_version(&self, ident: &TableIdent) -> Result<Option<u64>> {
        let dir = format!("{}/metadata", Self::table_dir(ident));
        let store = self.storage_store()?;
        let listed = store
            .list_with_delimiter(Some(&Path::from(dir.as_str())))
            .await
            .map_err(|e| io_err(&dir, e))?;
        Ok(listed
            .objects
            .iter()
            .filter_map(|m| m.location.filename().and_then(version_of))
            .max())
    }

    fn storage_store(&self) -> Result<std::sync::Arc<dyn object_store::ObjectStore>> {
        self.storage
            .store_handle()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "bucket catalog without a store"))
    }

    fn table(&self, ident: &TableIdent, version: u64, metadata: TableMetadata) -> Result<Table> {
        Table::builder()
            .identifier(ident.clone())
            .metadata(metadata)
            .metadata_location(self.storage.location(&Self::metadata_key(ident, version)))
            .file_io(self.storage.file_io())
            .runtime(iceberg::Runtime::try_current()?)
            .build()
    }

    async fn load_version(&self, ident: &TableIdent, version: u64) -> Result<Table> {
        let key = Self::metadata_key(ident, version);
        let io = self.storage.file_io();
        let bytes = io.new_input(self.storage.location(&key))?.read().await?;
        let metadata: TableMetadata = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(ErrorKind::DataInvalid, format!("table metadata {key}: {e}"))
        })?;
        self.table(ident, version, metadata)
    }

    /// Publishes `metadata` as version `version`; `Ok(false)` if that version exists.
    async fn publish(
        &self,
        ident: &TableIdent,
        version: u64,
        metadata: &TableMetadata,
    ) -> Result<bool> {
        let key = Self::metadata_key(ident, version);
        let body = serde_json::to_vec(metadata)
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("{key}: {e}")))?;
        let store = self.storage_store()?;
        match store
            .put_opts(
                &Path::from(key.as_str()),
                body.into(),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
            Err(e) => return Err(io_err(&key, e)),
        }
        let hint = format!("{}/metadata/version-hint.text", Self::table_dir(ident));
        if let Err(e) = store
            .put(&Path::from(hint.as_str()), version.to_string().into())
            .await
        {
            tracing::warn!(table = %ident, error = %e, "cannot update version-hint.text; readers of the hint see an older snapshot");
        }
        Ok(true)
    }
}

fn io_err(key: &str, e: object_store::Error) -> Error {
    Error::new(ErrorKind::Unexpected, format!("object {key}: {e}")).with_retryable(true)
}

#[async_trait]
impl Catalog for BucketCatalog {
    async fn list_namespaces(&self, _: Option<&NamespaceIdent>) -> Result<Vec<NamespaceIdent>> {
        Err(unsupported("list namespaces"))
    }

    async fn create_namespace(
        &self,
        _: &NamespaceIdent,
        _: HashMap<String, String>,
    ) -> Result<Namespace> {
        Err(unsupported("create namespaces"))
    }

    async fn get_namespace(&self, _: &NamespaceIdent) -> Result<Namespace> {
        Err(unsupported("get namespaces"))
    }

    async fn namespace_exists(&self, _: &NamespaceIdent) -> Result<bool> {
        Ok(true)
    }

    async fn update_namespace(&self, _: &NamespaceIdent, _: HashMap<String, String>) -> Result<()> {
        Err(unsupported("update namespaces"))
    }

    async fn drop_namespace(&self, _: &NamespaceIdent) -> Result<()> {
        Err(unsupported("drop namespaces"))
    }

    async fn list_tables(&self, _: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        Err(unsupported("list tables"))
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        mut creation: TableCreation,
    ) -> Result<Table> {
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        creation.location = Some(self.table_location(&ident));
        let metadata = TableMetadataBuilder::from_table_creation(creation)?
            .build()?
            .metadata;
        if !self.publish(&ident, 1, &metadata).await? {
            return Err(Error::new(
                ErrorKind::TableAlreadyExists,
                format!("table {ident} exists"),
            ));
        }
        self.table(&ident, 1, metadata)
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        match self.latest_version(ident).await? {
            Some(v) => self.load_version(ident, v).await,
            None => Err(Error::new(
                ErrorKind::TableNotFound,
                format!("table {ident} does not exist"),
            )),
        }
    }

    async fn drop_table(&self, _: &TableIdent) -> Result<()> {
        Err(unsupported("drop tables"))
    }

    async fn purge_table(&self, _: &TableIdent) -> Result<()> {
        Err(unsupported("purge tables"))
    }

    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        Ok(self.latest_version(ident).await?.is_some())
    }

    async fn rename_table(&self, _: &TableIdent, _: &TableIdent) -> Result<()> {
        Err(unsupported("rename tables"))
    }

    async fn register_table(&self, _: &TableIdent, _: String) -> Result<Table> {
        Err(unsupported("register tables"))
    }

    async fn update_table(&self, mut commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        self.commit_updates(&ident, commit.take_requirements(), commit.take_updates())
            .await
    }
}

#[async_trait]
impl TopicCatalog for BucketCatalog {
    /// The metadata files are the pointer: deleting the table's files forgets it.
    async fn forget(&self, _: &TableIdent) -> Result<()> {
        Ok(())
    }

    async fn load_table_opt(&self, ident: &TableIdent) -> Result<Option<Table>> {
        match self.latest_version(ident).await? {
            Some(v) => self.load_version(ident, v).await.map(Some),
            None => Ok(None),
        }
    }

    /// Version N+1 of the latest version N, created if absent (see the module docs).
    async fn commit_updates(
        &self,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<Table> {
        let ident = ident.clone();
        let version = self.latest_version(&ident).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::TableNotFound,
                format!("table {ident} does not exist"),
            )
        })?;
        let current = self.load_version(&ident, version).await?;
        let metadata = apply_updates(&ident, &current, requirements, updates)?;
        if !self.publish(&ident, version + 1, &metadata).await? {
            return Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!(
                    "table {ident}: version {} was committed by another writer",
                    version + 1
                ),
            ));
        }
        self.table(&ident, version + 1, metadata)
    }
}
