//! One transactional id's state machine, as Kafka's `TransactionMetadata` and the
//! decisions of its `TransactionCoordinator`: pure, the clock passed in.
//!
//! ```text
//!  Empty --AddPartitions--> Ongoing --EndTxn(commit)--> PrepareCommit --markers--> CompleteCommit
//!    ^                         |  \--EndTxn(abort), timeout, InitProducerId--> PrepareAbort --markers--> CompleteAbort
//!    +--InitProducerId (epoch + 1)-- CompleteCommit / CompleteAbort / Empty
//! ```
//!
//! A decision ([`Decision`]) is the metadata to write to `__transaction_state` and then
//! apply, the answer for the client, and whether markers must now be written. The driver
//! writes, applies, answers; nothing here touches a socket or the disk.
//!
//! Dependencies: `super::TxnError` only.

use std::collections::BTreeSet;

use super::TxnError;

/// Kafka's `TransactionState`, with its `__transaction_state` status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// No transaction in flight: the id may start one, or expire.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// A topic-partition of a transaction.
pub type TxnPartition = (String, i32);

/// What the coordinator knows of one transactional id (Kafka's `TransactionLogValue`).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnMeta {
    pub id: String,
    pub producer_id: i64,
    /// The producer id before an epoch overflow gave a new one (-1: none); a retried
    /// EndTxn of KIP-890 part 2 may still name it.
    pub prev_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch the producer held before the last bump (-1: none), so that a retried
    /// InitProducerId or EndTxn is recognised.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the current transaction started (-1: none).
    pub start_ms: i64,
    pub update_ms: i64,
}

/// A client request, or a timer, for one transactional id.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// InitProducerId. `expected` is the (id, epoch) the producer holds (KIP-360), or
    /// None for a new producer. `fresh_pid` is an unused producer id, which the driver
    /// allocates when [`needs_fresh_pid`] says one may be needed.
    InitPid {
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_pid: Option<i64>,
    },
    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's `__consumer_offsets`
    /// partition). `verify_only`: KIP-890 part 1, the partition leader asks whether the
    /// partitions are already in the transaction; nothing changes.
    AddPartitions {
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TxnPartition>,
        verify_only: bool,
    },
    /// EndTxn. `bump`: the client speaks transaction version 2 (KIP-890 part 2, EndTxn
    /// v5+): the epoch is bumped at the end of every transaction, and answered.
    EndTxn {
        producer_id: i64,
        epoch: i16,
        commit: bool,
        bump: bool,
        fresh_pid: Option<i64>,
    },
    /// Every marker of the Prepare state of (producer id, epoch) is written.
    MarkersWritten { producer_id: i64, epoch: i16 },
}

/// What the client gets: the producer id and epoch it must use from now on.
pub type Reply = Result<(i64, i16), TxnError>;

/// The outcome of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Metadata to write to `__transaction_state` and then apply (None: nothing changes).
    pub next: Option<TxnMeta>,
    /// The answer, to give once `next` is written and replicated.
    pub reply: Reply,
}

impl Decision {
    fn reply(reply: Reply) -> Decision {
        Decision { next: None, reply }
    }
    fn err(e: TxnError) -> Decision {
        Decision::reply(Err(e))
    }
    fn write(next: TxnMeta, reply: Reply) -> Decision {
        Decision {
            next: Some(next),
            reply,
        }
    }
}

/// The limits the coordinator enforces.
#[derive(Debug, Clone)]
pub struct TxnLimits {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
}

/// Whether `req` on `meta` may need a producer id that was never used: a new id,
/// or an epoch that would overflow.
pub fn needs_fresh_pid(meta: Option<&TxnMeta>, req: &Request) -> bool {
    let near_end = |m: &TxnMeta| m.producer_epoch >= i16::MAX - 2;
    match (meta, req) {
        (None, Request::InitPid { .. }) => true,
        (Some(m), Request::InitPid { .. }) => near_end(m),
        (Some(m), Request::EndTxn { bump: true, .. }) => near_end(m),
        _ => false,
    }
}

