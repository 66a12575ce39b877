//! The committed-offsets half of the coordinator's API: OffsetCommit (validated against
//! membership, written, acknowledged once the ISR has it), OffsetFetch, OffsetDelete and
//! the `offsets.retention.minutes` expiry. `driver.rs` has the membership half
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and the admin requests.
//!
//! Dependencies point down: `driver.rs` (the coordinator's state and mutex), `codec.rs`
//! (record keys and values) and `store.rs` (appends, replication waits, the topic lookup
//! that validates a commit).

use std::time::Duration;

use super::codec::{self, Key, OffsetValue};
use super::driver::GroupCoordinator;
use super::state::GroupState;
use super::GroupError;
use crate::now_ms;

/// Kafka's `offset.metadata.max.bytes` default: the largest metadata string a commit
/// may carry.
const MAX_METADATA: usize = 4096;

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Kafka's `offsets.commit.timeout.ms` default: how long a commit waits for the ISR.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

impl GroupCoordinator {
    /// Validates membership, writes the offsets, waits until the ISR has them (as Kafka,
    /// up to `offsets.commit.timeout.ms`, 5 s), then makes them visible.
    pub async fn commit(
        &self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        entries: Vec<CommitEntry>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.owns(group)?;
        let now = now_ms();
        let (results, values, written) = {
            let inner = self.inner.lock();
            // A consumer group (KIP-848) checks the member epoch; otherwise the
            // classic generation check applies.
            if !inner.consumer.validate_commit(group, member, generation)? {
                inner
                    .sm
                    .validate_commit(group, member, instance, generation)?;
            }
            let results: Vec<Result<(), GroupError>> =
                entries.iter().map(|e| self.check_entry(e)).collect();
            let mut records = Vec::new();
            let mut values = Vec::new();
            for (e, r) in entries.iter().zip(&results) {
                if r.is_ok() {
                    let v = OffsetValue {
                        offset: e.offset,
                        leader_epoch: e.leader_epoch,
                        metadata: e.metadata.clone().unwrap_or_default(),
                        commit_timestamp: now,
                    };
                    let key = Key::Offset {
                        group: group.to_string(),
                        topic: e.topic.clone(),
                        partition: e.partition,
                    };
                    records.push((codec::encode_key(&key), Some(codec::encode_offset(&v))));
                    values.push((e.topic.clone(), e.partition, v));
                }
            }
            if records.is_empty() {
                return Ok(results);
            }
            let written = self.store.append(group, records);
            (results, values, written)
        };
        let failed = |e: GroupError| {
            results
                .iter()
                .map(|r| r.clone().and(Err(e.clone())))
                .collect()
        };
        let appended = match written {
            Ok(w) => w,
            Err(e) => return Ok(failed(e)),
        };
        if let Err(e) = self.store.wait_replicated(&appended, COMMIT_TIMEOUT).await {
            tracing::warn!(group, error = %e, "offset commit not replicated; the client retries");
            return Ok(failed(GroupError::CoordinatorNotAvailable));
        }
        let mut inner = self.inner.lock();
        if inner.sm.group(group).is_none() {
            inner.sm.group_or_create(group, now);
        }
        for (topic, partition, v) in values {
            inner.offsets.put(group, &topic, partition, v);
        }
        Ok(results)
    }

    pub(super) fn check_entry(&self, e: &CommitEntry) -> Result<(), GroupError> {
        let size = e.metadata.as_ref().map_or(0, |m| m.len());
        if size > MAX_METADATA {
            return Err(GroupError::MetadataTooLarge { size });
        }
        if !self.store.has_partition(&e.topic, e.partition) {
            return Err(GroupError::UnknownTopicPartition {
                topic: e.topic.clone(),
                partition: e.partition,
            });
        }
        Ok(())
    }

    /// Committed offsets; `None` topics means every partition the group committed.
    pub fn fetch(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let inner = self.inner.lock();
        match topics {
            Some(topics) => topics
                .into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                .map(|(t, p)| {
                    let v = inner.offsets.get(group, &t, p).cloned();
                    (t, p, v)
                })
                .collect(),
            None => inner
                .offsets
                .all(group)
                .into_iter()
                .map(|(t, p, v)| (t.to_string(), p, Some(v.clone())))
                .collect(),
        }
    }

    /// OffsetDelete: refused for topics the (non-empty) group is subscribed to.
    pub fn delete_offsets(
        &self,
        group: &str,
        tps: &[(String, i32)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.owns(group)?;
        let mut inner = self.inner.lock();
        let subscribed = match inner.sm.group(group) {
            Some(g) if g.state == GroupState::Dead => {
                return Err(GroupError::GroupNotFound {
                    group: group.to_string(),
                })
            }
            Some(g) if g.state != GroupState::Empty => g.subscribed_topics(),
            Some(_) => Vec::new(),
            None if inner.offsets.has_group(group) => Vec::new(),
            None => {
                return Err(GroupError::GroupNotFound {
                    group: group.to_string(),
                })
            }
        };
        let mut results = Vec::with_capacity(tps.len());
        let mut records = Vec::new();
        for (t, p) in tps {
            if subscribed.contains(t) {
                results.push(Err(GroupError::SubscribedToTopic {
                    group: group.to_string(),
                    topic: t.clone(),
                }));
            } else {
                results.push(Ok(()));
                if inner.offsets.get(group, t, *p).is_some() {
                    records.push((
                        codec::encode_key(&Key::Offset {
                            group: group.to_string(),
                            topic: t.clone(),
                            partition: *p,
                        }),
                        None,
                    ));
                }
            }
        }
        if !records.is_empty() {
            self.store.append(group, records)?;
            for ((t, p), r) in tps.iter().zip(&results) {
                if r.is_ok() {
                    inner.offsets.remove(group, t, *p);
                }
            }
        }
        Ok(results)
    }

    /// `offsets.retention.minutes`: offsets of a consumer group expire that long after
    /// it became empty; a standalone consumer's offsets that long after each commit.
    pub fn expire_offsets(&self, now: i64) {
        let retention = self.store.retention_ms();
        let mut inner = self.inner.lock();
        let expired = inner.offsets.expired(&inner.sm, now, retention);
        // A consumer group (KIP-848) with members keeps its offsets: its classic entry, if
        // any, is Empty and would expire them by commit time.
        let expired: Vec<_> = expired
            .into_iter()
            .filter(|(g, _)| !inner.consumer.has_members(g))
            .collect();
        for (group, expired) in expired {
            let records = expired
                .iter()
                .map(|(t, p)| {
                    (
                        codec::encode_key(&Key::Offset {
                            group: group.clone(),
                            topic: t.clone(),
                            partition: *p,
                        }),
                        None,
                    )
                })
                .collect();
            if let Err(e) = self.store.append(&group, records) {
                tracing::warn!(error = %e, "could not expire offsets");
                continue;
            }
            for (t, p) in &expired {
                inner.offsets.remove(&group, t, *p);
            }
            tracing::info!(
                group,
                partitions = expired.len(),
                "expired committed offsets (offsets.retention.minutes)"
            );
            if !inner.offsets.has_group(&group)
                && inner.sm.group(&group).is_some_and(|g| g.is_empty())
            {
                if let Err(e) = self.remove_group(&mut inner, &group) {
                    tracing::warn!(error = %e, "could not remove expired group");
                }
            }
        }
    }
}
