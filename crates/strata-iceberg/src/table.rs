//! The table's shape (schema, partition spec) and the Parquet files of a segment's rows:
//! one file per day of timestamp, since the table is partitioned by `day(timestamp)`.
//!
//! Columns (Iceberg field ids in brackets): `partition` int [1], `offset` long [2],
//! `timestamp` timestamptz [3], `timestamp_type` string [4] (`CreateTime` or
//! `LogAppendTime`), `key` binary [5], `value` binary [6], `headers`
//! list<struct<key string, value binary>> [7; element 8, key 9, value 10]. Header keys are
//! strings in Kafka; bytes that are not UTF-8 are replaced (U+FFFD). The Arrow schema comes
//! from the Iceberg one (`iceberg::arrow::schema_to_arrow_schema`), so every Parquet column
//! carries its field id and engines match columns by id.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, LargeBinaryBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, LargeBinaryArray, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Fields, SchemaRef};
use iceberg::spec::{
    ListType, NestedField, PrimitiveType, Schema, StructType, Transform, Type, UnboundPartitionSpec,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use strata_config::value_schema::ValueField;

use crate::json::ERROR_COLUMN;
use crate::records::Row;

const MS_PER_DAY: i64 = 86_400_000;
/// partition, offset, timestamp, timestamp_type, key, value, headers.
const FIXED_COLUMNS: usize = 7;

/// Why the Parquet of a segment could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("table schema: {0}")]
    Schema(#[from] iceberg::Error),
    #[error("arrow batch for partition {partition}: {source}")]
    Arrow {
        partition: i32,
        source: arrow_schema::ArrowError,
    },
    #[error("parquet file for partition {partition}: {source}")]
    Parquet {
        partition: i32,
        source: parquet::errors::ParquetError,
    },
}

/// The table's Iceberg schema (see the module docs).
pub fn table_schema() -> Result<Schema, iceberg::Error> {
    let prim = |p| Type::Primitive(p);
    let header = StructType::new(vec![
        NestedField::required(9, "key", prim(PrimitiveType::String)).into(),
        NestedField::optional(10, "value", prim(PrimitiveType::Binary)).into(),
    ]);
    Schema::builder()
        .with_schema_id(0)
        .with_fields(vec![
            NestedField::required(1, "partition", prim(PrimitiveType::Int)).into(),
            NestedField::required(2, "offset", prim(PrimitiveType::Long)).into(),
            NestedField::required(3, "timestamp", prim(PrimitiveType::Timestamptz)).into(),
            NestedField::required(4, "timestamp_type", prim(PrimitiveType::String)).into(),
            NestedField::optional(5, "key", prim(PrimitiveType::Binary)).into(),
            NestedField::optional(6, "value", prim(PrimitiveType::Binary)).into(),
            NestedField::required(
                7,
                "headers",
                Type::List(ListType::new(
                    NestedField::required(8, "element", Type::Struct(header)).into(),
                )),
            )
            .into(),
        ])
        .build()
}

/// `day(timestamp)`, the table's partitioning.
pub fn partition_spec() -> Result<UnboundPartitionSpec, iceberg::Error> {
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(3, "timestamp_day", Transform::Day)
        .map(|b| b.build())
}

/// The Arrow schema of the table's Parquet files (with field ids).
pub fn arrow_schema(schema: &Schema) -> Result<SchemaRef, iceberg::Error> {
    Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(schema)?))
}

/// One Parquet file: the rows of one day.
#[derive(Debug)]
pub struct DayFile {
    /// Days since 1970-01-01 (UTC), the value of the `timestamp_day` partition.
    pub day: i32,
    pub rows: u64,
    /// Rows whose value did not project (json format; see `json.rs`).
    pub value_errors: u64,
    pub parquet: Vec<u8>,
}

/// The Iceberg type of a projected JSON field (`strata_config::value_schema::TYPES`).
fn value_type(ty: &str) -> Option<PrimitiveType> {
    Some(match ty {
        "boolean" => PrimitiveType::Boolean,
        "int" => PrimitiveType::Int,
        "long" => PrimitiveType::Long,
        "float" => PrimitiveType::Float,
        "double" => PrimitiveType::Double,
        "string" => PrimitiveType::String,
        _ => return None,
    })
}

