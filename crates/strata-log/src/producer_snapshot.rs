//! Producer-state snapshots: `{offset:020}.snapshot` files in the partition
//! directory, each holding the [`ProducerStateManager`] as of `offset` (it covers
//! every batch below `offset`).
//!
//! Written, as in Kafka, when a segment rolls (at the new segment's base offset)
//! and on a clean close (at the log end offset), atomically (temporary file,
//! fsync, rename, directory fsync). On open, the state is the latest readable
//! snapshot at or below the recovered log end offset plus a replay of the batch
//! headers after it, so after `kill -9` the dedup state matches the log exactly.
//! Snapshots past the log end (left behind by a truncating recovery) are deleted,
//! and so are those below the first segment when segments are deleted.
//!
//! File format (big-endian): magic `STRPS003`, CRC32C of the rest (u32), producer
//! count (u32), then per producer: id i64, epoch i16, the first offset of its
//! ongoing transaction i64 (-1: none), the coordinator epoch of its last
//! marker i32 (-1: none), the timestamp of its last write i64 (for
//! `producer.id.expiration.ms`), batch count u8, and per batch first_seq i32,
//! last_seq i32, first_offset i64, last_offset i64, timestamp i64. Files of
//! the earlier formats are still read: `STRPS002` (no last-write timestamp:
//! unknown, see `ProducerStateManager::remove_expired`) and `STRPS001` (no
//! transaction fields either, written before transactions existed, so no
//! transaction was ongoing). A file failing its checks is ignored with a warning (an older
//! snapshot, or the log itself, is used instead).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint;
use crate::control;
use crate::error::LogError;
use crate::producer_state::{
    BatchMeta, CompletedTxn, ProducerBatch, ProducerEntry, ProducerStateManager, BATCHES_KEPT,
};
use crate::record;
use crate::segment::Segment;

const MAGIC: &[u8; 8] = b"STRPS003";
/// The format before the last-write timestamp.
const MAGIC_V2: &[u8; 8] = b"STRPS002";
/// The format before transactions: no transaction fields.
const MAGIC_V1: &[u8; 8] = b"STRPS001";
const SUFFIX: &str = ".snapshot";
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;

pub(crate) fn file_name(offset: i64) -> String {
    format!("{offset:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) fn encode(state: &ProducerStateManager) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(state.entries().len() as u32).to_be_bytes());
    for (id, entry) in state.entries() {
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
        body.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        body.extend_from_slice(&entry.last_timestamp.to_be_bytes());
        body.push(entry.batches.len() as u8);
        for b in &entry.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.first_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
            body.extend_from_slice(&b.timestamp.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| "truncated".to_string())?;
        self.0 = rest;
        Ok(*head)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.take().map(i64::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take().map(i32::from_be_bytes)
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<ProducerStateManager, String> {
    let mut r = Reader(bytes);
    let (with_txns, with_timestamp) = match &r.take::<8>()? {
        m if m == MAGIC => (true, true),
        m if m == MAGIC_V2 => (true, false),
        m if m == MAGIC_V1 => (false, false),
        _ => return Err("bad magic".into()),
    };
    let crc = u32::from_be_bytes(r.take()?);
    if crc32c::crc32c(r.0) != crc {
        return Err("CRC mismatch".into());
    }
    let count = u32::from_be_bytes(r.take()?);
    let mut producers = BTreeMap::new();
    for _ in 0..count {
        let id = r.i64()?;
        let epoch = i16::from_be_bytes(r.take()?);
        let mut entry = ProducerEntry::new(epoch);
        if with_txns {
            let first = r.i64()?;
            entry.txn_first_offset = (first >= 0).then_some(first);
            entry.coordinator_epoch = r.i32()?;
        }
        if with_timestamp {
            entry.last_timestamp = r.i64()?;
        }
        let n = usize::from(r.take::<1>()?[0]);
        if n > BATCHES_KEPT || r.0.len() < n * BATCH_LEN {
            return Err(format!("producer {id} has {n} batches"));
        }
        for _ in 0..n {
            entry.batches.push_back(BatchMeta {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
                timestamp: r.i64()?,
            });
        }
        if !with_timestamp {
            entry.last_timestamp = entry.batches.back().map_or(-1, |b| b.timestamp);
        }
        producers.insert(id, entry);
    }
    if !r.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(ProducerStateManager::from_entries(producers))
}

/// Writes the snapshot of `state` as of `offset`, atomically and durably.
/// The first offset of the oldest transaction still open in an encoded snapshot (the
/// last stable offset it implies), `None` when none is: what a read-only node, which has
/// the remote tier's snapshots but no log, bounds read_committed fetches with.
pub fn oldest_open_txn(bytes: &[u8]) -> Result<Option<i64>, String> {
    Ok(decode(bytes)?
        .entries()
        .values()
        .filter_map(|e| e.txn_first_offset)
        .min())
}

pub(crate) fn write(dir: &Path, offset: i64, state: &ProducerStateManager) -> Result<(), LogError> {
    checkpoint::write_atomic_bytes(dir, &file_name(offset), &encode(state))
}

/// The bytes of the snapshot file at `offset`, if there is one.
pub(crate) fn read(dir: &Path, offset: i64) -> Result<Option<Vec<u8>>, LogError> {
    let path = dir.join(file_name(offset));
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io("reading", path)(e)),
    }
}

/// Offsets of the snapshot files in `dir`, sorted.
pub(crate) fn list(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io("listing", dir))? {
        let entry = entry.map_err(LogError::io("listing", dir))?;
        if let Some(offset) = parse_name(&entry.file_name().to_string_lossy()) {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

fn remove(path: &PathBuf) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LogError::io("deleting", path)(e))
        }
        _ => Ok(()),
    }
}

