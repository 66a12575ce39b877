//! The remote tier's side of remote compaction: swapping cleaned segments into
//! the partition manifest, and deleting the objects of the segments they
//! replaced after a grace period. Which records the cleaned segments hold is
//! the broker's business (it glues `strata_log::cleaner::stream` to the
//! remote reader); this module only publishes and deletes.
//!
//! # Crash contract
//!
//! A pass uploads every cleaned segment as new objects (a fresh uuid each,
//! [`crate::copier::upload_objects`]) and then publishes one manifest version
//! ([`swap`], create-if-absent) in which the replaced run of segments is
//! replaced by the new one and the replaced segments are listed as
//! [`RetiredSegment`]s with the time of the swap. So a crash anywhere leaves
//! either the old version as the head (the new objects are orphans, which
//! [`crate::copier::sweep_orphans`] deletes once older than its grace) or the
//! new one (the old objects are retired, and [`delete_retired`] deletes them
//! [`RETIRED_GRACE`] after the swap), never a mix: a reader sees one version,
//! and every object that version names exists. The grace is measured from the
//! swap, as recorded in the manifest, not from the objects' age: a segment
//! uploaded long ago must still outlive reads that started just before it was
//! replaced.

use std::time::Duration;

use object_store::ObjectStore;
use uuid::Uuid;

use crate::copier::delete_segment_objects;
use crate::error::{Result, TierError};
use crate::layout::PartitionKey;
use crate::manifest::{self, PartitionManifest, RemoteSegment, RetiredSegment};

/// How long the objects of a replaced segment stay after the swap: a remote
/// read holds the manifest it started with for less (a fetch waits at most
/// `remote.fetch.max.wait.ms`).
pub const RETIRED_GRACE: Duration = Duration::from_secs(60);

/// One remote pass's result, to be published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Swap {
    /// Ids of the replaced segments: a contiguous run of the manifest, in order.
    pub replaced: Vec<Uuid>,
    /// What takes their place, in order: cleaned segments and replaced
    /// segments kept as they were (same id). It must cover exactly the
    /// offsets of the run: the same first base and last next offset, each
    /// segment starting where the previous one ended.
    pub segments: Vec<RemoteSegment>,
    /// The new remote first dirty offset (the end of what the pass mapped).
    pub first_dirty_offset: i64,
    /// The earliest delete horizon of a tombstone the pass kept.
    pub tombstone_horizon_ms: Option<i64>,
    /// Wall-clock time of the swap (when the replaced segments retire).
    pub now_ms: i64,
}

/// How [`swap`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapOutcome {
    /// Published; the manifest now current.
    Swapped(PartitionManifest),
    /// Not published: the run it replaces is no longer in the head manifest
    /// (retention, DeleteRecords, or another pass changed it). The pass's
    /// objects are orphans; the manifest now current.
    Changed(PartitionManifest),
}

/// Checks that `new` covers exactly the run `old` (see [`Swap::segments`]).
fn check_cover(pk: &PartitionKey, old: &[RemoteSegment], new: &[RemoteSegment]) -> Result<()> {
    let bad = |reason: String| TierError::BadSwap {
        partition: pk.clone(),
        reason,
    };
    let (Some(of), Some(ol), Some(nf), Some(nl)) =
        (old.first(), old.last(), new.first(), new.last())
    else {
        return Err(bad("an empty run".into()));
    };
    if (nf.base_offset, nl.next_offset) != (of.base_offset, ol.next_offset) {
        return Err(bad(format!(
            "the new segments cover [{}, {}) instead of [{}, {})",
            nf.base_offset, nl.next_offset, of.base_offset, ol.next_offset
        )));
    }
    for w in new.windows(2) {
        if w[0].next_offset != w[1].base_offset || w[0].base_offset >= w[0].next_offset {
            return Err(bad(format!(
                "segment {} ends at {} but the next starts at {}",
                w[0].base_offset, w[0].next_offset, w[1].base_offset
            )));
        }
    }
    Ok(())
}

/// Publishes `s` as the next manifest version with one compare-and-swap
/// (create-if-absent, retried on a lost race against a fresh manifest):
/// the run of `s.replaced` becomes `s.segments`, the replaced segments that
/// are not kept retire at `s.now_ms`, and the first dirty offset and
/// tombstone horizon are set. If the run is no longer in the head manifest,
/// nothing is published ([`SwapOutcome::Changed`]).
pub async fn swap(store: &dyn ObjectStore, pk: &PartitionKey, s: &Swap) -> Result<SwapOutcome> {
    let mut changed = false;
    let mut invalid = None;
    let m = manifest::update(store, pk, |m| {
        changed = false;
        let Some(at) = m
            .segments
            .iter()
            .position(|x| Some(&x.id) == s.replaced.first())
        else {
            changed = true;
            return false;
        };
        let run = m.segments.get(at..at + s.replaced.len());
        if run.is_none_or(|run| run.iter().map(|x| x.id).ne(s.replaced.iter().copied())) {
            changed = true;
            return false;
        }
        let old: Vec<RemoteSegment> = m.segments[at..at + s.replaced.len()].to_vec();
        if let Err(e) = check_cover(pk, &old, &s.segments) {
            invalid = Some(e);
            return false;
        }
        let kept: std::collections::HashSet<Uuid> = s.segments.iter().map(|x| x.id).collect();
        m.retired.extend(
            old.into_iter()
                .filter(|x| !kept.contains(&x.id))
                .map(|segment| RetiredSegment {
                    segment,
                    retired_ms: s.now_ms,
                }),
        );
        m.segments
            .splice(at..at + s.replaced.len(), s.segments.iter().cloned());
        m.first_dirty_offset = m.first_dirty_offset.max(s.first_dirty_offset);
        m.tombstone_horizon_ms = s.tombstone_horizon_ms;
        true
    })
    .await?;
    if let Some(e) = invalid {
        return Err(e);
    }
    Ok(if changed {
        SwapOutcome::Changed(m)
    } else {
        SwapOutcome::Swapped(m)
    })
}

/// Deletes the objects of the segments that retired at least `grace` before
/// `now_ms`, then drops them from the manifest (one more version). A crash
/// between the two only means they are deleted again next time (a missing
/// object is fine). `Ok(None)` when none was due.
pub async fn delete_retired(
    store: &dyn ObjectStore,
    pk: &PartitionKey,
    now_ms: i64,
    grace: Duration,
) -> Result<Option<PartitionManifest>> {
    let Some(m) = manifest::load(store, pk).await? else {
        return Ok(None);
    };
    let cutoff = now_ms.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let due: Vec<&RetiredSegment> = m
        .retired
        .iter()
        .filter(|r| r.retired_ms <= cutoff)
        .collect();
    if due.is_empty() {
        return Ok(None);
    }
    for r in &due {
        delete_segment_objects(store, pk, &r.segment).await;
        tracing::info!(partition = %pk, base_offset = r.segment.base_offset, next_offset = r.segment.next_offset, id = %r.segment.id, "deleted the objects of a segment replaced by remote compaction");
    }
    let gone: std::collections::HashSet<Uuid> = due.iter().map(|r| r.segment.id).collect();
    let m = manifest::update(store, pk, |m| {
        let before = m.retired.len();
        m.retired.retain(|r| !gone.contains(&r.segment.id));
        m.retired.len() != before
    })
    .await?;
    Ok(Some(m))
}

#[cfg(test)]
#[path = "compaction_tests.rs"]
mod tests;
