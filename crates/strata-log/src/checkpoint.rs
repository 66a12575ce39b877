//! The small metadata files of a partition directory.
//!
//! - `log.checkpoint`: the recovery point (every offset below it is fsynced) and
//!   the log start offset. Rewritten atomically (temp file, fsync, rename, fsync
//!   of the directory) whenever either advances.
//! - `clean-shutdown`: written by `Log::close` after a full flush, holding the log
//!   end offset and the active segment's base offset and size; removed (durably)
//!   by `Log::open`. Its presence, with a matching active segment size, lets open
//!   skip reading log data entirely.
//!
//! Malformed files are reported with a warning and treated as absent: that is
//! always safe (a missing recovery point means "recover everything").

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::error::LogError;

pub(crate) const CHECKPOINT_FILE: &str = "log.checkpoint";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
const CHECKPOINT_MAGIC: &str = "strata-log-checkpoint v1";
const CLEAN_MAGIC: &str = "strata-clean-shutdown v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanShutdown {
    pub log_end_offset: i64,
    pub active_base_offset: i64,
    pub active_size: u64,
}

/// Writes `contents` to `dir/name` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &str) -> Result<(), LogError> {
    write_atomic_bytes(dir, name, contents.as_bytes())
}

/// Writes `contents` to `dir/name` atomically and durably.
pub(crate) fn write_atomic_bytes(dir: &Path, name: &str, contents: &[u8]) -> Result<(), LogError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = File::create(&tmp).map_err(LogError::io("creating", &tmp))?;
    f.write_all(contents)
        .map_err(LogError::io("writing", &tmp))?;
    f.sync_all().map_err(LogError::io("fsyncing", &tmp))?;
    std::fs::rename(&tmp, &target).map_err(LogError::io("renaming into place", &target))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io("fsyncing directory", dir))
}

fn read_optional(path: &Path) -> Result<Option<String>, LogError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == ErrorKind::InvalidData => Ok(Some(String::new())),
        Err(e) => Err(LogError::io("reading", path)(e)),
    }
}

/// Parses `magic` then lines of `key value`; returns the values in `keys` order.
fn parse_fields(text: &str, magic: &str, keys: &[&str]) -> Option<Vec<i64>> {
    let mut lines = text.lines();
    if lines.next()? != magic {
        return None;
    }
    let mut values = vec![None; keys.len()];
    for line in lines {
        let (k, v) = line.split_once(' ')?;
        let i = keys.iter().position(|key| *key == k)?;
        values[i] = Some(v.trim().parse().ok()?);
    }
    values.into_iter().collect()
}

pub(crate) fn read_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    match parse_fields(
        &text,
        CHECKPOINT_MAGIC,
        &["recovery_point", "log_start_offset"],
    )
    .as_deref()
    {
        Some(&[recovery_point, log_start_offset]) => Ok(Some(Checkpoint {
            recovery_point,
            log_start_offset,
        })),
        _ => {
            tracing::warn!(file = %path.display(), "malformed checkpoint ignored; recovering the whole log");
            Ok(None)
        }
    }
}

pub(crate) fn write_checkpoint(dir: &Path, cp: Checkpoint) -> Result<(), LogError> {
    let text = format!(
        "{CHECKPOINT_MAGIC}\nrecovery_point {}\nlog_start_offset {}\n",
        cp.recovery_point, cp.log_start_offset
    );
    write_atomic(dir, CHECKPOINT_FILE, &text)
}

/// Reads and durably removes the clean-shutdown marker.
pub(crate) fn take_clean_shutdown(dir: &Path) -> Result<Option<CleanShutdown>, LogError> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    std::fs::remove_file(&path).map_err(LogError::io("removing", &path))?;
    sync_dir(dir)?;
    let keys = ["log_end_offset", "active_base_offset", "active_size"];
    match parse_fields(&text, CLEAN_MAGIC, &keys).as_deref() {
        Some(&[log_end_offset, active_base_offset, active_size]) if active_size >= 0 => {
            Ok(Some(CleanShutdown {
                log_end_offset,
                active_base_offset,
                active_size: active_size as u64,
            }))
        }
        _ => {
            tracing::warn!(file = %path.display(), "malformed clean-shutdown marker; recovering as after a crash");
            Ok(None)
        }
    }
}

pub(crate) fn write_clean_shutdown(dir: &Path, m: CleanShutdown) -> Result<(), LogError> {
    let text = format!(
        "{CLEAN_MAGIC}\nlog_end_offset {}\nactive_base_offset {}\nactive_size {}\n",
        m.log_end_offset, m.active_base_offset, m.active_size
    );
    write_atomic(dir, CLEAN_SHUTDOWN_FILE, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), None);
        let cp = Checkpoint {
            recovery_point: 42,
            log_start_offset: 7,
        };
        write_checkpoint(dir.path(), cp).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(cp));
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"\xff\xfe junk").unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), None);

        let m = CleanShutdown {
            log_end_offset: 10,
            active_base_offset: 5,
            active_size: 99,
        };
        write_clean_shutdown(dir.path(), m).unwrap();
        assert_eq!(take_clean_shutdown(dir.path()).unwrap(), Some(m));
        assert_eq!(take_clean_shutdown(dir.path()).unwrap(), None);
    }
}
