//! Writes one remote segment into a topic's table: decode its records, put one Parquet
//! file per day under `<table>/data/`, and commit them in one snapshot whose summary
//! records the partition's new committed offset (`plan.rs`). The caller (the broker's
//! RemoteLogManager driver) decides which segments to write with [`crate::plan::plan`] and
//! reads their bytes; this module does the I/O of one step.

use std::sync::Arc;

use iceberg::spec::Type;
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, FormatVersion, Literal, Struct,
};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use object_store::path::Path;
use object_store::ObjectStoreExt;

use crate::catalog::BucketCatalog;
use crate::plan::{after_conflict, AfterConflict, Committed, Step, SummaryError};
use crate::records::{decode_committed, AbortedTxn, DecodeError};
use crate::storage::ObjectStorage;
use crate::table::{self, TableError};
use crate::ValueField;

/// The namespace of every topic table.
pub const NAMESPACE: &str = "strata";
/// Lost commit races retried before giving up until the next pass.
const COMMIT_ATTEMPTS: usize = 8;

/// Why a segment could not be written into its table.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("table of topic {topic}: {source}")]
    Iceberg {
        topic: String,
        source: iceberg::Error,
    },
    #[error("topic {topic} partition {partition}: {source}")]
    Decode {
        topic: String,
        partition: i32,
        source: DecodeError,
    },
    #[error("topic {topic}: {source}")]
    Table { topic: String, source: TableError },
    #[error("table of topic {topic}: {source}")]
    Summary { topic: String, source: SummaryError },
    #[error("table of topic {topic}: cannot put data file {key}: {source}")]
    Object {
        topic: String,
        key: String,
        source: object_store::Error,
    },
    #[error("table of topic {topic}: lost {COMMIT_ATTEMPTS} commit races in a row for partition {partition}; will retry")]
    Contended { topic: String, partition: i32 },
}

/// How writing a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed: this many rows in this many Parquet files of this many bytes, of which
    /// `value_errors` rows had a value that did not project (json format).
    Committed {
        rows: u64,
        files: usize,
        bytes: u64,
        value_errors: u64,
    },
    /// Another writer committed the step first; nothing was added.
    AlreadyCommitted,
    /// Another writer committed part of the step: plan again from the table.
    Replan,
}

/// Writes topic tables through the bucket catalog.
#[derive(Debug, Clone)]
pub struct TableWriter {
    storage: ObjectStorage,
    catalog: BucketCatalog,
    /// The sweeper's reads of immutable manifests (`maintain.rs`), shared by clones.
    manifests: Arc<std::sync::Mutex<crate::maintain::ManifestCache>>,
}

