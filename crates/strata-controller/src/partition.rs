//! Replicas and leadership of one partition, and the pure rules that change them.
//!
//! Owns: [`PartitionMeta`] (replicas, ISR, leader, epochs), [`assign_replicas`] (rack-aware
//! placement) and the election rules [`apply`](crate::image::apply) uses when a broker is fenced,
//! unfenced, or asks for an ISR change. Like `image`, nothing here does I/O or reads the clock.
//!
//! The rules follow Kafka's KRaft controller:
//! - A new leader is the first replica, in assignment order, that is in the ISR and not fenced.
//! - Fencing a broker removes it from every ISR it is in, except that the last ISR member stays
//!   (so the partition knows who has all committed data) while the partition has no leader.
//! - Every leader change bumps `leader_epoch`; every change at all bumps `partition_epoch`.
//! - An unclean election (only when asked) picks any unfenced replica and resets the ISR to it.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

/// "No leader": Kafka's `-1` in Metadata.
pub const NO_LEADER: i32 = -1;

/// One partition as the controller knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionMeta {
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas, a subset of `replicas`.
    pub isr: Vec<i32>,
    /// [`NO_LEADER`] when no ISR member is available.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change; `AlterPartition` must name the current one.
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (also in `replicas`), Kafka's `addingReplicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    /// Replicas a reassignment will remove once the adding ones are in sync (also in
    /// `replicas`), Kafka's `removingReplicas`. See [`crate::reassign`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionMeta {
    /// A new partition: every replica in sync, led by the first unfenced one.
    pub fn new(replicas: Vec<i32>, fenced: impl Fn(i32) -> bool) -> Self {
        let mut p = PartitionMeta {
            isr: replicas.clone(),
            replicas,
            leader: NO_LEADER,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        };
        p.leader = p.first_eligible(&fenced).unwrap_or(NO_LEADER);
        p
    }

    pub(crate) fn first_eligible(&self, fenced: &impl Fn(i32) -> bool) -> Option<i32> {
        self.replicas
            .iter()
            .copied()
            .find(|r| self.isr.contains(r) && !fenced(*r))
    }

    pub(crate) fn set_leader(&mut self, leader: i32) {
        if leader != self.leader {
            self.leader = leader;
            self.leader_epoch += 1;
        }
    }

    /// Replicas that are not in the ISR or are fenced, for Metadata's `offline_replicas`.
    pub fn offline(&self, fenced: impl Fn(i32) -> bool) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| fenced(*r))
            .collect()
    }

    /// `broker` was fenced (lost or shut down): leave the ISR and, if it led, hand over.
    /// Returns whether anything changed.
    pub fn on_fenced(&mut self, broker: i32, fenced: impl Fn(i32) -> bool) -> bool {
        let before = self.clone();
        if self.isr.len() > 1 {
            self.isr.retain(|r| *r != broker);
        }
        if self.leader == broker || self.leader == NO_LEADER {
            let next = self.first_eligible(&fenced).unwrap_or(NO_LEADER);
            self.set_leader(next);
        }
        self.bump_if_changed(&before)
    }

    /// A replica is back: a leaderless partition gets the first in-sync one that is alive.
    pub fn on_unfenced(&mut self, fenced: impl Fn(i32) -> bool) -> bool {
        let before = self.clone();
        if self.leader == NO_LEADER {
            let next = self.first_eligible(&fenced).unwrap_or(NO_LEADER);
            self.set_leader(next);
        }
        self.bump_if_changed(&before)
    }

    /// `broker` registered again: it restarted, maybe with an empty disk (a replaced node), so
    /// nothing says it still holds what it acknowledged. Like Kafka's broker epochs (KIP-903),
    /// it leaves the ISR, and hands leadership to another live in-sync replica, until its leader
    /// sees it caught up. The last ISR member stays (nobody else has the committed data).
    pub fn on_reregistered(&mut self, broker: i32, fenced: impl Fn(i32) -> bool) -> bool {
        let before = self.clone();
        if self.isr.len() > 1 {
            self.isr.retain(|r| *r != broker);
        }
        if self.leader == NO_LEADER || !self.isr.contains(&self.leader) {
            let next = self.first_eligible(&fenced).unwrap_or(NO_LEADER);
            self.set_leader(next);
        }
        self.bump_if_changed(&before)
    }

    /// Preferred leader election: the first replica, if it is in sync and unfenced.
    pub fn elect_preferred(&mut self, fenced: impl Fn(i32) -> bool) -> Result<bool, ElectError> {
        let preferred = self.replicas[0];
        if self.leader == preferred {
            return Ok(false);
        }
        if !self.isr.contains(&preferred) || fenced(preferred) {
            return Err(ElectError::PreferredNotAvailable { preferred });
        }
        let before = self.clone();
        self.set_leader(preferred);
        Ok(self.bump_if_changed(&before))
    }

    /// Unclean election of a leaderless partition: any unfenced replica, which becomes the whole
    /// ISR (records only the old ISR had may be lost; that is what the setting allows).
    pub fn elect_unclean(&mut self, fenced: impl Fn(i32) -> bool) -> Result<bool, ElectError> {
        if self.leader != NO_LEADER {
            return Ok(false);
        }
        let Some(next) = self.replicas.iter().copied().find(|r| !fenced(*r)) else {
            return Err(ElectError::NoLiveReplica);
        };
        let before = self.clone();
        self.isr = vec![next];
        self.set_leader(next);
        Ok(self.bump_if_changed(&before))
    }

    pub(crate) fn bump_if_changed(&mut self, before: &PartitionMeta) -> bool {
        let changed = *self != *before;
        if changed {
            self.partition_epoch += 1;
        }
        changed
    }
}

