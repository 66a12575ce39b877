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
//! Transactions, as Kafka's `ProducerAppendInfo`:
//!
//! - A transactional batch of a producer with no ongoing transaction starts one
//!   at its first offset; a non-transactional batch while one is ongoing is
//!   [`ProducerError::InvalidTxnState`].
//! - A control batch (COMMIT/ABORT marker) is written only by the partition
//!   leader for the transaction coordinator ([`ProducerStateManager::prepare_marker`]):
//!   from a client it is [`ProducerError::ControlBatchFromClient`]. A marker
//!   with an older producer epoch is fenced, one with an older coordinator
//!   epoch than the last marker's is [`ProducerError::CoordinatorFenced`]. It
//!   ends the ongoing transaction (if any; a marker without one is a no-op
//!   transaction starting at the marker) and yields a [`CompletedTxn`].
//! - The first unstable offset is the smallest first offset of the ongoing
//!   transactions; the log's last stable offset is that bounded by the high
//!   watermark (the replica layer applies the bound).
//!
//! Pure and I/O-free: `log` calls [`ProducerStateManager::prepare`] before writing
//! and [`ProducerStateManager::commit`] after, and rebuilds state from batch
//! headers with [`ProducerStateManager::replay`]; `producer_snapshot` persists it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::control::{ControlRecord, ControlType};
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
    #[error("non-transactional batch from producer {producer_id} (epoch {epoch}) while its transaction that started at offset {txn_first_offset} is ongoing")]
    InvalidTxnState {
        producer_id: i64,
        epoch: i16,
        txn_first_offset: i64,
    },
    #[error("control batch from a client (producer {producer_id}): only the partition leader writes transaction markers, for the transaction coordinator")]
    ControlBatchFromClient { producer_id: i64 },
    #[error("transaction marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, but a marker from coordinator epoch {current} was already written: the sending coordinator was replaced")]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
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

/// A producer's epoch, its last batches (oldest first) and its transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// The first offset of the producer's ongoing transaction.
    pub txn_first_offset: Option<i64>,
    /// The coordinator epoch of the last marker written for it (-1: none).
    pub coordinator_epoch: i32,
    /// The timestamp of its last batch or marker (Kafka's `lastTimestamp`),
    /// for `producer.id.expiration.ms`; -1 when unknown (read from a snapshot
    /// written before it was kept).
    pub last_timestamp: i64,
}

impl ProducerEntry {
    pub fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            txn_first_offset: None,
            coordinator_epoch: -1,
            last_timestamp: -1,
        }
    }

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
        self.last_timestamp = batch.timestamp;
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
    /// A control batch's record, read by the log (`None` for data batches, and
    /// for control batches that hold no marker, e.g. emptied by the cleaner).
    pub control: Option<ControlRecord>,
}

/// A transaction that a marker ended (Kafka's `CompletedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// The transaction's first offset (the marker's when none was ongoing).
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
    /// The first unstable offset once the marker is written: the first offset
    /// of the earliest transaction still ongoing, else `last_offset + 1`.
    pub last_stable_offset: i64,
}

/// A marker about to be written: the producer's entry after it, and the
/// transaction it ends. Apply with [`ProducerStateManager::commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedMarker {
    pub update: (i64, ProducerEntry),
    pub completed: CompletedTxn,
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
            control: None,
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
            control: None,
        }
    }

    fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
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
    /// `(first offset, producer id)` of every ongoing transaction: derived
    /// from `producers`, kept in step by [`ProducerStateManager::commit`].
    ongoing: BTreeSet<(i64, i64)>,
}

impl ProducerStateManager {
    pub fn from_entries(producers: BTreeMap<i64, ProducerEntry>) -> Self {
        let ongoing = producers
            .iter()
            .filter_map(|(id, e)| Some((e.txn_first_offset?, *id)))
            .collect();
        ProducerStateManager { producers, ongoing }
    }

    pub fn entries(&self) -> &BTreeMap<i64, ProducerEntry> {
        &self.producers
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The first offset of the earliest ongoing transaction: records at or
    /// above it are not stable (read_committed readers stop before it).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|(offset, _)| *offset)
    }

