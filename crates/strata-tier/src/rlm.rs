//! The RemoteLogManager's scheduler: a pure state machine.
//!
//! It decides from (state, event, now) and returns [`Action`]s; it never sleeps and
//! never touches a store. The broker's driver feeds it a [`Event::Tick`] with a view
//! of every tiered partition each `remote.log.manager.task.interval.ms`, performs
//! the actions (see [`crate::copier`]) and reports back with
//! [`Event::UploadDone`] / [`Event::UploadFailed`].
//!
//! Rules:
//! - At most one upload per partition is in flight, in offset order, so the
//!   remote tier never has a hole: the next upload is the first closed local
//!   segment ending at or above the remote end offset and wholly below the high
//!   watermark. The active segment is never uploaded. On a compacted topic the
//!   segment must also lie wholly below the local log's first dirty offset
//!   ([`PartitionView::clean_end`]): segments are uploaded after local cleaning.
//! - Remote compaction ([`Action::CompactRemote`], compacted topics only): at
//!   most one pass per partition in flight, started at most once per
//!   `log.cleaner.backoff.ms` (after a failure too), when the remote dirty
//!   bytes (remote segments above the manifest's first dirty offset) reach
//!   `min.cleanable.dirty.ratio` of the remote bytes, or when the earliest
//!   delete horizon of a tombstone the last pass kept has passed (so that
//!   tombstones go although nothing new was uploaded).
//! - A failed upload stays pending and is retried after an exponential backoff
//!   (`BACKOFF_MIN` doubling up to `BACKOFF_MAX`).
//! - Local retention may delete only segments the manifest records
//!   ([`Action::EnforceLocalRetention`] carries the tiered end offset).
//! - Total retention (`retention.ms/bytes` over remote + local-only data) expires
//!   remote segments oldest first ([`Action::ExpireRemote`]); the driver removes
//!   them from the manifest first, then deletes their objects.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::layout::PartitionKey;

pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A local segment as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalSegment {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
}

/// A remote segment as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteSpan {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
}

/// Retention settings, Kafka's meaning (-1 unlimited; local -2 already resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    /// `remote.log.copy.disable`.
    pub copy_disabled: bool,
}

/// Remote compaction of a compacted topic, as a tick sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompactionPolicy {
    /// `min.cleanable.dirty.ratio`.
    pub min_dirty_ratio: f64,
    /// `log.cleaner.backoff.ms`: the least time between two passes of a
    /// partition (started), and after a failed one.
    pub backoff: Duration,
    /// Where the remote dirty range starts (the manifest's first dirty offset,
    /// or the remote start if higher).
    pub dirty_from: i64,
    /// The earliest delete horizon of a tombstone the last pass kept.
    pub tombstone_horizon_ms: Option<i64>,
}

/// One tiered partition at the time of a tick.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionView {
    pub key: PartitionKey,
    /// Every local segment, oldest first; the last one is the active segment.
    pub local: Vec<LocalSegment>,
    pub high_watermark: i64,
    /// For a compacted topic, the local log's first dirty offset: a segment is
    /// uploaded only once a local pass cleaned it (it ends at or below this).
    /// `None` for other topics.
    pub clean_end: Option<i64>,
    /// Live remote segments, oldest first.
    pub remote: Vec<RemoteSpan>,
    pub policy: Policy,
    /// `Some` for a compacted topic.
    pub compaction: Option<CompactionPolicy>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The periodic task: `now_ms` is wall-clock time for retention by time.
    Tick {
        now_ms: i64,
        partitions: Vec<PartitionView>,
    },
    UploadDone {
        key: PartitionKey,
        base_offset: i64,
    },
    UploadFailed {
        key: PartitionKey,
        base_offset: i64,
        error: String,
    },
    /// A remote compaction pass ended (committed, found nothing, or gave up
    /// because the manifest changed under it).
    CompactionDone {
        key: PartitionKey,
    },
    CompactionFailed {
        key: PartitionKey,
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy this closed local segment (segment, indexes, segment manifest, then
    /// the partition manifest).
    Upload {
        key: PartitionKey,
        segment: LocalSegment,
    },
    /// Remove remote segments with `next_offset <= before` (manifest first).
    ExpireRemote { key: PartitionKey, before: i64 },
    /// Let local retention delete local segments ending at or below `tiered_end`.
    EnforceLocalRetention {
        key: PartitionKey,
        tiered_end: i64,
        local_ms: i64,
        local_bytes: i64,
    },
    /// Run one remote compaction pass of the partition.
    CompactRemote { key: PartitionKey },
}

/// Remote compaction state of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionState {
    pub in_flight: bool,
    /// No pass starts before this (the backoff after the last start or failure).
    pub not_before: Option<Instant>,
    /// Consecutive failed passes.
    pub failures: u32,
    pub last_error: Option<String>,
}

