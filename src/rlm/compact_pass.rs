//! One remote compaction pass over one partition's remote segments, run on a blocking
//! thread: the store and reader calls are driven with `Handle::block_on`, the decoding,
//! filtering and encoding are `strata_log::cleaner::stream`'s (the same map, record filter
//! and segment format as a local pass), and this file only moves bytes between them.
//!
//! 1. **Map**: the remote segments ending above the manifest's first dirty offset, read
//!    in offset order through the remote reader (the chunk cache), go into the key map
//!    until it might not hold the next segment (a segment boundary, as a local pass).
//! 2. **Rewrite**: every remote segment from the remote start to the end of the mapped
//!    range is read again and filtered batch by batch into new segments written in a
//!    scratch directory; `packing.rs` decides where each kept batch goes (cleaned-down
//!    segments merge up to `segment.bytes`, a large segment nothing changed in keeps its
//!    object). Each output is uploaded as new objects once complete, and its scratch files
//!    deleted, so the scratch space holds about one segment.
//! 3. The caller publishes the swap (`strata_tier::compaction::swap`).
//!
//! Nothing here changes the manifest: an error or a crash leaves orphans only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use strata_log::cleaner::stream::{self, BatchFilter, Filtered, KeyMapper, SegmentWriter};
use strata_log::{CleanParams, LogConfig, LogError, OffsetMap, OpenSegment, TxnIndexEntry};
use strata_tier::compaction::Swap;
use strata_tier::copier::{self, Throttle};
use strata_tier::layout::SegmentFile;
use strata_tier::object_store::ObjectStore;
use strata_tier::{PartitionKey, PartitionManifest, RemoteReader, RemoteSegment, TierError};
use tokio::runtime::Handle;

use super::packing::{Packer, Step};
use crate::replica::TopicPartition;

/// Why a remote pass failed. Messages name the topic-partition and, where there is one, the
/// object key and offset.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("remote compaction of {tp}: {source}")]
    Tier {
        tp: TopicPartition,
        // Boxed: a `TierError` carries an `object_store::Error` by value, and this error
        // travels through every step of a pass.
        #[source]
        source: Box<TierError>,
    },
    #[error("remote compaction of {tp}: the batch at offset {base_offset} of remote object {key} is corrupt: {reason}")]
    Corrupt {
        tp: TopicPartition,
        key: String,
        base_offset: i64,
        reason: String,
    },
    #[error(
        "remote compaction of {tp}: writing the cleaned segment at offset {base_offset}: {source}"
    )]
    Local {
        tp: TopicPartition,
        base_offset: i64,
        #[source]
        source: LogError,
    },
    #[error("remote compaction of {tp}: scratch directory {}: {source}", dir.display())]
    Scratch {
        tp: TopicPartition,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remote compaction of {tp}: the pass's task died (see the panic above)")]
    Died { tp: TopicPartition },
}

/// Bytes asked of the reader at a time (it answers whole batches, about a chunk).
const READ_BYTES: usize = 1 << 20;

/// What a pass needs; all of it borrowed for the pass's duration.
pub(super) struct Pass<'a> {
    pub tp: &'a TopicPartition,
    pub m: &'a PartitionManifest,
    pub reader: &'a RemoteReader,
    pub store: &'a dyn ObjectStore,
    pub throttle: &'a Throttle,
    pub rt: &'a Handle,
    /// `segment.bytes`, `segment.index.bytes`, `index.interval.bytes` of the topic.
    pub log_config: LogConfig,
    /// The clock, `delete.retention.ms`; `keep_tombstones` off: this pass sets and
    /// honours tombstone horizons.
    pub params: CleanParams,
    /// The leader's producer state: each producer's last batch keeps its header.
    pub producers: HashMap<i64, i64>,
    /// The log end: the log's last batch keeps its header, so that a reader can reach the
    /// end (after recovery from the bucket the remote tier's last batch is the log's).
    pub log_end: i64,
    /// The aborted transactions of the local log's `.txnindex` that started below the
    /// remote end (their ABORT markers may be in local segments only): with the remote
    /// segments' own, every aborted transaction whose data the pass may see.
    pub local_aborted: Vec<TxnIndexEntry>,
    pub scratch: &'a Path,
}