    /// The ongoing transactions, `(producer id, first offset)`, by first offset.
    pub fn ongoing_txns(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(offset, id)| (*id, *offset))
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
            if b.is_control() {
                return Err(ProducerError::ControlBatchFromClient {
                    producer_id: b.producer_id,
                });
            }
            if b.producer_id < 0 && !b.is_transactional() {
                continue;
            }
            if b.producer_id < 0 || b.base_sequence < 0 || b.epoch < 0 {
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
            let mut entry = current
                .cloned()
                .unwrap_or_else(|| ProducerEntry::new(b.epoch));
            check_txn(&entry, &b)?;
            entry.push(b.epoch, meta);
            if b.is_transactional() {
                entry.txn_first_offset.get_or_insert(b.first_offset);
            }
            pending.insert(b.producer_id, entry);
        }
        Ok(Prepared::Append(pending.into_iter().collect()))
    }

    /// Checks a marker ending `producer_id`'s transaction, to be written at
    /// `offset` with timestamp `timestamp`, without changing state (Kafka's
    /// `appendEndTxnMarker`).
    pub fn prepare_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        record: ControlRecord,
        (offset, timestamp): (i64, i64),
    ) -> Result<PreparedMarker, ProducerError> {
        let current = self.producers.get(&producer_id);
        if let Some(cur) = current {
            if epoch < cur.epoch {
                return Err(ProducerError::InvalidProducerEpoch {
                    producer_id,
                    epoch,
                    current_epoch: cur.epoch,
                });
            }
            if record.coordinator_epoch < cur.coordinator_epoch {
                return Err(ProducerError::CoordinatorFenced {
                    producer_id,
                    coordinator_epoch: record.coordinator_epoch,
                    current: cur.coordinator_epoch,
                });
            }
        }
        Ok(self.end_txn(current, producer_id, epoch, record, (offset, timestamp)))
    }

    /// The entry after a marker and the transaction it completes (no checks).
    fn end_txn(
        &self,
        current: Option<&ProducerEntry>,
        producer_id: i64,
        epoch: i16,
        record: ControlRecord,
        (offset, timestamp): (i64, i64),
    ) -> PreparedMarker {
        let mut entry = current
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(epoch));
        entry.last_timestamp = timestamp;
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = entry.coordinator_epoch.max(record.coordinator_epoch);
        let first_offset = entry.txn_first_offset.take().unwrap_or(offset);
        let last_stable_offset = self
            .ongoing
            .iter()
            .find(|(_, id)| *id != producer_id)
            .map_or(offset + 1, |(o, _)| *o);
        PreparedMarker {
            update: (producer_id, entry),
            completed: CompletedTxn {
                producer_id,
                first_offset,
                last_offset: offset,
                aborted: record.kind == ControlType::Abort,
                last_stable_offset,
            },
        }
    }

    /// Applies the entries of a [`Prepared::Append`] (or a [`PreparedMarker`]'s
    /// update) once the batches are written.
    pub fn commit(&mut self, updates: Vec<(i64, ProducerEntry)>) {
        for (id, entry) in updates {
            self.set(id, entry);
        }
    }

    /// Replaces one producer's entry, keeping `ongoing` in step.
    fn set(&mut self, id: i64, entry: ProducerEntry) {
        if let Some(first) = self.producers.get(&id).and_then(|e| e.txn_first_offset) {
            self.ongoing.remove(&(first, id));
        }
        if let Some(first) = entry.txn_first_offset {
            self.ongoing.insert((first, id));
        }
        self.producers.insert(id, entry);
    }

    /// Forgets producers whose last batch is below `log_start` (their batches
    /// are gone; as in Kafka, they may come back at any sequence). Keeps memory
    /// and snapshots bounded by retention. A producer with an ongoing
    /// transaction is kept: its marker is still to come, and until then the
    /// records after its first offset are not stable.
    pub fn remove_below(&mut self, log_start: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some()
                || e.batches.back().is_some_and(|b| b.last_offset >= log_start)
        });
    }

    /// Drops the producers with no ongoing transaction whose last write (batch
    /// or marker) is at least `expiration_ms` old at `now_ms` (Kafka's
    /// `producer.id.expiration.ms`, `removeExpiredProducers`): a later write
    /// from one is taken as from a new producer. A producer whose last write
    /// time is unknown (from an older snapshot) is given `now_ms`, so it
    /// stays a full period. Returns how many were dropped.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            if e.last_timestamp < 0 {
                e.last_timestamp = now_ms;
            }
            e.txn_first_offset.is_some() || now_ms - e.last_timestamp < expiration_ms
        });
        before - self.producers.len()
    }

    /// Rebuilds state from a batch already in the log (recovery, a follower's
    /// append): no checks, a data batch of an older epoch than the known one
    /// is ignored. A marker returns the transaction it completed.
    pub fn replay(&mut self, b: &ProducerBatch) -> Option<CompletedTxn> {
        if b.producer_id < 0 {
            return None;
        }
        if b.is_control() {
            let record = b.control?;
            let current = self.producers.get(&b.producer_id);
            let done = self.end_txn(
                current,
                b.producer_id,
                b.epoch,
                record,
                (b.first_offset, b.timestamp),
            );
            let (id, entry) = done.update;
            self.set(id, entry);
            return Some(done.completed);
        }
        if b.base_sequence < 0 {
            return None;
        }
        let mut entry = self
            .producers
            .get(&b.producer_id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(b.epoch));
        if b.epoch < entry.epoch {
            return None;
        }
        entry.push(b.epoch, b.meta());
        if b.is_transactional() {
            entry.txn_first_offset.get_or_insert(b.first_offset);
        }
        self.set(b.producer_id, entry);
        None
    }

    /// Drops what a truncation to `offset` removed: transactions that start at
    /// or above it are no longer ongoing. (Batch history is rebuilt by the
    /// caller's replay; this is for state kept across a truncation.)
    pub fn forget_txns_from(&mut self, offset: i64) {
        let gone: Vec<(i64, i64)> = self.ongoing.range((offset, i64::MIN)..).copied().collect();
        for (first, id) in gone {
            self.ongoing.remove(&(first, id));
            if let Some(e) = self.producers.get_mut(&id) {
                e.txn_first_offset = None;
            }
        }
    }
}

/// A transactional producer's data batch must belong to its transaction: a
/// non-transactional batch while one is ongoing is refused (Kafka's
/// `InvalidTxnStateException`).
fn check_txn(entry: &ProducerEntry, b: &ProducerBatch) -> Result<(), ProducerError> {
    match entry.txn_first_offset {
        Some(first) if !b.is_transactional() => Err(ProducerError::InvalidTxnState {
            producer_id: b.producer_id,
            epoch: b.epoch,
            txn_first_offset: first,
        }),
        _ => Ok(()),
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
#[path = "producer_state_tests.rs"]
mod tests;
