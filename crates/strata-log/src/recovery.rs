//! Opening a partition directory: from files on disk to a consistent set of
//! segments.
//!
//! - Clean shutdown (marker present and the active segment's size matches it):
//!   every segment is trusted; only index files are read (and rebuilt if they
//!   fail their checks). No log data is read.
//! - Otherwise: segments entirely below the recovery point are trusted as above.
//!   From the segment holding the recovery point on, every batch is re-validated
//!   (length, magic, CRC32C, offsets). At the first invalid or torn batch the
//!   segment is truncated, a warning names the file and position, and every later
//!   segment is deleted. Indexes of scanned segments are rebuilt.
//!
//! Also removes leftovers of interrupted operations: `*.tmp` files, index files
//! without a log, segments entirely below the persisted log start offset
//! (a crash in the middle of retention), and finishes or undoes an interrupted
//! log cleaning (`cleaner-swap`, `*.cleaned`: see `cleaner::swap`). Segments
//! may have offset gaps (a cleaned log), never overlaps.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::checkpoint::{self, Checkpoint, CleanShutdown};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::segment::{self, Segment};

pub(crate) struct Loaded {
    pub segments: BTreeMap<i64, Arc<Segment>>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub recovery_point: i64,
}

/// Base offsets of the `.log` files in `dir`, sorted; removes temp files and
/// orphaned indexes.
fn list_segments(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(LogError::io("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = segment::parse_log_name(&name) {
            bases.push(base);
        } else if name.ends_with(".tmp") {
            remove(&entry.path())?;
        } else if let Some(stem) = name
            .strip_suffix(".index")
            .or_else(|| name.strip_suffix(".timeindex"))
        {
            index_files.push((stem.to_string(), entry.path()));
        }
    }
    bases.sort_unstable();
    for (stem, path) in index_files {
        if segment::parse_log_name(&format!("{stem}.log"))
            .is_none_or(|b| bases.binary_search(&b).is_err())
        {
            tracing::warn!(file = %path.display(), "removing index file without a segment");
            remove(&path)?;
        }
    }
    Ok(bases)
}

fn remove(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LogError::io("deleting", path)(e))
        }
        _ => Ok(()),
    }
}

fn remove_segment_files(dir: &Path, base: i64) -> Result<(), LogError> {
    for ext in ["index", "timeindex", "log"] {
        remove(&dir.join(segment::file_name(base, ext)))?;
    }
    Ok(())
}

fn is_clean(dir: &Path, bases: &[i64], marker: Option<CleanShutdown>) -> Option<CleanShutdown> {
    let m = marker?;
    let last = *bases.last()?;
    let size = std::fs::metadata(dir.join(segment::file_name(last, "log")))
        .ok()?
        .len();
    if m.active_base_offset != last || m.active_size != size || m.log_end_offset < last {
        tracing::warn!(dir = %dir.display(), "clean-shutdown marker does not match the files; recovering as after a crash");
        return None;
    }
    Some(m)
}

