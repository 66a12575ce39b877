//! Which compacted log to clean next, as Kafka's `LogCleanerManager` decides: pure, from the
//! candidates' dirty ratios and the clock, so it is tested with scripted instants.
//!
//! A log is due when its dirty ratio reaches `min.cleanable.dirty.ratio`, or when its
//! oldest dirty record is older than `max.compaction.lag.ms` (KIP-354); logs past their max
//! lag go first, then the dirtiest. A log being cleaned is not offered to another thread. A
//! pass that failed marks its log uncleanable, with the reason, until the backoff has
//! passed: reads and writes go on, and the next attempt starts from what is on disk.

use std::collections::{BTreeMap, BTreeSet};

use crate::replica::TopicPartition;

/// One compacted log as the scheduler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub tp: TopicPartition,
    pub dirty_ratio: f64,
    pub dirty_bytes: u64,
    /// `min.cleanable.dirty.ratio` of its topic.
    pub min_ratio: f64,
    /// The timestamp of the first dirty batch, if any.
    pub first_dirty_timestamp: Option<i64>,
    /// `max.compaction.lag.ms` of its topic.
    pub max_lag_ms: i64,
}

impl Candidate {
    /// Milliseconds past its max compaction lag at `now_ms` (`None` if not past it).
    fn overdue(&self, now_ms: i64) -> Option<i64> {
        let first = self.first_dirty_timestamp?;
        let due = first.saturating_add(self.max_lag_ms);
        (self.dirty_bytes > 0 && now_ms >= due).then(|| now_ms - due)
    }

    fn due(&self, now_ms: i64) -> bool {
        (self.dirty_bytes > 0 && self.dirty_ratio >= self.min_ratio)
            || self.overdue(now_ms).is_some()
    }
}

/// Why a log is not cleaned for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uncleanable {
    pub reason: String,
    pub since_ms: i64,
    pub retry_at_ms: i64,
}

#[derive(Default)]
pub struct Schedule {
    in_progress: BTreeSet<TopicPartition>,
    uncleanable: BTreeMap<TopicPartition, Uncleanable>,
}

impl Schedule {
    /// The log to clean next among `candidates`, marked in progress; `None` when none is due.
    pub fn pick(&mut self, now_ms: i64, candidates: &[Candidate]) -> Option<TopicPartition> {
        let best = candidates
            .iter()
            .filter(|c| !self.in_progress.contains(&c.tp))
            .filter(|c| {
                self.uncleanable
                    .get(&c.tp)
                    .is_none_or(|u| now_ms >= u.retry_at_ms)
            })
            .filter(|c| c.due(now_ms))
            // Past the max lag first (the most overdue), then the dirtiest.
            .max_by(|a, b| {
                let key = |c: &Candidate| (c.overdue(now_ms).unwrap_or(-1), c.dirty_ratio);
                let (ka, kb) = (key(a), key(b));
                ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
            })?;
        self.in_progress.insert(best.tp.clone());
        Some(best.tp.clone())
    }

    /// A pass of `tp` ended without error (cleaned, nothing to clean, or aborted).
    pub fn done(&mut self, tp: &TopicPartition) {
        self.in_progress.remove(tp);
        self.uncleanable.remove(tp);
    }

    /// A pass of `tp` failed: it is uncleanable until `backoff_ms` from now.
    pub fn failed(&mut self, tp: &TopicPartition, reason: String, now_ms: i64, backoff_ms: i64) {
        self.in_progress.remove(tp);
        let since_ms = self.uncleanable.get(tp).map_or(now_ms, |u| u.since_ms);
        self.uncleanable.insert(
            tp.clone(),
            Uncleanable {
                reason,
                since_ms,
                retry_at_ms: now_ms.saturating_add(backoff_ms.max(0)),
            },
        );
    }

    /// Forgets logs no longer hosted here (deleted topics).
    pub fn retain(&mut self, hosted: impl Fn(&TopicPartition) -> bool) {
        self.uncleanable.retain(|tp, _| hosted(tp));
    }

    pub fn uncleanable(&self, tp: &TopicPartition) -> Option<&Uncleanable> {
        self.uncleanable.get(tp)
    }

    pub fn uncleanable_count(&self) -> usize {
        self.uncleanable.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    fn candidate(p: i32, ratio: f64, first_dirty: Option<i64>, max_lag: i64) -> Candidate {
        Candidate {
            tp: tp(p),
            dirty_ratio: ratio,
            dirty_bytes: if ratio > 0.0 { 1000 } else { 0 },
            min_ratio: 0.5,
            first_dirty_timestamp: first_dirty,
            max_lag_ms: max_lag,
        }
    }

    #[test]
    fn the_dirtiest_due_log_goes_first_and_is_not_offered_twice() {
        let mut s = Schedule::default();
        let logs = [
            candidate(0, 0.6, Some(0), i64::MAX),
            candidate(1, 0.9, Some(0), i64::MAX),
            candidate(2, 0.4, Some(0), i64::MAX),
        ];
        assert_eq!(s.pick(100, &logs), Some(tp(1)));
        assert_eq!(s.pick(100, &logs), Some(tp(0)));
        // Below min.cleanable.dirty.ratio and not past its max lag: not due.
        assert_eq!(s.pick(100, &logs), None);
        s.done(&tp(1));
        assert_eq!(s.pick(100, &logs), Some(tp(1)));
    }

    #[test]
    fn a_log_past_its_max_compaction_lag_is_due_whatever_its_ratio_and_goes_first() {
        let mut s = Schedule::default();
        let logs = [
            candidate(0, 0.9, Some(0), i64::MAX),
            candidate(1, 0.1, Some(1_000), 5_000),
        ];
        // At 5_999 partition 1 is not overdue yet (its first dirty record is 4_999 ms old).
        assert_eq!(s.pick(5_999, &logs), Some(tp(0)));
        s.done(&tp(0));
        assert_eq!(s.pick(6_000, &logs), Some(tp(1)));
        // Nothing dirty: never due, even "past" its lag.
        let clean = [candidate(2, 0.0, Some(0), 1)];
        assert_eq!(s.pick(10_000, &clean), None);
    }

    #[test]
    fn a_failed_log_waits_for_the_backoff_then_is_retried_and_cleared_by_success() {
        let mut s = Schedule::default();
        let logs = [candidate(0, 0.9, Some(0), i64::MAX)];
        assert_eq!(s.pick(0, &logs), Some(tp(0)));
        s.failed(&tp(0), "disk full".into(), 0, 15_000);
        assert_eq!(
            s.uncleanable(&tp(0)).map(|u| u.reason.as_str()),
            Some("disk full")
        );
        assert_eq!(s.pick(14_999, &logs), None);
        assert_eq!(s.pick(15_000, &logs), Some(tp(0)));
        s.failed(&tp(0), "disk full again".into(), 15_000, 15_000);
        // The first failure's time is kept while it stays uncleanable.
        assert_eq!(s.uncleanable(&tp(0)).map(|u| u.since_ms), Some(0));
        assert_eq!(s.pick(30_000, &logs), Some(tp(0)));
        s.done(&tp(0));
        assert_eq!(s.uncleanable_count(), 0);
    }
}
