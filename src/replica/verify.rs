//! KIP-890 part 1 on the partition leader: before the first transactional batch of a
//! transaction is appended, the transaction coordinator confirms the partition was added
//! to the producer's transaction at that epoch. Without it a late write from an aborted
//! transaction would open a new transaction on the partition that no marker ever closes
//! (the hanging transaction Jepsen found).
//!
//! This is the per-partition bookkeeping, a pure state machine: a *guard* per producer id
//! is created before the coordinator is asked, marked verified on its yes, and removed
//! by the producer's next marker (or by a leadership change). The append of a verified
//! batch checks, under the same lock as the marker's removal, that its guard is still
//! there: a marker written while the question was in flight (the transaction ended)
//! makes that append fail instead of starting a transaction nobody will end. A verified
//! guard is also the cache: later batches of the transaction skip the coordinator, and
//! once one is appended the log's ongoing transaction answers without the guard.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{AppendEntry, Partition, ReplicaError, ReplicaManager, TxnCheck};

/// Asks the transaction coordinator of `id` whether `partitions` are in the ongoing
/// transaction of `producer` (AddPartitionsToTxn v4 `verify_only`), or with `add`
/// (KIP-890 part 2, Produce v12+ of a transaction version 2 producer) adds them to it
/// (AddPartitionsToTxn v5, `verify_only` false); per partition the coordinator's Kafka
/// error code, 0 for yes. Implemented by `txn::verify::TxnVerifier`.
pub trait CoordinatorCheck: Send + Sync {
    fn verify<'a>(
        &'a self,
        id: &'a str,
        producer: (i64, i16),
        partitions: Vec<(String, i32)>,
        add: bool,
    ) -> BoxFuture<'a, Vec<((String, i32), i16)>>;
}

/// An entry to ask the coordinator about: its index, partition and guard.
type Ask = (usize, Arc<Partition>, u64);

impl ReplicaManager {
    /// For a Produce with transactional id `id`: marks each transactional entry for the
    /// guarded append ([`Partition::append_txn`]) and asks the coordinator about the
    /// partitions where the producer has neither an ongoing transaction at that epoch nor
    /// a verified guard; returns per entry the refusal of those it did not confirm.
    /// Entries that are not transactional, or whose partition this node does not lead
    /// (the append answers those), are left alone. With `add` (KIP-890 part 2) the
    /// coordinator adds the partitions instead of only confirming them.
    pub async fn verify_txn_entries(
        &self,
        checker: &dyn CoordinatorCheck,
        id: &str,
        entries: &mut [AppendEntry],
        add: bool,
    ) -> Vec<Option<ReplicaError>> {
        let mut refused: Vec<Option<ReplicaError>> = (0..entries.len()).map(|_| None).collect();
        // One question per (producer id, epoch), for all its partitions.
        let mut asks: Vec<((i64, i16), Vec<Ask>)> = Vec::new();
        for (i, entry) in entries.iter_mut().enumerate() {
            let Some((pid, epoch, true)) = first_batch_producer(&entry.records) else {
                continue;
            };
            let Ok(part) = self.leader_partition(&entry.topic, entry.partition) else {
                continue;
            };
            let token = match part.txn_verification(pid, epoch) {
                None => None,
                Some(Verification::Cached(t)) => Some(t),
                Some(Verification::Ask(t)) => {
                    match asks.iter_mut().find(|(k, _)| *k == (pid, epoch)) {
                        Some((_, v)) => v.push((i, part, t)),
                        None => asks.push(((pid, epoch), vec![(i, part, t)])),
                    }
                    Some(t)
                }
            };
            entry.txn_check = Some(TxnCheck {
                producer_id: pid,
                epoch,
                token,
            });
        }
        for ((pid, epoch), parts) in asks {
            let names = parts
                .iter()
                .map(|(_, p, _)| (p.tp.topic.to_string(), p.tp.partition))
                .collect();
            let verdicts = checker.verify(id, (pid, epoch), names, add).await;
            for ((i, part, token), (_, code)) in parts.into_iter().zip(verdicts) {
                part.txn_verified(pid, token, code == 0);
                if code != 0 {
                    let e = ReplicaError::TxnNotVerified {
                        tp: part.tp.clone(),
                        producer_id: pid,
                        epoch,
                        code,
                        reason: format!(
                            "the transaction coordinator of '{id}' did not confirm the partition is in the transaction (error code {code})"
                        ),
                    };
                    tracing::debug!(error = %e, "transactional produce refused");
                    refused[i] = Some(e);
                }
            }
        }
        refused
    }
}

/// What an append of a transactional batch needs before the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Already verified (the guard); append with [`Guards::check`].
    Cached(u64),
    /// Ask the coordinator, then [`Guards::verified`] or [`Guards::failed`] with this guard.
    Ask(u64),
}

#[derive(Debug, Clone, Copy)]
struct Guard {
    epoch: i16,
    token: u64,
    verified: bool,
}

/// The guards of one partition, by producer id.
#[derive(Debug, Default)]
pub struct Guards {
    by_producer: HashMap<i64, Guard>,
    next_token: u64,
}

