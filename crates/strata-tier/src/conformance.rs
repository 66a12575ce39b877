//! Checks every remote-tier backend must pass (memory://, file://, S3/moto), in
//! the style of `object_store`'s `integration.rs`: plain `async fn`s that panic
//! with a message on failure. Each backend's test calls [`run_all`]; the keys used
//! live under a random prefix so runs can share a bucket.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use uuid::Uuid;

use crate::cache::CacheConfig;
use crate::copier::{self, LocalFile, LocalSegmentFiles, Throttle, TopicInfo};
use crate::layout::PartitionKey;
use crate::manifest;
use crate::reader::RemoteReader;
use crate::topics;
use crate::TierError;

/// Runs every check.
pub async fn run_all(store: Arc<dyn ObjectStore>) {
    put_get_range_list_delete(&*store).await;
    create_if_absent_is_exclusive(&*store).await;
    manifest_chain_compare_and_swap(&*store).await;
    copy_read_expire_round_trip(store.clone()).await;
    large_segment_streams_as_multipart(store.clone()).await;
    uploads_read_the_files_as_opened(store.clone()).await;
    topic_metadata_and_discovery(store.clone()).await;
    gap_below_local_start_is_bridged(store.clone()).await;
}

fn scratch() -> String {
    format!("conformance-{}", Uuid::new_v4())
}

pub async fn put_get_range_list_delete(store: &dyn ObjectStore) {
    let dir = scratch();
    let key = Path::from(format!("{dir}/a/obj"));
    let body = Bytes::from_static(b"0123456789");
    store.put(&key, body.clone().into()).await.expect("put");
    let got = store
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(got, body, "get returns what was put");
    assert_eq!(
        store.get_range(&key, 2..5).await.expect("range"),
        Bytes::from_static(b"234")
    );
    let listed: Vec<_> = store
        .list(Some(&Path::from(dir.clone())))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(listed.len(), 1, "list under the prefix");
    assert_eq!(listed[0].size, 10);
    store.delete(&key).await.expect("delete");
    assert!(
        matches!(
            store.get(&key).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "deleted object is gone"
    );
}

pub async fn create_if_absent_is_exclusive(store: &dyn ObjectStore) {
    let key = Path::from(format!("{}/m/00000000000000000001.json", scratch()));
    let opts = || PutOptions::from(PutMode::Create);
    store
        .put_opts(&key, Bytes::from_static(b"first").into(), opts())
        .await
        .expect("first create");
    let second = store
        .put_opts(&key, Bytes::from_static(b"second").into(), opts())
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "second create must fail with AlreadyExists, got {second:?}"
    );
    let got = store
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&got[..], b"first", "the loser did not overwrite");
    store.delete(&key).await.expect("cleanup");
}

fn pk() -> PartitionKey {
    PartitionKey {
        topic: scratch(),
        topic_id: Uuid::new_v4(),
        partition: 0,
    }
}

pub async fn manifest_chain_compare_and_swap(store: &dyn ObjectStore) {
    let pk = pk();
    assert!(manifest::load(store, &pk).await.expect("load").is_none());
    // Two writers racing from the same version: both changes must land.
    let (a, b) = futures::join!(
        manifest::update(store, &pk, |m| {
            m.configs.insert("a".into(), "1".into());
            true
        }),
        manifest::update(store, &pk, |m| {
            m.configs.insert("b".into(), "2".into());
            true
        })
    );
    a.expect("writer a");
    b.expect("writer b");
    let m = manifest::load(store, &pk)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(m.version, 2, "two versions published");
    assert_eq!(m.configs.len(), 2, "no lost update: {:?}", m.configs);
    copier::delete_partition(store, &pk).await.expect("delete");
}

/// A batch header good enough for the reader: base offset, length, magic 2 and
/// last offset delta, padded with `pad` bytes.
pub fn fake_batch(base: i64, records: i32, pad: usize) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(base);
    b.put_i32((49 + pad) as i32);
    b.put_i32(0); // leader epoch
    b.put_u8(2); // magic
    b.put_u32(0); // crc (not checked by the reader)
    b.put_i16(0); // attributes
    b.put_i32(records - 1); // last offset delta
    b.put_bytes(0, 61 - 27 + pad);
    b.freeze()
}

