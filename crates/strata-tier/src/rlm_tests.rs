use super::*;
use uuid::Uuid;

fn key() -> PartitionKey {
    PartitionKey {
        topic: "t".into(),
        topic_id: Uuid::nil(),
        partition: 0,
    }
}

fn seg(base: i64, next: i64) -> LocalSegment {
    LocalSegment {
        base_offset: base,
        next_offset: next,
        size_bytes: 100,
        max_timestamp: 1_000,
    }
}

fn span(base: i64, next: i64, ts: i64) -> RemoteSpan {
    RemoteSpan {
        base_offset: base,
        next_offset: next,
        size_bytes: 100,
        max_timestamp: ts,
    }
}

fn policy() -> Policy {
    Policy {
        retention_ms: -1,
        retention_bytes: -1,
        local_retention_ms: -1,
        local_retention_bytes: 0,
        copy_disabled: false,
    }
}

fn view(local: Vec<LocalSegment>, remote: Vec<RemoteSpan>) -> PartitionView {
    PartitionView {
        key: key(),
        local,
        high_watermark: 30,
        clean_end: None,
        remote,
        policy: policy(),
        compaction: None,
    }
}

fn tick(v: PartitionView) -> Event {
    Event::Tick {
        now_ms: 10_000,
        partitions: vec![v],
    }
}

fn uploads(actions: &[Action]) -> Vec<i64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Upload { segment, .. } => Some(segment.base_offset),
            _ => None,
        })
        .collect()
}

#[test]
fn uploads_closed_segments_in_order_one_at_a_time_never_the_active_one() {
    let mut s = Scheduler::new();
    let t0 = Instant::now();
    let local = vec![seg(0, 10), seg(10, 20), seg(20, 30)];
    assert_eq!(
        uploads(&s.on_event(t0, tick(view(local.clone(), vec![])))),
        vec![0]
    );
    // In flight: nothing new.
    assert!(uploads(&s.on_event(t0, tick(view(local.clone(), vec![])))).is_empty());
    s.on_event(
        t0,
        Event::UploadDone {
            key: key(),
            base_offset: 0,
        },
    );
    let a = s.on_event(t0, tick(view(local.clone(), vec![span(0, 10, 1_000)])));
    assert_eq!(uploads(&a), vec![10]);
    assert!(a.contains(&Action::EnforceLocalRetention {
        key: key(),
        tiered_end: 10,
        local_ms: -1,
        local_bytes: 0
    }));
    s.on_event(
        t0,
        Event::UploadDone {
            key: key(),
            base_offset: 10,
        },
    );
    // [20, 30) is the active segment.
    assert!(
        uploads(&s.on_event(t0, tick(view(local, vec![span(0, 10, 0), span(10, 20, 0)]))))
            .is_empty()
    );
}

#[test]
fn nothing_at_or_above_the_high_watermark_is_uploaded() {
    let mut s = Scheduler::new();
    let mut v = view(vec![seg(0, 10), seg(10, 20)], vec![]);
    v.high_watermark = 5;
    assert!(uploads(&s.on_event(Instant::now(), tick(v))).is_empty());
}

#[test]
fn failures_back_off_exponentially_and_stay_pending() {
    let mut s = Scheduler::new();
    let t0 = Instant::now();
    let v = view(vec![seg(0, 10), seg(10, 20)], vec![]);
    assert_eq!(uploads(&s.on_event(t0, tick(v.clone()))), vec![0]);
    s.on_event(
        t0,
        Event::UploadFailed {
            key: key(),
            base_offset: 0,
            error: "503".into(),
        },
    );
    assert!(uploads(&s.on_event(t0 + BACKOFF_MIN / 2, tick(v.clone()))).is_empty());
    assert_eq!(
        uploads(&s.on_event(t0 + BACKOFF_MIN, tick(v.clone()))),
        vec![0]
    );
    let t1 = t0 + BACKOFF_MIN;
    s.on_event(
        t1,
        Event::UploadFailed {
            key: key(),
            base_offset: 0,
            error: "503".into(),
        },
    );
    assert_eq!(s.state(&key()).map(|st| st.attempts), Some(2));
    assert!(uploads(&s.on_event(t1 + BACKOFF_MIN, tick(v.clone()))).is_empty());
    assert_eq!(uploads(&s.on_event(t1 + BACKOFF_MIN * 2, tick(v))), vec![0]);
}

#[test]
fn copy_disable_stops_uploads() {
    let mut s = Scheduler::new();
    let mut v = view(vec![seg(0, 10), seg(10, 20)], vec![]);
    v.policy.copy_disabled = true;
    assert!(uploads(&s.on_event(Instant::now(), tick(v))).is_empty());
}

#[test]
fn total_retention_expires_remote_segments_oldest_first() {
    let mut s = Scheduler::new();
    let mut v = view(
        vec![seg(20, 30)],
        vec![span(0, 10, 1_000), span(10, 20, 9_500)],
    );
    v.policy.retention_ms = 5_000;
    let a = s.on_event(Instant::now(), tick(v.clone()));
    assert!(a.contains(&Action::ExpireRemote {
        key: key(),
        before: 10
    }));
    v.policy.retention_ms = -1;
    // 300 bytes in total (200 remote + 100 local only), keep 150: one remote segment goes.
    v.policy.retention_bytes = 150;
    let a = s.on_event(Instant::now(), tick(v));
    assert!(a.contains(&Action::ExpireRemote {
        key: key(),
        before: 10
    }));
}