/// Upload state of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadState {
    pub in_flight: Option<i64>,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Scheduler {
    partitions: HashMap<PartitionKey, UploadState>,
    compactions: HashMap<PartitionKey, (CompactionState, Duration)>,
}

impl Scheduler {
    pub fn new() -> Self {
        Self::default()
    }

    /// The upload state of a partition (for `tier status`).
    pub fn state(&self, key: &PartitionKey) -> Option<&UploadState> {
        self.partitions.get(key)
    }

    /// The remote compaction state of a partition (for `tier status`).
    pub fn compaction_state(&self, key: &PartitionKey) -> Option<&CompactionState> {
        self.compactions.get(key).map(|c| &c.0)
    }

    pub fn on_event(&mut self, now: Instant, event: Event) -> Vec<Action> {
        match event {
            Event::Tick { now_ms, partitions } => {
                let live: std::collections::HashSet<_> =
                    partitions.iter().map(|p| p.key.clone()).collect();
                self.partitions.retain(|k, _| live.contains(k));
                self.compactions
                    .retain(|k, c| live.contains(k) || c.0.in_flight);
                let mut actions = Vec::new();
                for p in partitions {
                    self.tick_partition(now, now_ms, &p, &mut actions);
                }
                actions
            }
            Event::UploadDone { key, .. } => {
                self.partitions.insert(key, UploadState::default());
                Vec::new()
            }
            Event::UploadFailed { key, error, .. } => {
                let s = self.partitions.entry(key).or_default();
                s.in_flight = None;
                s.attempts = s.attempts.saturating_add(1);
                let factor = 1u32 << s.attempts.min(16).saturating_sub(1);
                s.retry_at = Some(now + BACKOFF_MIN.saturating_mul(factor).min(BACKOFF_MAX));
                s.last_error = Some(error);
                Vec::new()
            }
            Event::CompactionDone { key } => {
                if let Some((c, _)) = self.compactions.get_mut(&key) {
                    c.in_flight = false;
                    c.failures = 0;
                }
                Vec::new()
            }
            Event::CompactionFailed { key, error } => {
                if let Some((c, backoff)) = self.compactions.get_mut(&key) {
                    c.in_flight = false;
                    c.failures = c.failures.saturating_add(1);
                    c.not_before = Some(now + *backoff);
                    c.last_error = Some(error);
                }
                Vec::new()
            }
        }
    }

    /// Starts a remote pass of `p` if one is due (see the module docs).
    fn tick_compaction(
        &mut self,
        now: Instant,
        now_ms: i64,
        p: &PartitionView,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = &p.compaction else {
            self.compactions.remove(&p.key);
            return;
        };
        let entry = self
            .compactions
            .entry(p.key.clone())
            .or_insert_with(|| (CompactionState::default(), c.backoff));
        entry.1 = c.backoff;
        let state = &mut entry.0;
        if state.in_flight || state.not_before.is_some_and(|t| now < t) {
            return;
        }
        if compaction_due(c, &p.remote, now_ms) {
            state.in_flight = true;
            state.not_before = Some(now + c.backoff);
            out.push(Action::CompactRemote { key: p.key.clone() });
        }
    }

