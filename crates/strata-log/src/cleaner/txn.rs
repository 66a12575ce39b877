//! Transactions in a cleaning pass: which transactional batches belong to an
//! aborted transaction (their records go), and which markers are no longer
//! needed (Kafka's `CleanedTransactionMetadata`).
//!
//! A pass walks batches in offset order and hands each transactional or
//! control batch to a [`TxnTracker`] built from the aborted transactions of
//! the range (the `.txnindex` entries overlapping it). Everything a pass sees
//! is below the last stable offset (the log bounds the pass by it), so a
//! transactional batch that is not in an aborted transaction was committed.
//!
//! - A data batch of a producer whose aborted transaction has started (its
//!   first offset reached) and whose ABORT marker has not been read yet is
//!   aborted: the filter removes its records.
//! - An ABORT marker is *discardable* once no batch of its transaction was
//!   seen in this pass (an earlier pass removed them all); then its `.txnindex`
//!   entry goes too (a read_committed reader needs neither). Otherwise the
//!   marker and its entry stay ([`TxnTracker::kept_entries`]).
//! - A COMMIT marker is discardable when no batch of its transaction was seen
//!   (the committed records were all superseded).
//! - An emptied control batch is discardable.
//!
//! A discardable marker is removed as a tombstone is (KIP-534): the pass that
//! first finds it discardable sets its batch's delete horizon to `now +
//! delete.retention.ms`; a pass after the horizon removes it, so a consumer
//! reading from the start within `delete.retention.ms` of the cleaning still
//! sees it before the data it ended disappears from its view.
//!
//! Transactions that started below the first segment a pass rewrites (a
//! tiered topic's local pass starts at the remote end) count as seen: their
//! data is out of the pass's sight, so their markers and entries stay.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::control::{ControlType, Marker};
use crate::record::{self, BatchHeader};
use crate::txn_index::TxnIndexEntry;

/// An aborted transaction whose first offset the pass has reached.
#[derive(Clone, Copy, Debug)]
struct Aborted {
    entry: TxnIndexEntry,
    /// A batch of it was seen in this pass (or it started out of sight).
    seen: bool,
}

/// The transactions of one pass, fed batch by batch in offset order.
#[derive(Debug, Default)]
pub(crate) struct TxnTracker {
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<Aborted>,
    /// Producer id -> its aborted transaction under way at the current offset.
    aborted: HashMap<i64, Aborted>,
    /// Producers with a committed transactional batch since their last marker.
    committed: HashSet<i64>,
    /// Aborted transactions whose marker stays with its `.txnindex` entry, in
    /// marker order: the entries the rewritten segments keep.
    kept: Vec<TxnIndexEntry>,
}

impl TxnTracker {
    /// A tracker for a pass over offsets from `rewrite_start` on, given the
    /// aborted transactions overlapping them. Those starting below `seen_below`
    /// count as seen (see the module docs); pass `i64::MIN` for none.
    pub fn new(mut aborted: Vec<TxnIndexEntry>, seen_below: i64) -> TxnTracker {
        aborted.sort_by_key(|e| (e.first_offset, e.last_offset));
        TxnTracker {
            pending: aborted
                .into_iter()
                .map(|entry| Aborted {
                    entry,
                    seen: entry.first_offset < seen_below,
                })
                .collect(),
            ..TxnTracker::default()
        }
    }

    /// Moves the aborted transactions starting at or before `offset` under way.
    fn reach(&mut self, offset: i64) {
        while self
            .pending
            .front()
            .is_some_and(|a| a.entry.first_offset <= offset)
        {
            if let Some(a) = self.pending.pop_front() {
                self.aborted.entry(a.entry.producer_id).or_insert(a);
            }
        }
    }

