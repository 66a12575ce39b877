use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStore;

use super::*;
use crate::conformance::write_fake_segment;
use crate::copier::{self, TopicInfo};
use crate::layout::SegmentFile;
use crate::throttle::Throttle;

fn pk() -> PartitionKey {
    PartitionKey {
        topic: "t".into(),
        topic_id: Uuid::new_v4(),
        partition: 0,
    }
}

/// A store with four uploaded segments of 50 offsets each: [0, 200).
async fn four_segments() -> (
    Arc<dyn ObjectStore>,
    PartitionKey,
    PartitionManifest,
    tempfile::TempDir,
) {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let pk = pk();
    let dir = tempfile::tempdir().expect("tmp");
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let mut m = None;
    for s in 0..4 {
        let (files, _) = write_fake_segment(dir.path(), s * 50, 5, 100);
        m = Some(
            copier::copy_segment(&*store, &pk, &files, &info, &Throttle::new(0))
                .await
                .expect("upload"),
        );
    }
    (store, pk, m.expect("manifest"), dir)
}

/// Uploads a cleaned segment covering [base, next) (its content is made up).
async fn cleaned(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    dir: &std::path::Path,
    base: i64,
    next: i64,
) -> RemoteSegment {
    let (mut files, _) = write_fake_segment(dir, base, 1, 50);
    files.next_offset = next;
    copier::upload_objects(store, pk, &files, &Throttle::new(0))
        .await
        .expect("upload cleaned")
}

async fn keys(store: &dyn ObjectStore, pk: &PartitionKey) -> Vec<String> {
    store
        .list(Some(&pk.dir()))
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await
        .expect("list")
}

async fn has_objects(store: &dyn ObjectStore, pk: &PartitionKey, s: &RemoteSegment) -> bool {
    let all = keys(store, pk).await;
    all.contains(
        &pk.segment(s.base_offset, s.id, SegmentFile::Log)
            .to_string(),
    )
}

#[tokio::test]
async fn a_swap_replaces_a_run_retires_what_it_replaced_and_keeps_the_rest() {
    let (store, pk, m, dir) = four_segments().await;
    let old = m.segments.clone();
    // The first three become one cleaned segment; the fourth stays as it is.
    let merged = cleaned(&*store, &pk, dir.path(), 0, 150).await;
    let s = Swap {
        replaced: old.iter().map(|x| x.id).collect(),
        segments: vec![merged.clone(), old[3].clone()],
        first_dirty_offset: 200,
        tombstone_horizon_ms: Some(7),
        now_ms: 1_000,
    };
    let SwapOutcome::Swapped(after) = swap(&*store, &pk, &s).await.expect("swap") else {
        panic!("the run was there");
    };
    assert_eq!(after.version, m.version + 1);
    assert_eq!(after.segments, vec![merged, old[3].clone()]);
    assert_eq!(
        (after.first_dirty_offset, after.tombstone_horizon_ms),
        (200, Some(7))
    );
    let retired: Vec<_> = after
        .retired
        .iter()
        .map(|r| (r.segment.id, r.retired_ms))
        .collect();
    assert_eq!(
        retired,
        old[..3].iter().map(|x| (x.id, 1_000)).collect::<Vec<_>>()
    );
    // Retired objects are no orphans: a sweep with no grace keeps them.
    tokio::time::sleep(Duration::from_millis(5)).await;
    copier::sweep_orphans(&*store, &pk, Duration::ZERO)
        .await
        .expect("sweep");
    for x in &old {
        assert!(
            has_objects(&*store, &pk, x).await,
            "{} swept",
            x.base_offset
        );
    }
    // Within the grace nothing goes; after it the retired objects do, and the
    // manifest forgets them.
    assert_eq!(
        delete_retired(&*store, &pk, 1_000 + 59_999, RETIRED_GRACE)
            .await
            .expect("early"),
        None
    );
    let done = delete_retired(&*store, &pk, 1_000 + 60_000, RETIRED_GRACE)
        .await
        .expect("delete")
        .expect("due");
    assert!(done.retired.is_empty());
    assert_eq!(done.segments, after.segments);
    for x in &old[..3] {
        assert!(
            !has_objects(&*store, &pk, x).await,
            "{} left",
            x.base_offset
        );
    }
    assert!(has_objects(&*store, &pk, &old[3]).await);
    // The manifest read back is the one published, with its new fields.
    let loaded = manifest::load(&*store, &pk)
        .await
        .expect("load")
        .expect("some");
    assert_eq!(loaded, done);
}

