//! A remote pass over real segments in an in-memory store, read back through the remote
//! reader: what it keeps (each key's latest record, tombstones until their horizon), what
//! it merges and what it leaves as it was, and how a small key map spreads the work over
//! several passes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_log::{CleanParams, Log, LogConfig, OffsetMap};
use strata_tier::compaction::{self, Swap, SwapOutcome};
use strata_tier::copier::{self, LocalFile, LocalSegmentFiles, Throttle, TopicInfo};
use strata_tier::object_store::{memory::InMemory, ObjectStore};
use strata_tier::{CacheConfig, PartitionKey, PartitionManifest, RemoteReader};

use super::compact_pass::{Pass, PassReport};
use crate::replica::TopicPartition;

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// One batch of single records `(key, value)`, timestamps `ts`.
fn batch(records: &[(String, Option<String>)], ts: i64) -> Vec<u8> {
    txn_batch(records, ts, None)
}

/// [`batch`], transactional from producer `(id, base sequence)` (epoch 0) if given.
fn txn_batch(records: &[(String, Option<String>)], ts: i64, txn: Option<(i64, i32)>) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: txn.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: txn.map_or(-1, |t| t.0),
            producer_epoch: if txn.is_some() { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: txn.map_or(-1, |t| t.1 + i as i32),
            timestamp: ts,
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    buf.to_vec()
}

/// A local log the test appends to and uploads from, a store, and a reader over it.
struct Tier {
    _dir: tempfile::TempDir,
    scratch: tempfile::TempDir,
    log: Log,
    store: Arc<dyn ObjectStore>,
    reader: RemoteReader,
    pk: PartitionKey,
    tp: TopicPartition,
    /// key -> (offset, value) of its latest record.
    latest: BTreeMap<String, (i64, Option<String>)>,
    /// The clock of time-based rolls: a `segment.ms` further at each upload.
    clock: i64,
}

