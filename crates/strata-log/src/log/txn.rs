//! Transactions in the log: writing COMMIT/ABORT markers for the transaction
//! coordinator (`append_marker`), the first unstable offset (what the replica
//! layer bounds by the high watermark to get the last stable offset), and the
//! aborted-transaction index (`txn_index`) kept in step with the segments.
//!
//! Every change of the producer state goes through `publish_unstable`, and
//! every change of the segment map through `segments_changed`, both under the
//! writer lock; readers load the atomic or take the index's read lock.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::control::{self, ControlRecord, ControlType};
use crate::error::LogError;
use crate::producer_snapshot;
use crate::producer_state::{CompletedTxn, ProducerBatch};
use crate::record::{self, BatchInfo};
use crate::txn_index::{Loaded, TxnIndex, TxnIndexEntry};

use super::{AppendInfo, Log, Writer};

/// No transaction ongoing: the value of the first-unstable atomic.
pub(super) const NONE_UNSTABLE: i64 = i64::MAX;

/// A marker the transaction coordinator asks the partition leader to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarkerSpec {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
}

/// The base -> next offset of every segment (what the index is keyed by).
pub(super) fn ranges(
    segments: &BTreeMap<i64, std::sync::Arc<crate::segment::Segment>>,
) -> BTreeMap<i64, i64> {
    segments
        .iter()
        .map(|(b, s)| (*b, s.next_offset().max(*b)))
        .collect()
}

fn entry_of(c: &CompletedTxn) -> TxnIndexEntry {
    TxnIndexEntry {
        producer_id: c.producer_id,
        first_offset: c.first_offset,
        last_offset: c.last_offset,
        last_stable_offset: c.last_stable_offset,
    }
}

/// Opens the aborted-transaction index of a log being opened: `Some` when
/// every segment's file was readable (producer snapshots may then be used),
/// `None` after starting an empty one that a full replay must fill.
pub(super) fn open_index(
    dir: &std::path::Path,
    ranges: &BTreeMap<i64, i64>,
) -> Result<(TxnIndex, bool), LogError> {
    match TxnIndex::load(dir, ranges)? {
        Loaded::Complete(index) => Ok((index, true)),
        Loaded::Rebuild(reason) => {
            // DEBUG: every new or pre-upgrade partition takes this path once; a line per
            // partition at INFO buried the start (tests/it/startup.rs).
            tracing::debug!(dir = %dir.display(), %reason, "rebuilding the aborted-transaction index from the log");
            Ok((TxnIndex::empty(dir, ranges)?, false))
        }
    }
}

/// Adds the aborted ones of `completed` (markers at or above `from`, after
/// dropping the entries there) to `index`.
pub(super) fn index_replayed(
    dir: &std::path::Path,
    index: &mut TxnIndex,
    ranges: &BTreeMap<i64, i64>,
    from: i64,
    completed: &[CompletedTxn],
) -> Result<(), LogError> {
    index.truncate_from(dir, from)?;
    for c in completed.iter().filter(|c| c.aborted) {
        let base = ranges
            .range(..=c.last_offset)
            .next_back()
            .map_or(c.last_offset, |(b, _)| *b);
        index.append(dir, base, entry_of(c))?;
    }
    Ok(())
}

