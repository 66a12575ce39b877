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
        remote,
        policy: policy(),
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
