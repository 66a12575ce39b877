//! Topics as Iceberg tables (issue 19), written from the tiered copy.
//!
//! A topic with `iceberg.enable=true` has a table kept in step with its remote segments:
//! each segment the RemoteLogManager uploaded is read back, its records decoded
//! ([`records`]), written as Parquet with `arrow`/`parquet`, one file per day of timestamp
//! ([`table`]), and committed in one snapshot with the `iceberg` crate ([`writer`]). The
//! catalog is the bucket itself ([`catalog`]): metadata versions published with the same
//! create-if-absent compare-and-swap as the partition manifests; or AWS Glue ([`glue`]),
//! whose table pointer is swapped conditionally on its `VersionId`. Every commit goes
//! through [`pinned::Pinned`], whichever the catalog. Exactly once: the current
//! snapshot's summary records the committed offset of every partition and the planner
//! ([`plan`], pure) writes only what is above it.
//!
//! The table is written to the store *below* client-side encryption (engines must read
//! it); segments are read through the decrypting store by the caller.

pub mod catalog;
pub mod export;
pub mod glue;
pub mod json;
pub mod maintain;
pub mod pinned;
pub mod plan;
pub mod records;
pub mod storage;
pub mod table;
pub mod writer;

pub use export::{ExportError, ExportFile};
pub use glue::GlueSettings;
pub use iceberg::table::Table;
pub use plan::{plan, Committed, Span, Step};
pub use records::{AbortedTxn, Row};
pub use strata_config::value_schema::ValueField;
pub use writer::{writer, writer_with, CatalogChoice, Outcome, TableWriter, WriteError};