/// Opens (and if needed repairs) the log in `dir`. `scanned` accumulates the
/// bytes of log data read.
pub(crate) fn load(
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
    scanned: &AtomicU64,
) -> Result<Loaded, LogError> {
    std::fs::create_dir_all(dir).map_err(LogError::io("creating", dir))?;
    let marker = checkpoint::take_clean_shutdown(dir)?;
    let cp = checkpoint::read_checkpoint(dir)?;
    let limits = config.index_limits();
    // A log cleaning that committed is finished, one that did not is undone,
    // before the segments are listed.
    crate::cleaner::swap::recover(dir)?;
    let mut bases = list_segments(dir)?;

    // Segments wholly below the log start offset were being deleted.
    if let Some(cp) = cp {
        while bases.len() > 1 && bases[1] <= cp.log_start_offset {
            remove_segment_files(dir, bases.remove(0))?;
        }
    }
    let mut segments = BTreeMap::new();
    if bases.is_empty() {
        let base = cp.map_or(0, |c| c.log_start_offset.max(0));
        segments.insert(base, Arc::new(Segment::create(dir, base, limits, now_ms)?));
        return finish(dir, segments, cp, base, now_ms, config);
    }

    if let Some(m) = is_clean(dir, &bases, marker) {
        for (i, &base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied().unwrap_or(m.log_end_offset);
            let seg = Segment::open_trusted(dir, base, next, limits, now_ms, scanned)?;
            segments.insert(base, Arc::new(seg));
        }
        return finish(dir, segments, cp, m.log_end_offset, now_ms, config);
    }

    let recovery_point = cp.map_or(i64::MIN, |c| c.recovery_point);
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let next_base = bases.get(i + 1).copied();
        if next_base.is_some_and(|n| n <= recovery_point) {
            let next = next_base.unwrap_or(base);
            let seg = Segment::open_trusted(dir, base, next, limits, now_ms, scanned)?;
            segments.insert(base, Arc::new(seg));
            i += 1;
            continue;
        }
        let (seg, outcome) = Segment::recover(dir, base, limits, now_ms)?;
        scanned.fetch_add(outcome.bytes_scanned, std::sync::atomic::Ordering::Relaxed);
        let overlaps = next_base.is_some_and(|n| seg.next_offset() > n);
        if let Some(reason) = &outcome.stopped {
            tracing::warn!(
                file = %seg.log_path().display(),
                position = outcome.valid_bytes,
                next_offset = seg.next_offset(),
                %reason,
                "truncated segment at the first invalid batch"
            );
        }
        let stop = outcome.stopped.is_some() || overlaps;
        if stop {
            for &later in &bases[i + 1..] {
                tracing::warn!(dir = %dir.display(), base_offset = later, "deleting segment after the truncation point");
                remove_segment_files(dir, later)?;
            }
            bases.truncate(i + 1);
        } else if next_base.is_some() {
            seg.seal()?;
        }
        segments.insert(base, Arc::new(seg));
        i += 1;
    }
    let leo = segments.values().next_back().map_or(0, |s| s.next_offset());
    finish(dir, segments, cp, leo, now_ms, config)
}

fn finish(
    dir: &Path,
    mut segments: BTreeMap<i64, Arc<Segment>>,
    cp: Option<Checkpoint>,
    mut leo: i64,
    now_ms: i64,
    config: &LogConfig,
) -> Result<Loaded, LogError> {
    let first_base = segments.keys().next().copied().unwrap_or(0);
    let mut log_start = cp.map_or(first_base, |c| c.log_start_offset.max(first_base));
    if log_start > leo {
        tracing::warn!(
            dir = %dir.display(),
            log_start,
            log_end = leo,
            "log start offset is beyond the recovered log end; starting an empty segment at the log start"
        );
        for seg in segments.values() {
            seg.delete_files()?;
        }
        segments.clear();
        let seg = Segment::create(dir, log_start, config.index_limits(), now_ms)?;
        segments.insert(log_start, Arc::new(seg));
        leo = log_start;
    }
    log_start = log_start.min(leo);
    let recovery_point = cp
        .map_or(log_start, |c| c.recovery_point)
        .clamp(log_start, leo);
    let new_cp = Checkpoint {
        recovery_point,
        log_start_offset: log_start,
    };
    if cp != Some(new_cp) {
        checkpoint::write_checkpoint(dir, new_cp)?;
    }
    Ok(Loaded {
        segments,
        log_start_offset: log_start,
        log_end_offset: leo,
        recovery_point,
    })
}

impl crate::Log {
    /// Prepares `dir` (created if missing) so that the next [`Log::open`] finds an
    /// empty log whose log start and end offsets are both `start_offset`: the first
    /// append gets offset `start_offset`. Used when a partition is restored from the
    /// remote tier, whose offsets below `start_offset` are served from there.
    ///
    /// Writes only the checkpoint (durably); refuses with `NotEmpty` if the
    /// directory already holds a segment, so no data is ever hidden. A crash before
    /// the checkpoint is in place leaves an empty directory, which opens at 0; run
    /// it again.
    pub fn init_empty_at(dir: &Path, start_offset: i64) -> Result<(), LogError> {
        std::fs::create_dir_all(dir).map_err(LogError::io("creating", dir))?;
        let entries = std::fs::read_dir(dir).map_err(LogError::io("listing", dir))?;
        for entry in entries {
            let name = entry
                .map_err(LogError::io("listing", dir))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if segment::parse_log_name(&name).is_some() {
                return Err(LogError::NotEmpty {
                    dir: dir.to_path_buf(),
                    file: name,
                    offset: start_offset,
                });
            }
        }
        let start = start_offset.max(0);
        checkpoint::write_checkpoint(
            dir,
            Checkpoint {
                recovery_point: start,
                log_start_offset: start,
            },
        )
    }
}
