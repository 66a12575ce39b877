//! Unit tests of the idempotent-producer rules in `producer_state.rs`: kept
//! apart so the state machine itself stays short to read.

use super::*;

fn batch(pid: i64, epoch: i16, seq: i32, count: i64, offset: i64) -> ProducerBatch {
    ProducerBatch {
        producer_id: pid,
        epoch,
        base_sequence: seq,
        attributes: 0,
        first_offset: offset,
        last_offset: offset + count - 1,
        timestamp: 7,
        control: None,
    }
}

/// Prepares and commits; returns the duplicate's first offset, if any.
fn append(s: &mut ProducerStateManager, b: ProducerBatch) -> Result<Option<i64>, ProducerError> {
    match s.prepare([b])? {
        Prepared::Duplicate(d) => Ok(Some(d.first_offset)),
        Prepared::Append(u) => {
            s.commit(u);
            Ok(None)
        }
    }
}

#[test]
fn in_order_batches_are_appended_and_retries_get_original_offsets() {
    let mut s = ProducerStateManager::default();
    assert_eq!(append(&mut s, batch(1, 0, 0, 3, 100)), Ok(None));
    assert_eq!(append(&mut s, batch(1, 0, 3, 2, 103)), Ok(None));
    // Retried with whatever offsets the log would assign now.
    assert_eq!(append(&mut s, batch(1, 0, 0, 3, 500)), Ok(Some(100)));
    assert_eq!(append(&mut s, batch(1, 0, 3, 2, 500)), Ok(Some(103)));
    assert_eq!(s.get(1).unwrap().batches.len(), 2);
}

#[test]
fn only_the_last_five_batches_are_deduplicated() {
    let mut s = ProducerStateManager::default();
    for i in 0..6 {
        append(&mut s, batch(1, 0, i, 1, i64::from(i))).unwrap();
    }
    assert_eq!(append(&mut s, batch(1, 0, 1, 1, 9)), Ok(Some(1)));
    assert!(matches!(
        append(&mut s, batch(1, 0, 0, 1, 9)),
        Err(ProducerError::OutOfOrderSequence { expected: 6, .. })
    ));
}

#[test]
fn gaps_are_out_of_order() {
    let mut s = ProducerStateManager::default();
    append(&mut s, batch(1, 0, 0, 2, 0)).unwrap();
    assert_eq!(
        append(&mut s, batch(1, 0, 5, 1, 2)),
        Err(ProducerError::OutOfOrderSequence {
            producer_id: 1,
            epoch: 0,
            first_seq: 5,
            expected: 2
        })
    );
}

