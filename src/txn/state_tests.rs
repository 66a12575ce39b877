//! Scripted tests of the transaction state machine: requests at chosen instants, the
//! decisions asserted. No sockets, no clock.

use super::state::*;
use super::TxnError;

const LIMITS: TxnLimits = TxnLimits {
    max_timeout_ms: 900_000,
    id_expiration_ms: 604_800_000,
};

/// One transactional id, with the decisions applied as the driver applies them.
struct Script {
    meta: Option<TxnMeta>,
    next_pid: i64,
}

impl Script {
    fn new() -> Script {
        Script {
            meta: None,
            next_pid: 1000,
        }
    }

    fn send(&mut self, now: i64, mut req: Request) -> Reply {
        if needs_fresh_pid(self.meta.as_ref(), &req) {
            let pid = Some(self.next_pid);
            self.next_pid += 1;
            match &mut req {
                Request::InitPid { fresh_pid, .. } | Request::EndTxn { fresh_pid, .. } => {
                    *fresh_pid = pid
                }
                _ => {}
            }
        }
        let d = decide("tx", self.meta.as_ref(), req, now, &LIMITS);
        if let Some(next) = d.next {
            self.meta = Some(next);
        }
        d.reply
    }

    fn init(&mut self, now: i64) -> Reply {
        self.send(
            now,
            Request::InitPid {
                timeout_ms: 60_000,
                expected: None,
                fresh_pid: None,
            },
        )
    }

    fn add(&mut self, now: i64, (pid, epoch): (i64, i16), parts: &[(&str, i32)]) -> Reply {
        self.send(
            now,
            Request::AddPartitions {
                producer_id: pid,
                epoch,
                partitions: parts.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
                verify_only: false,
            },
        )
    }

    fn end(&mut self, now: i64, (pid, epoch): (i64, i16), commit: bool, bump: bool) -> Reply {
        self.send(
            now,
            Request::EndTxn {
                producer_id: pid,
                epoch,
                commit,
                bump,
                fresh_pid: None,
            },
        )
    }

    fn markers_written(&mut self, now: i64) {
        let m = self.meta.clone().unwrap();
        self.send(
            now,
            Request::MarkersWritten {
                producer_id: m.producer_id,
                epoch: m.producer_epoch,
            },
        )
        .unwrap();
    }

    fn state(&self) -> TxnState {
        self.meta.as_ref().unwrap().state
    }
}

#[test]
fn commit_goes_through_prepare_to_complete() {
    let mut s = Script::new();
    let p = s.init(0).unwrap();
    assert_eq!(p, (1000, 0));
    assert_eq!(s.state(), TxnState::Empty);
    assert_eq!(s.add(10, p, &[("out", 0), ("out", 1)]), Ok(p));
    assert_eq!(s.state(), TxnState::Ongoing);
    assert_eq!(s.meta.as_ref().unwrap().start_ms, 10);
    // Adding a partition already in the transaction writes nothing.
    let d = decide(
        "tx",
        s.meta.as_ref(),
        Request::AddPartitions {
            producer_id: p.0,
            epoch: p.1,
            partitions: vec![("out".into(), 1)],
            verify_only: false,
        },
        20,
        &LIMITS,
    );
    assert_eq!(d.next, None);
    assert_eq!(s.end(30, p, true, false), Ok(p));
    assert_eq!(s.state(), TxnState::PrepareCommit);
    assert_eq!(pending_markers(s.meta.as_ref().unwrap()), Some(true));
    // A retry while the markers are written, then after.
    assert!(matches!(
        s.end(31, p, true, false),
        Err(TxnError::ConcurrentTransactions { .. })
    ));
    s.markers_written(40);
    assert_eq!(s.state(), TxnState::CompleteCommit);
    assert!(s.meta.as_ref().unwrap().partitions.is_empty());
    assert_eq!(s.end(41, p, true, false), Ok(p));
    // The opposite outcome is refused.
    assert!(matches!(
        s.end(42, p, false, false),
        Err(TxnError::InvalidTxnState { .. })
    ));
    // The next transaction starts from CompleteCommit.
    assert_eq!(s.add(50, p, &[("out", 2)]), Ok(p));
    assert_eq!(s.meta.as_ref().unwrap().partitions.len(), 1);
}

