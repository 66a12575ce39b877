//! `strata export`: records written to a local Parquet file with the table's schema and
//! row building ([`crate::table`]), with no table and no catalog, for a quick look with
//! DuckDB, pandas or pyarrow. One file per partition, written as row groups while the
//! records arrive, so an export of any size holds one batch in memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::records::Row;
use crate::table::{self, TableError};

/// Why an export file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} (partition {partition}): {source}")]
    Rows {
        path: PathBuf,
        partition: i32,
        // Boxed: `iceberg::Error` inside makes the enum large.
        source: Box<TableError>,
    },
    #[error("{path} (partition {partition}): {source}")]
    Parquet {
        path: PathBuf,
        partition: i32,
        source: parquet::errors::ParquetError,
    },
}

/// One partition's export file.
pub struct ExportFile {
    path: PathBuf,
    partition: i32,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl ExportFile {
    /// Creates `path` (replacing a file there) for the rows of `partition`.
    pub fn create(path: &Path, partition: i32) -> Result<ExportFile, ExportError> {
        let rows_err = |source| ExportError::Rows {
            path: path.to_path_buf(),
            partition,
            source: Box::new(source),
        };
        let schema = table::table_schema()
            .and_then(|s| table::arrow_schema(&s))
            .map_err(|e| rows_err(TableError::Schema(e)))?;
        let file = File::create(path).map_err(|source| ExportError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|source| {
            ExportError::Parquet {
                path: path.to_path_buf(),
                partition,
                source,
            }
        })?;
        Ok(ExportFile {
            path: path.to_path_buf(),
            partition,
            schema,
            writer,
            rows: 0,
        })
    }

    /// Appends `rows` (one row group when the writer's buffer fills).
    pub fn write(&mut self, rows: &[Row]) -> Result<(), ExportError> {
        if rows.is_empty() {
            return Ok(());
        }
        let refs: Vec<&Row> = rows.iter().collect();
        let (batch, _) =
            table::record_batch(&refs, self.partition, &self.schema, false).map_err(|source| {
                ExportError::Rows {
                    path: self.path.clone(),
                    partition: self.partition,
                    source: Box::new(source),
                }
            })?;
        self.writer
            .write(&batch)
            .map_err(|source| self.parquet(source))?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    fn parquet(&self, source: parquet::errors::ParquetError) -> ExportError {
        ExportError::Parquet {
            path: self.path.clone(),
            partition: self.partition,
            source,
        }
    }

    /// Writes the footer; returns the rows written.
    pub fn close(self) -> Result<u64, ExportError> {
        let (path, partition, rows) = (self.path, self.partition, self.rows);
        self.writer.close().map_err(|source| ExportError::Parquet {
            path,
            partition,
            source,
        })?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0.parquet");
        let mut f = ExportFile::create(&path, 0).unwrap();
        let row = |offset| Row {
            offset,
            timestamp_ms: 1_000,
            log_append_time: false,
            key: Some(b"k".to_vec()),
            value: None,
            headers: vec![("h".into(), Some(b"v".to_vec()))],
        };
        f.write(&[row(0), row(1)]).unwrap();
        f.write(&[row(2)]).unwrap();
        assert_eq!(f.close().unwrap(), 3);
        let file = File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(n, 3);
    }
}
