//! The leader epoch cache (Kafka's `LeaderEpochFileCache`): which leader epoch
//! wrote the log from which offset, as a list of `(epoch, start_offset)` with
//! strictly increasing epochs and non-decreasing start offsets. A follower uses
//! it to find where its log diverges from a new leader's (OffsetForLeaderEpoch,
//! KIP-101/279): [`LeaderEpochCache::end_offset_for`] is Kafka's
//! `endOffsetFor`.
//!
//! Persisted in `<dir>/leader-epoch-checkpoint` in Kafka's text format (line 1
//! the version `0`, line 2 the entry count, then one `epoch startOffset` line per
//! entry), rewritten atomically ([`checkpoint::write_atomic`]) whenever it
//! changes. Pure apart from [`read`] and [`write`]; `log` owns the rules of
//! when it changes (append, follower append, truncation, retention) and of
//! crash ordering.

use std::path::Path;

use crate::checkpoint;
use crate::error::LogError;

pub(crate) const FILE: &str = "leader-epoch-checkpoint";
const VERSION: &str = "0";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start_offset` if it is above the latest
    /// epoch (epochs < 0 mean "no epoch" and are ignored). Entries starting past
    /// `start_offset` are dropped first so start offsets stay non-decreasing
    /// (only a caller bug could produce them). Returns whether anything changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        while self.entries.last().is_some_and(|e| e.1 > start_offset) {
            self.entries.pop();
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Kafka's `truncateFromEnd`: removes the entries starting at or after
    /// `end_offset` (the new log end after a truncation).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.1 < end_offset);
        self.entries.len() != before
    }

    /// Kafka's `truncateFromStart`: the log now starts at `start_offset`; of the
    /// entries starting at or below it only the latest is kept, moved up to
    /// `start_offset`.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let at_or_below = self.entries.partition_point(|e| e.1 <= start_offset);
        if at_or_below == 0 {
            return false;
        }
        let epoch = self.entries[at_or_below - 1].0;
        let before = self.entries.clone();
        self.entries.drain(..at_or_below);
        self.entries.insert(0, (epoch, start_offset));
        self.entries != before
    }

    /// Kafka's `endOffsetFor(requestedEpoch, logEndOffset)`:
    /// - `requested` is the latest epoch: `(requested, log_end)`;
    /// - otherwise, with `higher` the first epoch above `requested`: the largest
    ///   epoch <= `requested` and `higher`'s start offset; if no epoch is <=
    ///   `requested` (it is older than the cache, e.g. retention removed it),
    ///   `(requested, higher's start)`, as Kafka answers, so the follower
    ///   truncates to where the leader's known history begins;
    /// - `None` (UNDEFINED_EPOCH_OFFSET) for an undefined epoch (< 0), an empty
    ///   cache, or an epoch above the latest.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        if self.latest_epoch() == Some(requested) {
            return Some((requested, log_end));
        }
        let higher = self.entries.partition_point(|e| e.0 <= requested);
        let (_, higher_start) = *self.entries.get(higher)?;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].0, higher_start)),
            None => Some((requested, higher_start)),
        }
    }

    pub fn encode(&self) -> String {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        text
    }

    pub fn decode(text: &str) -> Result<LeaderEpochCache, String> {
        let mut lines = text.lines();
        let version = lines.next().ok_or("empty file")?.trim();
        if version != VERSION {
            return Err(format!("unsupported version {version:?}"));
        }
        let count: usize = lines
            .next()
            .ok_or("no entry count")?
            .trim()
            .parse()
            .map_err(|e| format!("bad entry count: {e}"))?;
        let mut cache = LeaderEpochCache::default();
        for line in lines.by_ref().take(count) {
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("malformed entry {line:?}"));
            };
            let epoch: i32 = epoch
                .parse()
                .map_err(|e| format!("bad epoch {epoch:?}: {e}"))?;
            let start: i64 = start
                .parse()
                .map_err(|e| format!("bad offset {start:?}: {e}"))?;
            if let Some(&(last_epoch, last_start)) = cache.entries.last() {
                if epoch <= last_epoch || start < last_start {
                    return Err(format!(
                        "entry ({epoch}, {start}) does not follow ({last_epoch}, {last_start})"
                    ));
                }
            }
            if epoch < 0 || start < 0 {
                return Err(format!("negative entry ({epoch}, {start})"));
            }
            cache.entries.push((epoch, start));
        }
        if cache.entries.len() != count {
            return Err(format!(
                "declares {count} entries but holds {}",
                cache.entries.len()
            ));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("trailing lines".into());
        }
        Ok(cache)
    }
}

