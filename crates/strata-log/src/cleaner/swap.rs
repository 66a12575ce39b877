//! The cleaner's files in a partition directory and what open does with them.
//!
//! - `<base>.log.cleaned`, `<base>.index.cleaned`, `<base>.timeindex.cleaned`,
//!   `<base>.txnindex.cleaned`: a pass's output before it commits. Never trusted: without a committed
//!   swap, open deletes them.
//! - `cleaner-swap`: the commit point of a pass (Kafka renames each cleaned
//!   segment to `.swap`; one file for the whole pass makes several output
//!   segments commit at once). It lists the base offsets of the segments the
//!   pass replaces and of the cleaned segments replacing them, and is written
//!   atomically (temporary file, fsync, rename, directory fsync) only once every
//!   `.cleaned` file is fsynced and the directory too. While it exists, open
//!   finishes the pass (`recover`): renames each `.cleaned` file still there
//!   over its final name (a rename replaces an old segment of the same base
//!   atomically), deletes the replaced segments whose base is not reused,
//!   fsyncs the directory and removes the file. Every step is idempotent, so a
//!   crash during this completion is completed by the next open.
//! - `cleaner-offset-checkpoint`: the first dirty offset (everything below it
//!   was cleaned once), Kafka's `cleaner-offset-checkpoint` but one per
//!   partition. Written after a pass has fully committed, and lowered by a
//!   truncation below it, so it is never ahead of what was cleaned; a missing
//!   or malformed file means "nothing cleaned yet" (the next pass re-cleans,
//!   which is only slower).

use std::path::Path;

use crate::checkpoint;
use crate::error::LogError;
use crate::segment::{self, CLEANED_SUFFIX};

pub(crate) const SWAP_FILE: &str = "cleaner-swap";
pub(crate) const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const SWAP_MAGIC: &str = "strata-cleaner-swap v1";
const CHECKPOINT_MAGIC: &str = "strata-cleaner-checkpoint v1";
const EXTENSIONS: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

/// A committed pass: `replaced` segments give way to `cleaned` ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Swap {
    pub replaced: Vec<i64>,
    pub cleaned: Vec<i64>,
}

fn list(bases: &[i64]) -> String {
    bases
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Commits a pass: durably writes `cleaner-swap`.
pub(crate) fn write_swap(dir: &Path, swap: &Swap) -> Result<(), LogError> {
    let text = format!(
        "{SWAP_MAGIC}\nreplaced {}\ncleaned {}\n",
        list(&swap.replaced),
        list(&swap.cleaned)
    );
    checkpoint::write_atomic(dir, SWAP_FILE, &text)
}

/// The committed swap, if any. A file that does not parse is an error: open
/// cannot know which segments are current, and guessing could lose data.
pub(crate) fn read_swap(dir: &Path) -> Result<Option<Swap>, LogError> {
    let path = dir.join(SWAP_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("reading", &path)(e)),
    };
    let parse = |line: Option<&str>, key: &str| -> Option<Vec<i64>> {
        let rest = line?.strip_prefix(key)?;
        rest.split_whitespace().map(|n| n.parse().ok()).collect()
    };
    let mut lines = text.lines();
    let swap = (lines.next() == Some(SWAP_MAGIC))
        .then(|| {
            let replaced = parse(lines.next(), "replaced")?;
            let cleaned = parse(lines.next(), "cleaned")?;
            Some(Swap { replaced, cleaned })
        })
        .flatten()
        .filter(|s| !s.replaced.is_empty() && lines.next().is_none());
    match swap {
        Some(swap) => Ok(Some(swap)),
        None => Err(LogError::Corrupt {
            path,
            position: 0,
            reason: "malformed cleaner swap file: cannot tell which segments a committed cleaning replaced; restore it or the partition's data from a replica".into(),
        }),
    }
}

fn cleaned_name(base: i64, ext: &str) -> String {
    format!("{}{CLEANED_SUFFIX}", segment::file_name(base, ext))
}

/// Renames every `.cleaned` file of `swap.cleaned` still present over its
/// final name. Renames only: the caller fsyncs the directory (see [`finish`]).
pub(crate) fn rename_cleaned(dir: &Path, cleaned: &[i64]) -> Result<(), LogError> {
    for &base in cleaned {
        rename_group(dir, base)?;
    }
    Ok(())
}