#[test]
fn abort_and_bad_end_requests() {
    let mut s = Script::new();
    let p = s.init(0).unwrap();
    // Nothing to end yet.
    assert!(matches!(
        s.end(1, p, true, false),
        Err(TxnError::InvalidTxnState { .. })
    ));
    s.add(2, p, &[("out", 0)]).unwrap();
    assert!(matches!(
        s.end(3, (p.0 + 7, p.1), true, false),
        Err(TxnError::InvalidProducerIdMapping { .. })
    ));
    assert!(matches!(
        s.end(3, (p.0, p.1 + 1), true, false),
        Err(TxnError::ProducerFenced { .. })
    ));
    assert_eq!(s.end(4, p, false, false), Ok(p));
    assert_eq!(s.state(), TxnState::PrepareAbort);
    // Commit while an abort is in flight: INVALID_TXN_STATE; adding: CONCURRENT.
    assert!(matches!(
        s.end(5, p, true, false),
        Err(TxnError::InvalidTxnState { .. })
    ));
    assert!(matches!(
        s.add(5, p, &[("out", 1)]),
        Err(TxnError::ConcurrentTransactions { .. })
    ));
    s.markers_written(6);
    assert_eq!(s.state(), TxnState::CompleteAbort);
}

#[test]
fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
    let mut s = Script::new();
    let first = s.init(0).unwrap();
    s.add(1, first, &[("out", 0)]).unwrap();
    // The new instance: the open transaction is aborted under a bumped epoch.
    assert!(matches!(
        s.init(2),
        Err(TxnError::ConcurrentTransactions { .. })
    ));
    assert_eq!(s.state(), TxnState::PrepareAbort);
    let m = s.meta.clone().unwrap();
    assert_eq!(m.producer_epoch, first.1 + 1);
    assert_eq!(pending_markers(&m), Some(false));
    // Still aborting: the retry waits.
    assert!(matches!(
        s.init(3),
        Err(TxnError::ConcurrentTransactions { .. })
    ));
    s.markers_written(4);
    let second = s.init(5).unwrap();
    assert_eq!(second, (first.0, first.1 + 2));
    // The zombie is fenced everywhere.
    assert!(matches!(
        s.add(6, first, &[("out", 0)]),
        Err(TxnError::ProducerFenced { .. })
    ));
    assert!(matches!(
        s.end(6, first, true, false),
        Err(TxnError::ProducerFenced { .. })
    ));
    assert_eq!(s.add(7, second, &[("out", 0)]), Ok(second));
}

#[test]
fn init_with_a_stale_expected_epoch_is_fenced_and_a_retry_is_recognised() {
    let mut s = Script::new();
    let p = s.init(0).unwrap();
    let bumped = s
        .send(
            1,
            Request::InitPid {
                timeout_ms: 60_000,
                expected: Some(p),
                fresh_pid: None,
            },
        )
        .unwrap();
    assert_eq!(bumped, (p.0, p.1 + 1));
    // The same request again (the answer was lost): the same answer.
    let again = s.send(
        2,
        Request::InitPid {
            timeout_ms: 60_000,
            expected: Some(p),
            fresh_pid: None,
        },
    );
    assert_eq!(again, Ok(bumped));
    let stale = s.send(
        3,
        Request::InitPid {
            timeout_ms: 60_000,
            expected: Some((p.0, 42)),
            fresh_pid: None,
        },
    );
    assert!(matches!(stale, Err(TxnError::ProducerFenced { .. })));
}

#[test]
fn timeouts_are_bounded_and_open_transactions_abort_when_they_expire() {
    let mut s = Script::new();
    let too_long = s.send(
        0,
        Request::InitPid {
            timeout_ms: LIMITS.max_timeout_ms + 1,
            expected: None,
            fresh_pid: None,
        },
    );
    assert!(matches!(too_long, Err(TxnError::InvalidTimeout { .. })));
    let p = s.init(0).unwrap();
    s.add(100, p, &[("out", 0)]).unwrap();
    let m = s.meta.clone().unwrap();
    assert_eq!(abort_if_timed_out(&m, 100 + 59_999), None);
    let next = abort_if_timed_out(&m, 100 + 60_000).unwrap();
    assert_eq!(next.state, TxnState::PrepareAbort);
    assert_eq!(
        next.producer_epoch,
        p.1 + 1,
        "the timed-out producer is fenced"
    );
    s.meta = Some(next);
    s.markers_written(60_200);
    assert_eq!(s.state(), TxnState::CompleteAbort);
    // Its producer learns it was fenced.
    assert!(matches!(
        s.end(60_300, p, true, false),
        Err(TxnError::ProducerFenced { .. })
    ));
    // Idle ids expire; open ones do not.
    let m = s.meta.clone().unwrap();
    assert!(!expired(&m, 60_200 + LIMITS.id_expiration_ms - 1, &LIMITS));
    assert!(expired(&m, 60_200 + LIMITS.id_expiration_ms, &LIMITS));
    let mut open = m.clone();
    open.state = TxnState::Ongoing;
    assert!(!expired(&open, i64::MAX / 2, &LIMITS));
}