impl Log {
    /// Writes the COMMIT or ABORT marker ending `spec.producer_id`'s ongoing
    /// transaction (Kafka's `appendAsLeader` with origin COORDINATOR), stamped
    /// with `leader_epoch`, at the log end offset.
    ///
    /// Refused, with nothing written, when the producer's epoch is newer than
    /// the marker's (`ProducerError::InvalidProducerEpoch`) or the last marker
    /// came from a newer coordinator epoch (`CoordinatorFenced`). A marker for
    /// a producer with no ongoing transaction is written (it ends an empty
    /// one), as in Kafka. An ABORT adds the transaction to the segment's
    /// `.txnindex` after the marker is written; the first unstable offset moves
    /// past the transaction. Durability is that of [`Log::append`].
    pub fn append_marker(
        &self,
        spec: TxnMarkerSpec,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        w.clock_ms = w.clock_ms.max(now_ms);
        let offset = self.log_end.load(Ordering::Acquire);
        let kind = if spec.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let rec = ControlRecord {
            kind,
            coordinator_epoch: spec.coordinator_epoch,
        };
        let prepared = w
            .producers
            .prepare_marker(spec.producer_id, spec.producer_epoch, rec, (offset, now_ms))
            .map_err(|source| LogError::Producer {
                dir: self.dir.clone(),
                source,
            })?;
        let mut batch = control::marker_batch(spec.producer_id, spec.producer_epoch, rec, now_ms);
        record::set_base_offset(&mut batch, offset);
        record::set_partition_leader_epoch(&mut batch, leader_epoch);
        let info = record::validate_stored_batch(&batch, 0).map_err(|source| LogError::Record {
            dir: self.dir.clone(),
            source,
        })?;
        let latest = self.latest_epoch();
        if latest.is_none_or(|l| leader_epoch > l) {
            self.update_epochs(|c| c.assign(leader_epoch, offset))?;
        }
        self.write_batches(&mut w, &batch, &[], &[info], offset + 1, now_ms)?;
        w.producers.commit(vec![prepared.update]);
        self.index_completed(&mut w, &[prepared.completed])?;
        self.publish_unstable(&w);
        self.count_unflushed(&mut w, 1, now_ms)?;
        Ok(AppendInfo {
            base_offset: offset,
            last_offset: offset,
            log_append_time: -1,
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        })
    }