/// Deletes the snapshots below `offset` (their segments are gone).
pub(crate) fn delete_below(dir: &Path, offset: i64) -> Result<(), LogError> {
    for s in list(dir)?.into_iter().filter(|s| *s < offset) {
        remove(&dir.join(file_name(s)))?;
    }
    Ok(())
}

/// The producer state rebuilt by [`load`].
pub(crate) struct Replayed {
    pub state: ProducerStateManager,
    /// Bytes of log data read.
    pub scanned: u64,
    /// Where the replay started: the snapshot's offset, or the first segment.
    pub from: i64,
    /// The transactions that markers at or above `from` completed, in order.
    pub completed: Vec<CompletedTxn>,
}

/// Rebuilds the producer state of an opened log: the latest readable snapshot at
/// or below `log_end` (unless `use_snapshots` is false: the aborted-transaction
/// index is being rebuilt, which needs every marker), then every batch header
/// from its offset (or from the first segment) to `log_end`; a control batch
/// is read whole for its marker. Deletes snapshots past `log_end`.
pub(crate) fn load(
    dir: &Path,
    segments: &BTreeMap<i64, Arc<Segment>>,
    log_end: i64,
    use_snapshots: bool,
) -> Result<Replayed, LogError> {
    let mut offsets = list(dir)?;
    while offsets.last().is_some_and(|o| *o > log_end) {
        if let Some(o) = offsets.pop() {
            tracing::warn!(dir = %dir.display(), offset = o, "deleting producer snapshot past the log end");
            remove(&dir.join(file_name(o)))?;
        }
    }
    let first_base = segments.keys().next().copied().unwrap_or(0);
    delete_below(dir, first_base)?;
    let mut state = ProducerStateManager::default();
    let mut from = first_base;
    // Without snapshots (the aborted-transaction index is being rebuilt from every marker),
    // one at the first segment's base still counts: no marker lies below it locally (a log
    // restarted empty at an offset with the producer state of the data before it).
    let usable = offsets
        .iter()
        .rev()
        .filter(|o| (use_snapshots && **o >= first_base) || **o == first_base);
    for &offset in usable {
        let path = dir.join(file_name(offset));
        let bytes = std::fs::read(&path).map_err(LogError::io("reading", &path))?;
        match decode(&bytes) {
            Ok(s) => {
                state = s;
                from = offset;
                break;
            }
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "ignoring unreadable producer snapshot")
            }
        }
    }
    let mut scanned = 0;
    let mut completed = Vec::new();
    for segment in segments.values().filter(|s| s.next_offset() > from) {
        let mut failed = None;
        scanned += segment.for_each_header(from, |h| {
            let mut b = ProducerBatch::from_header(h);
            if h.attributes & record::CONTROL_BIT != 0 {
                match segment.batch_containing(h.base_offset) {
                    Ok(Some(bytes)) => b.control = control::control_record(h, &bytes),
                    Ok(None) => {}
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            completed.extend(state.replay(&b));
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(Replayed {
        state,
        scanned,
        from,
        completed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer_state::Prepared;

    fn state() -> ProducerStateManager {
        let mut s = ProducerStateManager::default();
        for (pid, seq, off) in [(1, 0, 0), (2, 0, 1), (1, 1, 2)] {
            let b = ProducerBatch {
                producer_id: pid,
                epoch: 3,
                base_sequence: seq,
                attributes: 0,
                first_offset: off,
                last_offset: off,
                timestamp: 5,
                control: None,
            };
            if let Ok(Prepared::Append(u)) = s.prepare([b]) {
                s.commit(u);
            }
        }
        s
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let s = state();
        let bytes = encode(&s);
        assert_eq!(decode(&bytes).unwrap(), s);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode(&flipped).is_err());
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(42), "00000000000000000042.snapshot");
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("42.snapshot"), None);
        assert_eq!(parse_name("00000000000000000042.log"), None);
    }

    proptest::proptest! {
        #[test]
        fn decoding_garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode(&data);
        }
    }
}
