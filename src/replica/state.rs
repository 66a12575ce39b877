//! One partition's replication state on this broker: its role (leader or follower, epochs,
//! replicas, ISR), the high watermark, and on a leader the progress of each follower.
//!
//! The rules are Kafka's:
//! - The leader's high watermark is the smallest log end offset among the ISR (its own
//!   included), and never goes back. A follower's is the leader's, capped at its own log end.
//! - A follower is *caught up* at a fetch whose offset reaches the leader's log end offset as it
//!   was at that follower's previous fetch; one that has not been caught up for
//!   `replica.lag.time.max.ms` leaves the ISR, and one that reaches the high watermark (re)joins
//!   it. ISR changes are proposed to the controller by `cluster`; this module only says which.
//!
//! Pure: the caller passes log end offsets and the clock, so the rules are tested without logs.

use std::collections::BTreeMap;

use strata_controller::PartitionMeta;

/// What a follower has shown the leader through its fetches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch.
    pub log_end: i64,
    /// When it last fetched up to the leader's log end (ms).
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at this follower's last fetch, and when that was.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

/// The replication state of one partition, as of the last applied metadata.
#[derive(Clone, Debug)]
pub struct ReplicaState {
    pub node_id: i32,
    pub meta: PartitionMeta,
    pub high_watermark: i64,
    /// Leader only: progress by follower id, reset when leadership changes.
    pub followers: BTreeMap<i32, FollowerProgress>,
    /// An ISR change was proposed and not yet seen in metadata: do not propose another.
    pub isr_change_pending: bool,
}

impl ReplicaState {
    /// A replica as opened: a leader gives its followers a full lag period from `now_ms`
    /// before it may drop them from the ISR.
    pub fn new(
        node_id: i32,
        meta: PartitionMeta,
        high_watermark: i64,
        now_ms: i64,
        log_end: i64,
    ) -> Self {
        let mut r = ReplicaState {
            node_id,
            meta,
            high_watermark,
            followers: BTreeMap::new(),
            isr_change_pending: false,
        };
        r.reset_followers(now_ms, log_end);
        r
    }

    /// Forgets follower progress; a leader starts every follower's lag clock at `now_ms`.
    fn reset_followers(&mut self, now_ms: i64, log_end: i64) {
        self.followers.clear();
        if !self.is_leader() {
            return;
        }
        for r in self.meta.replicas.iter().filter(|r| **r != self.node_id) {
            self.followers.insert(
                *r,
                FollowerProgress {
                    log_end: -1,
                    last_caught_up_ms: now_ms,
                    last_fetch_leader_end: log_end,
                    last_fetch_ms: now_ms,
                },
            );
        }
    }

    pub fn is_leader(&self) -> bool {
        self.meta.leader == self.node_id
    }

    /// Applies new metadata. Returns true when this broker's role or the leader epoch changed (a
    /// follower must then check its log against the leader's before fetching).
    pub fn update(&mut self, meta: PartitionMeta, now_ms: i64, log_end: i64) -> bool {
        let changed =
            meta.leader != self.meta.leader || meta.leader_epoch != self.meta.leader_epoch;
        if meta.partition_epoch != self.meta.partition_epoch {
            self.isr_change_pending = false;
        }
        // A follower that left the ISR must show fresh progress to rejoin it.
        for r in self.meta.isr.iter().filter(|r| !meta.isr.contains(r)) {
            if let Some(p) = self.followers.get_mut(r) {
                p.log_end = -1;
            }
        }
        self.meta = meta;
        if changed {
            // Followers get a full lag period to show up under the new leader.
            self.reset_followers(now_ms, log_end);
        }
        changed
    }