#[tokio::test]
async fn an_upload_during_the_pass_is_kept_and_a_changed_run_publishes_nothing() {
    let (store, pk, m, dir) = four_segments().await;
    let merged = cleaned(&*store, &pk, dir.path(), 0, 100).await;
    let s = Swap {
        replaced: m.segments[..2].iter().map(|x| x.id).collect(),
        segments: vec![merged.clone()],
        first_dirty_offset: 200,
        tombstone_horizon_ms: None,
        now_ms: 0,
    };
    // An upload lands between the pass's read of the manifest and its swap.
    let (files, _) = write_fake_segment(dir.path(), 200, 5, 100);
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let with_new = copier::copy_segment(&*store, &pk, &files, &info, &Throttle::new(0))
        .await
        .expect("upload");
    let SwapOutcome::Swapped(after) = swap(&*store, &pk, &s).await.expect("swap") else {
        panic!("the run was there");
    };
    assert_eq!(after.version, with_new.version + 1);
    assert_eq!(after.segments.len(), 4);
    assert_eq!(after.end_offset(), Some(250), "the new upload is kept");
    // The same swap again: its run is gone, so nothing is published.
    let SwapOutcome::Changed(now) = swap(&*store, &pk, &s).await.expect("swap") else {
        panic!("published over a changed run");
    };
    assert_eq!(now.version, after.version);
    // Retention removed the first segment: a swap of a run holding it gives up.
    let (store, pk, m, dir) = four_segments().await;
    let merged = cleaned(&*store, &pk, dir.path(), 0, 100).await;
    let expired = copier::expire(&*store, &pk, 50).await.expect("expire");
    let s = Swap {
        replaced: m.segments[..2].iter().map(|x| x.id).collect(),
        segments: vec![merged],
        first_dirty_offset: 200,
        tombstone_horizon_ms: None,
        now_ms: 0,
    };
    assert_eq!(
        swap(&*store, &pk, &s).await.expect("swap"),
        SwapOutcome::Changed(expired)
    );
}

#[tokio::test]
async fn a_swap_that_does_not_cover_the_run_exactly_is_refused() {
    let (store, pk, m, dir) = four_segments().await;
    let short = cleaned(&*store, &pk, dir.path(), 0, 90).await;
    let s = Swap {
        replaced: m.segments[..2].iter().map(|x| x.id).collect(),
        segments: vec![short],
        first_dirty_offset: 100,
        tombstone_horizon_ms: None,
        now_ms: 0,
    };
    let err = swap(&*store, &pk, &s).await.expect_err("a hole");
    assert!(matches!(err, TierError::BadSwap { .. }), "{err}");
    assert!(err.to_string().contains("t-0"), "{err}");
    let head = manifest::load(&*store, &pk)
        .await
        .expect("load")
        .expect("some");
    assert_eq!(head, m, "nothing published");
}

#[test]
fn manifests_written_before_remote_compaction_still_load() {
    let old = r#"{"version":3,"partition":{"topic":"t","topic_id":"00000000-0000-0000-0000-000000000000","partition":0},
        "partition_count":1,"configs":{},"log_start_offset":0,"segments":[]}"#;
    let m: PartitionManifest = serde_json::from_str(old).expect("an old manifest");
    assert_eq!(
        (
            m.first_dirty_offset,
            m.tombstone_horizon_ms,
            m.retired.len()
        ),
        (0, None, 0)
    );
}
