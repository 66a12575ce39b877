//! `iceberg.value.schema`: the top-level fields that `iceberg.value.format=json` projects
//! from each record's JSON value into columns of the topic's Iceberg table.
//!
//! The value is an Iceberg struct schema in its JSON form (the `fields` of a table schema,
//! as Iceberg's spec writes it): `{"type": "struct", "fields": [{"id": 1, "name": "amount",
//! "required": false, "type": "double"}, ...]}`. Only `name` and `type` are used: ids are
//! assigned by the table (so adding a field later is a schema evolution of the same table)
//! and every projected column is optional (a record without the field has null). Types are
//! Iceberg primitives a JSON value maps to: boolean, int, long, float, double, string.

use serde::Deserialize;

/// The column names the table has whatever the value schema (and `_error`).
pub const RESERVED: &[&str] = &[
    "partition",
    "offset",
    "timestamp",
    "timestamp_type",
    "key",
    "value",
    "headers",
    "_error",
];
/// The field types a value schema may use.
pub const TYPES: &[&str] = &["boolean", "int", "long", "float", "double", "string"];

#[derive(Deserialize)]
struct Struct {
    #[serde(rename = "type")]
    ty: Option<String>,
    fields: Vec<Field>,
}

#[derive(Deserialize)]
struct Field {
    name: String,
    #[serde(rename = "type")]
    ty: serde_json::Value,
}

/// One projected column: its name and Iceberg primitive type (one of [`TYPES`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueField {
    pub name: String,
    pub ty: String,
}

/// The fields of a value schema; `Err` says what is wrong with it.
pub fn parse(schema: &str) -> Result<Vec<ValueField>, String> {
    let s: Struct = serde_json::from_str(schema).map_err(|e| {
        format!("not an Iceberg struct schema ({{\"type\": \"struct\", \"fields\": [...]}}): {e}")
    })?;
    if s.ty.as_deref().is_some_and(|t| t != "struct") {
        return Err("the schema's type must be \"struct\"".into());
    }
    if s.fields.is_empty() {
        return Err("the schema has no fields".into());
    }
    let mut out: Vec<ValueField> = Vec::new();
    for f in s.fields {
        let ty = f.ty.as_str().unwrap_or_default();
        if !TYPES.contains(&ty) {
            return Err(format!(
                "field {:?} has type {}; a projected field is one of {}",
                f.name,
                f.ty,
                TYPES.join(", ")
            ));
        }
        if f.name.is_empty() || RESERVED.contains(&f.name.as_str()) {
            return Err(format!(
                "field name {:?} is empty or taken by the table's own columns ({})",
                f.name,
                RESERVED.join(", ")
            ));
        }
        if out.iter().any(|o| o.name == f.name) {
            return Err(format!("field {:?} appears twice", f.name));
        }
        out.push(ValueField {
            name: f.name,
            ty: ty.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iceberg_struct_fields_and_refuses_the_rest() {
        let ok = r#"{"type":"struct","fields":[{"id":1,"name":"n","required":true,"type":"long"},
                    {"id":2,"name":"who","type":"string"}]}"#;
        assert_eq!(
            parse(ok).unwrap(),
            vec![
                ValueField {
                    name: "n".into(),
                    ty: "long".into()
                },
                ValueField {
                    name: "who".into(),
                    ty: "string".into()
                },
            ]
        );
        for bad in [
            "not json",
            r#"{"type":"struct","fields":[]}"#,
            r#"{"type":"list","fields":[{"name":"a","type":"int"}]}"#,
            r#"{"fields":[{"name":"a","type":"decimal(9,2)"}]}"#,
            r#"{"fields":[{"name":"a","type":{"type":"list"}}]}"#,
            r#"{"fields":[{"name":"offset","type":"long"}]}"#,
            r#"{"fields":[{"name":"a","type":"int"},{"name":"a","type":"long"}]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
