//! What the table writer needs of a catalog ([`TopicCatalog`]), and the [`Pinned`] wrapper
//! every Strata commit goes through, whatever the catalog (the bucket, `catalog.rs`; AWS
//! Glue, `glue.rs`).
//!
//! Why the wrapper: `Transaction::commit` reloads the table and re-applies its actions on
//! the fresh one, which would carry a snapshot summary computed from the stale one and so
//! undo another writer's committed offsets (`plan.rs`). Through a pinned catalog the reload
//! returns the table the summary was computed from; the inner catalog still checks the
//! commit's requirements (the branch's snapshot id) against its latest version and swaps
//! its pointer conditionally, so a lost race is a `CatalogCommitConflicts` that the writer
//! handles by reloading and re-planning (`plan::after_conflict`), never a second append.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent, TableRequirement, TableUpdate,
};

/// A catalog of topic tables. Besides [`Catalog`], it applies a commit that no
/// `Transaction` action builds (the retention's delete snapshot, `maintain.rs`; the
/// crate's `TableCommit` cannot be built outside it).
///
/// Contract of [`TopicCatalog::commit_updates`] and `Catalog::update_table`: the new
/// metadata becomes current only if the table is still at the version the requirements
/// were checked against; otherwise `CatalogCommitConflicts` and nothing changed. A crash in
/// the middle leaves at most a metadata file no pointer names.
#[async_trait]
pub trait TopicCatalog: Catalog + Debug + Send + Sync {
    /// Applies `updates` to the latest version if `requirements` hold, as the next version.
    async fn commit_updates(
        &self,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<Table>;

    /// Forgets the table (its files are the caller's to delete): nothing for a catalog
    /// whose pointer is a file among them; succeeds when the table does not exist.
    async fn forget(&self, ident: &TableIdent) -> Result<()>;

    /// The table, `None` when it does not exist.
    async fn load_table_opt(&self, ident: &TableIdent) -> Result<Option<Table>> {
        match self.load_table(ident).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::TableNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `current` with `updates` applied, if `requirements` hold on it (else a conflict).
pub fn apply_updates(
    ident: &TableIdent,
    current: &Table,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<TableMetadata> {
    for req in requirements {
        if let Err(e) = req.check(Some(current.metadata())) {
            return Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("table {ident} changed under the commit: {e}"),
            ));
        }
    }
    let location = current.metadata_location().map(str::to_string);
    let mut builder = current.metadata().clone().into_builder(location);
    for update in updates {
        builder = update.apply(builder)?;
    }
    Ok(builder.build()?.metadata)
}

/// `inner`, except that `load_table` of the pinned table's identifier returns it as it is.
#[derive(Debug)]
pub struct Pinned {
    inner: Arc<dyn TopicCatalog>,
    table: Table,
}

impl Pinned {
    pub fn new(inner: Arc<dyn TopicCatalog>, table: Table) -> Self {
        Self { inner, table }
    }
}

#[async_trait]
impl Catalog for Pinned {
    async fn list_namespaces(&self, p: Option<&NamespaceIdent>) -> Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(p).await
    }

    async fn create_namespace(
        &self,
        ns: &NamespaceIdent,
        props: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.inner.create_namespace(ns, props).await
    }

    async fn get_namespace(&self, ns: &NamespaceIdent) -> Result<Namespace> {
        self.inner.get_namespace(ns).await
    }

    async fn namespace_exists(&self, ns: &NamespaceIdent) -> Result<bool> {
        self.inner.namespace_exists(ns).await
    }

    async fn update_namespace(
        &self,
        ns: &NamespaceIdent,
        props: HashMap<String, String>,
    ) -> Result<()> {
        self.inner.update_namespace(ns, props).await
    }

    async fn drop_namespace(&self, ns: &NamespaceIdent) -> Result<()> {
        self.inner.drop_namespace(ns).await
    }

    async fn list_tables(&self, ns: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.inner.list_tables(ns).await
    }

    async fn create_table(&self, ns: &NamespaceIdent, creation: TableCreation) -> Result<Table> {
        self.inner.create_table(ns, creation).await
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        if self.table.identifier() == ident {
            return Ok(self.table.clone());
        }
        self.inner.load_table(ident).await
    }

    async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner.drop_table(ident).await
    }

    async fn purge_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner.purge_table(ident).await
    }

    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        self.inner.table_exists(ident).await
    }

    async fn rename_table(&self, from: &TableIdent, to: &TableIdent) -> Result<()> {
        self.inner.rename_table(from, to).await
    }

    async fn register_table(&self, ident: &TableIdent, location: String) -> Result<Table> {
        self.inner.register_table(ident, location).await
    }

    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.inner.update_table(commit).await
    }
}
