//! One `Log` per partition directory at a time, without a descriptor per partition.
//!
//! Within the process a registry of open directories says who has one. Against other
//! processes a directory needs an `flock`: on `<dir>/.lock` by default, or none when
//! its parent (a `log.dirs` entry) is locked by [`lock_log_dir`], as Kafka locks each
//! log dir once. A broker with 10,000 partitions then holds one lock descriptor per
//! log dir instead of 10,000 (issue 14; the soft limit on open files is often 1,024
//! to 20,000).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::LogError;

const LOCK_FILE: &str = ".lock";

/// Attempts (50 ms apart) to take a lock that is briefly held elsewhere.
const LOCK_RETRIES: u32 = 20;

#[derive(Default)]
struct Registry {
    open: HashSet<PathBuf>,
    /// Log dirs this process holds an `flock` on, by path.
    log_dirs: HashMap<PathBuf, usize>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    f(REGISTRY.lock().get_or_insert_with(Default::default))
}

/// A partition directory held by one `Log`; released on drop.
pub(crate) struct DirLock {
    dir: PathBuf,
    _flock: Option<File>,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        with(|r| r.open.remove(&self.dir));
    }
}

/// A `log.dirs` entry locked for this process (see the module docs); released on drop.
pub struct LogDirLock {
    dir: PathBuf,
    _flock: File,
}

impl Drop for LogDirLock {
    fn drop(&mut self) {
        with(|r| {
            if let Some(n) = r.log_dirs.get_mut(&self.dir) {
                *n -= 1;
                if *n == 0 {
                    r.log_dirs.remove(&self.dir);
                }
            }
        });
    }
}

/// Locks a log dir against other processes, so the `Log`s opened in its partition
/// directories take no lock file of their own.
pub fn lock_log_dir(dir: &Path) -> Result<LogDirLock, LogError> {
    std::fs::create_dir_all(dir).map_err(LogError::io("creating", dir))?;
    let file = flock(dir)?;
    with(|r| *r.log_dirs.entry(dir.to_path_buf()).or_default() += 1);
    Ok(LogDirLock {
        dir: dir.to_path_buf(),
        _flock: file,
    })
}

pub(crate) fn lock_dir(dir: &Path) -> Result<DirLock, LogError> {
    for attempt in 0..=LOCK_RETRIES {
        let (taken, parent_locked) = with(|r| {
            let parent_locked = dir.parent().is_some_and(|p| r.log_dirs.contains_key(p));
            (!r.open.insert(dir.to_path_buf()), parent_locked)
        });
        if taken {
            // Another `Log` of this process; it may be closing right now.
            if attempt < LOCK_RETRIES {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            return Err(LogError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        let mut held = DirLock {
            dir: dir.to_path_buf(),
            _flock: None,
        };
        if !parent_locked {
            // On failure `held` drops and leaves the registry.
            held._flock = Some(flock(dir)?);
        }
        return Ok(held);
    }
    unreachable!("the loop returns")
}

/// An exclusive `flock` on `<dir>/.lock`.
fn flock(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(LogError::io("opening", &path))?;
    // A lock held for a moment longer than its `Log` is not a second writer: a process that
    // forks (to run a child) keeps a copy of every descriptor until the child execs, and the
    // flock goes only with the last copy. So wait up to a second before calling it taken.
    for attempt in 0..=LOCK_RETRIES {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if attempt < LOCK_RETRIES => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(std::fs::TryLockError::Error(e)) => return Err(LogError::io("locking", path)(e)),
        }
    }
    Err(LogError::Locked {
        dir: dir.to_path_buf(),
    })
}
