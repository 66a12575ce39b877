//! The AWS Glue Data Catalog (`iceberg.catalog.type=glue`). The table's files are where the
//! bucket catalog puts them (`<prefix>/iceberg/<topic>/`, written through the tier's own
//! store); Glue holds only the pointer, as the Iceberg convention for Glue has it (what
//! pyiceberg, Spark, Athena and Trino read): a Glue table in database
//! `iceberg.catalog.glue.database` with parameters `table_type=ICEBERG`,
//! `metadata_location` and `previous_metadata_location`.
//!
//! A commit writes `metadata/<NNNNN>-<uuid>.metadata.json` (a fresh name, so it never
//! overwrites) and then swaps the pointer with `UpdateTable` conditional on the `VersionId`
//! that `GetTable` returned with the metadata the requirements were checked against. Glue
//! refuses a stale `VersionId` with `ConcurrentModificationException`, which becomes
//! `CatalogCommitConflicts`: the writer reloads and re-plans (`plan::after_conflict`), so a
//! retry or a new leader never appends a segment twice. A crash between the metadata file
//! and `UpdateTable` leaves an unnamed metadata file and the table unchanged.
//!
//! Why not the `iceberg-catalog-glue` crate: its commit can only carry what a `Transaction`
//! action builds (`TableCommit` has a crate-private builder), and the retention's delete
//! snapshot is not one (`maintain.rs`); and it reads and writes through OpenDAL's S3
//! client, a second client beside the tier's with its own credentials and endpoint.
//!
//! Credentials and region come from the usual AWS chain (environment, profile, web
//! identity, instance metadata), the region overridable by `iceberg.catalog.glue.region`
//! and the endpoint by `iceberg.catalog.glue.endpoint` (moto, LocalStack, a VPC endpoint).
//! The client is built on first use, so an unreachable Glue never delays startup; its
//! errors are the table writer's, retried with backoff and shown in `tier status`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_glue::error::{DisplayErrorContext, SdkError};
use aws_sdk_glue::operation::create_database::CreateDatabaseError;
use aws_sdk_glue::operation::create_table::CreateTableError;
use aws_sdk_glue::operation::delete_table::DeleteTableError;
use aws_sdk_glue::operation::get_table::GetTableError;
use aws_sdk_glue::operation::update_table::UpdateTableError;
use aws_sdk_glue::types::{DatabaseInput, StorageDescriptor, TableInput};
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent, TableRequirement, TableUpdate,
};
use tokio::sync::OnceCell;

use crate::catalog::BucketCatalog;
use crate::pinned::{apply_updates, TopicCatalog};
use crate::storage::ObjectStorage;

/// Longest a Glue call may take, retries included, before the pass fails and backs off.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `iceberg.catalog.glue.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlueSettings {
    /// Endpoint URL; `None`: AWS's regional endpoint.
    pub endpoint: Option<String>,
    /// Region; `None`: the AWS chain's (`AWS_REGION`, profile, ...).
    pub region: Option<String>,
    /// The Glue database of every topic table.
    pub database: String,
}

/// The Glue catalog (see the module docs).
#[derive(Debug)]
pub struct GlueCatalog {
    settings: GlueSettings,
    storage: ObjectStorage,
    client: OnceCell<aws_sdk_glue::Client>,
}

/// The pointer of a table as `GetTable` returned it.
struct Current {
    metadata_location: String,
    version_id: Option<String>,
}

fn glue_err<E>(what: &str, ident: &TableIdent, e: SdkError<E>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    Error::new(
        ErrorKind::Unexpected,
        format!(
            "AWS Glue {what} of table {ident}: {}",
            DisplayErrorContext(&e)
        ),
    )
    .with_retryable(true)
}

