//! Transactional offset commits (TxnOffsetCommit): offsets a transactional producer
//! commits for a group are held per producer id and become visible to the group only
//! when the transaction's COMMIT marker reaches the group's `__consumer_offsets`
//! partition; an ABORT marker discards them. As Kafka, OffsetFetch with
//! `require_stable` answers UNSTABLE_OFFSET_COMMIT for a partition with offsets
//! pending (the handler asks [`GroupCoordinator::has_pending`]).
//!
//! Pending offsets are held in memory: on commit they are written as ordinary offset
//! records. If the group's coordinator moves while a transaction is open, its pending
//! offsets are lost and the commit leaves the old offsets (the consumer reprocesses);
//! writing them as transactional records that replay holds until the marker is the
//! next step (see docs/architecture.md).
//!
//! Dependencies: `driver.rs` (state and mutex), `commits.rs` (the entry type and
//! checks), `codec.rs`, `store.rs`.

use super::codec::{self, Key, OffsetValue};
use super::commits::CommitEntry;
use super::driver::GroupCoordinator;
use super::GroupError;
use crate::now_ms;

impl GroupCoordinator {
    /// TxnOffsetCommit: checks the group membership (a generation of -1 skips it) and
    /// the entries, and holds the offsets for `producer_id` until its marker.
    pub fn txn_commit(
        &self,
        group: &str,
        producer_id: i64,
        member: (&str, Option<&str>, i32),
        entries: Vec<CommitEntry>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.owns(group)?;
        let now = now_ms();
        let mut inner = self.inner.lock();
        let (member_id, instance, generation) = member;
        if generation >= 0 || !member_id.is_empty() {
            inner
                .sm
                .validate_commit(group, member_id, instance, generation)?;
        }
        let results: Vec<Result<(), GroupError>> =
            entries.iter().map(|e| self.check_entry(e)).collect();
        let pending = inner.txn_offsets.entry(producer_id).or_default();
        for (e, r) in entries.into_iter().zip(&results) {
            if r.is_ok() {
                let v = OffsetValue {
                    offset: e.offset,
                    leader_epoch: e.leader_epoch,
                    metadata: e.metadata.unwrap_or_default(),
                    commit_timestamp: now,
                };
                pending.retain(|(g, t, p, _)| !(g == group && *t == e.topic && *p == e.partition));
                pending.push((group.to_string(), e.topic, e.partition, v));
            }
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
    /// partition `partition`: the producer's offsets for groups of that partition are
    /// written and made visible, or discarded.
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
        if !commit || mine.is_empty() {
            return Ok(());
        }
        let mut by_group: std::collections::BTreeMap<String, Vec<(String, i32, OffsetValue)>> =
            Default::default();
        for (g, t, p, v) in mine {
            by_group.entry(g).or_default().push((t, p, v));
        }
        let now = now_ms();
        for (group, offsets) in by_group {
            let records = offsets
                .iter()
                .map(|(t, p, v)| {
                    let key = Key::Offset {
                        group: group.clone(),
                        topic: t.clone(),
                        partition: *p,
                    };
                    (codec::encode_key(&key), Some(codec::encode_offset(v)))
                })
                .collect();
            self.store.append(&group, records)?;
            inner.sm.group_or_create(&group, now);
            for (t, p, v) in offsets {
                inner.offsets.put(&group, &t, p, v);
            }
        }
        Ok(())
    }
}
