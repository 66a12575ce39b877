//! The aborted-transaction index of a log, persisted per segment as
//! `<base:020>.txnindex` in Kafka's format (`TransactionIndex`): one 34-byte
//! big-endian entry per aborted transaction whose ABORT marker is in the
//! segment, in marker order:
//!
//! ```text
//! version i16 (0)  producerId i64  firstOffset i64  lastOffset i64  lastStableOffset i64
//! ```
//!
//! `firstOffset` is the transaction's first offset (possibly in an earlier
//! segment), `lastOffset` the marker's offset, `lastStableOffset` the log's
//! first unstable offset right after the marker was written (the first offset
//! of the earliest transaction still ongoing, or the marker's offset + 1): a
//! search for the transactions overlapping `[from, upper)` stops at the first
//! entry whose LSO is at or above `upper`, since every transaction ending
//! later started at or above it.
//!
//! Every segment has the file (empty without aborted transactions), so a
//! missing file means "unknown": the log then rebuilds the index from the log
//! at open. The entries live in memory ([`TxnIndex`]; an aborted transaction
//! is rare, and every read_committed fetch asks for them); the files are only
//! written (an append per ABORT marker, an atomic rewrite when segments are
//! merged or cut) and read at open. Pure of locks: the log calls it under its
//! writer lock and publishes reads through its own `RwLock`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use crate::checkpoint;
use crate::error::LogError;
use crate::segment::file_name;

/// Bytes per entry.
pub const ENTRY_LEN: usize = 34;
/// The only entry version Kafka defines.
const VERSION: i16 = 0;
/// The file extension.
pub(crate) const EXT: &str = "txnindex";

/// One aborted transaction: Kafka's `AbortedTxn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxnIndexEntry {
    pub producer_id: i64,
    /// The transaction's first offset.
    pub first_offset: i64,
    /// The offset of its ABORT marker.
    pub last_offset: i64,
    /// The log's first unstable offset once the marker was written.
    pub last_stable_offset: i64,
}