    /// A data batch: `true` if it belongs to an aborted transaction (its
    /// records go). Non-transactional batches are never aborted.
    pub fn on_data(&mut self, h: &BatchHeader) -> bool {
        self.reach(h.last_offset());
        if h.attributes & record::TRANSACTIONAL_BIT == 0 {
            return false;
        }
        match self.aborted.get_mut(&h.producer_id) {
            Some(a) => {
                a.seen = true;
                true
            }
            None => {
                self.committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch reading `marker`: `true` if it is discardable.
    pub fn on_control(&mut self, h: &BatchHeader, marker: Marker) -> bool {
        self.reach(h.last_offset());
        match marker {
            Marker::End(r) if r.kind == ControlType::Abort => {
                match self.aborted.remove(&h.producer_id) {
                    Some(a) if a.seen => {
                        self.kept.push(a.entry);
                        false
                    }
                    _ => true,
                }
            }
            Marker::End(_) => !self.committed.remove(&h.producer_id),
            Marker::Empty => true,
            // Not a marker we know: keep it, and take it as the end of
            // whatever the producer had under way (never guess a later
            // transaction of it aborted).
            Marker::Other => {
                self.aborted.remove(&h.producer_id);
                self.committed.remove(&h.producer_id);
                false
            }
        }
    }

    /// The entries of the aborted transactions whose markers stay.
    pub fn kept_entries(&self) -> &[TxnIndexEntry] {
        &self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ControlRecord;

    fn data(pid: i64, offset: i64, txn: bool) -> BatchHeader {
        header(pid, offset, if txn { record::TRANSACTIONAL_BIT } else { 0 })
    }

    fn header(pid: i64, offset: i64, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }

    fn marker(pid: i64, offset: i64, kind: ControlType) -> (BatchHeader, Marker) {
        let h = header(pid, offset, record::CONTROL_BIT | record::TRANSACTIONAL_BIT);
        let m = Marker::End(ControlRecord {
            kind,
            coordinator_epoch: 0,
        });
        (h, m)
    }

    fn entry(pid: i64, first: i64, last: i64) -> TxnIndexEntry {
        TxnIndexEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn aborted_batches_are_found_and_their_marker_kept_while_data_was_seen() {
        // pid 1: aborted [0, 2]; pid 2: committed [1, 3]; pid 1 again: committed [4, 5].
        let mut t = TxnTracker::new(vec![entry(1, 0, 2)], i64::MIN);
        assert!(t.on_data(&data(1, 0, true)));
        assert!(!t.on_data(&data(2, 1, true)));
        assert!(!t.on_data(&data(3, 1, false)));
        let (h, m) = marker(1, 2, ControlType::Abort);
        assert!(!t.on_control(&h, m), "data of the aborted txn was seen");
        let (h, m) = marker(2, 3, ControlType::Commit);
        assert!(!t.on_control(&h, m), "data of the committed txn was seen");
        assert!(
            !t.on_data(&data(1, 4, true)),
            "a later txn of pid 1 committed"
        );
        let (h, m) = marker(1, 5, ControlType::Commit);
        assert!(!t.on_control(&h, m));
        assert_eq!(t.kept_entries(), &[entry(1, 0, 2)]);
    }

    #[test]
    fn markers_without_data_left_are_discardable() {
        let mut t = TxnTracker::new(vec![entry(1, 0, 2)], i64::MIN);
        let (h, m) = marker(1, 2, ControlType::Abort);
        assert!(t.on_control(&h, m));
        let (h, m) = marker(2, 3, ControlType::Commit);
        assert!(t.on_control(&h, m));
        assert!(t.on_control(&header(2, 4, record::CONTROL_BIT), Marker::Empty));
        assert!(t.kept_entries().is_empty());
    }

    #[test]
    fn transactions_started_out_of_sight_keep_their_marker() {
        let mut t = TxnTracker::new(vec![entry(1, 5, 12)], 10);
        let (h, m) = marker(1, 12, ControlType::Abort);
        assert!(!t.on_control(&h, m));
        assert_eq!(t.kept_entries(), &[entry(1, 5, 12)]);
    }

    #[test]
    fn an_unknown_control_record_ends_what_its_producer_had_under_way() {
        let mut t = TxnTracker::new(vec![entry(1, 0, 1)], i64::MIN);
        assert!(t.on_data(&data(1, 0, true)));
        let h = header(1, 1, record::CONTROL_BIT | record::TRANSACTIONAL_BIT);
        assert!(!t.on_control(&h, Marker::Other));
        assert!(!t.on_data(&data(1, 2, true)));
    }
}