/// Decides `req` for the id whose metadata is `meta` (None: unknown id).
pub fn decide(
    id: &str,
    meta: Option<&TxnMeta>,
    req: Request,
    now: i64,
    limits: &TxnLimits,
) -> Decision {
    match req {
        Request::InitPid {
            timeout_ms,
            expected,
            fresh_pid,
        } => init_pid(id, meta, timeout_ms, expected, fresh_pid, now, limits),
        Request::AddPartitions {
            producer_id,
            epoch,
            partitions,
            verify_only,
        } => match check_producer(id, meta, producer_id, epoch) {
            Err(e) => Decision::err(e),
            Ok(m) => add_partitions(m, partitions, verify_only, now),
        },
        Request::EndTxn {
            producer_id,
            epoch,
            commit,
            bump,
            fresh_pid,
        } => match meta {
            None => Decision::err(TxnError::InvalidProducerIdMapping { id: id.to_string() }),
            Some(m) => end_txn(m, producer_id, epoch, commit, bump, fresh_pid, now),
        },
        Request::MarkersWritten { producer_id, epoch } => match meta {
            Some(m) if m.producer_id == producer_id && m.producer_epoch == epoch => {
                complete(m, now)
            }
            // A stale completion (the transaction moved on): nothing to do.
            _ => Decision::reply(Ok((producer_id, epoch))),
        },
    }
}

fn init_pid(
    id: &str,
    meta: Option<&TxnMeta>,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    fresh_pid: Option<i64>,
    now: i64,
    limits: &TxnLimits,
) -> Decision {
    if timeout_ms <= 0 || timeout_ms > limits.max_timeout_ms {
        return Decision::err(TxnError::InvalidTimeout {
            requested: timeout_ms,
            max: limits.max_timeout_ms,
        });
    }
    let Some(m) = meta else {
        let Some(pid) = fresh_pid else {
            return Decision::err(TxnError::CoordinatorNotAvailable);
        };
        let next = TxnMeta {
            id: id.to_string(),
            producer_id: pid,
            prev_producer_id: -1,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now,
        };
        return Decision::write(next, Ok((pid, 0)));
    };
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            return Decision::err(TxnError::ConcurrentTransactions { id: id.to_string() })
        }
        TxnState::Dead => return Decision::err(TxnError::CoordinatorNotAvailable),
        _ => {}
    }
    if let Some((pid, epoch)) = expected {
        // KIP-360: a producer that names its id must hold the current epoch, or be
        // retrying the bump that produced it.
        let current = pid == m.producer_id && epoch == m.producer_epoch;
        let retried =
            pid == m.producer_id && epoch == m.last_producer_epoch && m.state == TxnState::Empty;
        if retried {
            return Decision::reply(Ok((m.producer_id, m.producer_epoch)));
        }
        let previous_id = pid == m.prev_producer_id && m.state == TxnState::Empty;
        if !(current || previous_id) {
            return Decision::err(TxnError::ProducerFenced {
                id: id.to_string(),
                epoch,
                current: m.producer_epoch,
            });
        }
    }
    if m.state == TxnState::Ongoing {
        // A new producer instance takes over while a transaction is open: fence the old
        // one with a bumped epoch and abort its transaction; the client retries until
        // the abort is complete (CONCURRENT_TRANSACTIONS).
        return match bumped(m, None) {
            Some(mut next) => {
                next.state = TxnState::PrepareAbort;
                next.update_ms = now;
                Decision::write(
                    next,
                    Err(TxnError::ConcurrentTransactions { id: id.to_string() }),
                )
            }
            None => Decision::err(TxnError::ConcurrentTransactions { id: id.to_string() }),
        };
    }
    let Some(mut next) = bumped(m, fresh_pid) else {
        return Decision::err(TxnError::CoordinatorNotAvailable);
    };
    next.timeout_ms = timeout_ms;
    next.state = TxnState::Empty;
    next.partitions.clear();
    next.start_ms = -1;
    next.update_ms = now;
    let reply = Ok((next.producer_id, next.producer_epoch));
    Decision::write(next, reply)
}

