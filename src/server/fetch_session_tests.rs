//! The session cache driven by scripted requests, as a client would send them.

use std::sync::Arc;

use super::*;

fn key(topic: &str, p: i32) -> Key {
    (TopicRef::Name(Arc::from(topic)), p)
}

fn wanted(offset: i64) -> Wanted {
    Wanted {
        fetch_offset: offset,
        max_bytes: 1 << 20,
        current_leader_epoch: -1,
    }
}

fn told(hw: i64) -> Told {
    Told {
        high_watermark: hw,
        last_stable_offset: hw,
        log_start_offset: 0,
    }
}

fn three() -> Vec<(Key, Wanted)> {
    (0..3).map(|p| (key("t", p), wanted(0))).collect()
}

#[test]
fn a_session_answers_only_what_changed() {
    let mut s = FetchSessions::new(10, 7);
    let full = s.begin(0, 0, three(), vec![], 0).unwrap();
    assert_eq!((full.session_id, full.incremental), (7, false));
    assert_eq!(s.finish(&full, &[(told(5), true); 3]), vec![true; 3]);

    // Nothing new: an incremental fetch of all three answers none.
    let inc = s.begin(7, 1, vec![], vec![], 10).unwrap();
    assert!(inc.incremental);
    assert_eq!(inc.partitions.len(), 3);
    assert_eq!(s.finish(&inc, &[(told(5), false); 3]), vec![false; 3]);

    // Partition 1 got records; partition 2's high watermark moved without records.
    let inc = s
        .begin(7, 2, vec![(key("t", 1), wanted(5))], vec![], 20)
        .unwrap();
    assert_eq!(inc.partitions[1].1.fetch_offset, 5, "the update is kept");
    let answers = [(told(5), false), (told(9), true), (told(6), false)];
    assert_eq!(s.finish(&inc, &answers), vec![false, true, true]);
}

#[test]
fn partitions_that_returned_data_move_to_the_back() {
    let mut s = FetchSessions::new(10, 1);
    let full = s.begin(0, 0, three(), vec![], 0).unwrap();
    s.finish(
        &full,
        &[(told(1), true), (told(0), false), (told(0), false)],
    );
    let order = |b: &Begun| b.partitions.iter().map(|(k, _)| k.1).collect::<Vec<_>>();
    let inc = s.begin(1, 1, vec![], vec![], 0).unwrap();
    assert_eq!(order(&inc), vec![1, 2, 0]);
    s.finish(&inc, &[(told(0), true), (told(0), false), (told(1), false)]);
    assert_eq!(
        order(&s.begin(1, 2, vec![], vec![], 0).unwrap()),
        vec![2, 0, 1]
    );
}

#[test]
fn wrong_epochs_and_unknown_ids_get_kafka_errors() {
    let mut s = FetchSessions::new(10, 1);
    let full = s.begin(0, 0, three(), vec![], 0).unwrap();
    s.finish(&full, &[(told(0), false); 3]);
    assert_eq!(
        s.begin(1, 2, vec![], vec![], 0).unwrap_err(),
        ResponseError::InvalidFetchSessionEpoch
    );
    assert_eq!(
        s.begin(99, 1, vec![], vec![], 0).unwrap_err(),
        ResponseError::FetchSessionIdNotFound
    );
    // The right epoch still works after a wrong one.
    assert!(s.begin(1, 1, vec![], vec![], 0).is_ok());
}

#[test]
fn forgotten_partitions_leave_and_new_ones_join() {
    let mut s = FetchSessions::new(10, 1);
    let full = s.begin(0, 0, three(), vec![], 0).unwrap();
    s.finish(&full, &[(told(0), false); 3]);
    let inc = s
        .begin(
            1,
            1,
            vec![(key("u", 0), wanted(3))],
            vec![key("t", 0), key("t", 2)],
            0,
        )
        .unwrap();
    let keys: Vec<Key> = inc.partitions.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, vec![key("t", 1), key("u", 0)]);
    // A partition new to the session is always answered the first time.
    assert_eq!(
        s.finish(&inc, &[(told(0), false), (told(0), false)]),
        vec![false, true]
    );
}

#[test]
fn closing_and_reopening() {
    let mut s = FetchSessions::new(10, 1);
    let full = s.begin(0, 0, three(), vec![], 0).unwrap();
    s.finish(&full, &[(told(0), false); 3]);
    // (id, -1) closes it; the fetch itself is a full sessionless one.
    let closed = s.begin(1, -1, three(), vec![], 0).unwrap();
    assert_eq!((closed.session_id, closed.incremental), (0, false));
    assert!(s.is_empty());
    // (id, 0) closes and opens a new one.
    let a = s.begin(0, 0, three(), vec![], 0).unwrap();
    let b = s.begin(a.session_id, 0, three(), vec![], 0).unwrap();
    assert_ne!(b.session_id, a.session_id);
    assert_eq!(s.len(), 1);
    // (0, -1) never opens one.
    assert_eq!(s.begin(0, -1, three(), vec![], 0).unwrap().session_id, 0);
    assert_eq!(s.len(), 1);
}

#[test]
fn a_full_cache_evicts_only_idle_sessions() {
    let mut s = FetchSessions::new(2, 1);
    let a = s.begin(0, 0, three(), vec![], 0).unwrap();
    let b = s.begin(0, 0, three(), vec![], 1_000).unwrap();
    // Both active: a third is declined and fetches sessionless.
    assert_eq!(s.begin(0, 0, three(), vec![], 2_000).unwrap().session_id, 0);
    // Once `a` has been idle for EVICTION_MS, a newcomer takes its slot.
    let c = s.begin(0, 0, three(), vec![], EVICTION_MS).unwrap();
    assert_ne!(c.session_id, 0);
    assert_eq!(
        s.begin(a.session_id, 1, vec![], vec![], EVICTION_MS)
            .unwrap_err(),
        ResponseError::FetchSessionIdNotFound
    );
    assert!(s
        .begin(b.session_id, 1, vec![], vec![], EVICTION_MS)
        .is_ok());
    // No slots: sessions are off.
    let mut off = FetchSessions::new(0, 1);
    assert_eq!(off.begin(0, 0, three(), vec![], 0).unwrap().session_id, 0);
}

#[test]
fn epochs_wrap_past_the_largest() {
    assert_eq!(next_epoch(i32::MAX), 1);
    assert_eq!(next_epoch(1), 2);
}