/// The renames of one cleaned segment: indexes first, the log last. A pass
/// that knew the aborted transactions wrote the segment's `.txnindex` too.
pub(crate) fn rename_group(dir: &Path, base: i64) -> Result<(), LogError> {
    for ext in ["txnindex", "index", "timeindex", "log"] {
        let from = dir.join(cleaned_name(base, ext));
        let to = dir.join(segment::file_name(base, ext));
        match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LogError::io("renaming a cleaned file over", to)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The replaced segments whose base no cleaned segment reuses: their files go.
pub(crate) fn obsolete(swap: &Swap) -> impl Iterator<Item = i64> + '_ {
    swap.replaced
        .iter()
        .copied()
        .filter(|b| !swap.cleaned.contains(b))
}

/// The end of a committed swap once the renames are done: deletes the
/// obsolete segments' files, fsyncs the directory, removes `cleaner-swap`
/// and fsyncs again.
pub(crate) fn finish(dir: &Path, swap: &Swap) -> Result<(), LogError> {
    for base in obsolete(swap) {
        for ext in EXTENSIONS {
            remove(&dir.join(segment::file_name(base, ext)))?;
        }
    }
    checkpoint::sync_dir(dir)?;
    remove(&dir.join(SWAP_FILE))?;
    checkpoint::sync_dir(dir)
}

fn remove(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LogError::io("deleting", path)(e))
        }
        _ => Ok(()),
    }
}

/// Deletes the `.cleaned` files of `bases` (a pass that did not commit).
pub(crate) fn discard(dir: &Path, bases: &[i64]) -> Result<(), LogError> {
    for &base in bases {
        for ext in EXTENSIONS {
            remove(&dir.join(cleaned_name(base, ext)))?;
        }
    }
    Ok(())
}

/// Called by open before it lists segments: finishes a committed pass, then
/// deletes every `.cleaned` file left (a pass that crashed before its commit).
pub(crate) fn recover(dir: &Path) -> Result<(), LogError> {
    if let Some(swap) = read_swap(dir)? {
        tracing::warn!(dir = %dir.display(), replaced = ?swap.replaced, cleaned = ?swap.cleaned, "completing a log cleaning interrupted after its commit");
        rename_cleaned(dir, &swap.cleaned)?;
        finish(dir, &swap)?;
    }
    let entries = std::fs::read_dir(dir).map_err(LogError::io("listing", dir))?;
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(LogError::io("listing", dir))?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(CLEANED_SUFFIX)
        {
            tracing::warn!(file = %entry.path().display(), "deleting the output of a log cleaning that did not commit");
            remove(&entry.path())?;
            removed = true;
        }
    }
    if removed {
        checkpoint::sync_dir(dir)?;
    }
    Ok(())
}

/// The persisted first dirty offset; `None` if absent or malformed.
pub(crate) fn read_checkpoint(dir: &Path) -> Result<Option<i64>, LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => String::new(),
        Err(e) => return Err(LogError::io("reading", &path)(e)),
    };
    let mut lines = text.lines();
    let offset = (lines.next() == Some(CHECKPOINT_MAGIC))
        .then(|| {
            lines
                .next()?
                .strip_prefix("first_dirty_offset ")?
                .parse()
                .ok()
        })
        .flatten();
    if offset.is_none() {
        tracing::warn!(file = %path.display(), "malformed cleaner checkpoint ignored; the whole log counts as dirty");
    }
    Ok(offset)
}

pub(crate) fn write_checkpoint(dir: &Path, first_dirty: i64) -> Result<(), LogError> {
    let text = format!("{CHECKPOINT_MAGIC}\nfirst_dirty_offset {first_dirty}\n");
    checkpoint::write_atomic(dir, CHECKPOINT_FILE, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_and_checkpoint_files_round_trip_and_bad_swaps_stop_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(read_swap(d).unwrap(), None);
        let swap = Swap {
            replaced: vec![0, 100, 250],
            cleaned: vec![0, 250],
        };
        write_swap(d, &swap).unwrap();
        assert_eq!(read_swap(d).unwrap(), Some(swap.clone()));
        assert_eq!(obsolete(&swap).collect::<Vec<_>>(), [100]);
        std::fs::write(d.join(SWAP_FILE), "strata-cleaner-swap v1\nreplaced 1 x\n").unwrap();
        assert!(matches!(read_swap(d), Err(LogError::Corrupt { .. })));

        assert_eq!(read_checkpoint(d).unwrap(), None);
        write_checkpoint(d, 42).unwrap();
        assert_eq!(read_checkpoint(d).unwrap(), Some(42));
        std::fs::write(d.join(CHECKPOINT_FILE), "junk").unwrap();
        assert_eq!(read_checkpoint(d).unwrap(), None);
    }
}