/// `m` with its epoch bumped; at the end of the epoch range, `fresh_pid` with epoch 0
/// (None when that is needed and no fresh id was given).
fn bumped(m: &TxnMeta, fresh_pid: Option<i64>) -> Option<TxnMeta> {
    let mut next = m.clone();
    next.last_producer_epoch = m.producer_epoch;
    if m.producer_epoch < i16::MAX - 1 {
        next.producer_epoch = m.producer_epoch + 1;
    } else {
        next.prev_producer_id = m.producer_id;
        next.producer_id = fresh_pid?;
        next.producer_epoch = 0;
        next.last_producer_epoch = -1;
    }
    Some(next)
}

/// The metadata of a request naming (producer id, epoch): it must be the current ones.
fn check_producer<'a>(
    id: &str,
    meta: Option<&'a TxnMeta>,
    producer_id: i64,
    epoch: i16,
) -> Result<&'a TxnMeta, TxnError> {
    let m = meta.ok_or(TxnError::InvalidProducerIdMapping { id: id.to_string() })?;
    if m.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping { id: m.id.clone() });
    }
    if m.producer_epoch != epoch {
        return Err(TxnError::ProducerFenced {
            id: m.id.clone(),
            epoch,
            current: m.producer_epoch,
        });
    }
    Ok(m)
}

fn add_partitions(
    m: &TxnMeta,
    partitions: Vec<TxnPartition>,
    verify_only: bool,
    now: i64,
) -> Decision {
    if verify_only {
        return if m.state == TxnState::Ongoing
            && partitions.iter().all(|p| m.partitions.contains(p))
        {
            Decision::reply(Ok((m.producer_id, m.producer_epoch)))
        } else {
            Decision::err(TxnError::InvalidTxnState {
                id: m.id.clone(),
                state: m.state.name(),
                action: "verify partitions of",
            })
        };
    }
    match m.state {
        TxnState::Ongoing
        | TxnState::Empty
        | TxnState::CompleteCommit
        | TxnState::CompleteAbort => {}
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            return Decision::err(TxnError::ConcurrentTransactions { id: m.id.clone() })
        }
        TxnState::Dead => {
            return Decision::err(TxnError::InvalidTxnState {
                id: m.id.clone(),
                state: m.state.name(),
                action: "add partitions to",
            })
        }
    }
    let ok = Ok((m.producer_id, m.producer_epoch));
    if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
        return Decision::reply(ok);
    }
    let mut next = m.clone();
    if m.state != TxnState::Ongoing {
        next.partitions.clear();
        next.start_ms = now;
    }
    next.partitions.extend(partitions);
    next.state = TxnState::Ongoing;
    next.update_ms = now;
    Decision::write(next, ok)
}

