//! Which groups this node coordinates: those whose `__consumer_offsets` partition it leads, as
//! Kafka's coordinator. Leadership comes from committed metadata; on gaining a partition the
//! coordinator replays it (requests for its groups get COORDINATOR_LOAD_IN_PROGRESS meanwhile),
//! on losing one it forgets the partition's groups (their requests get NOT_COORDINATOR and
//! clients look the coordinator up again).
//!
//! Which `__consumer_offsets` partitions this node hosts and leads is read through
//! `store.rs`; the replay itself is `OffsetsTopic::replay`.
//!
//! Dependencies: `driver.rs` (the coordinator's state), `store.rs`, `codec.rs`
//! (placement), `state` (restored groups) and `crate::replica`.

use super::codec;
use super::driver::GroupCoordinator;
use super::state::Group;
use super::GroupError;
use crate::now_ms;
use crate::replica::{Partition, ReplicaError};

impl GroupCoordinator {
    /// Ok when this node coordinates `group` and has loaded its partition.
    pub fn owns(&self, group: &str) -> Result<(), GroupError> {
        let p = self
            .store
            .partition_of(group)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let leads = self.store.partition(p).is_ok_and(|part| part.is_leader());
        if !leads {
            return Err(GroupError::NotCoordinator {
                group: group.to_string(),
            });
        }
        if !self.inner.lock().loaded.contains(&p) {
            return Err(GroupError::LoadInProgress {
                group: group.to_string(),
            });
        }
        Ok(())
    }

    /// The node that coordinates `group` (the leader of its partition), for FindCoordinator.
    pub fn coordinator_of(&self, group: &str) -> Option<i32> {
        let p = self.store.partition_of(group)?;
        self.store.leader_of(p).filter(|leader| *leader >= 0)
    }

    /// Loads the partitions this node newly leads and forgets those it no longer leads.
    pub(super) fn sync_ownership(&self) {
        let Some(partitions) = self.store.partitions() else {
            return;
        };
        let hosted = self.store.hosted();
        let loaded = self.inner.lock().loaded.clone();
        for part in &hosted {
            let p = part.tp.partition;
            match (part.is_leader(), loaded.contains(&p)) {
                (true, false) => {
                    if let Err(e) = self.load_partition(part) {
                        tracing::warn!(tp = %part.tp, error = %e, "could not load groups; will retry");
                    }
                }
                (false, true) => self.unload(p, partitions),
                _ => {}
            }
        }
        let hosted: Vec<i32> = hosted.iter().map(|p| p.tp.partition).collect();
        for p in loaded.iter().filter(|p| !hosted.contains(p)) {
            self.unload(*p, partitions);
        }
    }

    /// Replays one `__consumer_offsets` partition into the coordinator's state.
    fn load_partition(&self, p: &Partition) -> Result<(), ReplicaError> {
        let now = now_ms();
        let mut inner = self.inner.lock();
        let replay = self.store.replay(p, &mut inner.offsets)?;
        let loaded = replay.groups.len() + replay.consumer.len();
        // Transactional offsets whose marker is still to come.
        for (pid, offsets) in replay.pending {
            inner.txn_offsets.entry(pid).or_default().extend(offsets);
        }
        for (id, snap) in replay.groups {
            if let Some(snap) = snap {
                inner.sm.insert(Group::restore(&id, snap, now));
            }
        }
        // KIP-848 consumer groups come back with their members, epochs and assignments.
        let topics = self.topics();
        for (id, records) in replay.consumer {
            let inner = &mut *inner;
            inner
                .consumer
                .restore(&id, records, &topics, &inner.consumer_cfg, now);
        }
        // Groups that only committed offsets (standalone consumers) are Empty groups.
        for id in inner.offsets.group_ids() {
            inner.sm.group_or_create(&id, now);
        }
        inner.loaded.insert(p.tp.partition);
        tracing::debug!(tp = %p.tp, records = replay.records, groups = loaded, "loaded __consumer_offsets partition");
        Ok(())
    }

    fn unload(&self, partition: i32, partitions: i32) {
        let mut inner = self.inner.lock();
        inner.loaded.remove(&partition);
        for pending in inner.txn_offsets.values_mut() {
            pending.retain(|(g, ..)| codec::partition_for(g, partitions) != partition);
        }
        inner.txn_offsets.retain(|_, v| !v.is_empty());
        inner
            .consumer
            .retain(|g| codec::partition_for(g, partitions) != partition);
        let mut ids: Vec<String> = inner.sm.groups().map(|g| g.id.clone()).collect();
        ids.extend(inner.offsets.group_ids());
        ids.sort();
        ids.dedup();
        let now = now_ms();
        let mut gone = 0;
        for id in ids
            .into_iter()
            .filter(|g| codec::partition_for(g, partitions) == partition)
        {
            // Pending joins and syncs are answered by the removal; nothing is written: the
            // new coordinator owns the partition now.
            let _ = inner.sm.remove(&id, now);
            for (t, p) in inner
                .offsets
                .all(&id)
                .into_iter()
                .map(|(t, p, _)| (t.to_string(), p))
                .collect::<Vec<_>>()
            {
                inner.offsets.remove(&id, &t, p);
            }
            gone += 1;
        }
        tracing::debug!(
            partition,
            groups = gone,
            "no longer coordinating this __consumer_offsets partition"
        );
    }
}