    /// A follower fetched at `fetch_offset` while the leader's log ended at `leader_end`.
    pub fn on_follower_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) {
        let p = self.followers.entry(follower).or_default();
        if fetch_offset >= leader_end {
            p.last_caught_up_ms = now_ms;
        } else if fetch_offset >= p.last_fetch_leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.log_end = fetch_offset;
        p.last_fetch_leader_end = leader_end;
        p.last_fetch_ms = now_ms;
    }

    /// Recomputes the leader's high watermark from the ISR; returns whether it advanced.
    pub fn advance_high_watermark(&mut self, leader_end: i64) -> bool {
        let mut hw = leader_end;
        for r in &self.meta.isr {
            if *r == self.node_id {
                continue;
            }
            match self.followers.get(r) {
                Some(p) if p.log_end >= 0 => hw = hw.min(p.log_end),
                _ => return false,
            }
        }
        if hw > self.high_watermark {
            self.high_watermark = hw;
            return true;
        }
        false
    }

    /// The ISR this leader wants now: laggards out, caught-up followers in. `None` when it is the
    /// current one (or a change is already on its way).
    pub fn wanted_isr(
        &self,
        now_ms: i64,
        lag_max_ms: i64,
        fenced: impl Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        if !self.is_leader() || self.isr_change_pending {
            return None;
        }
        let mut isr: Vec<i32> = self
            .meta
            .replicas
            .iter()
            .copied()
            .filter(|r| {
                if *r == self.node_id {
                    return true;
                }
                let Some(p) = self.followers.get(r) else {
                    return false;
                };
                if self.meta.isr.contains(r) {
                    now_ms - p.last_caught_up_ms <= lag_max_ms
                } else {
                    // Only a live broker that fetched up to the high watermark since it
                    // left (its progress is reset when it is fenced) may rejoin.
                    !fenced(*r) && p.log_end >= self.high_watermark && p.log_end >= 0
                }
            })
            .collect();
        isr.sort_unstable();
        let mut current = self.meta.isr.clone();
        current.sort_unstable();
        (isr != current).then_some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_state() -> ReplicaState {
        let meta = PartitionMeta::new(vec![1, 2, 3], |_| false);
        let mut s = ReplicaState::new(1, meta.clone(), 0, 0, 0);
        let mut next = meta;
        next.leader_epoch += 1;
        s.update(next, 0, 0);
        s
    }

    #[test]
    fn a_new_leader_keeps_followers_it_has_not_heard_from_yet() {
        let meta = PartitionMeta::new(vec![1, 2, 3], |_| false);
        let s = ReplicaState::new(1, meta, 0, 1_000, 0);
        assert_eq!(s.wanted_isr(1_000, 30_000, |_| false), None);
        assert_eq!(s.wanted_isr(31_001, 30_000, |_| false), Some(vec![1]));
    }

    #[test]
    fn high_watermark_is_the_smallest_isr_log_end() {
        let mut s = leader_state();
        assert!(
            !s.advance_high_watermark(10),
            "followers not heard from yet"
        );
        s.on_follower_fetch(2, 10, 10, 5);
        assert!(!s.advance_high_watermark(10));
        s.on_follower_fetch(3, 7, 10, 5);
        assert!(s.advance_high_watermark(10));
        assert_eq!(s.high_watermark, 7);
        // Never backwards.
        s.on_follower_fetch(3, 4, 10, 6);
        assert!(!s.advance_high_watermark(10));
        assert_eq!(s.high_watermark, 7);
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_returns() {
        let mut s = leader_state();
        s.on_follower_fetch(2, 0, 0, 1_000);
        s.on_follower_fetch(3, 0, 0, 1_000);
        assert_eq!(s.wanted_isr(1_000, 30_000, |_| false), None);
        // Follower 3 stops fetching; 2 keeps up.
        for t in [10_000, 20_000, 31_500] {
            s.on_follower_fetch(2, 50, 50, t);
        }
        assert_eq!(s.wanted_isr(31_500, 30_000, |_| false), Some(vec![1, 2]));
        let mut meta = s.meta.clone();
        meta.isr = vec![1, 2];
        meta.partition_epoch += 1;
        s.update(meta, 31_500, 50);
        s.advance_high_watermark(50);
        assert_eq!(s.high_watermark, 50);
        // 3 comes back below the high watermark: not yet; at it: in.
        s.on_follower_fetch(3, 20, 50, 32_000);
        assert_eq!(s.wanted_isr(32_000, 30_000, |_| false), None);
        s.on_follower_fetch(3, 50, 50, 32_100);
        assert_eq!(s.wanted_isr(32_100, 30_000, |_| false), Some(vec![1, 2, 3]));
        // Not while the controller has it fenced.
        assert_eq!(s.wanted_isr(32_100, 30_000, |b| b == 3), None);
    }

    #[test]
    fn a_slow_but_steady_follower_counts_as_caught_up() {
        let mut s = leader_state();
        // Each fetch reaches the leader's end as of the previous fetch.
        let mut end = 100;
        for t in (0..100_000).step_by(1_000) {
            s.on_follower_fetch(2, end - 100, end, t);
            s.on_follower_fetch(3, end, end, t);
            end += 100;
        }
        assert_eq!(s.wanted_isr(100_000, 30_000, |_| false), None);
    }
}
