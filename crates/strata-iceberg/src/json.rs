//! `iceberg.value.format=json`: the top-level fields of each record's JSON value as
//! columns. A value that is not a JSON object, or whose projected field does not fit its
//! column's type, is an error row: its projected columns are null and `_error` holds the
//! whole value (as text, invalid UTF-8 replaced); the row is kept and counted. A null value
//! (a tombstone) or a missing field is null, not an error.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow_schema::{ArrowError, DataType, Field};
use serde_json::{Map, Value};

use crate::records::Row;

/// The column holding the raw value of rows whose value does not parse.
pub const ERROR_COLUMN: &str = "_error";

fn fits(v: &Value, ty: &DataType) -> bool {
    match ty {
        DataType::Boolean => v.is_boolean(),
        DataType::Int32 => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        DataType::Int64 => v.is_i64(),
        DataType::Float32 | DataType::Float64 => v.is_number(),
        DataType::Utf8 => v.is_string(),
        _ => false,
    }
}

/// The projected columns of `rows` for `fields` (the table's columns after the fixed ones,
/// `_error` among them), and how many rows are error rows. With `project` off (raw format)
/// every such column is null.
pub fn columns(
    rows: &[&Row],
    fields: &[Arc<Field>],
    project: bool,
) -> Result<(Vec<ArrayRef>, u64), ArrowError> {
    let mut objects: Vec<Option<Map<String, Value>>> = Vec::with_capacity(rows.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(rows.len());
    for r in rows {
        let parsed = match (&r.value, project) {
            (Some(v), true) => match serde_json::from_slice::<Value>(v) {
                Ok(Value::Object(m)) => {
                    let ok = fields.iter().all(|f| {
                        m.get(f.name())
                            .is_none_or(|v| v.is_null() || fits(v, f.data_type()))
                    });
                    ok.then_some(m).ok_or(())
                }
                _ => Err(()),
            },
            _ => Ok(Map::new()),
        };
        match parsed {
            Ok(m) => {
                objects.push(Some(m));
                errors.push(None);
            }
            Err(()) => {
                objects.push(None);
                errors.push(
                    r.value
                        .as_deref()
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                );
            }
        }
    }
    let n_errors = errors.iter().filter(|e| e.is_some()).count() as u64;
    let mut out: Vec<ArrayRef> = Vec::with_capacity(fields.len());
    for f in fields {
        if f.name() == ERROR_COLUMN {
            out.push(Arc::new(StringArray::from(errors.clone())));
            continue;
        }
        let get =
            |o: &Option<Map<String, Value>>| o.as_ref().and_then(|m| m.get(f.name())).cloned();
        let vals: Vec<Option<Value>> = objects.iter().map(get).collect();
        let col: ArrayRef = match f.data_type() {
            DataType::Boolean => Arc::new(BooleanArray::from(
                vals.iter()
                    .map(|v| v.as_ref().and_then(Value::as_bool))
                    .collect::<Vec<_>>(),
            )),
            DataType::Int32 => Arc::new(Int32Array::from(
                vals.iter()
                    .map(|v| {
                        v.as_ref()
                            .and_then(Value::as_i64)
                            .and_then(|n| i32::try_from(n).ok())
                    })
                    .collect::<Vec<_>>(),
            )),
            DataType::Int64 => Arc::new(Int64Array::from(
                vals.iter()
                    .map(|v| v.as_ref().and_then(Value::as_i64))
                    .collect::<Vec<_>>(),
            )),
            DataType::Float32 => Arc::new(Float32Array::from(
                vals.iter()
                    .map(|v| v.as_ref().and_then(Value::as_f64).map(|x| x as f32))
                    .collect::<Vec<_>>(),
            )),
            DataType::Float64 => Arc::new(Float64Array::from(
                vals.iter()
                    .map(|v| v.as_ref().and_then(Value::as_f64))
                    .collect::<Vec<_>>(),
            )),
            DataType::Utf8 => Arc::new(StringArray::from(
                vals.iter()
                    .map(|v| v.as_ref().and_then(|v| v.as_str().map(str::to_string)))
                    .collect::<Vec<_>>(),
            )),
            other => {
                return Err(ArrowError::SchemaError(format!(
                    "column {} has type {other}, which no JSON value is projected into",
                    f.name()
                )))
            }
        };
        out.push(col);
    }
    Ok((out, n_errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn row(v: Option<&[u8]>) -> Row {
        Row {
            offset: 0,
            timestamp_ms: 0,
            log_append_time: false,
            key: None,
            value: v.map(<[u8]>::to_vec),
            headers: vec![],
        }
    }

    #[test]
    fn projects_fields_and_keeps_bad_values_in_error() {
        let rows = [
            row(Some(br#"{"n": 7, "who": "a", "extra": [1]}"#)),
            row(Some(b"not json")),
            row(Some(br#"{"n": "seven"}"#)),
            row(None),
            row(Some(br#"{"who": null}"#)),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let fields = vec![
            Arc::new(Field::new("n", DataType::Int64, true)),
            Arc::new(Field::new("who", DataType::Utf8, true)),
            Arc::new(Field::new(ERROR_COLUMN, DataType::Utf8, true)),
        ];
        let (cols, errors) = columns(&refs, &fields, true).unwrap();
        assert_eq!(errors, 2);
        let n = cols[0].as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            (n.value(0), n.is_null(1), n.is_null(2), n.is_null(3)),
            (7, true, true, true)
        );
        let who = cols[1].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(who.value(0), "a");
        assert!(who.is_null(4));
        let err = cols[2].as_any().downcast_ref::<StringArray>().unwrap();
        assert!(err.is_null(0) && err.is_null(3) && err.is_null(4));
        assert_eq!(
            (err.value(1), err.value(2)),
            ("not json", r#"{"n": "seven"}"#)
        );
        // Raw format: nothing projected, nothing counted.
        let (cols, errors) = columns(&refs, &fields, false).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(cols[0].null_count(), 5);
    }
}
