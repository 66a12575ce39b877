//! The writer against a real `object_store` (in memory), read back with the `iceberg`
//! crate's own scan: rows, exactly once across retries and racing writers.

use std::sync::Arc;

use arrow_array::{Array, Int64Array};
use futures::TryStreamExt;
use object_store::memory::InMemory;

use super::*;
use crate::plan::plan;
use crate::records::testing::batch;
use crate::Span;

const DAY_MS: i64 = 86_400_000;

fn segment(base: i64, n: usize, ts: i64) -> Vec<u8> {
    let vals: Vec<String> = (0..n).map(|i| format!("v{}", base + i as i64)).collect();
    const HS: &[(&str, &[u8])] = &[("h", b"1")];
    let recs: Vec<_> = vals
        .iter()
        .map(|v| (Some(&b"k"[..]), Some(v.as_bytes()), HS))
        .collect();
    batch(base, ts, &recs, 0)
}

async fn offsets(w: &TableWriter, topic: &str) -> Vec<(i64, String)> {
    let t = w
        .catalog()
        .load_table(&TableWriter::ident(topic))
        .await
        .unwrap();
    if t.metadata().current_snapshot().is_none() {
        return vec![];
    }
    let batches: Vec<_> = t
        .scan()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let off = b
            .column_by_name("offset")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let val = b.column_by_name("value").unwrap();
        let val = val
            .as_any()
            .downcast_ref::<arrow_array::LargeBinaryArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push((
                off.value(i),
                String::from_utf8(val.value(i).to_vec()).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

fn writer_in_memory() -> TableWriter {
    writer("memory://bucket", Arc::new(InMemory::new())).unwrap()
}

#[tokio::test]
async fn segments_are_committed_once_and_read_back() {
    let w = writer_in_memory();
    let seg0 = segment(0, 5, DAY_MS - 2); // crosses midnight: two day files
    let seg1 = segment(5, 3, 3 * DAY_MS);
    let spans = [
        Span {
            base_offset: 0,
            next_offset: 5,
        },
        Span {
            base_offset: 5,
            next_offset: 8,
        },
    ];
    let mut t = w.open("orders").await.unwrap();
    let steps = plan(
        TableWriter::committed("orders", &t).unwrap().next(0),
        &spans,
        10,
    );
    assert_eq!(steps.len(), 2);
    for (step, bytes) in steps.iter().zip([&seg0, &seg1]) {
        let (next, outcome) = w
            .write_step("orders", t, 0, *step, bytes, &[], &[])
            .await
            .unwrap();
        t = next;
        assert!(matches!(outcome, Outcome::Committed { .. }), "{outcome:?}");
    }
    let got = offsets(&w, "orders").await;
    assert_eq!(got.len(), 8);
    assert_eq!(got[7], (7, "v7".to_string()));
    // The table now says everything is there: nothing is planned again.
    let t = w.open("orders").await.unwrap();
    let c = TableWriter::committed("orders", &t).unwrap();
    assert_eq!(c.next(0), Some(8));
    assert!(plan(c.next(0), &spans, 10).is_empty());
    // The first segment went into two day partitions.
    let files: Vec<_> = t
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties
        .clone()
        .into_iter()
        .collect();
    assert!(files
        .iter()
        .any(|(k, v)| k == crate::plan::OFFSETS && v == "5-8"));
}

#[tokio::test]
async fn a_racing_writer_with_a_stale_table_adds_nothing_twice() {
    let w = writer_in_memory();
    let seg = segment(0, 4, 1_000);
    let step = Step {
        base_offset: 0,
        next_offset: 4,
        from: 0,
    };
    let stale = w.open("t").await.unwrap();
    let (_, first) = w
        .write_step("t", stale.clone(), 0, step, &seg, &[], &[])
        .await
        .unwrap();
    assert!(matches!(first, Outcome::Committed { rows: 4, .. }));
    // A second writer (an old leader) with the table as it was before the commit.
    let (_, second) = w
        .write_step("t", stale.clone(), 0, step, &seg, &[], &[])
        .await
        .unwrap();
    assert_eq!(second, Outcome::AlreadyCommitted);
    // A writer of another partition with the stale table retries on top, keeping p0's offsets.
    let (t, other) = w
        .write_step("t", stale, 1, step, &seg, &[], &[])
        .await
        .unwrap();
    assert!(matches!(other, Outcome::Committed { .. }));
    let c = TableWriter::committed("t", &t).unwrap();
    assert_eq!((c.next(0), c.next(1)), (Some(4), Some(4)));
    assert_eq!(offsets(&w, "t").await.len(), 8);
}

fn field(name: &str, ty: &str) -> crate::ValueField {
    crate::ValueField {
        name: name.into(),
        ty: ty.into(),
    }
}

#[tokio::test]
async fn json_values_are_projected_and_the_schema_evolves_in_place() {
    let w = writer_in_memory();
    const NO: &[(&str, &[u8])] = &[];
    let seg0 = batch(
        0,
        1_000,
        &[
            (None, Some(br#"{"n": 1, "who": "a"}"#), NO),
            (None, Some(b"oops"), NO),
        ],
        0,
    );
    let t = w.open("j").await.unwrap();
    let step0 = Step {
        base_offset: 0,
        next_offset: 2,
        from: 0,
    };
    let (t, out) = w
        .write_step("j", t, 0, step0, &seg0, &[], &[field("n", "long")])
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Committed {
                rows: 2,
                value_errors: 1,
                ..
            }
        ),
        "{out:?}"
    );
    let id_before = t.metadata().current_schema().field_by_name("n").unwrap().id;
    // A field added to the schema: a new column of the same table.
    let seg1 = batch(2, 2_000, &[(None, Some(br#"{"n": 3, "who": "c"}"#), NO)], 0);
    let step1 = Step {
        base_offset: 2,
        next_offset: 3,
        from: 2,
    };
    let fields = [field("n", "long"), field("who", "string")];
    let (t, _) = w
        .write_step("j", t, 0, step1, &seg1, &[], &fields)
        .await
        .unwrap();
    let schema = t.metadata().current_schema();
    assert_eq!(schema.field_by_name("n").unwrap().id, id_before);
    assert!(schema.field_by_name("who").is_some() && schema.field_by_name("_error").is_some());
    let batches: Vec<_> = t
        .scan()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut got = Vec::new();
    for b in &batches {
        let off = b
            .column_by_name("offset")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let n = b
            .column_by_name("n")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let who = b
            .column_by_name("who")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        let err = b
            .column_by_name("_error")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            let opt = |a: &dyn Array, v: String| (!a.is_null(i)).then_some(v);
            got.push((
                off.value(i),
                opt(n, n.value(i).to_string()),
                opt(who, who.value(i).to_string()),
                opt(err, err.value(i).to_string()),
            ));
        }
    }
    got.sort();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        vec![
            (0, s("1"), None, None), // written before `who` existed: null
            (1, None, None, s("oops")),
            (2, s("3"), s("c"), None),
        ]
    );
}