/// Writes a local segment of `n` batches of 10 records each, with an index entry
/// per batch, and returns its files.
pub fn write_fake_segment(
    dir: &std::path::Path,
    base: i64,
    n: i64,
    pad: usize,
) -> (LocalSegmentFiles, Bytes) {
    let mut log = BytesMut::new();
    let mut index = BytesMut::new();
    for i in 0..n {
        let pos = log.len() as u32;
        log.extend_from_slice(&fake_batch(base + i * 10, 10, pad));
        index.put_u32((i * 10 + 9) as u32);
        index.put_u32(pos);
    }
    let name = format!("{base:020}");
    let path = |ext| dir.join(format!("{name}.{ext}"));
    let ok = std::fs::write(path("log"), &log)
        .and_then(|()| std::fs::write(path("index"), &index))
        .and_then(|()| std::fs::write(path("timeindex"), b""));
    ok.expect("writing a fake segment");
    let open = |ext| LocalFile::open(path(ext)).expect("opening a fake segment");
    let files = LocalSegmentFiles {
        log: open("log"),
        index: open("index"),
        timeindex: open("timeindex"),
        txnindex: Vec::new(),
        producer_snapshot: Vec::new(),
        base_offset: base,
        next_offset: base + n * 10,
        max_timestamp: 1_000,
    };
    (files, log.freeze())
}