    /// The first offset of the earliest ongoing transaction, if any: a
    /// read_committed reader reads below it (and below the high watermark).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let v = self.first_unstable.load(Ordering::Acquire);
        (v != NONE_UNSTABLE).then_some(v)
    }

    /// The last stable offset given the high watermark `hw`: records below it
    /// belong to no ongoing transaction (Kafka's `lastStableOffset`).
    pub fn last_stable_offset(&self, hw: i64) -> i64 {
        self.first_unstable_offset().map_or(hw, |f| f.min(hw))
    }

    /// The aborted transactions overlapping `[from, upper)`, from the
    /// `.txnindex` of local segments (Kafka's `collectAbortedTransactions`).
    pub fn aborted_txns(&self, from: i64, upper: i64) -> Vec<TxnIndexEntry> {
        self.txn.read().collect(from, upper)
    }

    /// The `.txnindex` content of segment `base` (for the remote tier).
    pub fn segment_txn_index(&self, base: i64) -> Vec<u8> {
        crate::txn_index::encode_all(&self.txn.read().segment_entries(base))
    }

    /// Takes `snapshot` (a producer snapshot file's bytes, e.g. uploaded with the remote
    /// segment ending at `offset`) as the producer state of a log that is empty at `offset`
    /// (a follower restarted at the leader's local log start): idempotent producers keep
    /// their sequences and ongoing transactions their first offsets. `Ok(false)`, changing
    /// nothing, when the log is not empty at `offset`; an unreadable snapshot is an error.
    pub fn restore_producer_snapshot(
        &self,
        offset: i64,
        snapshot: &[u8],
    ) -> Result<bool, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        if self.log_start_offset() != offset || self.log_end_offset() != offset {
            return Ok(false);
        }
        let state = producer_snapshot::decode(snapshot).map_err(|reason| LogError::Corrupt {
            path: self.dir.join(producer_snapshot::file_name(offset)),
            position: 0,
            reason,
        })?;
        producer_snapshot::write(&self.dir, offset, &state)?;
        w.producers = state;
        self.publish_unstable(&w);
        Ok(true)
    }

    /// Writes `snapshot` as the producer snapshot at `offset` of the log directory `dir`
    /// (not open), after checking it decodes: a topic recovered from the bucket starts
    /// empty at the remote end with the producer state uploaded with the last segment.
    pub fn install_producer_snapshot(
        dir: &std::path::Path,
        offset: i64,
        snapshot: &[u8],
    ) -> Result<(), LogError> {
        let state = producer_snapshot::decode(snapshot).map_err(|reason| LogError::Corrupt {
            path: dir.join(producer_snapshot::file_name(offset)),
            position: 0,
            reason,
        })?;
        producer_snapshot::write(dir, offset, &state)
    }

    /// Drops the state of producers idle for `expiration_ms` at `now_ms` (see
    /// [`crate::producer_state::ProducerStateManager::remove_expired`]); returns how many.
    pub fn remove_expired_producers(
        &self,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<usize, LogError> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        Ok(w.producers.remove_expired(now_ms, expiration_ms))
    }

    /// The active producers of this log: id and entry (epoch, last batches,
    /// ongoing transaction, coordinator epoch, last write time), for
    /// DescribeProducers.
    pub fn producers(&self) -> Vec<(i64, crate::producer_state::ProducerEntry)> {
        let w = self.writer.lock();
        w.producers
            .entries()
            .iter()
            .map(|(id, e)| (*id, e.clone()))
            .collect()
    }

    /// Whether `producer_id` has a transaction ongoing in this log at `epoch` (a
    /// leader need not ask the coordinator again before appending to it, KIP-890 part 1).
    pub fn has_ongoing_txn(&self, producer_id: i64, epoch: i16) -> bool {
        let w = self.writer.lock();
        w.producers
            .get(producer_id)
            .is_some_and(|e| e.epoch == epoch && e.txn_first_offset.is_some())
    }

    /// The ongoing transactions, `(producer id, first offset)`.
    pub fn ongoing_txns(&self) -> Vec<(i64, i64)> {
        self.writer.lock().producers.ongoing_txns().collect()
    }

    /// Publishes the producer state's first unstable offset.
    pub(super) fn publish_unstable(&self, w: &Writer) {
        let v = w.producers.first_unstable_offset().unwrap_or(NONE_UNSTABLE);
        self.first_unstable.store(v, Ordering::Release);
    }

    /// Adds the aborted ones of transactions just completed by written markers.
    pub(super) fn index_completed(
        &self,
        _w: &mut Writer,
        completed: &[CompletedTxn],
    ) -> Result<(), LogError> {
        if completed.iter().all(|c| !c.aborted) {
            return Ok(());
        }
        let ranges = ranges(&self.segments.read());
        let mut index = self.txn.write();
        for c in completed.iter().filter(|c| c.aborted) {
            let base = ranges
                .range(..=c.last_offset)
                .next_back()
                .map_or(c.last_offset, |(b, _)| *b);
            index.append(&self.dir, base, entry_of(c))?;
        }
        Ok(())
    }

    /// The segment map changed (roll, retention, truncation, cleaning): the
    /// aborted-transaction index follows it.
    pub(super) fn segments_changed(&self, _w: &mut Writer) -> Result<(), LogError> {
        let ranges = ranges(&self.segments.read());
        self.txn.write().reconcile(&self.dir, &ranges)
    }

    /// Fsyncs the `.txnindex` files that got entries (with a flush or roll).
    pub(super) fn sync_txn_index(&self, _w: &mut Writer) -> Result<(), LogError> {
        self.txn.write().sync(&self.dir)
    }

    /// Replays a follower's batches into the producer state, indexing the
    /// aborted transactions their markers complete.
    pub(super) fn replay_replicated(
        &self,
        w: &mut Writer,
        batches: &[u8],
        infos: &[BatchInfo],
    ) -> Result<(), LogError> {
        let mut completed = Vec::new();
        for info in infos {
            let mut b = ProducerBatch::from_info(info);
            if info.attributes & record::CONTROL_BIT != 0 {
                let bytes = &batches[info.range()];
                b.control = record::BatchHeader::parse(bytes)
                    .and_then(|h| control::control_record(&h, bytes));
            }
            completed.extend(w.producers.replay(&b));
        }
        self.index_completed(w, &completed)?;
        self.publish_unstable(w);
        Ok(())
    }
}