#[test]
fn old_epochs_are_fenced_and_new_epochs_start_at_zero() {
    let mut s = ProducerStateManager::default();
    append(&mut s, batch(1, 3, 0, 1, 0)).unwrap();
    assert!(matches!(
        append(&mut s, batch(1, 2, 1, 1, 1)),
        Err(ProducerError::InvalidProducerEpoch {
            current_epoch: 3,
            ..
        })
    ));
    assert!(matches!(
        append(&mut s, batch(1, 4, 1, 1, 1)),
        Err(ProducerError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(append(&mut s, batch(1, 4, 0, 1, 1)), Ok(None));
    assert_eq!(s.get(1).unwrap().epoch, 4);
    assert_eq!(s.get(1).unwrap().batches.len(), 1);
}

#[test]
fn unknown_producers_are_accepted_at_any_sequence() {
    let mut s = ProducerStateManager::default();
    assert_eq!(append(&mut s, batch(9, 0, 42, 1, 0)), Ok(None));
    assert_eq!(append(&mut s, batch(9, 0, 43, 1, 1)), Ok(None));
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    let mut s = ProducerStateManager::default();
    append(&mut s, batch(1, 0, i32::MAX - 1, 2, 0)).unwrap();
    assert_eq!(s.get(1).unwrap().batches[0].last_seq, i32::MAX);
    assert_eq!(append(&mut s, batch(1, 0, 0, 1, 2)), Ok(None));
}

#[test]
fn non_idempotent_batches_are_not_tracked_and_bad_ones_refused() {
    let mut s = ProducerStateManager::default();
    assert_eq!(append(&mut s, batch(-1, -1, -1, 1, 0)), Ok(None));
    assert!(s.entries().is_empty());
    assert!(matches!(
        append(&mut s, batch(1, 0, -1, 1, 0)),
        Err(ProducerError::InvalidSequence { .. })
    ));
    let mut control = batch(1, 0, 0, 1, 0);
    control.attributes = CONTROL_BIT | TRANSACTIONAL_BIT;
    assert!(matches!(
        append(&mut s, control),
        Err(ProducerError::ControlBatchFromClient { .. })
    ));
    let mut txn = batch(-1, -1, -1, 1, 0);
    txn.attributes = TRANSACTIONAL_BIT;
    assert!(matches!(
        append(&mut s, txn),
        Err(ProducerError::InvalidSequence { .. })
    ));
}

#[test]
fn several_batches_of_one_request_are_checked_against_each_other() {
    let s = ProducerStateManager::default();
    let ok = s.prepare([batch(1, 0, 0, 2, 0), batch(1, 0, 2, 1, 2)]);
    assert!(matches!(ok, Ok(Prepared::Append(ref u)) if u[0].1.batches.len() == 2));
    let gap = s.prepare([batch(1, 0, 0, 2, 0), batch(1, 0, 3, 1, 2)]);
    assert!(matches!(gap, Err(ProducerError::OutOfOrderSequence { .. })));
}

#[test]
fn producers_whose_batches_are_all_below_the_log_start_are_forgotten() {
    let mut s = ProducerStateManager::default();
    append(&mut s, batch(1, 0, 0, 2, 0)).unwrap();
    append(&mut s, batch(2, 0, 0, 2, 2)).unwrap();
    s.remove_below(2);
    assert!(s.get(1).is_none() && s.get(2).is_some());
    // A forgotten producer continues at any sequence (KIP-360).
    assert_eq!(append(&mut s, batch(1, 0, 2, 1, 4)), Ok(None));
}

#[test]
fn idle_producers_expire_after_producer_id_expiration_ms_unless_in_a_transaction() {
    const EXPIRE: i64 = 1_000;
    let at = |b: ProducerBatch, timestamp: i64| ProducerBatch { timestamp, ..b };
    let mut s = ProducerStateManager::default();
    // t=0 producer 1 writes, t=500 producer 2, t=600 producer 3 opens a transaction.
    append(&mut s, at(batch(1, 0, 0, 2, 0), 0)).unwrap();
    append(&mut s, at(batch(2, 0, 0, 1, 2), 500)).unwrap();
    let mut txn = at(batch(3, 0, 0, 1, 3), 600);
    txn.attributes = TRANSACTIONAL_BIT;
    append(&mut s, txn).unwrap();
    // t=999: nobody has been idle 1000 ms; a retry is still a duplicate.
    assert_eq!(s.remove_expired(999, EXPIRE), 0);
    assert_eq!(append(&mut s, at(batch(1, 0, 0, 2, 9), 999)), Ok(Some(0)));
    // t=1000: producer 1 is gone; t=1500: producer 2 too.
    assert_eq!(s.remove_expired(1_000, EXPIRE), 1);
    assert!(s.get(1).is_none() && s.get(2).is_some());
    assert_eq!(s.remove_expired(1_500, EXPIRE), 1);
    // Producer 3's transaction is ongoing: kept however long it is idle.
    assert_eq!(s.remove_expired(100_000, EXPIRE), 0);
    assert!(s.get(3).is_some());
    // Producer 1 is new to the partition again: its old retry is no longer
    // recognised, and any sequence is accepted (Kafka since KIP-360).
    assert_eq!(append(&mut s, at(batch(1, 0, 0, 2, 10), 2_000)), Ok(None));
    assert_eq!(
        append(&mut s, at(batch(1, 0, 7, 1, 12), 2_000)),
        Err(ProducerError::OutOfOrderSequence {
            producer_id: 1,
            epoch: 0,
            first_seq: 7,
            expected: 2
        })
    );
    // A marker at t=200_000 ends producer 3's transaction: idle from then on.
    let commit = ControlRecord {
        kind: ControlType::Commit,
        coordinator_epoch: 0,
    };
    let m = s.prepare_marker(3, 0, commit, (13, 200_000)).unwrap();
    s.commit(vec![m.update]);
    assert_eq!(
        s.remove_expired(200_999, EXPIRE),
        1,
        "producer 1 (t=2000) goes"
    );
    assert!(s.get(3).is_some());
    assert_eq!(s.remove_expired(201_000, EXPIRE), 1);
    assert!(s.entries().is_empty());
}

#[test]
fn a_producer_of_unknown_age_gets_a_full_period() {
    let mut entries = BTreeMap::new();
    entries.insert(1, ProducerEntry::new(0)); // as read from an older snapshot
    let mut s = ProducerStateManager::from_entries(entries);
    assert_eq!(s.remove_expired(5_000, 1_000), 0);
    assert_eq!(s.remove_expired(5_999, 1_000), 0);
    assert_eq!(s.remove_expired(6_000, 1_000), 1);
}

#[test]
fn replay_rebuilds_what_prepare_and_commit_built() {
    let batches = [
        batch(1, 0, 0, 2, 0),
        batch(2, 0, 0, 1, 2),
        batch(1, 0, 2, 1, 3),
        batch(1, 1, 0, 1, 4),
    ];
    let mut live = ProducerStateManager::default();
    let mut replayed = ProducerStateManager::default();
    for b in batches {
        append(&mut live, b).unwrap();
        replayed.replay(&b);
    }
    assert_eq!(live, replayed);
}

proptest::proptest! {
    /// A producer's retries of any of its last five batches, interleaved with
    /// new batches, never append twice and always get the original offsets.
    #[test]
    fn retries_never_append_twice(ops in proptest::collection::vec((0u8..6, 1i64..4), 1..60)) {
        let mut s = ProducerStateManager::default();
        let mut sent: Vec<(i32, i64, i64)> = Vec::new(); // (seq, count, offset)
        let (mut next_seq, mut next_offset) = (0i32, 0i64);
        for (back, count) in ops {
            let back = usize::from(back);
            if back == 0 || back > sent.len() {
                let b = batch(1, 0, next_seq, count, next_offset);
                proptest::prop_assert_eq!(append(&mut s, b), Ok(None));
                sent.push((next_seq, count, next_offset));
                next_seq = increment_sequence(next_seq, count);
                next_offset += count;
            } else {
                let (seq, count, offset) = sent[sent.len() - back];
                let retry = batch(1, 0, seq, count, next_offset);
                proptest::prop_assert_eq!(append(&mut s, retry), Ok(Some(offset)));
            }
        }
    }
}