/// `YYYY-MM-DD` of a day since the epoch (proleptic Gregorian, H. Hinnant's algorithm).
fn civil(days: i32) -> String {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

impl TableWriter {
    pub fn new(storage: ObjectStorage) -> Result<Self, iceberg::Error> {
        Ok(Self {
            catalog: BucketCatalog::new(storage.clone()),
            storage,
            manifests: Default::default(),
        })
    }

    pub fn catalog(&self) -> &BucketCatalog {
        &self.catalog
    }

    pub fn storage(&self) -> &ObjectStorage {
        &self.storage
    }

    pub(crate) fn manifest_cache(&self) -> &std::sync::Mutex<crate::maintain::ManifestCache> {
        &self.manifests
    }

    /// The table identifier of `topic`.
    pub fn ident(topic: &str) -> TableIdent {
        TableIdent::new(NamespaceIdent::new(NAMESPACE.into()), topic.to_string())
    }

    /// The table of `topic`, created (empty) if it does not exist yet.
    pub async fn open(&self, topic: &str) -> Result<Table, WriteError> {
        let err = |source| WriteError::Iceberg {
            topic: topic.to_string(),
            source,
        };
        let ident = Self::ident(topic);
        match self.catalog.load_table(&ident).await {
            Ok(t) => return Ok(t),
            Err(e) if e.kind() == ErrorKind::TableNotFound => {}
            Err(e) => return Err(err(e)),
        }
        let creation = TableCreation::builder()
            .name(topic.to_string())
            .schema(table::table_schema().map_err(err)?)
            .partition_spec(table::partition_spec().map_err(err)?)
            .format_version(FormatVersion::V2)
            .properties([
                ("write.format.default".to_string(), "parquet".to_string()),
                ("strata.topic".to_string(), topic.to_string()),
            ])
            .build();
        match self.catalog.create_table(ident.namespace(), creation).await {
            Ok(t) => Ok(t),
            // Another writer created it meanwhile.
            Err(e) if e.kind() == ErrorKind::TableAlreadyExists => {
                self.catalog.load_table(&ident).await.map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// What the table holds, by partition (from its current snapshot).
    // The error is the module's one enum (large because `iceberg::Error` is); this runs
    // once per commit.
    #[allow(clippy::result_large_err)]
    pub fn committed(topic: &str, table: &Table) -> Result<Committed, WriteError> {
        let summary = table
            .metadata()
            .current_snapshot()
            .map(|s| &s.summary().additional_properties);
        Committed::from_summary(summary).map_err(|source| WriteError::Summary {
            topic: topic.to_string(),
            source,
        })
    }

    /// Adds the columns the json format's `fields` need to `table` (a schema evolution of
    /// the same table; nothing for the raw format); returns the table after it.
    pub async fn ensure_columns(
        &self,
        topic: &str,
        mut table: Table,
        fields: &[ValueField],
    ) -> Result<Table, WriteError> {
        let ierr = |source| WriteError::Iceberg {
            topic: topic.to_string(),
            source,
        };
        for _ in 0..COMMIT_ATTEMPTS {
            let missing = table::missing_columns(table.metadata().current_schema(), fields);
            if missing.is_empty() {
                return Ok(table);
            }
            let tx = Transaction::new(&table);
            let mut action = tx.update_schema();
            for (name, ty) in missing {
                action = action.add_column(AddColumn::optional(name, Type::Primitive(ty)));
            }
            let tx = action.apply(tx).map_err(ierr)?;
            match tx.commit(&self.catalog.pinned(table.clone())).await {
                Ok(t) => return Ok(t),
                Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => {
                    table = self
                        .catalog
                        .load_table(&Self::ident(topic))
                        .await
                        .map_err(ierr)?;
                }
                Err(e) => return Err(ierr(e)),
            }
        }
        Err(WriteError::Contended {
            topic: topic.to_string(),
            partition: -1,
        })
    }

    /// Writes `step` of `partition` from `segment` (the bytes of its `.log` object) into
    /// `table`, the topic's table as last loaded, with the json format's `fields` projected
    /// (none: raw); the records of the `aborted` transactions (every one overlapping the
    /// step) are left out, as `read_committed` would. Returns the table after the attempt.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_step(
        &self,
        topic: &str,
        table: Table,
        partition: i32,
        step: Step,
        segment: &[u8],
        aborted: &[AbortedTxn],
        fields: &[ValueField],
    ) -> Result<(Table, Outcome), WriteError> {
        let ierr = |source| WriteError::Iceberg {
            topic: topic.to_string(),
            source,
        };
        let mut table = self.ensure_columns(topic, table, fields).await?;
        let arrow = table::arrow_schema(table.metadata().current_schema()).map_err(ierr)?;
        let mut rows =
            decode_committed(segment, step.from, aborted).map_err(|source| WriteError::Decode {
                topic: topic.to_string(),
                partition,
                source,
            })?;
        rows.retain(|r| r.offset < step.next_offset);
        let project = !fields.is_empty();
        let files = table::parquet_files(&rows, partition, &arrow, project).map_err(|source| {
            WriteError::Table {
                topic: topic.to_string(),
                source,
            }
        })?;
        let mut data_files = Vec::with_capacity(files.len());
        let mut bytes = 0;
        let value_errors = files.iter().map(|f| f.value_errors).sum();
        let dir = BucketCatalog::table_dir(&Self::ident(topic));
        for f in files {
            let key = format!(
                "{dir}/data/timestamp_day={}/{partition}-{:020}-{}.parquet",
                civil(f.day),
                step.from,
                uuid::Uuid::new_v4()
            );
            let size = f.parquet.len() as u64;
            bytes += size;
            let store = self
                .storage
                .store_handle()
                .ok_or_else(|| ierr(iceberg::Error::new(ErrorKind::Unexpected, "no store")))?;
            store
                .put(&Path::from(key.as_str()), f.parquet.into())
                .await
                .map_err(|source| WriteError::Object {
                    topic: topic.to_string(),
                    key: key.clone(),
                    source,
                })?;
            data_files
                .push(data_file(self.storage.location(&key), f.day, f.rows, size).map_err(ierr)?);
        }
        let rows = rows.len() as u64;
        let n_files = data_files.len();
        for _ in 0..COMMIT_ATTEMPTS {
            let committed = Self::committed(topic, &table)?;
            let tx = Transaction::new(&table);
            let tx = tx
                .fast_append()
                .add_data_files(data_files.clone())
                .set_snapshot_properties(committed.summary_after(partition, &step))
                .apply(tx)
                .map_err(ierr)?;
            match tx.commit(&self.catalog.pinned(table.clone())).await {
                Ok(t) => {
                    return Ok((
                        t,
                        Outcome::Committed {
                            rows,
                            files: n_files,
                            bytes,
                            value_errors,
                        },
                    ))
                }
                Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => {
                    table = self
                        .catalog
                        .load_table(&Self::ident(topic))
                        .await
                        .map_err(ierr)?;
                    let now = Self::committed(topic, &table)?;
                    match after_conflict(now.next(partition), &step) {
                        AfterConflict::Retry => continue,
                        AfterConflict::AlreadyCommitted => {
                            return Ok((table, Outcome::AlreadyCommitted))
                        }
                        AfterConflict::Replan => return Ok((table, Outcome::Replan)),
                    }
                }
                Err(e) => return Err(ierr(e)),
            }
        }
        Err(WriteError::Contended {
            topic: topic.to_string(),
            partition,
        })
    }
}

fn data_file(location: String, day: i32, rows: u64, size: u64) -> Result<DataFile, iceberg::Error> {
    DataFileBuilder::default()
        .content(DataContentType::Data)
        .file_path(location)
        .file_format(DataFileFormat::Parquet)
        .partition(Struct::from_iter([Some(Literal::date(day))]))
        .partition_spec_id(0)
        .record_count(rows)
        .file_size_in_bytes(size)
        .build()
        .map_err(|e| iceberg::Error::new(ErrorKind::Unexpected, format!("data file: {e}")))
}

/// A table writer over `store`, whose objects are at `root` (`remote.storage.url`).
pub fn writer(
    root: &str,
    store: Arc<dyn object_store::ObjectStore>,
) -> Result<TableWriter, iceberg::Error> {
    TableWriter::new(ObjectStorage::new(root, store))
}

#[cfg(test)]
mod tests {
    use super::civil;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(-1), "1969-12-31");
        assert_eq!(civil(20_454), "2026-01-01");
        assert_eq!(civil(11_016), "2000-02-29");
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod writer_tests;