pub async fn copy_read_expire_round_trip(store: Arc<dyn ObjectStore>) {
    let pk = pk();
    let tmp = tempfile_dir();
    let throttle = Throttle::new(0);
    let info = TopicInfo {
        partition_count: 3,
        ..Default::default()
    };
    let (s0, log0) = write_fake_segment(&tmp, 0, 50, 100);
    let (s1, log1) = write_fake_segment(&tmp, 500, 50, 100);
    copier::copy_segment(&*store, &pk, &s0, &info, &throttle)
        .await
        .expect("copy 0");
    // A retried copy of an already tiered segment is refused, not duplicated.
    let again = copier::copy_segment(&*store, &pk, &s0, &info, &throttle)
        .await
        .expect("copy 0 again");
    assert_eq!(again.segments.len(), 1, "no duplicate segment");
    let m = copier::copy_segment(&*store, &pk, &s1, &info, &throttle)
        .await
        .expect("copy 1");
    assert_eq!(
        (m.start_offset(), m.end_offset(), m.partition_count),
        (Some(0), Some(1000), 3)
    );

    let cfg = CacheConfig {
        chunk_bytes: 1000,
        ..Default::default()
    };
    let reader = RemoteReader::new(store.clone(), cfg).await.expect("reader");
    // Read everything sequentially and compare bytes.
    let mut got = BytesMut::new();
    let mut offset = 0;
    while offset < 1000 {
        let b = reader
            .read(&m, offset, 3000, true)
            .await
            .expect("remote read")
            .to_bytes();
        assert!(!b.is_empty(), "read at {offset} returned nothing");
        let batches = b.len() / 161;
        offset += batches as i64 * 10;
        got.extend_from_slice(&b);
    }
    let mut want = BytesMut::new();
    want.extend_from_slice(&log0);
    want.extend_from_slice(&log1);
    assert_eq!(
        got.freeze(),
        want.freeze(),
        "remote bytes equal local bytes"
    );
    // Reading it all again is served by the cache: every read is a hit.
    let before = reader.cache_stats();
    assert!(before.misses > 0, "a cold read misses: {before:?}");
    let mut offset = 0;
    let mut reads = 0;
    while offset < 1000 {
        let b = reader
            .read(&m, offset, 3000, true)
            .await
            .expect("re-read")
            .to_bytes();
        offset += (b.len() / 161) as i64 * 10;
        reads += 1;
    }
    let after = reader.cache_stats();
    assert_eq!(
        (after.hits - before.hits, after.misses),
        (reads, before.misses),
        "second pass all hits"
    );
    // Offset in the middle of a batch returns that whole batch.
    let b = reader
        .read(&m, 505, 1, true)
        .await
        .expect("mid-batch read")
        .to_bytes();
    assert_eq!(&b[..8], &500i64.to_be_bytes());

    let m = copier::expire(&*store, &pk, 500).await.expect("expire");
    assert_eq!(m.start_offset(), Some(500));
    assert!(
        reader.read(&m, 10, 1000, true).await.is_err(),
        "expired offsets are not readable"
    );
    assert_eq!(
        copier::sweep_orphans(&*store, &pk, std::time::Duration::ZERO)
            .await
            .expect("sweep"),
        4,
        "the refused duplicate copy left 4 orphans"
    );
    copier::delete_partition(&*store, &pk)
        .await
        .expect("delete");
    let left: Vec<_> = store
        .list(Some(&pk.topic_dir()))
        .try_collect()
        .await
        .expect("list");
    assert!(left.is_empty(), "partition deleted: {left:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A segment above the multipart threshold (8 MiB) is streamed in parts and reads
/// back byte for byte.
pub async fn large_segment_streams_as_multipart(store: Arc<dyn ObjectStore>) {
    let pk = pk();
    let tmp = tempfile_dir();
    let (files, log) = write_fake_segment(&tmp, 0, 600, 16_000);
    assert!(log.len() > 8 << 20);
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let m = copier::copy_segment(&*store, &pk, &files, &info, &Throttle::new(0))
        .await
        .expect("copy");
    let seg = &m.segments[0];
    assert_eq!(
        (seg.size_bytes, seg.crc32c),
        (log.len() as u64, crc32c::crc32c(&log))
    );
    let key = pk.segment(0, seg.id, crate::layout::SegmentFile::Log);
    let got = store
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert!(got == log, "multipart object equals the local file");
    copier::delete_partition(&*store, &pk)
        .await
        .expect("delete");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The upload reads the files that were opened, as the log handed them over:
/// after a cleaning renamed other files over their names (here, for the
/// multipart `.log` and the one-PUT `.index`) or retention unlinked them
/// (`.timeindex`), the objects hold the opened bytes; a file cut shorter than
/// its length (a truncation) fails the upload instead of sending a prefix.
pub async fn uploads_read_the_files_as_opened(store: Arc<dyn ObjectStore>) {
    let pk = pk();
    let tmp = tempfile_dir();
    let (files, log) = write_fake_segment(&tmp, 0, 600, 16_000);
    let index = std::fs::read(&files.index.path).expect("index");
    for (path, ext) in [(&files.log.path, "log"), (&files.index.path, "index")] {
        let other = tmp.join(format!("other.{ext}"));
        std::fs::write(&other, b"a later generation").expect("write");
        std::fs::rename(&other, path).expect("rename over");
    }
    std::fs::remove_file(&files.timeindex.path).expect("unlink");
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let m = copier::copy_segment(&*store, &pk, &files, &info, &Throttle::new(0))
        .await
        .expect("copy");
    let seg = &m.segments[0];
    assert_eq!(
        (seg.size_bytes, seg.crc32c, seg.index_bytes),
        (log.len() as u64, crc32c::crc32c(&log), index.len() as u64)
    );
    for (file, want) in [
        (crate::layout::SegmentFile::Log, &log[..]),
        (crate::layout::SegmentFile::Index, &index[..]),
    ] {
        let got = store
            .get(&pk.segment(0, seg.id, file))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        assert!(got == want, "the object holds the opened generation");
    }
    let (short, _) = write_fake_segment(&tmp, 6000, 5, 10);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short.log.path)
        .and_then(|f| f.set_len(10))
        .expect("cut");
    let err = copier::copy_segment(&*store, &pk, &short, &info, &Throttle::new(0))
        .await
        .expect_err("a cut file");
    assert!(matches!(err, TierError::LocalRead { .. }), "{err}");
    copier::delete_partition(&*store, &pk)
        .await
        .expect("delete");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The topic metadata object round-trips, and discovery finds the topic with its
/// id, partition count, configs and each partition's resume offset.
pub async fn topic_metadata_and_discovery(store: Arc<dyn ObjectStore>) {
    let pk = PartitionKey {
        partition: 1,
        ..pk()
    };
    let meta = topics::TopicMetadata {
        topic: pk.topic.clone(),
        topic_id: pk.topic_id,
        partition_count: 2,
        replication_factor: 1,
        configs: [("retention.ms".to_string(), "-1".to_string())].into(),
        updated_ms: 1,
    };
    topics::put_metadata(&*store, &meta).await.expect("put");
    let got = topics::load_metadata(&*store, &pk.topic, pk.topic_id)
        .await
        .expect("load");
    assert_eq!(got.as_ref(), Some(&meta), "metadata round-trips");
    let tmp = tempfile_dir();
    let (files, _) = write_fake_segment(&tmp, 0, 5, 10);
    let info = TopicInfo {
        partition_count: 2,
        ..Default::default()
    };
    copier::copy_segment(&*store, &pk, &files, &info, &Throttle::new(0))
        .await
        .expect("copy");
    let found = topics::discover(&store).await.expect("discover");
    let t = found
        .iter()
        .find(|t| t.topic_id == pk.topic_id)
        .expect("topic discovered");
    assert_eq!(
        (t.topic.as_str(), t.partition_count, t.source),
        (pk.topic.as_str(), 2, topics::MetadataSource::TopicObject)
    );
    assert_eq!(t.configs, meta.configs);
    assert_eq!((t.resume_offset(0), t.resume_offset(1)), (0, 50));
    copier::delete_partition(&*store, &pk)
        .await
        .expect("delete");
    topics::delete_metadata(&*store, &pk.topic, pk.topic_id)
        .await
        .expect("delete metadata");
    assert!(topics::load_metadata(&*store, &pk.topic, pk.topic_id)
        .await
        .expect("load")
        .is_none());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A segment starting after the remote end is recorded only when the local log no
/// longer holds the offsets in between (Kafka copies from max(remote end, local
/// log start)); reads in the gap go on at the next segment.
pub async fn gap_below_local_start_is_bridged(store: Arc<dyn ObjectStore>) {
    let pk = pk();
    let tmp = tempfile_dir();
    let throttle = Throttle::new(0);
    let (s0, _) = write_fake_segment(&tmp, 0, 10, 10);
    let (s1, log1) = write_fake_segment(&tmp, 500, 10, 10);
    let info = |local_start| TopicInfo {
        partition_count: 1,
        log_start_offset: local_start,
        ..Default::default()
    };
    copier::copy_segment(&*store, &pk, &s0, &info(0), &throttle)
        .await
        .expect("copy 0");
    // Offsets [100, 500) still exist locally: no hole.
    let refused = copier::copy_segment(&*store, &pk, &s1, &info(300), &throttle).await;
    assert!(
        matches!(
            refused,
            Err(TierError::WouldLeaveHole {
                remote_end: 100,
                ..
            })
        ),
        "refused while local data exists: {refused:?}"
    );
    // Local retention deleted them before they were tiered: the tier continues.
    let m = copier::copy_segment(&*store, &pk, &s1, &info(500), &throttle)
        .await
        .expect("copy 1");
    assert_eq!((m.start_offset(), m.end_offset()), (Some(0), Some(600)));
    let reader = RemoteReader::new(store.clone(), CacheConfig::default())
        .await
        .expect("reader");
    let b = reader
        .read(&m, 250, 1 << 20, true)
        .await
        .expect("gap read")
        .to_bytes();
    assert_eq!(b, log1, "a read in the gap returns the next segment");
    assert!(
        reader.read(&m, 600, 1000, true).await.is_err(),
        "past the end"
    );
    copier::delete_partition(&*store, &pk)
        .await
        .expect("delete");
    let _ = std::fs::remove_dir_all(&tmp);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("strata-tier-conformance-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
