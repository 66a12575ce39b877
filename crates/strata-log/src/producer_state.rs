//! Per-partition state of idempotent producers: for each producer id, its
//! current epoch and the metadata of its last [`BATCHES_KEPT`] batches (first and
//! last sequence, first and last offset, timestamp).
//!
//! Owns the decision Kafka's `ProducerStateManager` makes on every client append:
//! is this batch new (append it), a retry of one of the last five batches (answer
//! with its original offsets, append nothing), out of order
//! ([`ProducerError::OutOfOrderSequence`]) or from a fenced epoch
//! ([`ProducerError::InvalidProducerEpoch`]). The rules, as in Kafka 3.x:
//!
//! - Batches with producer id -1 (non-idempotent producers) are not checked.
//! - An epoch older than the known one is fenced.
//! - A newer epoch must start at sequence 0 (the producer reset its sequences
//!   after an epoch bump), and replaces the producer's batch history.
//! - In the same epoch, a batch whose (first, last) sequence equals one of the
//!   last five is a duplicate; otherwise it must start right after the last
//!   sequence, wrapping from `i32::MAX` to 0.
//! - An unknown producer is accepted at any sequence (KIP-360: its state may have
//!   been removed by retention or DeleteRecords, so Kafka >= 2.5 no longer
//!   answers UNKNOWN_PRODUCER_ID).
//!
//! Pure and I/O-free: `log` calls [`ProducerStateManager::prepare`] before writing
//! and [`ProducerStateManager::commit`] after, and rebuilds state from batch
//! headers with [`ProducerStateManager::replay`]; `producer_snapshot` persists it.
//! Transactions (a later issue) add the ongoing transaction's first offset per
//! producer and the LSO here; transactional batches are refused until then.

use std::collections::{BTreeMap, VecDeque};

use crate::record::{BatchHeader, BatchInfo};

/// How many recent batches per producer are remembered for duplicate detection
/// (Kafka's `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_KEPT: usize = 5;

/// Attribute bit of a transactional batch.
const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit of a control batch (transaction markers).
const CONTROL_BIT: i16 = 0x20;

/// Why an idempotent batch was refused. The server maps each variant to one
/// Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} sent epoch {epoch} but its current epoch is {current_epoch}: this producer instance was fenced by a newer one (or an epoch bump) and must be closed")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("out-of-order sequence from producer {producer_id} (epoch {epoch}): the batch starts at sequence {first_seq} but the next expected is {expected}; a batch in between was not written")]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        expected: i32,
    },
    #[error("batch of producer {producer_id} has base sequence {base_sequence} and epoch {epoch}; an idempotent batch needs both >= 0")]
    InvalidSequence {
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
    },
    #[error("transactional batch from producer {producer_id}: Strata does not support transactions yet; use an idempotent producer without transactional.id")]
    TransactionsUnsupported { producer_id: i64 },
}

/// One appended batch of a producer, as remembered for duplicate detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (LogAppendTime if stamped).
    pub timestamp: i64,
}

/// A producer's epoch and its last batches, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn duplicate_of(&self, first_seq: i32, last_seq: i32) -> Option<BatchMeta> {
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// Records `batch` of `epoch`, dropping the history of an older epoch.
    fn push(&mut self, epoch: i16, batch: BatchMeta) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// The producer fields of one batch about to be appended (offsets assigned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub attributes: i16,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

impl ProducerBatch {
    pub fn from_info(info: &BatchInfo) -> ProducerBatch {
        ProducerBatch {
            producer_id: info.producer_id,
            epoch: info.producer_epoch,
            base_sequence: info.base_sequence,
            attributes: info.attributes,
            first_offset: info.base_offset,
            last_offset: info.last_offset(),
            timestamp: info.max_timestamp,
        }
    }

    pub fn from_header(h: &BatchHeader) -> ProducerBatch {
        ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            attributes: h.attributes,
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp: h.max_timestamp,
        }
    }

    fn meta(&self) -> BatchMeta {
        let delta = self.last_offset.saturating_sub(self.first_offset);
        BatchMeta {
            first_seq: self.base_sequence,
            last_seq: increment_sequence(self.base_sequence, delta),
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            timestamp: self.timestamp,
        }
    }
}

/// `seq + delta`, wrapping past `i32::MAX` to 0 as Kafka does.
pub fn increment_sequence(seq: i32, delta: i64) -> i32 {
    let next = i64::from(seq) + delta;
    (next.rem_euclid(i64::from(i32::MAX) + 1)) as i32
}

