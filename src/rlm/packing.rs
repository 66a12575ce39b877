//! Where a remote pass writes the batches it keeps: the pure decisions of the rewrite (which
//! cleaned segments to write, where each starts and ends, which replaced segments stay as
//! they are), fed with what the pass meets in offset order and answering with [`Step`]s the
//! pass performs. Tested with scripted events below.
//!
//! The rules:
//! - Outputs cover the rewritten run exactly: the first starts at the run's start, each next
//!   one where the previous ends, the last ends at the run's end; offsets a pass removed stay
//!   inside the output around them (a compacted segment may start before its first batch and
//!   end after its last), so no output is empty unless nothing at all is kept after the
//!   previous one.
//! - An output rolls before a kept batch that no longer fits it (`segment.bytes`, index room,
//!   32-bit relative offsets; the pass's writer says), at that batch's base offset.
//! - A large input segment (at least half of `segment.bytes`) starts a new output at its own
//!   base when its first batch is kept and the output being written holds at least half of
//!   `segment.bytes`, so that a segment nothing changed in can keep its object; otherwise its
//!   batches go into the output being written, as those of smaller segments do, so that
//!   cleaned-down segments merge.
//! - A segment keeps its object (no upload) when none of its batches changed, its output
//!   started at its base and holds exactly it, and that output would hold nothing else: the
//!   segment is large, or the next one is (or there is none).

/// What the pass does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Seal the current output as ending at `next` and upload it.
    Finish { next: i64 },
    /// Start a new output at `base`.
    Start { base: i64 },
    /// Write the batch into the current output.
    Write,
    /// Discard the current output (it holds exactly the segment just read) and keep the
    /// segment's own object.
    KeepSegment,
}

#[derive(Clone, Copy, Debug)]
struct Current {
    size: u64,
    /// The segment at whose base it started, if it did.
    started_at: Option<i64>,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    base: i64,
    next: i64,
    size: u64,
    /// It would be alone in its output (see the module docs).
    alone: bool,
    changed: bool,
}

pub(super) struct Packer {
    half: u64,
    /// Where the next output starts.
    next_base: i64,
    cur: Option<Current>,
    /// A large segment's base: a new output starts there at its first kept batch.
    pending: Option<i64>,
    seg: Option<Segment>,
}

impl Packer {
    /// A rewrite of a run starting at `start`, into segments of `segment_bytes`.
    pub(super) fn new(start: i64, segment_bytes: u64) -> Packer {
        Packer {
            half: (segment_bytes / 2).max(1),
            next_base: start,
            cur: None,
            pending: None,
            seg: None,
        }
    }

    /// The pass starts reading the segment `[base, next)` of `size` bytes; `next_size` is
    /// the size of the segment after it in the run, if any.
    pub(super) fn begin_segment(
        &mut self,
        base: i64,
        next: i64,
        size: u64,
        next_size: Option<u64>,
    ) {
        let large = size >= self.half;
        self.pending = large.then_some(base);
        self.seg = Some(Segment {
            base,
            next,
            size,
            alone: large || next_size.is_none_or(|n| n >= self.half),
            changed: false,
        });
    }

    /// A batch of the segment was dropped.
    pub(super) fn dropped(&mut self) {
        if let Some(s) = self.seg.as_mut() {
            s.changed = true;
        }
    }

    /// A kept batch at `base_offset` of `len` bytes (`rewritten`: not as it was stored);
    /// `fits`: the current output, if any, can take it.
    pub(super) fn kept(
        &mut self,
        base_offset: i64,
        len: u64,
        rewritten: bool,
        fits: bool,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let seg_base = self.seg.map(|s| s.base);
        if let Some(s) = self.seg.as_mut() {
            s.changed |= rewritten;
        }
        match (self.cur, self.pending.take()) {
            (Some(c), Some(p)) if c.size >= self.half => {
                self.finish(p, &mut steps);
                self.start(p, Some(p), &mut steps);
            }
            (None, _) => {
                let base = self.next_base;
                self.start(base, (Some(base) == seg_base).then_some(base), &mut steps);
            }
            _ => {}
        }
        if self.cur.is_some_and(|c| c.size > 0) && !fits {
            self.finish(base_offset, &mut steps);
            let at_base = (Some(base_offset) == seg_base).then_some(base_offset);
            self.start(base_offset, at_base, &mut steps);
        }
        if let Some(c) = self.cur.as_mut() {
            c.size += len;
        }
        steps.push(Step::Write);
        steps
    }