/// The cache in `dir`, or `None` if the file is missing or unreadable (the
/// caller rebuilds it from the batch headers; an unreadable file is reported).
pub(crate) fn read(dir: &Path) -> Result<Option<LeaderEpochCache>, LogError> {
    let path = dir.join(FILE);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("reading", &path)(e)),
    };
    match LeaderEpochCache::decode(&text) {
        Ok(cache) => Ok(Some(cache)),
        Err(reason) => {
            tracing::warn!(file = %path.display(), %reason, "malformed leader epoch checkpoint; rebuilding it from the log");
            Ok(None)
        }
    }
}

/// Writes the cache atomically and durably.
pub(crate) fn write(dir: &Path, cache: &LeaderEpochCache) -> Result<(), LogError> {
    checkpoint::write_atomic(dir, FILE, &cache.encode())
}

/// Removes the file durably, so a crash before it is rewritten makes open
/// rebuild it from whatever the log then holds.
pub(crate) fn remove(dir: &Path) -> Result<(), LogError> {
    let path = dir.join(FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => checkpoint::sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("deleting", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(0, 0), (1, 10), (3, 20)]);
        let leo = 35;
        assert_eq!(c.end_offset_for(3, leo), Some((3, 35)));
        assert_eq!(c.end_offset_for(2, leo), Some((1, 20)));
        assert_eq!(c.end_offset_for(1, leo), Some((1, 20)));
        assert_eq!(c.end_offset_for(0, leo), Some((0, 10)));
        assert_eq!(c.end_offset_for(4, leo), None);
        assert_eq!(c.end_offset_for(-1, leo), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, leo), None);
        // Older than every cached epoch (retention clipped it): Kafka answers
        // the requested epoch with the first known epoch's start offset.
        let clipped = cache(&[(2, 50), (5, 70)]);
        assert_eq!(clipped.end_offset_for(1, 90), Some((1, 50)));
    }

    #[test]
    fn assign_truncate_and_clip() {
        let mut c = LeaderEpochCache::default();
        assert!(!c.assign(-1, 0));
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5));
        assert!(c.assign(2, 10));
        assert!(!c.assign(1, 12));
        assert!(c.assign(4, 20));
        assert_eq!(c.entries(), &[(0, 0), (2, 10), (4, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.latest_epoch(), Some(2));
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(2, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(!c.truncate_from_start(3));
    }

    #[test]
    fn kafka_text_format_round_trips_and_rejects_damage() {
        let c = cache(&[(0, 0), (1, 10), (3, 20)]);
        assert_eq!(c.encode(), "0\n3\n0 0\n1 10\n3 20\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0\n",
            "0\n2\n3 0\n1 10\n",
            "0\n2\n1 10\n2 5\n",
            "0\n1\n0 0\n9 9\n",
            "0\nx\n",
        ] {
            assert!(LeaderEpochCache::decode(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &c).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(c));
        std::fs::write(dir.path().join(FILE), b"\xff garbage").unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        remove(dir.path()).unwrap();
        remove(dir.path()).unwrap();
        assert!(!dir.path().join(FILE).exists());
    }

    proptest! {
        /// `end_offset_for` against a brute-force reading of Kafka's rules.
        #[test]
        fn end_offset_for_matches_brute_force(
            steps in prop::collection::vec((1i32..4, 0i64..20), 0..10),
            requested in -2i32..40,
            extra in 0i64..20,
        ) {
            let mut c = LeaderEpochCache::default();
            let (mut epoch, mut start) = (0, 0);
            for (de, ds) in steps {
                epoch += de;
                start += ds;
                prop_assert!(c.assign(epoch, start));
            }
            let leo = start + extra;
            let e = c.entries();
            let expected = if requested < 0 || e.is_empty() {
                None
            } else if Some(requested) == c.latest_epoch() {
                Some((requested, leo))
            } else {
                e.iter().find(|x| x.0 > requested).map(|higher| {
                    let floor = e.iter().rev().find(|x| x.0 <= requested).map_or(requested, |x| x.0);
                    (floor, higher.1)
                })
            };
            prop_assert_eq!(c.end_offset_for(requested, leo), expected);
            prop_assert_eq!(LeaderEpochCache::decode(&c.encode()).unwrap(), c);
        }
    }
}