/// The columns `schema` lacks for the json format's `fields`: `_error` first, then each
/// missing field, in order (all optional). Empty for the raw format. A field whose column
/// exists keeps its type (a type change would need a new column name).
pub fn missing_columns(schema: &Schema, fields: &[ValueField]) -> Vec<(String, PrimitiveType)> {
    if fields.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if schema.field_by_name(ERROR_COLUMN).is_none() {
        out.push((ERROR_COLUMN.to_string(), PrimitiveType::String));
    }
    for f in fields {
        if schema.field_by_name(&f.name).is_none() {
            if let Some(ty) = value_type(&f.ty) {
                out.push((f.name.clone(), ty));
            }
        }
    }
    out
}

/// The day (since the epoch, UTC) of a timestamp in milliseconds.
pub fn day_of(timestamp_ms: i64) -> i32 {
    timestamp_ms
        .div_euclid(MS_PER_DAY)
        .clamp(i32::MIN.into(), i32::MAX.into()) as i32
}

/// The Parquet files of `rows` of `partition`, one per day, in day order; `project`: the
/// json format (columns after the fixed ones are projected from the value).
pub fn parquet_files(
    rows: &[Row],
    partition: i32,
    schema: &SchemaRef,
    project: bool,
) -> Result<Vec<DayFile>, TableError> {
    let mut by_day: BTreeMap<i32, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_day.entry(day_of(r.timestamp_ms)).or_default().push(r);
    }
    by_day
        .into_iter()
        .map(|(day, rows)| {
            let (batch, value_errors) = record_batch(&rows, partition, schema, project)?;
            Ok(DayFile {
                day,
                rows: rows.len() as u64,
                value_errors,
                parquet: to_parquet(&batch, partition)?,
            })
        })
        .collect()
}

fn to_parquet(batch: &RecordBatch, partition: i32) -> Result<Vec<u8>, TableError> {
    let err = |source| TableError::Parquet { partition, source };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.close().map_err(err)?;
    Ok(out)
}

/// The Arrow batch of `rows`, in the column order of `schema`, and its count of value errors.
pub fn record_batch(
    rows: &[&Row],
    partition: i32,
    schema: &SchemaRef,
    project: bool,
) -> Result<(RecordBatch, u64), TableError> {
    let err = |source| TableError::Arrow { partition, source };
    let n = rows.len();
    let mut part = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut ts =
        TimestampMicrosecondBuilder::with_capacity(n).with_timezone(iceberg::arrow::UTC_TIME_ZONE);
    let mut ts_type = StringBuilder::new();
    let mut key = LargeBinaryBuilder::new();
    let mut value = LargeBinaryBuilder::new();
    let mut h_offsets = vec![0i32];
    let (mut h_keys, mut h_values) = (StringBuilder::new(), LargeBinaryBuilder::new());
    for r in rows {
        part.append_value(partition);
        offset.append_value(r.offset);
        ts.append_value(r.timestamp_ms.saturating_mul(1000));
        ts_type.append_value(if r.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        });
        key.append_option(r.key.as_deref());
        value.append_option(r.value.as_deref());
        for (k, v) in &r.headers {
            h_keys.append_value(k);
            h_values.append_option(v.as_deref());
        }
        let last = *h_offsets.last().unwrap_or(&0);
        h_offsets.push(last + r.headers.len() as i32);
    }
    let headers =
        headers_array(schema, h_offsets, h_keys.finish(), h_values.finish()).map_err(err)?;
    let fixed = FIXED_COLUMNS.min(schema.fields().len());
    let (projected, errors) =
        crate::json::columns(rows, &schema.fields()[fixed..], project).map_err(err)?;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(part.finish()),
        Arc::new(offset.finish()),
        Arc::new(ts.finish()),
        Arc::new(ts_type.finish()),
        Arc::new(key.finish()),
        Arc::new(value.finish()),
        headers,
    ];
    columns.extend(projected);
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(err)?;
    Ok((batch, errors))
}

/// The `headers` column: a list (typed as `schema` says, field ids included) of structs.
fn headers_array(
    schema: &SchemaRef,
    offsets: Vec<i32>,
    keys: StringArray,
    values: LargeBinaryArray,
) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let wrong = || arrow_schema::ArrowError::SchemaError("headers is not a list of structs".into());
    let field = schema.field_with_name("headers")?;
    let DataType::List(element) = field.data_type() else {
        return Err(wrong());
    };
    let DataType::Struct(fields) = element.data_type() else {
        return Err(wrong());
    };
    let fields: Fields = fields.clone();
    let structs = StructArray::try_new(
        fields,
        vec![Arc::new(keys) as ArrayRef, Arc::new(values)],
        None,
    )?;
    let list = ListArray::try_new(
        element.clone(),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(structs),
        None,
    )?;
    Ok(Arc::new(list))
}