    /// The segment begun last was read to its end.
    pub(super) fn end_segment(&mut self) -> Vec<Step> {
        let Some(s) = self.seg.take() else {
            return Vec::new();
        };
        let whole = self
            .cur
            .is_some_and(|c| c.started_at == Some(s.base) && c.size == s.size);
        if s.alone && !s.changed && whole {
            self.cur = None;
            self.next_base = s.next;
            return vec![Step::KeepSegment];
        }
        Vec::new()
    }

    /// The run, ending at `end`, was read: the last output ends there.
    pub(super) fn end_run(&mut self, end: i64) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.cur.is_none() && self.next_base < end {
            let base = self.next_base;
            self.start(base, None, &mut steps);
        }
        if self.cur.is_some() {
            self.finish(end, &mut steps);
        }
        steps
    }

    fn finish(&mut self, next: i64, steps: &mut Vec<Step>) {
        self.cur = None;
        self.next_base = next;
        steps.push(Step::Finish { next });
    }

    fn start(&mut self, base: i64, started_at: Option<i64>, steps: &mut Vec<Step>) {
        self.cur = Some(Current {
            size: 0,
            started_at,
        });
        steps.push(Step::Start { base });
    }
}

#[cfg(test)]
mod tests {
    use super::Step::{self, *};
    use super::*;

    /// Feeds a segment `[base, next)` of `size` bytes whose batches are `(offset, len,
    /// verdict)`: 'k' kept, 'r' rewritten, 'd' dropped; `fits` answers whether a batch still
    /// fits the current output of `size` bytes (by a 1000-byte `segment.bytes`).
    fn segment(
        p: &mut Packer,
        (base, next, size): (i64, i64, u64),
        next_size: Option<u64>,
        batches: &[(i64, u64, char)],
        out_size: &mut u64,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        p.begin_segment(base, next, size, next_size);
        for &(offset, len, v) in batches {
            if v == 'd' {
                p.dropped();
                continue;
            }
            let s = p.kept(offset, len, v == 'r', *out_size + len <= 1000);
            for step in &s {
                match step {
                    Start { .. } => *out_size = 0,
                    Write => *out_size += len,
                    _ => {}
                }
            }
            steps.extend(s);
        }
        steps.extend(p.end_segment());
        steps
    }

    #[test]
    fn unchanged_large_segments_keep_their_objects() {
        let mut p = Packer::new(0, 1000);
        let mut out = 0;
        let a = segment(
            &mut p,
            (0, 10, 600),
            Some(700),
            &[(0, 300, 'k'), (5, 300, 'k')],
            &mut out,
        );
        assert_eq!(a, vec![Start { base: 0 }, Write, Write, KeepSegment]);
        let b = segment(&mut p, (10, 20, 700), None, &[(12, 700, 'k')], &mut out);
        assert_eq!(b, vec![Start { base: 10 }, Write, KeepSegment]);
        assert_eq!(p.end_run(20), vec![]);
    }

    #[test]
    fn small_segments_merge_and_an_output_rolls_at_the_batch_that_does_not_fit_it() {
        let mut p = Packer::new(0, 1000);
        let mut out = 0;
        let mut steps = segment(&mut p, (0, 10, 400), Some(400), &[(0, 400, 'k')], &mut out);
        steps.extend(segment(
            &mut p,
            (10, 20, 400),
            Some(400),
            &[(10, 400, 'k')],
            &mut out,
        ));
        steps.extend(segment(
            &mut p,
            (20, 30, 400),
            None,
            &[(20, 400, 'k')],
            &mut out,
        ));
        assert_eq!(
            steps,
            vec![
                Start { base: 0 },
                Write,
                Write,
                Finish { next: 20 },
                Start { base: 20 },
                Write,
                KeepSegment,
            ]
        );
        assert_eq!(p.end_run(30), vec![]);
    }

