//! Tests of the remote reader (`reader.rs`).

use super::*;
use crate::conformance::write_fake_segment;
use crate::copier::{self, TopicInfo};

async fn tiered_partition(segments: i64) -> (Arc<dyn ObjectStore>, PartitionManifest) {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    tiered_partition_in(store, segments).await
}

async fn tiered_partition_in(
    store: Arc<dyn ObjectStore>,
    segments: i64,
) -> (Arc<dyn ObjectStore>, PartitionManifest) {
    let pk = PartitionKey {
        topic: "t".into(),
        topic_id: uuid::Uuid::new_v4(),
        partition: 0,
    };
    let dir = tempfile::tempdir().expect("tmp");
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let mut m = None;
    for s in 0..segments {
        // 64 batches of 16 KiB: 1 MiB per segment.
        let (files, _) = write_fake_segment(dir.path(), s * 640, 64, 16 * 1024 - 61);
        m = Some(
            copier::copy_segment(&*store, &pk, &files, &info, &Throttle::new(0))
                .await
                .expect("upload"),
        );
    }
    (store, m.expect("a segment"))
}

async fn read_all(reader: &RemoteReader, m: &PartitionManifest) -> u64 {
    let (mut offset, mut got) = (0, 0u64);
    while offset < m.end_offset().unwrap_or(0) {
        let b = reader
            .read(m, offset, 256 << 10, true)
            .await
            .expect("read")
            .to_bytes();
        assert!(!b.is_empty(), "no progress at {offset}");
        got += b.len() as u64;
        offset += (b.len() / (16 * 1024)) as i64 * 10;
    }
    got
}

/// A compacted remote tier: a segment whose batches end before its next offset,
/// one holding no batch, and one whose batches start after its base. A read at
/// any offset returns the first batch ending at or after it, crossing segments;
/// past the last batch of the tier the answer is empty.
#[tokio::test]
async fn reads_in_compaction_gaps_go_on_with_the_next_batch() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let pk = PartitionKey {
        topic: "t".into(),
        topic_id: uuid::Uuid::new_v4(),
        partition: 0,
    };
    let dir = tempfile::tempdir().expect("tmp");
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    // [0, 50): batches 0..30; [50, 70): none; [70, 120): batches 80..100.
    let spans = [(0, 3, 0, 50), (50, 0, 50, 70), (80, 2, 70, 120)];
    let mut m = None;
    for (first, n, base, next) in spans {
        let (mut files, _) = write_fake_segment(dir.path(), first, n, 100);
        files.base_offset = base;
        files.next_offset = next;
        m = Some(
            copier::copy_segment(&*store, &pk, &files, &info, &Throttle::new(0))
                .await
                .expect("upload"),
        );
    }
    let m = m.expect("manifest");
    assert_eq!(m.end_offset(), Some(120));
    let reader = RemoteReader::new(store, CacheConfig::default())
        .await
        .expect("reader");
    let first_base = |b: &Bytes| i64::from_be_bytes(b[0..8].try_into().expect("a batch"));
    for (at, want) in [
        (0, 0),
        (15, 10),
        (29, 20),
        (30, 80),
        (55, 80),
        (79, 80),
        (95, 90),
    ] {
        let b = reader
            .read(&m, at, 100, true)
            .await
            .expect("read")
            .to_bytes();
        assert_eq!(first_base(&b), want, "read at {at}");
    }
    for at in [100, 119] {
        let b = reader
            .read(&m, at, 100, true)
            .await
            .expect("read")
            .to_bytes();
        assert!(b.is_empty(), "nothing at or after {at}");
    }
    assert!(reader.read(&m, 120, 100, true).await.is_err());
}

/// `remote.log.manager.fetch.max.bytes.per.second`: reading N bytes through a
/// reader limited to R bytes/s takes at least (N - R) / R seconds (one second of
/// budget is free), measured on tokio's paused clock.
#[tokio::test]
async fn fetch_rate_limit_paces_remote_reads() {
    let (store, m) = tiered_partition(6).await;
    let rate = 1u64 << 20;
    let cfg = CacheConfig {
        chunk_bytes: 256 << 10,
        ..Default::default()
    };
    let limited = RemoteReader::new(store.clone(), cfg.clone())
        .await
        .expect("reader")
        .with_fetch_throttle(Arc::new(Throttle::new(rate)));
    let free = RemoteReader::new(store, cfg).await.expect("reader");
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let n = read_all(&free, &m).await;
    let unlimited = start.elapsed().as_secs_f64();
    let start = tokio::time::Instant::now();
    assert_eq!(read_all(&limited, &m).await, n);
    let took = start.elapsed().as_secs_f64();
    let floor = (n - rate) as f64 / rate as f64;
    assert!(
        took >= 0.95 * floor,
        "{n} bytes at {rate} B/s took {took:.2} s of virtual time; want at least {floor:.2} s"
    );
    assert!(unlimited < 0.05 * floor, "unlimited took {unlimited:.2} s");
}