impl TxnIndexEntry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..2].copy_from_slice(&VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    /// Decodes one entry; `None` for another version.
    fn decode(b: &[u8; ENTRY_LEN]) -> Option<TxnIndexEntry> {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        (i16::from_be_bytes([b[0], b[1]]) == VERSION).then(|| TxnIndexEntry {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// Encodes entries as a `.txnindex` file's bytes (what the remote tier stores).
pub fn encode_all(entries: &[TxnIndexEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.encode()).collect()
}

/// Decodes a `.txnindex` file's bytes: whole entries of version 0, each
/// `firstOffset <= lastOffset`, markers increasing, an LSO of at most the
/// marker's offset + 1. The checks of a segment's range are the caller's.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<TxnIndexEntry>, String> {
    let (chunks, rest) = bytes.as_chunks::<ENTRY_LEN>();
    if !rest.is_empty() {
        return Err(format!(
            "size {} is not a multiple of {ENTRY_LEN}",
            bytes.len()
        ));
    }
    let mut entries: Vec<TxnIndexEntry> = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let e = TxnIndexEntry::decode(chunk)
            .ok_or_else(|| format!("entry {i} has an unknown version"))?;
        let after_previous = entries.last().is_none_or(|p| e.last_offset > p.last_offset);
        let sane = e.first_offset <= e.last_offset
            && e.last_stable_offset <= e.last_offset.saturating_add(1)
            && after_previous;
        if !sane {
            return Err(format!("entry {i} {e:?} is inconsistent or out of order"));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Kafka's `collectAbortedTxns` over `entries` in marker order: adds those
/// overlapping `[from, upper)` (marker at or after `from`, first offset below
/// `upper`) to `out`; `true` when no later entry can overlap (an entry's LSO
/// reached `upper`).
pub fn collect(
    entries: &[TxnIndexEntry],
    from: i64,
    upper: i64,
    out: &mut Vec<TxnIndexEntry>,
) -> bool {
    let start = entries.partition_point(|e| e.last_offset < from);
    for e in &entries[start..] {
        if e.first_offset < upper {
            out.push(*e);
        }
        if e.last_stable_offset >= upper {
            return true;
        }
    }
    false
}

/// The aborted transactions of a log, by the base offset of the segment
/// holding their marker, mirrored in the segments' `.txnindex` files.
#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    by_segment: BTreeMap<i64, Vec<TxnIndexEntry>>,
    /// Segments whose file got an entry since its last fsync.
    unsynced: Vec<i64>,
}

/// What [`TxnIndex::load`] found.
pub(crate) enum Loaded {
    /// Every segment had a readable file; orphan files (of segments merged by
    /// a cleaning or deleted) were folded in or removed.
    Complete(TxnIndex),
    /// Some segment's file is missing or damaged (named): rebuild from the log.
    Rebuild(String),
}

impl TxnIndex {
    /// Reads every `.txnindex` file in `dir` and assigns each entry to the
    /// segment (`base -> next offset`) holding its marker; entries held by no
    /// segment are dropped. Files whose content changed are rewritten and
    /// orphan files removed.
    pub fn load(dir: &Path, segments: &BTreeMap<i64, i64>) -> Result<Loaded, LogError> {
        let mut found: BTreeMap<i64, Vec<TxnIndexEntry>> = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(LogError::io("listing", dir))? {
            let entry = entry.map_err(LogError::io("listing", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(base) = name.strip_suffix(".txnindex").and_then(parse_base) else {
                continue;
            };
            let path = entry.path();
            let bytes = std::fs::read(&path).map_err(LogError::io("reading", &path))?;
            match decode_all(&bytes) {
                Ok(entries) => {
                    found.insert(base, entries);
                }
                Err(reason) if segments.contains_key(&base) => {
                    return Ok(Loaded::Rebuild(format!("{}: {reason}", path.display())));
                }
                Err(_) => {
                    found.insert(base, Vec::new());
                }
            }
        }
        if let Some(base) = segments.keys().find(|b| !found.contains_key(b)) {
            return Ok(Loaded::Rebuild(format!(
                "{} is missing",
                file_name(*base, EXT)
            )));
        }
        let mut index = TxnIndex::default();
        let on_disk: BTreeMap<i64, usize> = found.iter().map(|(b, e)| (*b, e.len())).collect();
        for entry in found.into_values().flatten() {
            index.insert(segments, entry);
        }
        index.persist_changes(dir, segments, &on_disk)?;
        Ok(Loaded::Complete(index))
    }

    /// An empty index for `segments`, every file written (a rebuild, or a
    /// fresh log); entries are then added with [`TxnIndex::append`].
    pub fn empty(dir: &Path, segments: &BTreeMap<i64, i64>) -> Result<TxnIndex, LogError> {
        for base in segments.keys() {
            write_file(dir, *base, &[])?;
        }
        remove_orphans(dir, segments)?;
        Ok(TxnIndex::default())
    }

    /// Places `entry` with the segment holding its marker; `false` if none does.
    fn insert(&mut self, segments: &BTreeMap<i64, i64>, entry: TxnIndexEntry) -> bool {
        let Some((base, next)) = segments.range(..=entry.last_offset).next_back() else {
            return false;
        };
        if entry.last_offset >= *next {
            return false;
        }
        let v = self.by_segment.entry(*base).or_default();
        let at = v.partition_point(|e| e.last_offset < entry.last_offset);
        if v.get(at)
            .is_some_and(|e| e.last_offset == entry.last_offset)
        {
            return true;
        }
        v.insert(at, entry);
        true
    }

    /// Records the aborted transaction of a marker just written to the
    /// segment `base` (the latest marker of that segment): appended to its file.
    pub fn append(&mut self, dir: &Path, base: i64, entry: TxnIndexEntry) -> Result<(), LogError> {
        let v = self.by_segment.entry(base).or_default();
        if v.last().is_some_and(|l| l.last_offset >= entry.last_offset) {
            return Err(LogError::Corrupt {
                path: dir.join(file_name(base, EXT)),
                position: (v.len() * ENTRY_LEN) as u64,
                reason: format!("aborted transaction {entry:?} is not after the last entry"),
            });
        }
        let path = dir.join(file_name(base, EXT));
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&entry.encode()))
            .map_err(LogError::io("appending to", &path))?;
        v.push(entry);
        if !self.unsynced.contains(&base) {
            self.unsynced.push(base);
        }
        Ok(())
    }

    /// Fsyncs the files that got entries since their last fsync (on roll and
    /// flush, with the segments they index).
    pub fn sync(&mut self, dir: &Path) -> Result<(), LogError> {
        for base in std::mem::take(&mut self.unsynced) {
            let path = dir.join(file_name(base, EXT));
            match std::fs::File::open(&path).and_then(|f| f.sync_all()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(LogError::io("fsyncing", path)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// After the log's segments changed (roll, retention, truncation,
    /// cleaning): entries follow the segment now holding their marker, those
    /// held by none (deleted, truncated) are dropped, new segments get an
    /// empty file, deleted ones lose theirs.
    pub fn reconcile(&mut self, dir: &Path, segments: &BTreeMap<i64, i64>) -> Result<(), LogError> {
        let on_disk: BTreeMap<i64, usize> =
            self.by_segment.iter().map(|(b, e)| (*b, e.len())).collect();
        let unchanged = self.by_segment.iter().all(|(base, v)| {
            segments
                .get(base)
                .is_some_and(|next| v.last().is_none_or(|e| e.last_offset < *next))
        }) && segments.keys().all(|b| self.by_segment.contains_key(b));
        if unchanged {
            return Ok(());
        }
        let old = std::mem::take(&mut self.by_segment);
        for entry in old.into_values().flatten() {
            self.insert(segments, entry);
        }
        self.persist_changes(dir, segments, &on_disk)
    }

    /// Writes the file of every segment whose entries differ from `on_disk`
    /// (counts by base; a segment's entries only ever grow or move), creates
    /// missing ones and removes files of bases that are no segment.
    fn persist_changes(
        &mut self,
        dir: &Path,
        segments: &BTreeMap<i64, i64>,
        on_disk: &BTreeMap<i64, usize>,
    ) -> Result<(), LogError> {
        for base in segments.keys() {
            let v = self.by_segment.entry(*base).or_default();
            if on_disk.get(base) != Some(&v.len()) {
                write_file(dir, *base, v)?;
            }
        }
        self.by_segment.retain(|b, _| segments.contains_key(b));
        self.unsynced.retain(|b| segments.contains_key(b));
        for base in on_disk.keys().filter(|b| !segments.contains_key(b)) {
            remove_file(dir, *base)?;
        }
        Ok(())
    }

    /// Drops entries whose marker is at or above `offset` (before a replay
    /// from there re-adds them), rewriting the files that lose some.
    pub fn truncate_from(&mut self, dir: &Path, offset: i64) -> Result<(), LogError> {
        for (base, v) in self.by_segment.iter_mut() {
            let kept = v.partition_point(|e| e.last_offset < offset);
            if kept < v.len() {
                v.truncate(kept);
                write_file(dir, *base, v)?;
            }
        }
        Ok(())
    }

    /// Forgets segment `base` (deleted by retention, which removes its file
    /// with the segment's).
    pub fn forget(&mut self, base: i64) {
        self.by_segment.remove(&base);
        self.unsynced.retain(|b| *b != base);
    }

    /// The aborted transactions overlapping `[from, upper)` (see [`collect`]).
    pub fn collect(&self, from: i64, upper: i64) -> Vec<TxnIndexEntry> {
        let first = self
            .by_segment
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        let mut out = Vec::new();
        for v in self.by_segment.range(first..).map(|(_, v)| v) {
            if collect(v, from, upper, &mut out) {
                break;
            }
        }
        out
    }

    /// A committed cleaning replaced the segments `replaced` by `cleaned`
    /// (base, entries), whose files are already in place: the entries of
    /// aborted transactions whose markers the pass dropped are gone.
    pub fn replace_cleaned(&mut self, replaced: &[i64], cleaned: Vec<(i64, Vec<TxnIndexEntry>)>) {
        for base in replaced {
            self.by_segment.remove(base);
            self.unsynced.retain(|b| b != base);
        }
        self.by_segment.extend(cleaned);
    }

    /// The entries of the segment `base` (its `.txnindex` content).
    pub fn segment_entries(&self, base: i64) -> Vec<TxnIndexEntry> {
        self.by_segment.get(&base).cloned().unwrap_or_default()
    }
}

/// Writes and fsyncs `<base>.txnindex.cleaned`, the index of a segment a
/// cleaning pass wrote: renamed into place with the segment's other files at
/// the commit, deleted with them if the pass does not commit.
pub(crate) fn write_cleaned(
    dir: &Path,
    base: i64,
    entries: &[TxnIndexEntry],
) -> Result<(), LogError> {
    let path = dir.join(format!(
        "{}{}",
        file_name(base, EXT),
        crate::segment::CLEANED_SUFFIX
    ));
    std::fs::File::create(&path)
        .and_then(|mut f| {
            f.write_all(&encode_all(entries))?;
            f.sync_all()
        })
        .map_err(LogError::io("writing", &path))
}

fn parse_base(stem: &str) -> Option<i64> {
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Writes a segment's file: an empty one plainly (losing it to a power cut
/// only means a rebuild at open), entries atomically and durably (a torn
/// rewrite must not lose an aborted transaction).
fn write_file(dir: &Path, base: i64, entries: &[TxnIndexEntry]) -> Result<(), LogError> {
    let name = file_name(base, EXT);
    if entries.is_empty() {
        let path = dir.join(&name);
        return std::fs::File::create(&path)
            .map(drop)
            .map_err(LogError::io("creating", path));
    }
    checkpoint::write_atomic_bytes(dir, &name, &encode_all(entries))
}

fn remove_file(dir: &Path, base: i64) -> Result<(), LogError> {
    let path = dir.join(file_name(base, EXT));
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(LogError::io("deleting", path)(e)),
        _ => Ok(()),
    }
}

fn remove_orphans(dir: &Path, segments: &BTreeMap<i64, i64>) -> Result<(), LogError> {
    for entry in std::fs::read_dir(dir).map_err(LogError::io("listing", dir))? {
        let entry = entry.map_err(LogError::io("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".txnindex").and_then(parse_base) {
            if !segments.contains_key(&base) {
                remove_file(dir, base)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64) -> TxnIndexEntry {
        TxnIndexEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_round_trip_in_kafkas_layout_and_damage_is_caught() {
        let bytes = encode_all(&[entry(7, 3, 10), entry(8, 5, 12)]);
        assert_eq!(bytes.len(), 2 * ENTRY_LEN);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &11i64.to_be_bytes());
        assert_eq!(
            decode_all(&bytes).unwrap(),
            [entry(7, 3, 10), entry(8, 5, 12)]
        );
        assert!(decode_all(&bytes[..50]).is_err());
        let mut v1 = bytes.clone();
        v1[1] = 1;
        assert!(decode_all(&v1).is_err());
        assert!(decode_all(&encode_all(&[entry(8, 5, 12), entry(7, 3, 10)])).is_err());
    }

    #[test]
    fn collect_stops_at_an_lso_reaching_the_upper_bound() {
        let entries = [entry(1, 0, 4), entry(2, 6, 9), entry(3, 10, 20)];
        let mut out = Vec::new();
        assert!(collect(&entries, 0, 5, &mut out));
        assert_eq!(out, [entry(1, 0, 4)]);
        out.clear();
        assert!(!collect(&entries, 5, 30, &mut out));
        assert_eq!(out, [entry(2, 6, 9), entry(3, 10, 20)]);
    }

    #[test]
    fn files_follow_segments_through_merges_deletions_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut segs: BTreeMap<i64, i64> = [(0, 10), (10, 20), (20, 30)].into();
        let mut idx = TxnIndex::empty(d, &segs).unwrap();
        idx.append(d, 0, entry(1, 0, 4)).unwrap();
        idx.append(d, 10, entry(2, 8, 15)).unwrap();
        idx.append(d, 20, entry(3, 21, 25)).unwrap();
        assert!(idx.append(d, 20, entry(4, 21, 22)).is_err());
        // A cleaning merges the first two segments.
        segs.remove(&10);
        segs.insert(0, 20);
        idx.reconcile(d, &segs).unwrap();
        assert!(!d.join(file_name(10, EXT)).exists());
        let Loaded::Complete(loaded) = TxnIndex::load(d, &segs).unwrap() else {
            panic!("rebuild");
        };
        assert_eq!(loaded.segment_entries(0), [entry(1, 0, 4), entry(2, 8, 15)]);
        assert_eq!(idx.collect(5, 30), [entry(2, 8, 15), entry(3, 21, 25)]);
        // Retention deletes the first segment, truncation cuts the last.
        segs.remove(&0);
        idx.reconcile(d, &segs).unwrap();
        idx.truncate_from(d, 25).unwrap();
        assert_eq!(idx.collect(0, 100), []);
        std::fs::remove_file(d.join(file_name(20, EXT))).unwrap();
        assert!(matches!(
            TxnIndex::load(d, &segs).unwrap(),
            Loaded::Rebuild(_)
        ));
    }
}
