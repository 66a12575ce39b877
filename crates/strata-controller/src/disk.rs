//! File primitives shared by the log store and the state machine: atomic JSON files, the
//! length+CRC record frame, and the directory lock.
//!
//! Owns the on-disk encodings only; it knows nothing of Raft. Every write that reports success
//! has been fsync'd, including the directory entry when a file was created or renamed.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A failure of the controller's metadata directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path} failed: {source}; check the disk and the permissions of the metadata directory")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is corrupt ({reason}); restore the metadata directory from a replica or a backup"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} is locked by another process; only one controller may use a metadata directory"
    )]
    Locked { path: PathBuf },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io { op, path, source }
    }
}

/// Size of the record header: `u32` little-endian payload length, then `u32` CRC32C of the payload.
pub(crate) const FRAME_HEADER: usize = 8;

/// Encodes `payload` as one record: `len:u32le | crc32c:u32le | payload`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("a metadata log entry is smaller than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the record at the start of `buf`. Returns the payload and the record's total size,
/// or `None` when the record is incomplete or its CRC does not match (a torn write).
pub(crate) fn decode_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    let header = buf.get(..FRAME_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = buf.get(FRAME_HEADER..FRAME_HEADER.checked_add(len)?)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, FRAME_HEADER + len))
}

/// Writes `value` as JSON to `path` atomically: a temporary file is written and fsync'd, renamed
/// over `path`, and the directory is fsync'd. A crash leaves either the old or the new file.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialize: {e}"),
    })?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
    file.write_all(&bytes)
        .map_err(StoreError::io("write", &tmp))?;
    file.sync_all().map_err(StoreError::io("fsync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(StoreError::io("rename to", path))?;
    sync_parent(path)
}

/// Reads a JSON file written by [`write_json_atomic`]; `None` if it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Fsyncs the directory holding `path`, making a create or rename of `path` durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

/// An exclusive advisory lock on `<dir>/lock`, held for as long as the value lives.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path }),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
                op: "lock",
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_every_truncation_is_detected() {
        let mut buf = Vec::new();
        encode_frame(b"hello metadata", &mut buf);
        assert_eq!(
            decode_frame(&buf),
            Some((&b"hello metadata"[..], buf.len()))
        );
        for cut in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..cut]), None, "cut at {cut}");
        }
        let last = buf.len() - 1;
        buf[last] ^= 0x01;
        assert_eq!(decode_frame(&buf), None);
    }

    #[test]
    fn atomic_json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json_atomic(&path, &vec![1u32, 2]).unwrap();
        write_json_atomic(&path, &vec![3u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![3]));
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(StoreError::Locked { .. })
        ));
        drop(lock);
        DirLock::acquire(dir.path()).unwrap();
    }
}