/// A sequential reader's chunks come by one GET per run of missing chunks, not
/// one per chunk: reading 4 segments of 16 chunks from offset 0 takes one GET per
/// segment (the chunk-per-GET reader made 16, plus one for the offset index).
#[tokio::test]
async fn sequential_reads_coalesce_chunks_into_few_gets() {
    let faulty = crate::faulty::FaultyStore::new(
        object_store::memory::InMemory::new(),
        crate::faulty::Faults::default(),
    );
    let (_, m) = tiered_partition_in(faulty.clone(), 4).await;
    let cfg = CacheConfig {
        chunk_bytes: 64 << 10,
        read_ahead_chunks: 16,
        ..Default::default()
    };
    let reader = RemoteReader::new(faulty.clone(), cfg.clone())
        .await
        .expect("reader");
    let before = faulty.gets();
    assert_eq!(read_all(&reader, &m).await, m.size_bytes());
    let gets = faulty.gets() - before;
    // One streamed GET per segment; a sequential reader never needs an offset index.
    assert_eq!(
        gets, 4,
        "GETs for 4 segments of 16 chunks read from offset 0"
    );
    // A read in the middle of a segment seeks with the index; the read after it
    // continues at the position where the first ended.
    let fresh = RemoteReader::new(faulty.clone(), cfg.clone())
        .await
        .expect("reader");
    let seg = &m.segments[1];
    let mid = seg.base_offset + (seg.next_offset - seg.base_offset) / 2;
    let before = faulty.gets();
    let first = fresh
        .read(&m, mid, 4096, true)
        .await
        .expect("read")
        .to_bytes();
    let after_first = faulty.gets() - before;
    let base = i64::from_be_bytes(first[0..8].try_into().expect("a batch"));
    let next = base + (first.len() / (16 * 1024)) as i64 * 10;
    assert!(next > mid, "{base} + {} bytes", first.len());
    let second = fresh
        .read(&m, next, 4096, true)
        .await
        .expect("read on")
        .to_bytes();
    assert_eq!(
        i64::from_be_bytes(second[0..8].try_into().expect("a batch")),
        next,
        "the continuing read starts at the batch after the first"
    );
    assert_eq!(
        faulty.gets() - before,
        after_first,
        "the continuing read fetched again"
    );
    // Everything read was cached: the same reads again make no GET.
    let before = faulty.gets();
    read_all(&reader, &m).await;
    assert_eq!(faulty.gets(), before, "second pass served by the cache");
}

/// Cache admission: a scan of a partition four times the memory cache does not evict
/// the chunks another reader read at random positions (they are re-read with no GET),
/// and the scan itself is one GET per segment.
#[tokio::test]
async fn a_scan_does_not_evict_random_readers_chunks() {
    let faulty = crate::faulty::FaultyStore::new(
        object_store::memory::InMemory::new(),
        crate::faulty::Faults::default(),
    );
    let (_, tail) = tiered_partition_in(faulty.clone(), 2).await;
    let (_, scan) = tiered_partition_in(faulty.clone(), 16).await;
    let cfg = CacheConfig {
        chunk_bytes: 64 << 10,
        memory_bytes: 4 << 20,
        read_ahead_chunks: 8,
        ..Default::default()
    };
    let reader = RemoteReader::new(faulty.clone(), cfg)
        .await
        .expect("reader");
    // Random reads in the middle of segments (not sequential): the working set.
    let offsets = [205, 415, 845, 1055];
    for at in offsets {
        reader
            .read(&tail, at, 4096, true)
            .await
            .expect("tail read")
            .to_bytes();
    }
    // Their read-ahead GETs run in the background: let them finish (bounded).
    let mut seen = u64::MAX;
    for _ in 0..100 {
        if faulty.gets() == seen {
            break;
        }
        seen = faulty.gets();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = faulty.gets();
    assert_eq!(read_all(&reader, &scan).await, scan.size_bytes());
    assert_eq!(faulty.gets() - before, 16, "one GET per scanned segment");
    let before = faulty.gets();
    for at in offsets {
        reader
            .read(&tail, at, 4096, true)
            .await
            .expect("tail read again")
            .to_bytes();
    }
    assert_eq!(
        faulty.gets(),
        before,
        "the scan evicted the random reader's chunks"
    );
}
