//! Exactly once into the table: which remote segments still need writing, decided from the
//! table's own record of what it holds. Pure: no I/O, no clock.
//!
//! Every snapshot Strata commits carries, in its summary, the next offset committed for
//! every partition of the topic (`strata.committed-offsets`, a JSON object
//! `{"<partition>": next_offset}`), carried forward from its parent snapshot. The current
//! snapshot therefore says everything: a segment whose end is at or below its partition's
//! committed offset is already in the table. A writer that crashed after uploading Parquet
//! files but before committing, or that lost leadership, leaves the offsets unchanged, so
//! the next writer writes the segment again (the earlier files are orphans, never in a
//! snapshot); one that committed moved them, so nobody writes it twice.

use std::collections::{BTreeMap, HashMap};

/// Summary property: next committed offset of every partition (JSON object).
pub const COMMITTED_OFFSETS: &str = "strata.committed-offsets";
/// Summary property: the partition this snapshot appended.
pub const PARTITION: &str = "strata.partition";
/// Summary property: the offsets this snapshot appended, `from-next` (next exclusive).
pub const OFFSETS: &str = "strata.offsets";

/// Why a snapshot summary could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("snapshot summary property {COMMITTED_OFFSETS} is not a JSON object of partition -> offset ({0}); the table was changed by something other than Strata")]
pub struct SummaryError(String);

/// The next offset committed for each partition: what the table holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed(BTreeMap<i32, i64>);

impl Committed {
    /// From the current snapshot's summary properties (none: an empty table).
    pub fn from_summary(props: Option<&HashMap<String, String>>) -> Result<Self, SummaryError> {
        let Some(raw) = props.and_then(|p| p.get(COMMITTED_OFFSETS)) else {
            return Ok(Self::default());
        };
        let map: BTreeMap<String, i64> =
            serde_json::from_str(raw).map_err(|e| SummaryError(e.to_string()))?;
        map.into_iter()
            .map(|(p, o)| {
                Ok((
                    p.parse().map_err(|_| SummaryError(format!("key {p:?}")))?,
                    o,
                ))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The next offset committed for `partition`, if any of it was.
    pub fn next(&self, partition: i32) -> Option<i64> {
        self.0.get(&partition).copied()
    }

    /// The summary properties of a snapshot that appends `step` of `partition` on top of
    /// this state.
    pub fn summary_after(&self, partition: i32, step: &Step) -> HashMap<String, String> {
        let mut next = self.0.clone();
        next.insert(partition, step.next_offset);
        let json: BTreeMap<String, i64> = next.iter().map(|(p, o)| (p.to_string(), *o)).collect();
        HashMap::from([
            (
                COMMITTED_OFFSETS.to_string(),
                serde_json::to_string(&json).unwrap_or_default(),
            ),
            (PARTITION.to_string(), partition.to_string()),
            (
                OFFSETS.to_string(),
                format!("{}-{}", step.from, step.next_offset),
            ),
        ])
    }
}

/// A remote segment of the partition: `[base_offset, next_offset)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub base_offset: i64,
    pub next_offset: i64,
}

/// One segment to write: its records from `from` on (the segment's base, or the committed
/// offset when part of it is already in the table), up to `next_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub base_offset: i64,
    pub next_offset: i64,
    pub from: i64,
}

/// The segments of a partition still to write, oldest first, at most `max` of them.
/// `segments` is the partition manifest's list (in offset order). Segments below the first
/// remote one (expired by retention before the table caught up) cannot be written: the
/// table starts where the remote tier does.
pub fn plan(committed: Option<i64>, segments: &[Span], max: usize) -> Vec<Step> {
    let done = committed.unwrap_or(i64::MIN);
    segments
        .iter()
        .filter(|s| s.next_offset > done && s.next_offset > s.base_offset)
        .take(max)
        .map(|s| Step {
            base_offset: s.base_offset,
            next_offset: s.next_offset,
            from: done.max(s.base_offset),
        })
        .collect()
}

/// What to do when a commit of `step` lost a race (another writer committed first): the
/// table, reloaded, now holds `committed` for the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterConflict {
    /// The other writer committed other partitions only: commit the same files again on
    /// top of the new snapshot.
    Retry,
    /// The other writer committed this step (or beyond): nothing to do; the files written
    /// are orphans.
    AlreadyCommitted,
    /// The other writer committed part of this step: plan again from the table.
    Replan,
}

