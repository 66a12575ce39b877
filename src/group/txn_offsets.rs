//! Transactional offset commits (TxnOffsetCommit), as Kafka: the offsets are written to
//! the group's `__consumer_offsets` partition as a transactional batch of the producer,
//! held per producer id, and become visible to the group only when the transaction's
//! COMMIT marker reaches that partition; an ABORT marker discards them. Replay
//! (`store.rs`) does the same from the log, so offsets of a transaction that was
//! committed while this node was down, or before a coordinator moved, are not lost.
//!
//! Dependencies: `driver.rs` (state and mutex), `commits.rs` (the entry type and
//! checks), `codec.rs`, `store.rs`.

use std::time::Duration;

use super::codec::{self, Key, OffsetValue};
use super::commits::CommitEntry;
use super::driver::GroupCoordinator;
use super::GroupError;
use crate::now_ms;

/// How long a transactional commit waits for the ISR (`offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

impl GroupCoordinator {
    /// TxnOffsetCommit: checks the group membership (a generation of -1 skips it) and
    /// the entries, writes the offsets as `producer`'s (id, epoch) transactional batch
    /// and holds them until its marker.
    pub async fn txn_commit(
        &self,
        group: &str,
        producer: (i64, i16),
        member: (&str, Option<&str>, i32),
        entries: Vec<CommitEntry>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.owns(group)?;
        let now = now_ms();
        let (results, appended) = {
            let mut inner = self.inner.lock();
            let (member_id, instance, generation) = member;
            if generation >= 0 || !member_id.is_empty() {
                inner
                    .sm
                    .validate_commit(group, member_id, instance, generation)?;
            }
            let results: Vec<Result<(), GroupError>> =
                entries.iter().map(|e| self.check_entry(e)).collect();
            let mut records = Vec::new();
            let mut values = Vec::new();
            for (e, r) in entries.into_iter().zip(&results) {
                if r.is_err() {
                    continue;
                }
                let v = OffsetValue {
                    offset: e.offset,
                    leader_epoch: e.leader_epoch,
                    metadata: e.metadata.unwrap_or_default(),
                    commit_timestamp: now,
                };
                let key = Key::Offset {
                    group: group.to_string(),
                    topic: e.topic.clone(),
                    partition: e.partition,
                };
                records.push((codec::encode_key(&key), Some(codec::encode_offset(&v))));
                values.push((group.to_string(), e.topic, e.partition, v));
            }
            if records.is_empty() {
                return Ok(results);
            }
            let appended = self
                .store
                .append_txn(group, producer, records, &mut inner.txn_seq)?;
            // Held from now on: the marker may come before the ISR wait below ends.
            let pending = inner.txn_offsets.entry(producer.0).or_default();
            for v in values {
                pending.retain(|(g, t, p, _)| !(*g == v.0 && *t == v.1 && *p == v.2));
                pending.push(v);
            }
            (results, appended)
        };
        if let Err(e) = self.store.wait_replicated(&appended, COMMIT_TIMEOUT).await {
            tracing::warn!(group, error = %e, "transactional offset commit not replicated; the client retries");
            return Err(GroupError::CoordinatorNotAvailable);
        }
        Ok(results)
    }

    /// Whether `group` has transactional offsets pending for `topic`-`partition`.
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.inner.lock().txn_offsets.values().any(|v| {
            v.iter()
                .any(|(g, t, p, _)| g == group && t == topic && *p == partition)
        })
    }

    /// A COMMIT or ABORT marker of `producer_id` was written to `__consumer_offsets`
    /// partition `partition`: the producer's offsets for groups of that partition
    /// become visible (they are in the log already) or are dropped.
    pub fn complete_txn(
        &self,
        producer_id: i64,
        partition: i32,
        commit: bool,
    ) -> Result<(), GroupError> {
        let Some(partitions) = self.store.partitions() else {
            return Ok(());
        };
        let mut inner = self.inner.lock();
        let Some(pending) = inner.txn_offsets.remove(&producer_id) else {
            return Ok(());
        };
        let (mine, others): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(g, ..)| codec::partition_for(g, partitions) == partition);
        if !others.is_empty() {
            inner.txn_offsets.insert(producer_id, others);
        }
        if !commit {
            return Ok(());
        }
        let now = now_ms();
        for (group, topic, p, v) in mine {
            inner.sm.group_or_create(&group, now);
            inner.offsets.put(&group, &topic, p, v);
        }
        Ok(())
    }
}