    fn tick_partition(
        &mut self,
        now: Instant,
        now_ms: i64,
        p: &PartitionView,
        out: &mut Vec<Action>,
    ) {
        let remote_end = p.remote.last().map(|r| r.next_offset);
        let state = self.partitions.entry(p.key.clone()).or_default();
        let may_upload = !p.policy.copy_disabled
            && state.in_flight.is_none()
            && state.retry_at.is_none_or(|t| now >= t);
        if may_upload {
            if let Some(seg) = next_upload(p, remote_end) {
                state.in_flight = Some(seg.base_offset);
                out.push(Action::Upload {
                    key: p.key.clone(),
                    segment: seg,
                });
            }
        }
        if let Some(before) = remote_expiry(p, now_ms) {
            out.push(Action::ExpireRemote {
                key: p.key.clone(),
                before,
            });
        }
        self.tick_compaction(now, now_ms, p, out);
        if let Some(tiered_end) = remote_end {
            out.push(Action::EnforceLocalRetention {
                key: p.key.clone(),
                tiered_end,
                local_ms: p.policy.local_retention_ms,
                local_bytes: p.policy.local_retention_bytes,
            });
        }
    }
}

/// Whether a remote pass is due by the dirty ratio of the remote bytes or a
/// passed tombstone horizon (the backoff is the caller's).
pub fn compaction_due(c: &CompactionPolicy, remote: &[RemoteSpan], now_ms: i64) -> bool {
    let total: u64 = remote.iter().map(|r| r.size_bytes).sum();
    if remote.is_empty() {
        return false;
    }
    if c.tombstone_horizon_ms.is_some_and(|h| now_ms >= h) {
        return true;
    }
    let dirty: u64 = remote
        .iter()
        .filter(|r| r.next_offset > c.dirty_from)
        .map(|r| r.size_bytes)
        .sum();
    dirty > 0 && total > 0 && dirty as f64 / total as f64 >= c.min_dirty_ratio
}

/// The first closed local segment not yet tiered, wholly below the high
/// watermark and, on a compacted topic, below the first dirty offset.
fn next_upload(p: &PartitionView, remote_end: Option<i64>) -> Option<LocalSegment> {
    let closed = &p.local[..p.local.len().saturating_sub(1)];
    closed
        .iter()
        .find(|s| {
            remote_end.is_none_or(|end| s.next_offset > end)
                && s.base_offset >= remote_end.unwrap_or(i64::MIN)
        })
        .filter(|s| {
            s.next_offset <= p.high_watermark
                && s.next_offset <= p.clean_end.unwrap_or(i64::MAX)
                // Cleaning can empty a segment: on a compacted topic it is uploaded
                // like any other (it covers its offsets), or nothing after it could be.
                && (s.size_bytes > 0 || p.clean_end.is_some())
        })
        .copied()
}

/// The offset below which remote segments expire by total retention, if any.
fn remote_expiry(p: &PartitionView, now_ms: i64) -> Option<i64> {
    let remote_end = p.remote.last()?.next_offset;
    let mut doomed = 0;
    if p.policy.retention_ms >= 0 {
        doomed = p
            .remote
            .iter()
            .take_while(|r| {
                r.max_timestamp >= 0
                    && now_ms.saturating_sub(r.max_timestamp) > p.policy.retention_ms
            })
            .count();
    }
    if p.policy.retention_bytes >= 0 {
        let local_only: u64 = p
            .local
            .iter()
            .filter(|s| s.base_offset >= remote_end)
            .map(|s| s.size_bytes)
            .sum();
        let mut total = (p.remote.iter().map(|r| r.size_bytes).sum::<u64>() + local_only) as i64;
        let mut n = 0;
        for r in &p.remote {
            if total - (r.size_bytes as i64) < p.policy.retention_bytes {
                break;
            }
            total -= r.size_bytes as i64;
            n += 1;
        }
        doomed = doomed.max(n);
    }
    (doomed > 0).then(|| p.remote[doomed - 1].next_offset)
}

#[cfg(test)]
#[path = "rlm_tests.rs"]
mod tests;
