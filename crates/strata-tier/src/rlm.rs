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
//!   watermark. The active segment is never uploaded.
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

/// One tiered partition at the time of a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub key: PartitionKey,
    /// Every local segment, oldest first; the last one is the active segment.
    pub local: Vec<LocalSegment>,
    pub high_watermark: i64,
    /// Live remote segments, oldest first.
    pub remote: Vec<RemoteSpan>,
    pub policy: Policy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl Scheduler {
    pub fn new() -> Self {
        Self::default()
    }

    /// The upload state of a partition (for `tier status`).
    pub fn state(&self, key: &PartitionKey) -> Option<&UploadState> {
        self.partitions.get(key)
    }

    pub fn on_event(&mut self, now: Instant, event: Event) -> Vec<Action> {
        match event {
            Event::Tick { now_ms, partitions } => {
                let live: std::collections::HashSet<_> =
                    partitions.iter().map(|p| p.key.clone()).collect();
                self.partitions.retain(|k, _| live.contains(k));
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

/// The first closed local segment not yet tiered, wholly below the high watermark.
fn next_upload(p: &PartitionView, remote_end: Option<i64>) -> Option<LocalSegment> {
    let closed = &p.local[..p.local.len().saturating_sub(1)];
    closed
        .iter()
        .find(|s| {
            remote_end.is_none_or(|end| s.next_offset > end)
                && s.base_offset >= remote_end.unwrap_or(i64::MIN)
        })
        .filter(|s| s.next_offset <= p.high_watermark && s.size_bytes > 0)
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