impl Guards {
    /// The guard for `(producer_id, epoch)`: a verified one is reused, an unverified one
    /// of the same epoch is shared by concurrent askers, another epoch's is replaced.
    pub fn start(&mut self, producer_id: i64, epoch: i16) -> Verification {
        if let Some(g) = self.by_producer.get(&producer_id) {
            if g.epoch == epoch {
                return if g.verified {
                    Verification::Cached(g.token)
                } else {
                    Verification::Ask(g.token)
                };
            }
        }
        self.next_token += 1;
        let token = self.next_token;
        self.by_producer.insert(
            producer_id,
            Guard {
                epoch,
                token,
                verified: false,
            },
        );
        Verification::Ask(token)
    }

    /// The coordinator said yes for `token`; false when a marker removed it meanwhile.
    pub fn verified(&mut self, producer_id: i64, token: u64) -> bool {
        match self.by_producer.get_mut(&producer_id) {
            Some(g) if g.token == token => {
                g.verified = true;
                true
            }
            _ => false,
        }
    }

    /// The coordinator said no (or could not be asked): nothing is kept.
    pub fn failed(&mut self, producer_id: i64, token: u64) {
        if self
            .by_producer
            .get(&producer_id)
            .is_some_and(|g| g.token == token)
        {
            self.by_producer.remove(&producer_id);
        }
    }

    /// Whether a batch verified with `token` may still be appended.
    pub fn check(&self, producer_id: i64, token: u64) -> bool {
        self.by_producer
            .get(&producer_id)
            .is_some_and(|g| g.token == token && g.verified)
    }

    /// A marker of `producer_id` ends its transaction here: the next one is asked again.
    pub fn on_marker(&mut self, producer_id: i64) {
        self.by_producer.remove(&producer_id);
    }

    /// Leadership changed: markers may have gone to another leader meanwhile.
    pub fn clear(&mut self) {
        self.by_producer.clear();
    }

    pub fn len(&self) -> usize {
        self.by_producer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_producer.is_empty()
    }
}

/// The producer id, epoch and transactional bit of the first batch of `records` (a
/// produce's batches for one partition all come from one producer), from the v2 header;
/// `None` when too short or not magic 2 (the log refuses those itself).
pub fn first_batch_producer(records: &[u8]) -> Option<(i64, i16, bool)> {
    // baseOffset 8, batchLength 4, partitionLeaderEpoch 4, magic 1, crc 4,
    // attributes 2, lastOffsetDelta 4, baseTimestamp 8, maxTimestamp 8,
    // producerId 8, producerEpoch 2.
    const MAGIC: usize = 16;
    const ATTRIBUTES: usize = 21;
    const PRODUCER_ID: usize = 43;
    const EPOCH: usize = 51;
    const TRANSACTIONAL: i16 = 0x10;
    if records.len() < EPOCH + 2 || records[MAGIC] != 2 {
        return None;
    }
    let attributes = i16::from_be_bytes([records[ATTRIBUTES], records[ATTRIBUTES + 1]]);
    let mut pid = [0u8; 8];
    pid.copy_from_slice(&records[PRODUCER_ID..PRODUCER_ID + 8]);
    let epoch = i16::from_be_bytes([records[EPOCH], records[EPOCH + 1]]);
    Some((
        i64::from_be_bytes(pid),
        epoch,
        attributes & TRANSACTIONAL != 0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_guard_is_the_cache_until_the_marker() {
        let mut g = Guards::default();
        let Verification::Ask(t) = g.start(7, 0) else {
            panic!("a new producer is asked about")
        };
        assert_eq!(
            g.start(7, 0),
            Verification::Ask(t),
            "concurrent askers share it"
        );
        assert!(!g.check(7, t), "not verified yet");
        assert!(g.verified(7, t));
        assert_eq!(g.start(7, 0), Verification::Cached(t));
        assert!(g.check(7, t));
        g.on_marker(7);
        assert!(!g.check(7, t), "the transaction ended");
        assert!(matches!(g.start(7, 0), Verification::Ask(t2) if t2 != t));
    }

    #[test]
    fn marker_during_the_question_voids_the_answer() {
        let mut g = Guards::default();
        let Verification::Ask(t) = g.start(7, 3) else {
            panic!()
        };
        g.on_marker(7);
        assert!(!g.verified(7, t));
        assert!(!g.check(7, t));
        assert!(g.is_empty());
    }

    #[test]
    fn new_epoch_replaces_and_failure_forgets() {
        let mut g = Guards::default();
        let Verification::Ask(t) = g.start(7, 3) else {
            panic!()
        };
        assert!(g.verified(7, t));
        let Verification::Ask(t2) = g.start(7, 4) else {
            panic!("another epoch is asked about again")
        };
        assert!(!g.check(7, t));
        g.failed(7, t);
        assert_eq!(g.len(), 1, "a stale token does not remove the new guard");
        g.failed(7, t2);
        assert_eq!(g.len(), 0);
        g.start(8, 0);
        g.clear();
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn header_fields_of_the_first_batch() {
        let mut b = vec![0u8; 61];
        b[16] = 2;
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
        b[43..51].copy_from_slice(&42i64.to_be_bytes());
        b[51..53].copy_from_slice(&5i16.to_be_bytes());
        assert_eq!(first_batch_producer(&b), Some((42, 5, true)));
        b[22] = 0;
        assert_eq!(first_batch_producer(&b), Some((42, 5, false)));
        b[16] = 1;
        assert_eq!(first_batch_producer(&b), None);
        assert_eq!(first_batch_producer(&b[..20]), None);
    }
}