#[test]
fn kip_890_part_2_bumps_the_epoch_at_every_end() {
    let mut s = Script::new();
    let p = s.init(0).unwrap();
    s.add(1, p, &[("out", 0)]).unwrap();
    let after = s.end(2, p, true, true).unwrap();
    assert_eq!(after, (p.0, p.1 + 1));
    // A late write of the old epoch cannot join the next transaction.
    s.markers_written(3);
    assert!(matches!(
        s.add(4, p, &[("out", 0)]),
        Err(TxnError::ProducerFenced { .. })
    ));
    // A retried EndTxn of the old epoch gets the new epoch.
    assert_eq!(s.end(5, p, true, true), Ok(after));
    assert!(matches!(
        s.end(5, p, false, true),
        Err(TxnError::ProducerFenced { .. })
    ));
    s.add(6, after, &[("out", 1)]).unwrap();
    assert_eq!(s.end(7, after, false, true), Ok((p.0, p.1 + 2)));
}

#[test]
fn epoch_overflow_moves_to_a_fresh_producer_id() {
    let mut s = Script::new();
    s.init(0).unwrap();
    s.meta.as_mut().unwrap().producer_epoch = i16::MAX - 1;
    let p = s.init(1).unwrap();
    assert_eq!(p, (1001, 0));
    assert_eq!(s.meta.as_ref().unwrap().prev_producer_id, 1000);
}

#[test]
fn kip_890_part_2_epoch_exhaustion_markers_close_the_old_producer_id() {
    let mut s = Script::new();
    s.init(0).unwrap();
    s.meta.as_mut().unwrap().producer_epoch = i16::MAX - 1;
    let p = (s.meta.as_ref().unwrap().producer_id, i16::MAX - 1);
    s.add(1, p, &[("out", 0)]).unwrap();
    let after = s.end(2, p, true, true).unwrap();
    assert_eq!(after, (1001, 0), "a fresh producer id at epoch 0");
    let m = s.meta.clone().unwrap();
    assert_eq!(m.state, TxnState::PrepareCommit);
    assert_eq!(
        marker_producer(&m),
        (p.0, i16::MAX),
        "markers go to the old id"
    );
    // A retry of that EndTxn (old id and epoch) gets the new producer.
    s.markers_written(3);
    assert_eq!(s.end(4, p, true, true), Ok(after));
    // The next transaction of the new id: its markers carry the new id.
    s.add(5, after, &[("out", 0)]).unwrap();
    let again = s.end(6, after, false, true).unwrap();
    assert_eq!(again, (1001, 1));
    assert_eq!(marker_producer(s.meta.as_ref().unwrap()), (1001, 1));
}

#[test]
fn markers_after_an_init_producer_id_rotation_carry_the_new_id() {
    let mut s = Script::new();
    s.init(0).unwrap();
    s.meta.as_mut().unwrap().producer_epoch = i16::MAX - 1;
    let p = s.init(1).unwrap();
    assert_eq!(p, (1001, 0));
    s.add(2, p, &[("out", 0)]).unwrap();
    // Transaction version 1 (no bump): data and markers of (1001, 0).
    assert_eq!(s.end(3, p, true, false), Ok(p));
    assert_eq!(marker_producer(s.meta.as_ref().unwrap()), p);
}

#[test]
fn verification_answers_without_changing_anything() {
    let mut s = Script::new();
    let p = s.init(0).unwrap();
    let verify = |s: &Script, part: (&str, i32)| {
        decide(
            "tx",
            s.meta.as_ref(),
            Request::AddPartitions {
                producer_id: p.0,
                epoch: p.1,
                partitions: vec![(part.0.to_string(), part.1)],
                verify_only: true,
            },
            5,
            &LIMITS,
        )
    };
    assert!(matches!(
        verify(&s, ("out", 0)).reply,
        Err(TxnError::InvalidTxnState { .. })
    ));
    s.add(1, p, &[("out", 0)]).unwrap();
    let d = verify(&s, ("out", 0));
    assert_eq!((d.next, d.reply), (None, Ok(p)));
    assert!(verify(&s, ("out", 1)).reply.is_err());
}

#[test]
fn unknown_ids_are_refused() {
    let mut s = Script::new();
    assert!(matches!(
        s.add(0, (1, 0), &[("out", 0)]),
        Err(TxnError::InvalidProducerIdMapping { .. })
    ));
    assert!(matches!(
        s.end(0, (1, 0), true, false),
        Err(TxnError::InvalidProducerIdMapping { .. })
    ));
}