/// Why an election was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ElectError {
    #[error("the preferred replica {preferred} is not in sync or not alive")]
    PreferredNotAvailable { preferred: i32 },
    #[error("no replica is alive")]
    NoLiveReplica,
}

/// Checks one replica list of a manual assignment: non-empty, registered brokers, no repeats.
pub fn check_replica_list(
    replicas: &[i32],
    registered: impl Fn(i32) -> bool,
) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("a replica list is empty".into());
    }
    if let Some(b) = replicas.iter().find(|b| !registered(**b)) {
        return Err(format!("broker {b} is not registered"));
    }
    let mut distinct = replicas.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != replicas.len() {
        return Err(format!("{replicas:?} names a broker twice"));
    }
    Ok(())
}

/// Rack-aware replica placement, as Kafka's: brokers are ordered so that racks alternate, partition
/// `p`'s first replica is the `(start + p)`-th broker of that order, and its followers are the next
/// brokers in the order, so replicas of one partition land in different racks while there are
/// racks left. `brokers` maps id -> rack; `start` spreads leaders of different topics (the proposer
/// draws it). Returns `None` when `replication_factor` exceeds the brokers given.
pub fn assign_replicas(
    brokers: &BTreeMap<i32, Option<String>>,
    partitions: std::ops::Range<i32>,
    replication_factor: usize,
    start: usize,
) -> Option<Vec<Vec<i32>>> {
    if replication_factor == 0 || replication_factor > brokers.len() {
        return None;
    }
    let order = rack_alternating(brokers);
    let n = order.len();
    let rack_count = brokers.values().collect::<BTreeSet<_>>().len();
    Some(
        partitions
            .map(|p| {
                let first = (start + p as usize) % n;
                // Shift followers by one more each time round the order, as Kafka does, so that
                // the same pairs of brokers do not always replicate each other.
                let shift = 1 + (p as usize / n) % (n - 1).max(1);
                let mut replicas = vec![order[first]];
                // Walk the order from `first + shift`: take brokers in racks not used yet, and any
                // unused broker once every rack holds a replica.
                while replicas.len() < replication_factor {
                    let used: BTreeSet<&Option<String>> =
                        replicas.iter().map(|b| &brokers[b]).collect();
                    let any_rack = used.len() >= rack_count;
                    let pick = (0..n).map(|k| order[(first + shift + k) % n]).find(|b| {
                        !replicas.contains(b) && (any_rack || !used.contains(&&brokers[b]))
                    });
                    match pick {
                        Some(b) => replicas.push(b),
                        None => break,
                    }
                }
                replicas
            })
            .collect(),
    )
}