#[test]
fn a_compacted_topic_uploads_only_what_local_cleaning_covered() {
    let mut s = Scheduler::new();
    let t0 = Instant::now();
    let mut v = view(vec![seg(0, 10), seg(10, 20), seg(20, 30)], vec![]);
    v.clean_end = Some(5);
    assert!(
        uploads(&s.on_event(t0, tick(v.clone()))).is_empty(),
        "nothing cleaned yet"
    );
    v.clean_end = Some(20);
    assert_eq!(uploads(&s.on_event(t0, tick(v.clone()))), vec![0]);
    s.on_event(
        t0,
        Event::UploadDone {
            key: key(),
            base_offset: 0,
        },
    );
    // An emptied segment is uploaded too: it covers its offsets.
    v.local[1].size_bytes = 0;
    v.remote = vec![span(0, 10, 1_000)];
    assert_eq!(uploads(&s.on_event(t0, tick(v.clone()))), vec![10]);
    s.on_event(
        t0,
        Event::UploadDone {
            key: key(),
            base_offset: 10,
        },
    );
    // [20, 30) ends above the first dirty offset.
    v.remote.push(span(10, 20, 1_000));
    assert!(uploads(&s.on_event(t0, tick(v))).is_empty());
}

fn compactions(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::CompactRemote { .. }))
        .count()
}

fn compacted(dirty_from: i64, horizon: Option<i64>) -> PartitionView {
    let mut v = view(
        vec![seg(40, 50)],
        vec![
            span(0, 10, 0),
            span(10, 20, 0),
            span(20, 30, 0),
            span(30, 40, 0),
        ],
    );
    v.compaction = Some(CompactionPolicy {
        min_dirty_ratio: 0.5,
        backoff: Duration::from_secs(15),
        dirty_from,
        tombstone_horizon_ms: horizon,
    });
    v
}

#[test]
fn remote_passes_start_by_dirty_ratio_one_at_a_time_and_back_off() {
    let mut s = Scheduler::new();
    let t0 = Instant::now();
    // 1 of 4 remote segments dirty: below 0.5.
    assert_eq!(compactions(&s.on_event(t0, tick(compacted(30, None)))), 0);
    // Not compacted: never, whatever is dirty.
    let mut plain = compacted(0, None);
    plain.compaction = None;
    assert_eq!(compactions(&s.on_event(t0, tick(plain))), 0);
    // Half dirty (a dirty start inside a segment counts that segment): a pass.
    assert_eq!(compactions(&s.on_event(t0, tick(compacted(25, None)))), 1);
    assert!(s.compaction_state(&key()).is_some_and(|c| c.in_flight));
    // In flight: no second one.
    assert_eq!(compactions(&s.on_event(t0, tick(compacted(0, None)))), 0);
    s.on_event(t0, Event::CompactionDone { key: key() });
    // Done, but within log.cleaner.backoff.ms of its start.
    let t1 = t0 + Duration::from_secs(14);
    assert_eq!(compactions(&s.on_event(t1, tick(compacted(0, None)))), 0);
    let t2 = t0 + Duration::from_secs(15);
    assert_eq!(compactions(&s.on_event(t2, tick(compacted(0, None)))), 1);
    // A failure backs off from when it failed.
    let t3 = t2 + Duration::from_secs(40);
    s.on_event(
        t3,
        Event::CompactionFailed {
            key: key(),
            error: "503".into(),
        },
    );
    let st = s.compaction_state(&key()).cloned().unwrap_or_default();
    assert_eq!(
        (st.in_flight, st.failures, st.last_error.as_deref()),
        (false, 1, Some("503"))
    );
    assert_eq!(
        compactions(&s.on_event(t3 + Duration::from_secs(14), tick(compacted(0, None)))),
        0
    );
    assert_eq!(
        compactions(&s.on_event(t3 + Duration::from_secs(15), tick(compacted(0, None)))),
        1
    );
    s.on_event(t3, Event::CompactionDone { key: key() });
    assert_eq!(s.compaction_state(&key()).map(|c| c.failures), Some(0));
}

#[test]
fn a_passed_tombstone_horizon_starts_a_pass_with_nothing_dirty() {
    let mut s = Scheduler::new();
    let t0 = Instant::now();
    // Nothing dirty; the horizon is at 20_000 and the tick's clock at 10_000.
    assert_eq!(
        compactions(&s.on_event(t0, tick(compacted(40, Some(20_000))))),
        0
    );
    assert_eq!(compactions(&s.on_event(t0, tick(compacted(40, None)))), 0);
    assert_eq!(
        compactions(&s.on_event(t0, tick(compacted(40, Some(10_000))))),
        1
    );
    // An empty remote tier has nothing to compact.
    let c = CompactionPolicy {
        min_dirty_ratio: 0.0,
        backoff: Duration::ZERO,
        dirty_from: 0,
        tombstone_horizon_ms: Some(0),
    };
    assert!(!compaction_due(&c, &[], 1));
}
