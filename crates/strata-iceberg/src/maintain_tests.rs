//! Retention and the orphan sweeper against an in-memory bucket, read back with the
//! `iceberg` crate's own scan.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::records::testing::batch;
use crate::{plan, Span, TableWriter};

const DAY_MS: i64 = 86_400_000;

fn segment(base: i64, n: usize, ts: i64) -> Vec<u8> {
    let vals: Vec<String> = (0..n).map(|i| format!("v{}", base + i as i64)).collect();
    let recs: Vec<_> = vals
        .iter()
        .map(|v| (None, Some(v.as_bytes()), &[][..]))
        .collect();
    batch(base, ts, &recs, 0)
}

async fn rows(w: &TableWriter, topic: &str) -> usize {
    let t = w.open(topic).await.unwrap();
    if t.metadata().current_snapshot().is_none() {
        return 0;
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
    batches.iter().map(|b| b.num_rows()).sum()
}

async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let listed: Vec<_> = store
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

/// A table with one segment of 4 records on day 1 and one of 3 records on day 10.
async fn two_days(topic: &str) -> (TableWriter, Arc<dyn ObjectStore>) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let w = crate::writer("memory://bucket", store.clone()).unwrap();
    let spans = [
        Span {
            base_offset: 0,
            next_offset: 4,
        },
        Span {
            base_offset: 4,
            next_offset: 7,
        },
    ];
    let segs = [segment(0, 4, DAY_MS + 5), segment(4, 3, 10 * DAY_MS)];
    let mut t = w.open(topic).await.unwrap();
    for (step, seg) in plan(None, &spans, 10).iter().zip(&segs) {
        t = w
            .write_step(topic, t, 0, *step, seg, &[], &[])
            .await
            .unwrap()
            .0;
    }
    (w, store)
}

#[tokio::test]
async fn retention_removes_the_days_past_it_their_files_and_the_history() {
    let (w, store) = two_days("r").await;
    assert_eq!(rows(&w, "r").await, 7);
    // Retention 3 days at day 11: day 1 goes, day 10 stays.
    let now = 11 * DAY_MS;
    let got = w.expire("r", 3 * DAY_MS, now).await.unwrap();
    assert_eq!((got.data_files, got.rows), (1, 4));
    assert_eq!(
        got.snapshots, 2,
        "the two append snapshots before the delete"
    );
    assert_eq!(rows(&w, "r").await, 3);
    let t = w.open("r").await.unwrap();
    assert_eq!(t.metadata().snapshots().count(), 1);
    // The committed offsets are carried: nothing is planned again.
    let c = TableWriter::committed("r", &t).unwrap();
    assert_eq!(c.next(0), Some(7));
    let data = keys(&store, "iceberg/r/data").await;
    assert_eq!(data.len(), 1, "{data:?}");
    assert!(data[0].contains("timestamp_day=1970-01-11"), "{data:?}");
    // Again: nothing more to remove.
    assert_eq!(w.expire("r", 3 * DAY_MS, now).await.unwrap().data_files, 0);
    // The expired snapshots' manifests are orphans now: swept.
    let before = keys(&store, "iceberg/r/metadata").await.len();
    let swept = w.sweep_orphans("r", 0, i64::MAX / 2).await.unwrap();
    assert!(swept >= 2, "{swept}");
    assert_eq!(
        keys(&store, "iceberg/r/metadata").await.len(),
        before - swept as usize
    );
    assert_eq!(rows(&w, "r").await, 3);
}

#[tokio::test]
async fn unnamed_files_older_than_the_grace_period_are_deleted() {
    let (w, store) = two_days("o").await;
    // A crash between the Parquet put and the commit leaves this.
    let orphan = Path::from("iceberg/o/data/timestamp_day=1970-01-02/0-x.parquet");
    store.put(&orphan, b"PAR1".to_vec().into()).await.unwrap();
    let now = chrono_now_ms();
    // Young: kept.
    assert_eq!(w.sweep_orphans("o", 60_000, now).await.unwrap(), 0);
    // Past the grace period: deleted; every named file stays.
    assert_eq!(w.sweep_orphans("o", 0, now + 1_000).await.unwrap(), 1);
    assert!(store.head(&orphan).await.is_err());
    assert_eq!(rows(&w, "o").await, 7);
    assert_eq!(w.sweep_orphans("o", 0, now + 1_000).await.unwrap(), 0);
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn deleting_a_table_removes_every_object_and_a_new_one_starts_empty() {
    let (w, store) = two_days("gone").await;
    assert_eq!(rows(&w, "gone").await, 7);
    let deleted = w.delete_table("gone").await.unwrap();
    assert!(deleted >= 4, "{deleted}");
    assert!(keys(&store, "iceberg/gone").await.is_empty());
    // Idempotent: a second replica of partition 0 finds nothing left.
    assert_eq!(w.delete_table("gone").await.unwrap(), 0);
    assert_eq!(rows(&w, "gone").await, 0);
}

#[tokio::test]
async fn a_kept_table_of_an_earlier_topic_is_refused_by_a_new_one() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let w = crate::writer("memory://bucket", store).unwrap();
    w.open_for("t", Some("id-1")).await.unwrap();
    w.open_for("t", Some("id-1")).await.unwrap();
    let e = w.open_for("t", Some("id-2")).await.unwrap_err();
    assert!(e.to_string().contains("earlier topic"), "{e}");
    // Tables from before ids were recorded are taken as they are.
    w.open_for("u", None).await.unwrap();
    w.open_for("u", Some("id-3")).await.unwrap();
}