fn end_txn(
    m: &TxnMeta,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    bump: bool,
    fresh_pid: Option<i64>,
    now: i64,
) -> Decision {
    let id = m.id.clone();
    let known_pid = producer_id == m.producer_id || (bump && producer_id == m.prev_producer_id);
    if !known_pid {
        return Decision::err(TxnError::InvalidProducerIdMapping { id });
    }
    let current = (m.producer_id, m.producer_epoch);
    let wanted = if commit {
        (TxnState::PrepareCommit, TxnState::CompleteCommit)
    } else {
        (TxnState::PrepareAbort, TxnState::CompleteAbort)
    };
    // KIP-890 part 2: the epoch was bumped when this transaction ended, so a retry of
    // that EndTxn names the epoch before the bump.
    let retry_after_bump = bump
        && (m.state == wanted.0 || m.state == wanted.1)
        && (epoch == m.last_producer_epoch || producer_id == m.prev_producer_id);
    if retry_after_bump {
        return if m.state == wanted.0 {
            Decision::err(TxnError::ConcurrentTransactions { id })
        } else {
            Decision::reply(Ok(current))
        };
    }
    if producer_id != m.producer_id || epoch != m.producer_epoch {
        return Decision::err(TxnError::ProducerFenced {
            id,
            epoch,
            current: m.producer_epoch,
        });
    }
    let invalid = |state: TxnState| {
        Decision::err(TxnError::InvalidTxnState {
            id: m.id.clone(),
            state: state.name(),
            action: if commit { "commit" } else { "abort" },
        })
    };
    match m.state {
        TxnState::Ongoing => {
            let mut next = if bump {
                match bumped(m, fresh_pid) {
                    // Epoch exhausted: the new producer id starts at 0, and the epoch
                    // before the bump is kept so that the markers still close the
                    // transaction of the old id ([`marker_producer`]).
                    Some(mut n) if n.producer_id != m.producer_id => {
                        n.last_producer_epoch = m.producer_epoch;
                        n
                    }
                    Some(n) => n,
                    None => return Decision::err(TxnError::CoordinatorNotAvailable),
                }
            } else {
                m.clone()
            };
            next.state = wanted.0;
            next.update_ms = now;
            let reply = Ok((next.producer_id, next.producer_epoch));
            Decision::write(next, reply)
        }
        // A retry of an EndTxn that is being completed, or is complete.
        s if s == wanted.0 => Decision::err(TxnError::ConcurrentTransactions { id }),
        s if s == wanted.1 && !bump => Decision::reply(Ok(current)),
        s => invalid(s),
    }
}

/// Prepare* -> Complete*, once every marker is written.
fn complete(m: &TxnMeta, now: i64) -> Decision {
    let state = match m.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return Decision::reply(Ok((m.producer_id, m.producer_epoch))),
    };
    let mut next = m.clone();
    next.state = state;
    next.partitions.clear();
    next.update_ms = now;
    Decision::write(next, Ok((m.producer_id, m.producer_epoch)))
}

/// An open transaction past its `transaction.timeout.ms`: it is aborted with a bumped
/// epoch, which fences the producer that let it time out (as Kafka does).
pub fn abort_if_timed_out(m: &TxnMeta, now: i64) -> Option<TxnMeta> {
    if m.state != TxnState::Ongoing || m.start_ms + m.timeout_ms as i64 > now {
        return None;
    }
    // At the last epoch there is no bump left: abort with the epoch the producer holds.
    let mut next = bumped(m, None).unwrap_or_else(|| m.clone());
    next.state = TxnState::PrepareAbort;
    next.update_ms = now;
    Some(next)
}

/// An idle id past `transactional.id.expiration.ms` is forgotten (a tombstone).
pub fn expired(m: &TxnMeta, now: i64, limits: &TxnLimits) -> bool {
    m.state.is_idle() && m.update_ms + limits.id_expiration_ms <= now
}

/// The (producer id, epoch) a Prepare state's markers carry: the current ones, except
/// when EndTxn v5 (KIP-890 part 2) moved the producer to a fresh id because the epoch was
/// exhausted: the records were written by the previous id, so its markers go to that id
/// with the last epoch (as Kafka writes them), which no data batch can carry.
pub fn marker_producer(m: &TxnMeta) -> (i64, i16) {
    let rotated_at_end = m.prev_producer_id >= 0
        && m.producer_epoch == 0
        && m.last_producer_epoch == i16::MAX - 1
        && matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort);
    if rotated_at_end {
        (m.prev_producer_id, i16::MAX)
    } else {
        (m.producer_id, m.producer_epoch)
    }
}

/// The markers a Prepare state needs: (commit, partitions), or None in other states.
pub fn pending_markers(m: &TxnMeta) -> Option<bool> {
    match m.state {
        TxnState::PrepareCommit => Some(true),
        TxnState::PrepareAbort => Some(false),
        _ => None,
    }
}