/// Decides after a lost commit race; see [`AfterConflict`]. Retrying is right only when
/// the table holds the partition exactly up to where the step starts (or holds nothing of
/// it): the new snapshot's summary says the partition is committed up to the step's end,
/// so a table that ends below the step (a gap: a commit of this partition that a
/// last-writer-wins catalog let another writer overwrite, or remote retention that ran
/// ahead of the table) is planned again instead, never skipped.
pub fn after_conflict(committed: Option<i64>, step: &Step) -> AfterConflict {
    match committed {
        Some(done) if done >= step.next_offset => AfterConflict::AlreadyCommitted,
        Some(done) if done == step.from => AfterConflict::Retry,
        None if step.from == step.base_offset => AfterConflict::Retry,
        _ => AfterConflict::Replan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(v: &[(i64, i64)]) -> Vec<Span> {
        v.iter()
            .map(|&(base_offset, next_offset)| Span {
                base_offset,
                next_offset,
            })
            .collect()
    }

    #[test]
    fn empty_table_writes_every_segment_from_its_base() {
        let s = spans(&[(0, 10), (10, 25)]);
        assert_eq!(
            plan(None, &s, 10),
            vec![
                Step {
                    base_offset: 0,
                    next_offset: 10,
                    from: 0
                },
                Step {
                    base_offset: 10,
                    next_offset: 25,
                    from: 10
                },
            ]
        );
        assert_eq!(plan(None, &s, 1).len(), 1);
    }

    #[test]
    fn committed_segments_are_skipped_and_a_partial_one_resumes() {
        let s = spans(&[(0, 10), (10, 25), (25, 30)]);
        assert_eq!(
            plan(Some(25), &s, 10),
            vec![Step {
                base_offset: 25,
                next_offset: 30,
                from: 25
            }]
        );
        // A compaction merged segments: the table holds up to 15 of the merged one.
        let merged = spans(&[(0, 25), (25, 30)]);
        assert_eq!(
            plan(Some(15), &merged, 10)[0],
            Step {
                base_offset: 0,
                next_offset: 25,
                from: 15
            }
        );
        assert!(plan(Some(30), &s, 10).is_empty());
        // Remote retention ran ahead of the table: start at the first remote segment.
        assert_eq!(plan(Some(3), &spans(&[(10, 20)]), 10)[0].from, 10);
        // Empty spans are never planned.
        assert!(plan(None, &spans(&[(5, 5)]), 10).is_empty());
    }

    #[test]
    fn summary_round_trips_and_carries_other_partitions() {
        let c = Committed::from_summary(None).unwrap();
        let step = Step {
            base_offset: 0,
            next_offset: 10,
            from: 0,
        };
        let props = c.summary_after(3, &step);
        assert_eq!(props[OFFSETS], "0-10");
        assert_eq!(props[PARTITION], "3");
        let c = Committed::from_summary(Some(&props)).unwrap();
        assert_eq!(c.next(3), Some(10));
        let props = c.summary_after(
            1,
            &Step {
                base_offset: 4,
                next_offset: 7,
                from: 5,
            },
        );
        let c = Committed::from_summary(Some(&props)).unwrap();
        assert_eq!((c.next(1), c.next(3), c.next(0)), (Some(7), Some(10), None));
        let bad = HashMap::from([(COMMITTED_OFFSETS.to_string(), "[1]".to_string())]);
        assert!(Committed::from_summary(Some(&bad)).is_err());
    }

    #[test]
    fn conflicts_retry_skip_or_replan() {
        let step = Step {
            base_offset: 10,
            next_offset: 20,
            from: 10,
        };
        assert_eq!(after_conflict(None, &step), AfterConflict::Retry);
        assert_eq!(after_conflict(Some(10), &step), AfterConflict::Retry);
        assert_eq!(
            after_conflict(Some(20), &step),
            AfterConflict::AlreadyCommitted
        );
        assert_eq!(after_conflict(Some(15), &step), AfterConflict::Replan);
        // The table ends below the step: what it had of the partition was overwritten
        // (or retention ran ahead): plan again rather than claim offsets never written.
        assert_eq!(after_conflict(Some(5), &step), AfterConflict::Replan);
    }
}