/// What to do with a buffer of batches.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// A retry of an appended batch: answer with its offsets, append nothing.
    Duplicate(BatchMeta),
    /// Append; then [`ProducerStateManager::commit`] these updated entries.
    Append(Vec<(i64, ProducerEntry)>),
}

/// The producer state of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn from_entries(producers: BTreeMap<i64, ProducerEntry>) -> Self {
        ProducerStateManager { producers }
    }

    pub fn entries(&self) -> &BTreeMap<i64, ProducerEntry> {
        &self.producers
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks client batches (offsets already assigned) without changing state.
    /// A duplicate anywhere in the buffer makes the whole append a duplicate, as
    /// in Kafka.
    pub fn prepare(
        &self,
        batches: impl IntoIterator<Item = ProducerBatch>,
    ) -> Result<Prepared, ProducerError> {
        let mut pending: BTreeMap<i64, ProducerEntry> = BTreeMap::new();
        for b in batches {
            if b.producer_id < 0 {
                continue;
            }
            if b.attributes & (TRANSACTIONAL_BIT | CONTROL_BIT) != 0 {
                return Err(ProducerError::TransactionsUnsupported {
                    producer_id: b.producer_id,
                });
            }
            if b.base_sequence < 0 || b.epoch < 0 {
                return Err(ProducerError::InvalidSequence {
                    producer_id: b.producer_id,
                    epoch: b.epoch,
                    base_sequence: b.base_sequence,
                });
            }
            let current = pending
                .get(&b.producer_id)
                .or_else(|| self.producers.get(&b.producer_id));
            let meta = b.meta();
            if let Some(cur) = current.filter(|c| c.epoch == b.epoch) {
                if let Some(dup) = cur.duplicate_of(meta.first_seq, meta.last_seq) {
                    return Ok(Prepared::Duplicate(dup));
                }
            }
            check_sequence(current, &b)?;
            let mut entry = current.cloned().unwrap_or(ProducerEntry {
                epoch: b.epoch,
                batches: VecDeque::new(),
            });
            entry.push(b.epoch, meta);
            pending.insert(b.producer_id, entry);
        }
        Ok(Prepared::Append(pending.into_iter().collect()))
    }

    /// Applies the entries of a [`Prepared::Append`] once the batches are written.
    pub fn commit(&mut self, updates: Vec<(i64, ProducerEntry)>) {
        self.producers.extend(updates);
    }

    /// Forgets producers whose last batch is below `log_start` (their batches
    /// are gone; as in Kafka, they may come back at any sequence). Keeps memory
    /// and snapshots bounded by retention.
    pub fn remove_below(&mut self, log_start: i64) {
        self.producers
            .retain(|_, e| e.batches.back().is_some_and(|b| b.last_offset >= log_start));
    }

    /// Rebuilds state from a batch already in the log (recovery): no checks, a
    /// batch of an older epoch than the known one is ignored.
    pub fn replay(&mut self, b: &ProducerBatch) {
        if b.producer_id < 0 || b.attributes & CONTROL_BIT != 0 || b.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: b.epoch,
                batches: VecDeque::new(),
            });
        if b.epoch >= entry.epoch {
            entry.push(b.epoch, b.meta());
        }
    }
}

fn check_sequence(current: Option<&ProducerEntry>, b: &ProducerBatch) -> Result<(), ProducerError> {
    let Some(cur) = current else {
        return Ok(());
    };
    if b.epoch < cur.epoch {
        return Err(ProducerError::InvalidProducerEpoch {
            producer_id: b.producer_id,
            epoch: b.epoch,
            current_epoch: cur.epoch,
        });
    }
    let expected = if b.epoch > cur.epoch {
        0
    } else {
        match cur.last_seq() {
            Some(last) => increment_sequence(last, 1),
            None => return Ok(()),
        }
    };
    if b.base_sequence != expected {
        return Err(ProducerError::OutOfOrderSequence {
            producer_id: b.producer_id,
            epoch: b.epoch,
            first_seq: b.base_sequence,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        }
    }

    /// Prepares and commits; returns the duplicate's first offset, if any.
    fn append(
        s: &mut ProducerStateManager,
        b: ProducerBatch,
    ) -> Result<Option<i64>, ProducerError> {
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
        let mut txn = batch(1, 0, 0, 1, 0);
        txn.attributes = TRANSACTIONAL_BIT;
        assert!(matches!(
            append(&mut s, txn),
            Err(ProducerError::TransactionsUnsupported { .. })
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
}