/// What a pass did, for the log, the metrics and `tier status`.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// The remote start, where rewriting began.
    pub start_offset: i64,
    /// Where mapping began (the remote first dirty offset) and ended.
    pub dirty_from: i64,
    pub end_offset: i64,
    pub segments_replaced: usize,
    pub segments_written: usize,
    pub segments_kept: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Bytes read from the remote tier (mapping and rewriting) and uploaded.
    pub bytes_read: u64,
    pub bytes_uploaded: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub tombstones_removed: u64,
    pub horizons_set: u64,
    pub map_keys: usize,
}

impl Pass<'_> {
    fn pk(&self) -> &PartitionKey {
        &self.m.partition
    }

    fn key_of(&self, s: &RemoteSegment) -> String {
        self.pk()
            .segment(s.base_offset, s.id, SegmentFile::Log)
            .to_string()
    }

    fn corrupt(&self, s: &RemoteSegment, e: stream::StreamError) -> CompactError {
        match e {
            stream::StreamError::Corrupt {
                base_offset,
                reason,
                ..
            } => CompactError::Corrupt {
                tp: self.tp.clone(),
                key: self.key_of(s),
                base_offset,
                reason,
            },
            stream::StreamError::Log(source) => CompactError::Local {
                tp: self.tp.clone(),
                base_offset: s.base_offset,
                source,
            },
        }
    }

    fn local(&self, base_offset: i64) -> impl Fn(stream::StreamError) -> CompactError + '_ {
        move |e| match e {
            stream::StreamError::Log(source) => CompactError::Local {
                tp: self.tp.clone(),
                base_offset,
                source,
            },
            stream::StreamError::Corrupt {
                base_offset,
                reason,
                ..
            } => CompactError::Corrupt {
                tp: self.tp.clone(),
                key: format!("the cleaned segment at {base_offset}"),
                base_offset,
                reason,
            },
        }
    }

    /// Calls `f` with the whole batches of `seg` from `from` on, read through the reader
    /// (chunk cache) in pieces of about a chunk, each throttled. Returns the bytes read.
    fn read_segment(
        &self,
        seg: &RemoteSegment,
        from: i64,
        mut f: impl FnMut(&[u8]) -> Result<(), CompactError>,
    ) -> Result<u64, CompactError> {
        // A manifest of this segment alone keeps the reader inside it.
        let one = PartitionManifest {
            version: self.m.version,
            partition: self.pk().clone(),
            partition_count: self.m.partition_count,
            configs: Default::default(),
            log_start_offset: self.m.log_start_offset,
            segments: vec![seg.clone()],
            first_dirty_offset: self.m.first_dirty_offset,
            tombstone_horizon_ms: None,
            retired: Vec::new(),
        };
        let mut offset = from.max(seg.base_offset).max(self.m.log_start_offset);
        let mut read = 0u64;
        while offset < seg.next_offset {
            let bytes = self
                .rt
                .block_on(self.reader.read(&one, offset, READ_BYTES, true))
                .map_err(|source| CompactError::Tier {
                    tp: self.tp.clone(),
                    source: Box::new(source),
                })?
                .to_bytes();
            if bytes.is_empty() {
                break;
            }
            self.rt.block_on(self.throttle.take(bytes.len()));
            read += bytes.len() as u64;
            let mut last = None;
            for item in stream::batches(&bytes) {
                let (h, _) = item.map_err(|e| self.corrupt(seg, e))?;
                last = Some(h.last_offset());
            }
            f(&bytes)?;
            match last {
                Some(last) if last >= offset => offset = last + 1,
                _ => {
                    return Err(CompactError::Corrupt {
                        tp: self.tp.clone(),
                        key: self.key_of(seg),
                        base_offset: offset,
                        reason: "a read made no progress".into(),
                    })
                }
            }
        }
        Ok(read)
    }

    /// Runs the pass with `map` (its memory bounds how much is mapped). `None` when there
    /// is nothing to rewrite. The swap is returned for the caller to publish.
    pub fn run(&self, map: &mut OffsetMap) -> Result<Option<(Swap, PassReport)>, CompactError> {
        let m = self.m;
        let Some(start) = m.start_offset() else {
            return Ok(None);
        };
        let dirty_from = m.dirty_start();
        let mut report = PassReport {
            start_offset: start,
            dirty_from,
            ..PassReport::default()
        };
        // Transactions: every remote segment is below the last stable offset (uploads stop
        // there), so its transactional batches were committed or aborted, and the aborted
        // ones are in the remote `.txnindex` objects or, for markers not uploaded yet, the
        // local one.
        let aborted = self.aborted_txns()?;
        // 1. Map.
        let mut mapper = KeyMapper::new(map, dirty_from).with_aborted_txns(aborted.clone());
        for seg in m.segments.iter().filter(|s| s.next_offset > dirty_from) {
            if !mapper.begin_segment(seg.base_offset, seg.next_offset) {
                break;
            }
            let read = self.read_segment(seg, dirty_from, |b| {
                mapper.add(b).map_err(|e| self.corrupt(seg, e))
            })?;
            report.bytes_read += read;
            mapper.end_segment();
        }
        let end = mapper.mapped_end();
        report.end_offset = end;
        report.map_keys = map.len();
        let run: Vec<&RemoteSegment> = m.segments.iter().filter(|s| s.base_offset < end).collect();
        let Some(last) = run.last() else {
            return Ok(None);
        };
        let run_end = last.next_offset;
        // 2. Rewrite (where the kept batches go: `packing.rs`).
        // The pass rewrites from the remote start, the log start: nothing is out of sight.
        let mut filter = BatchFilter::new(map, end, &self.params, &self.producers)
            .keeping_last_batch(self.log_end - 1)
            .with_aborted_txns(aborted, i64::MIN);
        let mut packer = Packer::new(run[0].base_offset, self.log_config.segment_bytes);
        let mut outs: Vec<RemoteSegment> = Vec::new();
        let mut cur: Option<SegmentWriter> = None;
        for (i, seg) in run.iter().enumerate() {
            report.segments_replaced += 1;
            report.bytes_before += seg.size_bytes;
            let next_size = run.get(i + 1).map(|n| n.size_bytes);
            packer.begin_segment(seg.base_offset, seg.next_offset, seg.size_bytes, next_size);
            let read = self.read_segment(seg, seg.base_offset, |bytes| {
                for item in stream::batches(bytes) {
                    let (h, b) = item.map_err(|e| self.corrupt(seg, e))?;
                    let (out, rewritten) =
                        match filter.filter(b).map_err(|e| self.corrupt(seg, e))? {
                            Filtered::Keep => (std::borrow::Cow::Borrowed(b), false),
                            Filtered::Rewrite(new) => (std::borrow::Cow::Owned(new), true),
                            Filtered::Drop => {
                                packer.dropped();
                                continue;
                            }
                        };
                    let fits = cur.as_ref().is_some_and(|w| w.fits(&out));
                    let steps = packer.kept(h.base_offset, out.len() as u64, rewritten, fits);
                    self.perform(steps, &mut cur, &mut outs, seg, Some(&out), &mut report)?;
                }
                Ok(())
            })?;
            report.bytes_read += read;
            let steps = packer.end_segment();
            self.perform(steps, &mut cur, &mut outs, seg, None, &mut report)?;
        }
        let steps = packer.end_run(run_end);
        self.perform(steps, &mut cur, &mut outs, last, None, &mut report)?;
        self.carry_aborted(&run, &mut outs, &filter.kept_txn_entries())?;
        let stats = filter.stats();
        report.records_read = stats.records_read;
        report.records_kept = stats.records_kept;
        report.tombstones_removed = stats.tombstones_removed;
        report.horizons_set = stats.horizons_set;
        let swap = Swap {
            replaced: run.iter().map(|s| s.id).collect(),
            segments: outs,
            first_dirty_offset: end,
            tombstone_horizon_ms: stats.next_horizon,
            now_ms: self.params.now_ms,
        };
        Ok(Some((swap, report)))
    }

    /// Performs the packer's `steps` on the output being written: `batch` is the kept batch
    /// being placed, `seg` the segment being read (kept as it is on `KeepSegment`).
    fn perform(
        &self,
        steps: Vec<Step>,
        cur: &mut Option<SegmentWriter>,
        outs: &mut Vec<RemoteSegment>,
        seg: &RemoteSegment,
        batch: Option<&[u8]>,
        report: &mut PassReport,
    ) -> Result<(), CompactError> {
        for step in steps {
            match step {
                Step::Finish { next } => {
                    if let Some(w) = cur.take() {
                        outs.push(self.upload(w, next, report)?);
                    }
                }
                Step::Start { base } => {
                    let w = SegmentWriter::create(
                        self.scratch,
                        base,
                        &self.log_config,
                        self.params.now_ms,
                    )
                    .map_err(self.local(base))?;
                    *cur = Some(w);
                }
                Step::Write => {
                    if let (Some(w), Some(b)) = (cur.as_mut(), batch) {
                        w.push(b).map_err(self.local(w.base_offset()))?;
                    }
                }
                Step::KeepSegment => {
                    if let Some(w) = cur.take() {
                        w.discard().map_err(self.local(seg.base_offset))?;
                    }
                    report.segments_kept += 1;
                    report.bytes_after += seg.size_bytes;
                    outs.push(seg.clone());
                }
            }
        }
        Ok(())
    }

    /// The aborted transactions of the remote segments' `.txnindex` objects and of the
    /// local log's (see [`Pass::local_aborted`]), each once.
    fn aborted_txns(&self) -> Result<Vec<TxnIndexEntry>, CompactError> {
        let tier = |source| CompactError::Tier {
            tp: self.tp.clone(),
            source: Box::new(source),
        };
        let mut entries = self.local_aborted.clone();
        for seg in self.m.segments.iter().filter(|s| s.txnindex_bytes > 0) {
            let bytes = self
                .rt
                .block_on(self.reader.txn_index(self.m, seg))
                .map_err(tier)?;
            let decoded = strata_log::txn_index::decode_all(&bytes).map_err(|reason| {
                CompactError::Corrupt {
                    tp: self.tp.clone(),
                    key: self
                        .pk()
                        .segment(seg.base_offset, seg.id, SegmentFile::TxnIndex)
                        .to_string(),
                    base_offset: seg.base_offset,
                    reason,
                }
            })?;
            entries.extend(decoded);
        }
        entries.sort_by_key(|e| (e.last_offset, e.first_offset));
        entries.dedup_by_key(|e| (e.producer_id, e.last_offset));
        Ok(entries)
    }

    /// Each new segment gets as its `.txnindex` the aborted transactions whose ABORT marker
    /// it holds and which the filter kept (data of theirs was still there); those whose
    /// markers became unneeded are dropped with them. Segments kept as they are keep
    /// theirs.
    fn carry_aborted(
        &self,
        run: &[&RemoteSegment],
        outs: &mut [RemoteSegment],
        kept: &[TxnIndexEntry],
    ) -> Result<(), CompactError> {
        if kept.is_empty() {
            return Ok(());
        }
        let tier = |source| CompactError::Tier {
            tp: self.tp.clone(),
            source: Box::new(source),
        };
        let replaced: Vec<uuid::Uuid> = run.iter().map(|s| s.id).collect();
        for out in outs.iter_mut().filter(|o| !replaced.contains(&o.id)) {
            let mine: Vec<_> = kept
                .iter()
                .filter(|e| (out.base_offset..out.next_offset).contains(&e.last_offset))
                .copied()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let bytes = strata_log::txn_index::encode_all(&mine);
            self.rt
                .block_on(copier::attach_txn_index(self.store, self.pk(), out, bytes))
                .map_err(tier)?;
        }
        Ok(())
    }

    /// Seals `w` as ending at `next`, uploads it as new objects and deletes its files.
    fn upload(
        &self,
        w: SegmentWriter,
        next: i64,
        report: &mut PassReport,
    ) -> Result<RemoteSegment, CompactError> {
        let base = w.base_offset();
        let open: OpenSegment = w.finish(next).map_err(self.local(base))?;
        let files = super::upload::segment_files(open);
        let uploaded = self
            .rt
            .block_on(copier::upload_objects(
                self.store,
                self.pk(),
                &files,
                self.throttle,
            ))
            .map_err(|source| CompactError::Tier {
                tp: self.tp.clone(),
                source: Box::new(source),
            });
        for f in [&files.log, &files.index, &files.timeindex] {
            if let Err(e) = std::fs::remove_file(&f.path) {
                tracing::debug!(path = %f.path.display(), error = %e, "scratch file not deleted; the next pass's cleanup removes it");
            }
        }
        let seg = uploaded?;
        report.segments_written += 1;
        report.bytes_after += seg.size_bytes;
        report.bytes_uploaded += seg.size_bytes + seg.index_bytes + seg.timeindex_bytes;
        Ok(seg)
    }
}