/// `.../metadata/00042-<uuid>.metadata.json` -> 42 (0 for another naming).
fn version_of(location: &str) -> u64 {
    let name = location.rsplit('/').next().unwrap_or_default();
    name.split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl GlueCatalog {
    pub fn new(settings: GlueSettings, storage: ObjectStorage) -> Self {
        Self {
            settings,
            storage,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &aws_sdk_glue::Client {
        self.client
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_timeout(CALL_TIMEOUT)
                            .build(),
                    );
                if let Some(endpoint) = &self.settings.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                if let Some(region) = &self.settings.region {
                    loader = loader.region(aws_config::Region::new(region.clone()));
                }
                aws_sdk_glue::Client::new(&loader.load().await)
            })
            .await
    }

    fn table_location(&self, ident: &TableIdent) -> String {
        self.storage.location(&BucketCatalog::table_dir(ident))
    }

    async fn current(&self, ident: &TableIdent) -> Result<Option<Current>> {
        let out = self
            .client()
            .await
            .get_table()
            .database_name(&self.settings.database)
            .name(ident.name())
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetTableError::EntityNotFoundException(_))
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(glue_err("GetTable", ident, e)),
        };
        let table = out.table().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!("Glue returned no table {ident}"),
            )
        })?;
        let location = table
            .parameters()
            .and_then(|p| p.get("metadata_location"))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::DataInvalid,
                    format!(
                        "Glue table {}.{} has no metadata_location: not an Iceberg table",
                        self.settings.database,
                        ident.name()
                    ),
                )
            })?;
        Ok(Some(Current {
            metadata_location: location.clone(),
            version_id: table.version_id().map(str::to_string),
        }))
    }

    async fn read(&self, ident: &TableIdent, location: &str) -> Result<Table> {
        let io = self.storage.file_io();
        let bytes = io.new_input(location)?.read().await?;
        let metadata: TableMetadata = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("table metadata {location}: {e}"),
            )
        })?;
        Table::builder()
            .identifier(ident.clone())
            .metadata(metadata)
            .metadata_location(location)
            .file_io(io)
            .runtime(iceberg::Runtime::try_current()?)
            .build()
    }

    /// Writes `metadata` as version `version` under a fresh name; returns its location.
    async fn write(
        &self,
        ident: &TableIdent,
        version: u64,
        metadata: &TableMetadata,
    ) -> Result<String> {
        let location = format!(
            "{}/metadata/{version:05}-{}.metadata.json",
            self.table_location(ident),
            uuid::Uuid::new_v4()
        );
        let body = serde_json::to_vec(metadata)
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("{location}: {e}")))?;
        self.storage
            .file_io()
            .new_output(&location)?
            .write(body.into())
            .await?;
        Ok(location)
    }

    fn input(
        &self,
        ident: &TableIdent,
        location: &str,
        previous: Option<&str>,
    ) -> Result<TableInput> {
        let mut params = HashMap::from([
            ("table_type".to_string(), "ICEBERG".to_string()),
            ("metadata_location".to_string(), location.to_string()),
        ]);
        if let Some(previous) = previous {
            params.insert(
                "previous_metadata_location".to_string(),
                previous.to_string(),
            );
        }
        TableInput::builder()
            .name(ident.name())
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(params))
            .storage_descriptor(
                StorageDescriptor::builder()
                    .location(self.table_location(ident))
                    .build(),
            )
            .build()
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("Glue table input: {e}")))
    }

    /// Creates the database if it does not exist.
    async fn ensure_database(&self, ident: &TableIdent) -> Result<()> {
        let input = DatabaseInput::builder()
            .name(&self.settings.database)
            .description("Iceberg tables of Strata topics")
            .build()
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("Glue database: {e}")))?;
        match self
            .client()
            .await
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateDatabaseError::AlreadyExistsException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(glue_err("CreateDatabase", ident, e)),
        }
    }
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::FeatureUnsupported,
        format!("Strata's Glue catalog does not {what}"),
    )
}

#[async_trait]
impl Catalog for GlueCatalog {
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
        let location = self.write(&ident, 0, &metadata).await?;
        self.ensure_database(&ident).await?;
        let sent = self
            .client()
            .await
            .create_table()
            .database_name(&self.settings.database)
            .table_input(self.input(&ident, &location, None)?)
            .send()
            .await;
        match sent {
            Ok(_) => self.read(&ident, &location).await,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateTableError::AlreadyExistsException(_))
                ) =>
            {
                Err(Error::new(
                    ErrorKind::TableAlreadyExists,
                    format!("table {ident} exists"),
                ))
            }
            Err(e) => Err(glue_err("CreateTable", &ident, e)),
        }
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        match self.current(ident).await? {
            Some(c) => self.read(ident, &c.metadata_location).await,
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
        Ok(self.current(ident).await?.is_some())
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
impl TopicCatalog for GlueCatalog {
    async fn forget(&self, ident: &TableIdent) -> Result<()> {
        let sent = self
            .client()
            .await
            .delete_table()
            .database_name(&self.settings.database)
            .name(ident.name())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteTableError::EntityNotFoundException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(glue_err("DeleteTable", ident, e)),
        }
    }

    /// Checks `requirements` against the metadata `GetTable` names, writes the next
    /// version and swaps the pointer with `UpdateTable` at the same `VersionId`.
    async fn commit_updates(
        &self,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<Table> {
        let Some(current) = self.current(ident).await? else {
            return Err(Error::new(
                ErrorKind::TableNotFound,
                format!("table {ident} does not exist"),
            ));
        };
        let base = self.read(ident, &current.metadata_location).await?;
        let metadata = apply_updates(ident, &base, requirements, updates)?;
        let version = version_of(&current.metadata_location) + 1;
        let location = self.write(ident, version, &metadata).await?;
        let mut update = self
            .client()
            .await
            .update_table()
            .database_name(&self.settings.database)
            .skip_archive(true)
            .table_input(self.input(ident, &location, Some(&current.metadata_location))?);
        if let Some(v) = current.version_id {
            update = update.version_id(v);
        }
        match update.send().await {
            Ok(_) => self.read(ident, &location).await,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateTableError::ConcurrentModificationException(_))
                ) =>
            {
                Err(Error::new(
                    ErrorKind::CatalogCommitConflicts,
                    format!(
                        "table {ident}: Glue's VersionId moved (another writer committed); {location} stays unnamed"
                    ),
                ))
            }
            Err(e) => Err(glue_err("UpdateTable", ident, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::version_of;

    #[test]
    fn metadata_versions_from_locations() {
        assert_eq!(
            version_of("s3://b/p/iceberg/t/metadata/00042-1b2c.metadata.json"),
            42
        );
        assert_eq!(version_of("s3://b/t/metadata/v3.metadata.json"), 0);
    }
}