    #[test]
    fn what_cleaning_emptied_stays_inside_the_outputs_around_it() {
        let mut p = Packer::new(0, 1000);
        let mut out = 0;
        // Leading segment all dropped: the first output still starts at the run's start.
        let mut steps = segment(&mut p, (0, 10, 600), Some(600), &[(0, 600, 'd')], &mut out);
        steps.extend(segment(
            &mut p,
            (10, 20, 600),
            Some(600),
            &[(10, 100, 'd'), (15, 500, 'k')],
            &mut out,
        ));
        // A large segment all dropped after a non-empty output: no empty output for it.
        steps.extend(segment(
            &mut p,
            (20, 30, 600),
            Some(600),
            &[(20, 600, 'd')],
            &mut out,
        ));
        // A large one partly kept starts its own output at its base (the one before holds
        // half of segment.bytes).
        steps.extend(segment(
            &mut p,
            (30, 40, 600),
            None,
            &[(30, 200, 'r'), (35, 400, 'd')],
            &mut out,
        ));
        steps.extend(p.end_run(40));
        assert_eq!(
            steps,
            vec![
                Start { base: 0 },
                Write,
                Finish { next: 30 },
                Start { base: 30 },
                Write,
                Finish { next: 40 },
            ]
        );
    }

    #[test]
    fn an_unchanged_small_segment_keeps_its_object_only_when_alone() {
        let mut p = Packer::new(0, 1000);
        let mut out = 0;
        // Small, followed by a large one: alone in its output.
        let a = segment(&mut p, (0, 10, 100), Some(800), &[(0, 100, 'k')], &mut out);
        assert_eq!(a, vec![Start { base: 0 }, Write, KeepSegment]);
        // Small, followed by a small one: merged.
        let b = segment(
            &mut p,
            (10, 20, 800),
            Some(100),
            &[(10, 800, 'r')],
            &mut out,
        );
        let c = segment(
            &mut p,
            (20, 30, 100),
            Some(100),
            &[(20, 100, 'k')],
            &mut out,
        );
        let d = segment(&mut p, (30, 40, 100), None, &[(30, 100, 'k')], &mut out);
        assert_eq!(b, vec![Start { base: 10 }, Write]);
        assert_eq!((c, d), (vec![Write], vec![Write]));
        assert_eq!(p.end_run(40), vec![Finish { next: 40 }]);
    }

    #[test]
    fn after_a_kept_segment_a_dropped_tail_becomes_one_empty_output() {
        let mut p = Packer::new(0, 1000);
        let mut out = 0;
        let a = segment(&mut p, (0, 10, 700), Some(700), &[(0, 700, 'k')], &mut out);
        assert_eq!(a.last(), Some(&KeepSegment));
        let b = segment(&mut p, (10, 20, 700), None, &[(10, 700, 'd')], &mut out);
        assert!(b.is_empty());
        assert_eq!(p.end_run(20), vec![Start { base: 10 }, Finish { next: 20 }]);
    }

    #[test]
    fn a_large_segment_joins_an_output_less_than_half_full() {
        let mut p = Packer::new(0, 1000);
        let mut out = 0;
        let mut steps = segment(&mut p, (0, 10, 600), Some(600), &[(0, 300, 'r')], &mut out);
        steps.extend(segment(
            &mut p,
            (10, 20, 600),
            None,
            &[(10, 600, 'k')],
            &mut out,
        ));
        steps.extend(p.end_run(20));
        assert_eq!(
            steps,
            vec![Start { base: 0 }, Write, Write, Finish { next: 20 }]
        );
    }

    #[test]
    fn a_large_segment_starts_its_own_output_after_one_at_least_half_full() {
        let mut p = Packer::new(0, 1000);
        let mut out = 0;
        let mut steps = segment(&mut p, (0, 10, 600), Some(600), &[(0, 600, 'r')], &mut out);
        steps.extend(segment(
            &mut p,
            (10, 20, 600),
            None,
            &[(10, 600, 'k')],
            &mut out,
        ));
        assert_eq!(
            steps,
            vec![
                Start { base: 0 },
                Write,
                Finish { next: 10 },
                Start { base: 10 },
                Write,
                KeepSegment,
            ]
        );
        assert_eq!(p.end_run(20), vec![]);
    }
}