/// Brokers ordered rack by rack in turn: `{a: [1, 2], b: [3]}` -> `[1, 3, 2]`.
fn rack_alternating(brokers: &BTreeMap<i32, Option<String>>) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack
            .entry(rack.as_deref().unwrap_or(""))
            .or_default()
            .push(*id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
        round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[(i32, Option<&str>)]) -> BTreeMap<i32, Option<String>> {
        racks
            .iter()
            .map(|(id, r)| (*id, r.map(str::to_string)))
            .collect()
    }

    #[test]
    fn placement_spreads_leaders_and_racks() {
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        let a = assign_replicas(&b, 0..8, 2, 0).unwrap();
        for replicas in &a {
            assert_eq!(replicas.len(), 2);
            let racks: Vec<_> = replicas.iter().map(|r| b[r].clone()).collect();
            assert_ne!(racks[0], racks[1], "{replicas:?} share a rack");
        }
        // Every broker leads the same number of partitions.
        for id in 1..=4 {
            assert_eq!(a.iter().filter(|r| r[0] == id).count(), 2);
        }
        assert!(assign_replicas(&b, 0..1, 5, 0).is_none());
        assert!(assign_replicas(&b, 0..1, 0, 0).is_none());
    }

    #[test]
    fn placement_without_racks_has_distinct_replicas() {
        let b = brokers(&[(1, None), (2, None), (3, None)]);
        for start in 0..3 {
            for r in assign_replicas(&b, 0..12, 3, start).unwrap() {
                let mut s = r.clone();
                s.sort();
                s.dedup();
                assert_eq!(s.len(), 3, "{r:?}");
            }
        }
    }

    #[test]
    fn fencing_the_leader_elects_the_next_in_sync_replica() {
        let mut fenced = vec![];
        let mut p = PartitionMeta::new(vec![1, 2, 3], |_| false);
        assert_eq!((p.leader, p.leader_epoch), (1, 0));
        fenced.push(1);
        assert!(p.on_fenced(1, |b| fenced.contains(&b)));
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (2, 1, vec![2, 3])
        );
        // A fenced follower leaves the ISR; the leader stays.
        fenced.push(3);
        assert!(p.on_fenced(3, |b| fenced.contains(&b)));
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (2, 1, vec![2]));
        // The last ISR member stays in the ISR without a leader.
        fenced.push(2);
        assert!(p.on_fenced(2, |b| fenced.contains(&b)));
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![2]));
        // Broker 1 is back but not in sync: still no leader. Broker 2 back: it leads.
        fenced.retain(|b| *b != 1);
        assert!(!p.on_unfenced(|b| fenced.contains(&b)));
        fenced.retain(|b| *b != 2);
        assert!(p.on_unfenced(|b| fenced.contains(&b)));
        assert_eq!((p.leader, p.leader_epoch), (2, 3));
    }

    #[test]
    fn unclean_and_preferred_elections() {
        let mut p = PartitionMeta::new(vec![1, 2], |_| false);
        p.on_fenced(2, |b| b == 2);
        p.on_fenced(1, |b| b == 1 || b == 2);
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        // Broker 2 is back but was out of sync: only an unclean election makes it lead.
        assert_eq!(
            p.elect_preferred(|b| b == 1),
            Err(ElectError::PreferredNotAvailable { preferred: 1 })
        );
        assert!(p.elect_unclean(|b| b == 1).unwrap());
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        p.isr = vec![2, 1];
        assert!(p.elect_preferred(|_| false).unwrap());
        assert_eq!(p.leader, 1);
        assert!(!p.elect_preferred(|_| false).unwrap());
    }
}