impl Tier {
    async fn new() -> Tier {
        let dir = tempfile::tempdir().expect("tmp");
        let log = Log::open(dir.path().join("t-0"), log_config(), 0).expect("log");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let reader = RemoteReader::new(store.clone(), CacheConfig::default())
            .await
            .expect("reader");
        Tier {
            _dir: dir,
            scratch: tempfile::tempdir().expect("tmp"),
            log,
            store,
            reader,
            pk: PartitionKey {
                topic: "t".into(),
                topic_id: uuid::Uuid::new_v4(),
                partition: 0,
            },
            tp: TopicPartition {
                topic: "t".into(),
                partition: 0,
            },
            latest: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Appends one batch per 10 records of `records`, then uploads every sealed segment not
    /// yet in the remote tier (as the RLM would, unchanged: this log is not cleaned locally).
    async fn append_and_upload(
        &mut self,
        records: &[(String, Option<String>)],
    ) -> PartitionManifest {
        for chunk in records.chunks(10) {
            let info = self
                .log
                .append(&batch(chunk, 1_000), 1_000)
                .expect("append");
            for (i, (k, v)) in chunk.iter().enumerate() {
                self.latest
                    .insert(k.clone(), (info.base_offset + i as i64, v.clone()));
            }
        }
        self.upload_sealed().await
    }

    /// One transaction of producer `pid` (epoch 0) writing `records` in batches of 10 from
    /// sequence `seq`, committed or aborted; then uploads as [`Tier::append_and_upload`].
    async fn transaction(
        &mut self,
        (pid, seq): (i64, i32),
        records: &[(String, Option<String>)],
        commit: bool,
    ) -> PartitionManifest {
        for (n, chunk) in records.chunks(10).enumerate() {
            let b = txn_batch(chunk, 1_000, Some((pid, seq + 10 * n as i32)));
            let info = self.log.append(&b, 1_000).expect("append");
            if commit {
                for (i, (k, v)) in chunk.iter().enumerate() {
                    self.latest
                        .insert(k.clone(), (info.base_offset + i as i64, v.clone()));
                }
            }
        }
        let spec = strata_log::TxnMarkerSpec {
            producer_id: pid,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
        };
        self.log.append_marker(spec, 0, 1_000).expect("marker");
        self.upload_sealed().await
    }

    /// Rolls the active segment and uploads every sealed segment not yet remote.
    async fn upload_sealed(&mut self) -> PartitionManifest {
        self.clock += LogConfig::default().segment_ms + 1;
        self.log.roll_if_due(self.clock).expect("roll");
        let mut m = self.manifest().await;
        let segs = self.log.segments();
        for s in &segs[..segs.len() - 1] {
            if m.end_offset().is_some_and(|e| s.base_offset < e) {
                continue;
            }
            let open = self
                .log
                .open_segment(s.base_offset)
                .expect("open")
                .expect("sealed");
            let f = |file, len, ext| LocalFile {
                file: Arc::new(file),
                len,
                path: open.log_path.with_extension(ext),
            };
            let files = LocalSegmentFiles {
                log: f(open.log, open.info.size_bytes, "log"),
                index: f(open.index, open.index_bytes, "index"),
                timeindex: f(open.timeindex, open.timeindex_bytes, "timeindex"),
                txnindex: open.txnindex,
                producer_snapshot: open.producer_snapshot.unwrap_or_default(),
                base_offset: open.info.base_offset,
                next_offset: open.info.next_offset,
                max_timestamp: open.info.max_timestamp.unwrap_or(-1),
            };
            let info = TopicInfo {
                partition_count: 1,
                ..Default::default()
            };
            m = copier::copy_segment(&*self.store, &self.pk, &files, &info, &Throttle::new(0))
                .await
                .expect("upload");
        }
        m
    }

    async fn manifest(&self) -> PartitionManifest {
        strata_tier::manifest::load(&*self.store, &self.pk)
            .await
            .expect("load")
            .unwrap_or_else(|| PartitionManifest::empty(self.pk.clone()))
    }

    /// One pass at `now` with a map of `memory` bytes, published. `None`: nothing to do.
    async fn pass(&self, now: i64, memory: usize) -> Option<(PassReport, Swap, SwapOutcome)> {
        let m = self.manifest().await;
        let (store, reader, tp) = (self.store.clone(), self.reader.clone(), self.tp.clone());
        let scratch = self.scratch.path().to_path_buf();
        let rt = tokio::runtime::Handle::current();
        let m2 = m.clone();
        let log_end = self.log.log_end_offset();
        let local_aborted = self
            .log
            .aborted_txns(i64::MIN, m.end_offset().unwrap_or(i64::MIN));
        let ran = tokio::task::spawn_blocking(move || {
            let pass = Pass {
                tp: &tp,
                m: &m2,
                reader: &reader,
                store: &*store,
                throttle: &Throttle::new(0),
                rt: &rt,
                log_config: log_config(),
                params: CleanParams {
                    delete_retention_ms: 1_000,
                    ..CleanParams::at(now)
                },
                producers: HashMap::new(),
                log_end,
                local_aborted,
                scratch: &scratch,
            };
            pass.run(&mut OffsetMap::with_memory(memory))
        })
        .await
        .expect("pass task")
        .expect("pass");
        let (swap, report) = ran?;
        let outcome = compaction::swap(&*self.store, &self.pk, &swap)
            .await
            .expect("swap");
        Some((report, swap, outcome))
    }

    /// Every remote record from offset 0: (offset, key, value).
    async fn read_remote(&self) -> Vec<(i64, String, Option<String>)> {
        let m = self.manifest().await;
        let (mut offset, mut out) = (0, Vec::new());
        while offset < m.end_offset().unwrap_or(0) {
            let bytes = self
                .reader
                .read(&m, offset, 1 << 20, true)
                .await
                .expect("read")
                .to_bytes();
            if bytes.is_empty() {
                break;
            }
            for item in strata_log::cleaner::stream::batches(&bytes) {
                let (h, b) = item.expect("a whole batch");
                let from = offset;
                offset = offset.max(h.last_offset() + 1);
                if h.attributes & 0x20 != 0 {
                    continue; // a transaction marker: not data
                }
                let mut b = Bytes::copy_from_slice(b);
                for set in RecordBatchDecoder::decode_all(&mut b).expect("decode") {
                    for r in set.records.into_iter().filter(|r| r.offset >= from) {
                        let key = String::from_utf8_lossy(&r.key.unwrap_or_default()).to_string();
                        let value = r.value.map(|v| String::from_utf8_lossy(&v).to_string());
                        out.push((r.offset, key, value));
                    }
                }
            }
        }
        out
    }

    /// The offsets of the remote transaction markers left.
    async fn remote_markers(&self) -> Vec<i64> {
        let m = self.manifest().await;
        let (mut offset, mut out) = (0, Vec::new());
        while offset < m.end_offset().unwrap_or(0) {
            let bytes = self
                .reader
                .read(&m, offset, 1 << 20, true)
                .await
                .expect("read")
                .to_bytes();
            if bytes.is_empty() {
                break;
            }
            for item in strata_log::cleaner::stream::batches(&bytes) {
                let (h, _) = item.expect("a whole batch");
                if h.attributes & 0x20 != 0 && h.base_offset >= offset {
                    out.push(h.base_offset);
                }
                offset = offset.max(h.last_offset() + 1);
            }
        }
        out
    }

    fn compacted(&self, with_tombstones: bool) -> Vec<(i64, String, Option<String>)> {
        let mut want: Vec<_> = self
            .latest
            .iter()
            .filter(|(_, (_, v))| with_tombstones || v.is_some())
            .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
            .collect();
        want.sort();
        want
    }
}

fn versions(keys: usize, round: usize) -> Vec<(String, Option<String>)> {
    (0..keys)
        .map(|k| {
            (
                format!("k{k:03}"),
                Some(format!("v{round}-{}", "x".repeat(20 + k))),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_keeps_each_keys_latest_record_and_tombstones_until_their_horizon() {
    let mut t = Tier::new().await;
    for round in 0..3 {
        t.append_and_upload(&versions(40, round)).await;
    }
    let dead: Vec<_> = (0..40)
        .step_by(5)
        .map(|k| (format!("k{k:03}"), None))
        .collect();
    t.append_and_upload(&dead).await;
    t.append_and_upload(&versions(2, 9)).await;
    let before = t.manifest().await;
    let (report, swap, outcome) = t.pass(10_000, 1 << 20).await.expect("work to do");
    assert!(matches!(outcome, SwapOutcome::Swapped(_)));
    assert_eq!((report.start_offset, report.dirty_from), (0, 0));
    assert_eq!(report.end_offset, before.end_offset().unwrap_or(0));
    assert!(report.bytes_after < report.bytes_before / 2, "{report:?}");
    assert!(
        report.segments_written < report.segments_replaced,
        "merged: {report:?}"
    );
    assert_eq!(swap.tombstone_horizon_ms, Some(11_000));
    // Tombstones stay until their horizon: every latest record, tombstones included.
    assert_eq!(t.read_remote().await, t.compacted(true));
    let m = t.manifest().await;
    assert_eq!(m.first_dirty_offset, report.end_offset);
    assert_eq!(
        m.retired.len(),
        report.segments_replaced - report.segments_kept
    );
    assert_eq!(
        (m.start_offset(), m.end_offset()),
        (before.start_offset(), before.end_offset())
    );
    // Before the horizon the records stay; passes only merge what the first one left
    // small, until every output is kept as it is (nothing uploaded, nothing published).
    let mut settled = false;
    for _ in 0..3 {
        let (report, swap, _) = t.pass(10_999, 1 << 20).await.expect("a pass");
        assert_eq!(t.read_remote().await, t.compacted(true));
        assert_eq!(swap.tombstone_horizon_ms, Some(11_000));
        if report.segments_written == 0 {
            assert_eq!(
                swap.replaced,
                swap.segments.iter().map(|s| s.id).collect::<Vec<_>>()
            );
            settled = true;
            break;
        }
    }
    assert!(settled, "passes kept rewriting unchanged segments");
    // After it the tombstones go.
    let (report, _, _) = t.pass(11_000, 1 << 20).await.expect("a pass");
    // k000's tombstone was superseded at once by a later version.
    assert_eq!(report.tombstones_removed, 7, "{report:?}");
    assert_eq!(t.read_remote().await, t.compacted(false));
    assert_eq!(t.manifest().await.tombstone_horizon_ms, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_map_maps_up_to_a_segment_boundary_and_the_next_pass_goes_on() {
    let mut t = Tier::new().await;
    for round in 0..4 {
        t.append_and_upload(&versions(60, round)).await;
    }
    let m = t.manifest().await;
    // Room for fewer keys than there are (28 of 60): a few segments at a time.
    let (report, _, _) = t.pass(0, 1 << 10).await.expect("work");
    let bounds: Vec<i64> = m.segments.iter().map(|s| s.next_offset).collect();
    assert!(
        bounds.contains(&report.end_offset),
        "{} not in {bounds:?}",
        report.end_offset
    );
    assert!(
        report.end_offset < m.end_offset().unwrap_or(0),
        "the map filled up"
    );
    assert_eq!(t.manifest().await.first_dirty_offset, report.end_offset);
    // Whatever was not mapped yet is kept; each pass moves the first dirty offset on.
    let mut passes = 1;
    while t.manifest().await.first_dirty_offset < m.end_offset().unwrap_or(0) {
        let (r, _, _) = t.pass(0, 1 << 10).await.expect("work");
        assert!(r.end_offset > r.dirty_from);
        passes += 1;
        assert!(passes < 50);
    }
    assert!(passes > 1);
    // The last pass saw the newest version of every key: one record a key.
    let (_, _, _) = t.pass(0, 1 << 20).await.expect("work");
    assert_eq!(t.read_remote().await, t.compacted(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_removes_aborted_transactions_and_then_their_markers() {
    let mut t = Tier::new().await;
    t.append_and_upload(&versions(20, 0)).await;
    t.transaction((7, 0), &versions(20, 1), true).await;
    t.transaction((7, 20), &versions(20, 2), false).await;
    t.append_and_upload(&versions(2, 9)).await;
    let markers = t.remote_markers().await;
    assert_eq!(markers.len(), 2, "both markers are remote");
    // The aborted round goes; the committed one is each key's latest.
    t.pass(10_000, 1 << 20).await.expect("work to do");
    assert_eq!(t.read_remote().await, t.compacted(true));
    assert_eq!(
        t.remote_markers().await,
        markers,
        "data of both was still seen"
    );
    // Next pass: the ABORT marker has no data left: it gets a delete horizon, and goes in
    // a pass after it. (The COMMIT marker's data is still there: it stays.)
    let (_, swap, _) = t.pass(10_000, 1 << 20).await.expect("a pass");
    assert_eq!(swap.tombstone_horizon_ms, Some(11_000));
    assert_eq!(t.remote_markers().await, markers);
    t.pass(20_000, 1 << 20).await.expect("a pass");
    assert_eq!(t.remote_markers().await, vec![markers[0]]);
    assert_eq!(t.read_remote().await, t.compacted(true));
}
